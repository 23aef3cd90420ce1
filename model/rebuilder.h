// dodo build's decisions while a build runs: each exec the tracer is about
// to let happen is matched with a command of the last build; when that
// command (with everything it started, and the commands it talks to through
// pipes) would observe exactly what it observed then, the exec is skipped:
// its outputs are restored from the store, its records are copied into the
// new trace, and its parent gets the exit status it got last time.
#ifndef DODO_MODEL_REBUILDER_H_
#define DODO_MODEL_REBUILDER_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "model/recorder.h"
#include "model/replay.h"
#include "model/store.h"
#include "model/temp_names.h"
#include "model/trace_model.h"
#include "tracer/events.h"

namespace dodo::model {

struct RebuildStats {
  uint64_t run = 0;             // commands exec'd in this build
  uint64_t skipped = 0;         // commands not run (copied from the last build)
  uint64_t files_restored = 0;  // outputs written back from the store
  uint64_t kept_dormant = 0;    // commands not started, kept for later builds
};

struct RebuildOptions {
  std::string project_root;       // absolute; outputs under it are stored
  std::FILE* progress = nullptr;  // one line per command run (nullptr: quiet)
  bool show_skipped = false;      // also a line per command skipped
  bool explain = false;           // after each command run, why it was not skipped
  size_t width = 78;              // progress line width
};

class Rebuilder : public tracer::EventSink, public tracer::ExecGate, public OutputKeeper {
 public:
  // `previous` is the last build's trace, or nullptr for a fresh build. All
  // pointers must outlive the rebuilder.
  Rebuilder(Recorder* recorder, const TraceModel* previous, Store* store, LiveTree* tree,
            RebuildOptions options);

  // Whether the new trace should begin with the string table of `previous`
  // (see InheritStrings): when it keeps dormant records, which are then
  // copied as they are. Every kMaxInheritedBuilds builds in a row the table
  // starts afresh instead, which lets go of strings no longer used.
  static bool ShouldInheritStrings(const TraceModel* previous);
  static constexpr uint32_t kMaxInheritedBuilds = 16;
  // Defines the last trace's strings in the new one under the same ids,
  // before anything else is interned. Operations copied unchanged (a dormant
  // command's, and any other whose command keeps its id) are then written
  // as the bytes the last trace held.
  absl::Status InheritStrings();

  // The plan made from `previous` before the build started: the commands it
  // pinned are never skipped (their cause, a pipe fed by a rerunning
  // ancestor, cannot be seen at exec time).
  void set_plan(const Plan* plan) { plan_ = plan; }

  // tracer::EventSink: everything goes to the recorder; execs are also
  // matched with the last build's commands.
  void OnSyscall(const tracer::SyscallEvent& event) override { recorder_->OnSyscall(event); }
  void OnExec(const tracer::ExecEvent& event) override;
  void OnExecFailed(const tracer::ExecFailedEvent& event) override {
    recorder_->OnExecFailed(event);
  }
  void OnFork(const tracer::ForkEvent& event) override { recorder_->OnFork(event); }
  void OnExit(const tracer::ExitEvent& event) override { recorder_->OnExit(event); }
  void OnWarning(const tracer::WarningEvent& event) override { recorder_->OnWarning(event); }

  std::optional<int> BeforeExec(const tracer::ExecRequest& request) override;

  // OutputKeeper: files under the project root go to the store.
  absl::StatusOr<FileVersion> Keep(const std::string& path, const std::string& bytes_at) override;

  // Nothing runs: copies the whole last build into the new trace and
  // restores `plan.restores`. Returns the root's recorded exit status.
  absl::StatusOr<int> SkipEverything(const Plan& plan);

  // After the build: keeps the records of the last build's commands that a
  // command which ran in this build did not start again (make found their
  // targets up to date), as dormant records (proto::CommandStart.dormant)
  // of the new trace. A later build in which that command starts them again
  // matches them like its own: `as` need not run again for a header edit
  // only because the build before did not compile that file at all.
  // Call once every command has ended, before the trace is finished.
  void KeepDormant();

  const RebuildStats& stats() const { return stats_; }
  // The first restore that failed (the build then ran the command instead).
  const absl::Status& first_error() const { return first_error_; }

