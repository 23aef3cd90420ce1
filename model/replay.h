// Replaying a trace against today's tree: which recorded observations would
// come out differently now, which commands must therefore rerun, and why.
//
// A command observed the tree through its operations (lookups, contents
// read or executed, metadata, listings, symlink targets) and was started
// with an argv, environment and cwd. Replaying evaluates each observation
// again. An observation of a path that an earlier command of the build
// changed is not compared with the tree: it depends on that command, and
// changes only if that command must rerun (then its outputs are unknown
// until it has run; see MakePlan).
#ifndef DODO_MODEL_REPLAY_H_
#define DODO_MODEL_REPLAY_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "model/file_hasher.h"
#include "model/path_mapper.h"
#include "model/temp_names.h"
#include "model/trace_model.h"

namespace dodo::model {

// Answers "would this observation see the same thing now?" against the live
// file system. Per-path answers are cached until Forget().
class LiveTree {
 public:
  // `display_root`: paths under it are shown relative to it in causes.
  LiveTree(FileHasher* hasher, std::string display_root);

  // Empty if `op` would observe today what it observed when recorded (or is
  // not an observation); else a short sentence saying what changed.
  std::string Check(const TraceModel& model, const proto::Operation& op);
  // The same, for a caller that already has the absolute path `op` names.
  // A STAT's mtime is not compared here: whether it matters depends on the
  // commands around it (see MtimeMoved).
  std::string Check(const TraceModel& model, const proto::Operation& op, const std::string& path);
  // Whether `op`, a STAT that found a regular file at `path`, would see
  // another mtime now. make decides by mtimes alone: a make that found its
  // target up to date read none of the prerequisites it compared. So a new
  // mtime is a cause for the commands that may rerun unless one of them
  // read or executed the file too (then what they did followed contents,
  // which their reads compare: ld stats the objects it reads). Only for
  // paths the last build never wrote: one it wrote got a new mtime then too,
  // as it does now when its writer reruns or is skipped (a skip touches what
  // it leaves, for make's sake), and `mv` stats what it renames. Traces from
  // before STAT kept an mtime have none to compare.
  bool MtimeMoved(const proto::Operation& op, const std::string& path);

  // The tree may have changed (a build ran commands): drop cached answers.
  void Forget();
  // Only `path` changed.
  void Forget(const std::string& path);

  // `path` as causes show it.
  std::string Display(const std::string& path) const;

  // What lstat said about a path (and stat, through a symlink), cached
  // until Forget(). The no-op stamp keeps the identities of every path
  // looked up: while they stay the same, so do the answers.
  struct Identity {
    int error = 0;  // errno, or 0
    dev_t dev = 0;
    ino_t ino = 0;
    mode_t mode = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
  };
  struct Entry {
    Identity lstat;
    Identity stat;        // equal to lstat unless the path is a symlink
    bool listed = false;  // its entries were compared, not just its existence
    // Its contents, once some observation needed them: many commands read
    // the same headers, and each hash costs a stat even when cached.
    std::optional<absl::StatusOr<FileVersion>> version;
    // Its target, once read: every command's path walk reads the same
    // links (xz's trace has 64,000 READLINK operations).
    std::optional<std::optional<std::string>> link_target;
  };
  const Entry& Lookup(const std::string& path);
  // The target of the symlink at `path` now, read once until Forget();
  // nullptr when it cannot be read (not a symlink, gone).
  const std::string* LinkTarget(const std::string& path);
  // The digest of the file at `path` now, computed once until Forget().
  absl::StatusOr<FileVersion> Hash(const std::string& path);
  // What lstat (or, with `follow`, stat) says about `path` now, uncached.
  static Identity IdentityNow(const std::string& path, bool follow);
  // Calls fn(path, entry) for every path looked up since Forget().
  template <typename Fn>
  void ForEachLookup(Fn fn) const {
    for (const auto& [path, entry] : entries_) fn(path, entry);
  }
  FileHasher& hasher() { return *hasher_; }
  // Looks at the files where `mapper` says (must outlive the tree): during a
  // build, what the build's processes see.
  void set_path_mapper(const PathMapper* mapper) { mapper_ = mapper; }
  const std::string& Physical(const std::string& path) const {
    return mapper_ == nullptr ? path : mapper_->Physical(path);
  }

 private:
  // Lookup's entry, for the members that fill in more of it: one hash of the
  // path instead of a second find.
  Entry& LookedUp(const std::string& path);

