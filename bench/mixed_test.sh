#!/bin/bash
# mixed_test: bench/mixed on every scenario project it knows, two random
# sequences of 40 steps each, and the sequence of make_libdir that showed a
# sub-make skipped although a file it stat'ed had a new mtime (seed 12).
# Every dodo build must leave what a clean build leaves.
#
# Usage (from Bazel): mixed_test.sh PATH_OF_DODO
set -euo pipefail
dodo="$1"
python3 bench/mixed --dodo "$dodo" --seeds 2 --steps 40
python3 bench/mixed --dodo "$dodo" --projects make_libdir --first-seed 12 --seeds 1 --steps 40