  // How a path is removed on a skipped command's behalf: through the
  // virtual store, which drops its staged file too (default: unlink).
  void set_remove_path(std::function<absl::Status(const std::string&)> remove) {
    remove_path_ = std::move(remove);
  }

 private:
  // What a command added to a file through a descriptor it was given (a
  // shell's `cmd >&5` or `cmd > out`): the bytes of `version` past `from`.
  struct Append {
    int fd = -1;
    std::string path;
    uint64_t from = 0;       // the file's size when the command started
    proto::Version version;  // the file when the command ended
  };
  // The files `top`, a command at the top of `group`, changed only by
  // writing through descriptors it was given, and what it added to each.
  // Skipping it cannot restore such a file by putting its recorded version
  // in place: whoever gave the descriptor (a shell that runs `exec 5>log`,
  // as configure does with config.log) holds the file open and goes on
  // writing into the one it has, which the restore unlinks. What was
  // written there before and after would be lost. The skip writes the
  // added bytes through the descriptor instead, as the command would have.
  std::vector<Append> AppendsOf(size_t top, const std::vector<size_t>& group) const;
  // Writes what `appends` added through the descriptors of the process
  // about to exec.
  absl::Status ReplayAppends(const std::vector<Append>& appends,
                             const tracer::ExecRequest& request);
  // `command` and its pipe partners, transitively: the recorded commands
  // that run or are skipped together. With `with_subtrees`, also every
  // command they started and the pipe partners of those: all that a skip of
  // `command` skips.
  std::vector<size_t> Connected(size_t command, bool with_subtrees) const;
  // Adds each writer and reader of `pipes` to the other's partners_.
  void AddPartners(const absl::btree_map<uint64_t, TraceModel::Pipe>& pipes);
  // Empty if `group` can be skipped now; else why not.
  // Fills `appends` with what the group's top commands added to files.
  // With `renames`, the exec names temporary files under other names than
  // the matched command did (see temp_names.h).
  std::string WhyRun(const std::vector<size_t>& group, const tracer::ExecRequest& request,
                     size_t matched, absl::flat_hash_map<size_t, std::vector<Append>>& appends,
                     const TempRenames* renames);
  // The final states `commands` left, less those a later command of the
  // last build replaced without reading them. config.status writes
  // `# dummy` into each missing .deps/x.Plo, which a compile's `mv x.Tpo
  // x.Plo` replaces; restoring the dummy over the tree's real one when
  // configure is skipped would hide every header from make. The tree keeps
  // the later version, as rerunning configure would have kept it, and the
  // copied records say so (kept_later_).
  std::vector<FinalState> StatesToRestore(const std::vector<size_t>& commands);
  // Writes back the outputs of `group` that differ from what it left. With
  // `redo_removals`, also removes again what it removed or renamed away and
  // the tree has now (see the definition).
  // Files in `leave` are left alone (their additions are replayed).
  absl::Status RestoreOutputs(const std::vector<size_t>& group, bool redo_removals,
                              const absl::flat_hash_set<std::string>& leave = {});
  // The same for final states already known. With `times_set`, the group
  // is skipped while the build runs: a file already there gets the time of
  // now, as if written again, unless it is in `times_set` (the group set
  // its times itself).
  absl::Status RestoreStates(const std::vector<FinalState>& states, bool redo_removals,
                             const absl::flat_hash_set<std::string>* times_set = nullptr);
  // Restores another name of a file (a hard link) by linking it to the
  // name it was written under, if that holds its version now.
  bool LinkToSameFile(const FinalState& state);
  // Writes the records of `commands` into the new trace, `parent` being the
  // new id of the command that started the first of them.
  // With `relist`, directory listings are copied as the tree lists them now
  // (see the definition).
  // As what the copies go into the new trace: commands this build skipped,
  // dormant commands (KeepDormant), or each as it was recorded (a whole
  // build skipped, whose dormant commands stay dormant).
  enum class CopyAs { kSkipped, kDormant, kAsRecorded };
  void CopyRecords(const std::vector<size_t>& commands, uint64_t parent, bool relist,
                   const TempRenames* renames = nullptr, CopyAs as = CopyAs::kSkipped);
  // Whether `parent` (a new command id) started, instead of the recorded
  // command, one that matched nothing and differs from it in one argument
  // at most: another version of it (collect2's `-fresolution=/tmp/ccX.res`,
  // a changed flag), which leaves the recorded one no use.
  bool Superseded(size_t recorded, uint64_t parent) const;
  // Builds in a row a command is kept dormant at most.
  static constexpr uint32_t kMaxDormantBuilds = 100;
  // Dormant commands are numbered from here on, apart from the build's
  // (which count up from 1), and keep their id from one trace to the next:
  // their operations are then copied without a change.
  static constexpr uint64_t kFirstDormantId = uint64_t{1} << 40;
  void Progress(const char* verb, const std::vector<std::string>& argv);
  // Empty if the process about to exec `matched` holds the same files of
  // the build on its descriptors as the recorded command did; else the
  // first difference. A skipped command's outputs are restored where it
  // wrote them last time, so they must be where it would write them now.
  std::string ChangedDescriptor(const tracer::ExecRequest& request, size_t matched) const;
  // Why an exec that BeforeExec lets through must run (for --explain).
  std::string RunCause(const tracer::ExecRequest& request, uint64_t parent_id, size_t matched);

