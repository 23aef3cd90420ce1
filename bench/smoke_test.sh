#!/bin/bash
# bench_smoke_test: runs the benchmark harness end to end on the bundled
# testdata/hello project (no download, no network): every clean-build
# variant once, the rebuild figures once, and a correctness sweep of 3 edited
# inputs. Fails if bench/run fails (a build failed, or dodo build's output
# differed from a clean native build) or if a section of the report is
# missing.
#
# Usage (from Bazel): smoke_test.sh PATH_OF_DODO
set -euo pipefail

dodo="$1"
out="${TEST_UNDECLARED_OUTPUTS_DIR:-${TEST_TMPDIR:-/tmp}}"
work="${TEST_TMPDIR:-$(mktemp -d)}"
json="$out/bench_smoke.json"

python3 bench/run --smoke --projects hello --project-dir testdata/hello \
  --dodo "$dodo" --workdir "$work" --output "$json" \
  --plot "$out/bench_smoke.svg"

# bench/run exits non-zero on any failure; also check that nothing was
# skipped, so the test cannot go green by measuring less.
python3 - "$json" "$out/bench_smoke.svg" <<'PY'
import json, sys
import xml.etree.ElementTree as ET
r = json.load(open(sys.argv[1]))
errors = []
pr = r["projects"].get("hello")
if pr is None:
    sys.exit("no hello project in the results")
for v in ("native", "dodo", "strace", "build", "direct"):
    s = pr["summary"].get(v, {})
    if s.get("ok") != 1:
        errors.append(f"variant {v}: {s}")
rb = pr.get("rebuild", {}).get("summary", {})
for sc in ("noop", "noop_plan", "noop_again", "edit_c", "edit_c_code", "edit_h"):
    if "ratio_dodo_to_make" not in rb.get(sc, {}):
        errors.append(f"rebuild {sc} missing")
sw = pr.get("sweep")
if not sw:
    errors.append("no sweep")
else:
    if len(sw["steps"]) != 3:
        errors.append(f"sweep ran {len(sw['steps'])} steps, not 3")
    if sw["mismatch_count"] != 0:
        errors.append(f"sweep mismatches: {sw['mismatch_count']}")
    if sw["errors"]:
        errors.append(f"sweep errors: {sw['errors']}")
ET.parse(sys.argv[2])  # the plot is well-formed SVG
if errors:
    sys.exit("bench smoke test: " + "; ".join(errors))
print("bench smoke test: ok")
PY
