// Collecting the store's garbage. A build saves every version its commands
// write, and the next build restores outputs only from versions that the
// last build's trace names. Every other object can never be restored again:
// it only takes disk space, and `dodo gc` removes it, together with what
// killed builds left behind.
#ifndef DODO_MODEL_STORE_GC_H_
#define DODO_MODEL_STORE_GC_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "model/file_hasher.h"
#include "model/store.h"

namespace dodo::model {

using DigestSet = absl::flat_hash_set<Digest>;

// Every content digest that the trace at `trace_path` (the versions of its
// operations and of its commands' outputs) and the manifest at
// `manifest_path` name. A missing manifest names nothing. A trace that
// cannot be read to its end (missing, damaged, cut short) is an error naming
// it: what it would have named is unknown, so nothing may be removed.
absl::StatusOr<DigestSet> DigestsInUse(const std::string& trace_path,
                                       const std::string& manifest_path);

struct GcStats {
  uint64_t objects_kept = 0;
  uint64_t bytes_kept = 0;
  uint64_t objects_removed = 0;
  uint64_t bytes_removed = 0;
  // Files a killed build left: half-saved objects, its staged outputs, its
  // unfinished trace.
  uint64_t leftovers_removed = 0;
  uint64_t leftover_bytes_removed = 0;
};

// Removes every object of `store` that `in_use` does not name, and the
// leftovers of killed builds. The caller holds the store open, so no build
// runs meanwhile. With `dry_run` nothing is removed and the figures say what
// would be. Stops at the first file that cannot be removed (the error names
// it); what was removed before it stays removed, which loses nothing.
absl::StatusOr<GcStats> CollectGarbage(const Store& store, const DigestSet& in_use, bool dry_run);

}  // namespace dodo::model

#endif  // DODO_MODEL_STORE_GC_H_