  FileHasher* hasher_;
  const PathMapper* mapper_ = nullptr;
  std::string display_root_;
  absl::flat_hash_map<std::string, Entry> entries_;
};

// The environment entries that differ between two environments ("NAME=v"
// lists), by name, sorted.
std::vector<std::string> ChangedVariables(const std::vector<std::string>& before,
                                          const std::vector<std::string>& after);

// Why `commands` (a subtree, or several) would not behave as recorded if run
// now: their observations of paths that they did not change themselves
// first, evaluated against the live tree, and whether they all succeeded.
// Empty: skipping them and restoring their outputs gives the same tree.
// Stops after `max_causes`.
//
// With `renames`, the commands are looked at as they would run under
// today's temporary names (see temp_names.h): observations of a renamed path
// are compared at its new name, and a command that lists a renamed path, or
// looks at or writes a path named after one (`gcc -c /tmp/ccX.c` writes
// ccX.o), gives a cause: its records would not say what it does now.
std::vector<std::string> CheckCommands(const TraceModel& model, std::vector<size_t> commands,
                                       LiveTree& tree, size_t max_causes = 1,
                                       const TempRenames* renames = nullptr);

// The operations of `commands` and the execs that started them, as indices
// into model.ops(), in trace order and each once.
std::vector<size_t> OpsOf(const TraceModel& model, const std::vector<size_t>& commands);

// The final state the recorded build left at each path `commands` changed,
// in trace order of the last change (their CommandEnd outputs). A path that
// was another name of a file written under one name (a hard link) counts as
// changed when its writer ended.
struct FinalState {
  std::string path;
  proto::Version version;
  // Another name of the file its writer wrote under this one (empty: none).
  std::string same_file_as;
  // The command whose end left it so (kNoCommand: not known).
  size_t writer = kNoCommand;
};
std::vector<FinalState> FinalStates(const TraceModel& model, const std::vector<size_t>& commands);

struct CommandVerdict {
  bool dirty = false;  // its own behaviour may differ: it must rerun
  bool runs = false;   // it must run (dirty, or it starts or feeds one that is)
  // Dirty for a reason an exec-time check cannot see again (its input pipe
  // is fed by an ancestor that must rerun): dodo build must not skip it.
  bool pinned = false;
  // The command whose rerun pinned it, which feeds that pipe: a skip that
  // skips this one too leaves nobody to read the pipe.
  size_t pinned_by = kNoCommand;
  std::vector<std::string> causes;
  // Its operations (indices into model.ops()) that the plan found changed,
  // then those that read what a command that must rerun will rewrite: the
  // ones an exec-time check looks at first (SuspectCause). At most
  // kMaxSuspects.
  std::vector<size_t> suspects;
};
inline constexpr size_t kMaxSuspects = 16;

struct Plan {
  std::vector<CommandVerdict> commands;  // parallel to model.commands()
  bool root_changed = false;             // the root command itself is another one
  // Outputs to restore when nothing runs: missing, or changed by hand.
  std::vector<FinalState> restores;
  std::vector<std::string> restore_reasons;  // parallel to restores
  // The commands whose operations change each path a suspect reads that
  // the build changes.
  absl::flat_hash_map<std::string, absl::InlinedVector<size_t, 2>> writers;
  bool UpToDate() const;
};

// Plans a rebuild from `model` (the last build's trace) for a root command
// run now with `argv`, `cwd` and `env`.
Plan MakePlan(const TraceModel& model, LiveTree& tree, const std::vector<std::string>& argv,
              const std::string& cwd, const std::vector<std::string>& env);

// A cause that CheckCommands(model, group, tree) finds too, looked for in the
// group's suspect operations alone, or "" when none of them differs now
// (then only the whole check can tell). `members` holds `group`'s commands.
// A make that must rerun because one compile's source changed has the whole
// build below it: this finds the source at once instead of after every
// observation that comes before it in the trace.
std::string SuspectCause(const TraceModel& model, const Plan& plan,
                         const std::vector<size_t>& group,
                         const absl::flat_hash_set<size_t>& members, LiveTree& tree);

// Whether the tree holds `version` at `path` now; if not, a reason.
std::optional<std::string> DiffersFromFinal(const std::string& path, const proto::Version& version,
                                            LiveTree& tree);
// The same for `state`, which must also be the file its `same_file_as` is.
std::optional<std::string> DiffersFromFinal(const FinalState& state, LiveTree& tree);

// A command line shortened to `width` characters for one-line output.
std::string ShortCommand(const std::vector<std::string>& argv, size_t width = 72);

}  // namespace dodo::model

#endif  // DODO_MODEL_REPLAY_H_