  std::function<absl::Status(const std::string&)> remove_path_;
  Recorder* recorder_;
  const TraceModel* previous_;
  const Plan* plan_ = nullptr;
  Store* store_;
  LiveTree* tree_;
  RebuildOptions options_;
  RebuildStats stats_;
  absl::Status first_error_;
  std::string store_prefix_;  // the store's dir + "/": never an output
  // Files the last build's root inherited (its log, say): no command's own.
  // For traces written before InheritedFd.external.
  absl::flat_hash_set<std::string> previous_external_files_;
  // New command id -> index of the recorded command it is.
  absl::flat_hash_map<uint64_t, size_t> match_;
  // Thread about to exec -> recorded command it was matched with.
  absl::flat_hash_map<pid_t, size_t> pending_;
  std::vector<bool> consumed_;
  // String id in the last trace -> id in the new one (0: not interned yet).
  std::vector<uint32_t> reinterned_;
  // The new trace began with the last one's strings (InheritStrings).
  bool strings_inherited_ = false;
  // The id the next command kept dormant for the first time gets.
  uint64_t next_dormant_id_ = kFirstDormantId;
  // Path -> the version a later command of the last build left there, which
  // a skipped command's copied end reports in place of its own.
  absl::flat_hash_map<std::string, proto::Version> kept_later_;
  // Recorded command -> the recorded commands it shares a pipe with. The
  // dormant commands' are added when a dormant one is first matched: the
  // model may still be indexing them (LoadOptions).
  absl::flat_hash_map<size_t, std::vector<size_t>> partners_;
  bool dormant_partners_added_ = false;
  // Recorded command -> skipped (true) or run (false), decided for a group.
  absl::flat_hash_map<size_t, bool> decided_;
  // Skipped top command -> what it added to files, replayed at its exec.
  absl::flat_hash_map<size_t, std::vector<Append>> decided_appends_;
  // Skipped command -> the files its group's top commands added to, which
  // restoring its outputs leaves alone.
  absl::flat_hash_map<size_t, std::shared_ptr<const absl::flat_hash_set<std::string>>>
      appended_paths_;
  // Recorded command -> why its group runs (only with `explain`).
  absl::flat_hash_map<size_t, std::string> group_cause_;
  // Skipped commands that had dormant children: (new id, recorded command).
  std::vector<std::pair<uint64_t, size_t>> skipped_with_dormant_;
  // New command id -> the commands it started that matched none of the
  // last build's (directory and argv), for Superseded.
  absl::flat_hash_map<uint64_t, std::vector<std::pair<std::string, std::vector<std::string>>>>
      unmatched_;
  // Thread about to exec -> why it runs (only with `explain`).
  absl::flat_hash_map<pid_t, std::string> run_cause_;
};

}  // namespace dodo::model

#endif  // DODO_MODEL_REBUILDER_H_
