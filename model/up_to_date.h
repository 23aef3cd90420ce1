// The no-op fast path of `dodo build`. Planning a rebuild means loading the
// whole last trace and checking every observation in it; for a tree that has
// not changed, that is most of a no-op build's time. When a plan finds the
// tree up to date, a stamp records what the answer rested on: the identity
// (inode, size, times, mode) of every path the plan looked at, the trace it
// was made from, and the root command with its directory and environment.
// While all of that is unchanged, so is the plan's answer: the next build
// checks the stamp with one stat per path and loads nothing else. Any
// difference, even a touch, falls back to the full plan.
#ifndef DODO_MODEL_UP_TO_DATE_H_
#define DODO_MODEL_UP_TO_DATE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/replay.h"
#include "proto/stamp.pb.h"

namespace dodo::model {

// The root command of a build as it is started now.
struct RootCall {
  std::vector<std::string> argv;
  std::string cwd;
  std::vector<std::string> env;
};

// What the last build did, when the stamp still holds.
struct UpToDateHit {
  uint64_t commands = 0;  // all skipped
  int exit_status = 0;    // the root's, as recorded
};

class UpToDateStamp {
 public:
  // The stamp of a plan that found the tree up to date: `tree` holds its
  // lookups, made from `looked_since_ns` (CLOCK_REALTIME) on. Paths under
  // `skip_prefix` (the store) are left out. Nothing if a path changed too
  // recently to tell a later change by its times (file systems keep coarse
  // times: a second write in the same tick leaves them as they were).
  static std::optional<UpToDateStamp> FromPlan(const LiveTree& tree, const std::string& skip_prefix,
                                               const RootCall& root, uint64_t commands,
                                               int exit_status, int64_t looked_since_ns);

  // Writes the stamp to `stamp_path` (beside, then renamed over) for the
  // trace now at `trace_path`. With `planned_from`, only if the trace still
  // has that identity (else returns false): a planner that holds no build
  // lock must not name a trace it did not plan from. Writers serialize on
  // `stamp_path`.lock, so that check and the rename happen as one.
  absl::StatusOr<bool> Write(const std::string& stamp_path, const std::string& trace_path,
                             const proto::FileIdentity* planned_from = nullptr);

 private:
  UpToDateStamp() = default;
  proto::UpToDate stamp_;
};

// The first no-op after a build would load and replay the whole trace. A
// build that ran commands leaves that work to a process of its own (`dodo
// build` starts it, detached): this plans from the trace in `store_dir`
// against the tree as it is now and, when nothing would run, writes the
// stamp. It takes no build lock: the stamp names the trace by the identity
// it had before and after loading, so a build that replaces the trace
// meanwhile makes the stamp stale, never wrong. Returns whether it wrote one.
absl::StatusOr<bool> StampLastBuild(const std::string& store_dir, const RootCall& root);

// The last build's outcome if the stamp at `stamp_path` still holds for
// `trace_path` and `root`; nothing if it is missing, unreadable or stale.
std::optional<UpToDateHit> CheckUpToDateStamp(const std::string& stamp_path,
                                              const std::string& trace_path, const RootCall& root);

}  // namespace dodo::model

#endif  // DODO_MODEL_UP_TO_DATE_H_
