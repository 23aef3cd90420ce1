// Turns the tracer's events into commands and operations of the dependency
// language, and writes them to a trace as they happen.
#ifndef DODO_MODEL_RECORDER_H_
#define DODO_MODEL_RECORDER_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "model/file_hasher.h"
#include "model/path_mapper.h"
#include "model/path_resolver.h"
#include "model/trace_writer.h"
#include "proto/trace.pb.h"
#include "tracer/events.h"

namespace dodo::model {

// Records what a LIST operation saw: the names (sorted, as ListNames gives
// them) and their digest.
void SetListing(const std::vector<std::string>& names, proto::Version* version);

struct RecorderStats {
  uint64_t operations = 0;
  // Observations left out as repeats (see Recorder::set_keep_repeats).
  uint64_t repeats_dropped = 0;
  uint64_t commands = 0;
  uint64_t warnings = 0;
  uint64_t write_errors = 0;
  uint64_t keep_errors = 0;  // outputs the OutputKeeper failed to keep
};

// Keeps a copy of each regular file a command produced when the command
// ends (dodo build's store). Returns the version kept; OutOfRange means "not
// kept, by choice" (e.g. a temporary file outside the project), and the
// recorder then only hashes the file.
class OutputKeeper {
 public:
  virtual ~OutputKeeper() = default;
  // `bytes_at` is where the file's bytes are now: `path`, or its staged
  // copy while the virtual store has not committed it yet.
  virtual absl::StatusOr<FileVersion> Keep(const std::string& path,
                                           const std::string& bytes_at) = 0;
};

class Recorder : public tracer::EventSink {
 public:
  // The writer, resolver and hasher must outlive the recorder.
  Recorder(TraceWriter* writer, PathResolver* resolver, FileHasher* hasher);

  void OnSyscall(const tracer::SyscallEvent& event) override;
  void OnExec(const tracer::ExecEvent& event) override;
  void OnExecFailed(const tracer::ExecFailedEvent& event) override;
  void OnFork(const tracer::ForkEvent& event) override;
  void OnExit(const tracer::ExitEvent& event) override;
  void OnWarning(const tracer::WarningEvent& event) override;

  // Ends the commands still open (their processes vanished without an exit
  // report, or the build was killed) and reports the first write error.
  absl::Status Finish();

  const RecorderStats& stats() const { return stats_; }

  // By default an observation a command already made, with the same
  // result, is not written again while no operation of any command has
  // changed anything since: replay would draw nothing new from it. (cc1
  // repeats most of its lookups: two thirds of a compile's operations.)
  // With `keep`, every observation is written.
  void set_keep_repeats(bool keep) { keep_repeats_ = keep; }
  // Something outside this recorder changed the tree or wrote operations
  // into the trace (dodo build restoring and copying skipped commands):
  // later observations are no repeats of earlier ones.
  void NoteTreeChanged() { ++tree_epoch_; }

  // Outputs are handed to `keeper` (which must outlive the recorder).
  void set_output_keeper(OutputKeeper* keeper) { keeper_ = keeper; }
  const absl::Status& first_keep_error() const { return first_keep_error_; }
  // Paths are hashed and stat'ed where `mapper` says (must outlive the recorder).
  void set_path_mapper(const PathMapper* mapper) { mapper_ = mapper; }

  // Whether `fd` is a pipe or file the root got from outside the build:
  // commands that inherit it do not depend on it.
  bool IsExternal(const tracer::FdInfo& fd) const {
    return fd.kind == tracer::FdKind::kPipe ? external_pipes_.contains(fd.pipe_id)
                                            : !fd.path.empty() && external_files_.contains(fd.path);
  }

  // `path` is an output of a command that dodo build copied from the last
  // trace instead of running: a later command writing the same file under
  // another name (a hard link) makes it an output of that command too.
  void NoteOutputName(const std::string& path);

  // The command whose program thread `pid` runs; 0 before the root's exec.
  uint64_t CommandOf(pid_t pid) const;
  // A command id for records written by someone else (dodo build copies the
  // commands it skips from the last trace).
  uint64_t ReserveCommandId() { return next_command_id_++; }
  TraceWriter* writer() { return writer_; }

 private:
  struct Command {
    uint64_t id = 0;
    pid_t pid = 0;  // the process that exec'd it
    // Files opened for writing or truncated, in first-write order.
    std::vector<std::string> outputs;
    absl::flat_hash_set<std::string> output_set;
    // Files it gave another name (link's first argument), in order.
    std::vector<std::string> linked;
    // Symlinks already reported as followed by this command.
    absl::flat_hash_set<std::string> links_reported;
    // Its observations written since the tree last changed (serialized),
    // and which change that was.
    absl::flat_hash_set<std::string> observed;
    uint64_t observed_epoch = 0;
  };

  Command* LiveCommand(uint64_t id);
  void EndCommand(uint64_t id, proto::CommandEnd::How how, int code, int signal);

  // Resolves `path` and fills `ref`; reports the symlinks followed on the
  // way as READLINK operations of `command`.
  Resolution ResolveInto(uint64_t command, pid_t pid, const tracer::PathArg& path, proto::Ref* ref);
  void FdRef(const tracer::FdInfo& fd, proto::Ref* ref);
  void AddOutput(uint64_t command, const std::string& path);
  void SetFileVersion(const std::string& path, proto::Version* version);
  void KeepOutput(const std::string& path, proto::Version* version);
  // Marks `op`, a successful write-open of `path`, as one that wrote no file
  // if `path` is a device, FIFO or socket (see WritesNoFile).
  void MarkNoFileWritten(const std::string& path, proto::Operation* op);
  // Writes `op`; one with no command yet is kept for process `pid`.
  void Emit(proto::Operation& op, pid_t pid = 0);
  // Whether `op` repeats an observation its command made since the last
  // change; counts the changes.
  bool IsRepeat(const proto::Operation& op);
  // Moves the syscall's name from the text field into the string table.
  void InternSyscall(proto::Operation* op);
  void Write(const proto::Record& record);

  void OnOpen(const tracer::SyscallEvent& event, uint64_t command);
  void OnPathChange(const tracer::SyscallEvent& event, uint64_t command);

  TraceWriter* writer_;
  PathResolver* resolver_;
  FileHasher* hasher_;
  RecorderStats stats_;
  absl::Status first_error_;
  OutputKeeper* keeper_ = nullptr;
  const PathMapper* mapper_ = nullptr;
  const std::string& Physical(const std::string& path) const {
    return mapper_ == nullptr ? path : mapper_->Physical(path);
  }
  absl::Status first_keep_error_;
  uint64_t next_command_id_ = 1;
  bool keep_repeats_ = false;
  uint64_t tree_epoch_ = 0;  // operations that were not observations, so far
  std::string serialized_;   // IsRepeat's buffer
  // The command each thread's actions belong to.
  absl::flat_hash_map<pid_t, uint64_t> command_of_;
  absl::flat_hash_map<uint64_t, Command> live_;
  // Operations of a process that has no command yet (the root before its
  // exec: its PATH search), given to the command it execs.
  absl::flat_hash_map<pid_t, std::vector<proto::Operation>> orphan_ops_;
  absl::flat_hash_map<pid_t, absl::flat_hash_set<std::string>> orphan_links_;
  // Pipes and files the root command got from outside the trace; commands
  // inheriting them are not said to read or write them.
  absl::flat_hash_set<uint64_t> external_pipes_;
  absl::flat_hash_set<std::string> external_files_;
  bool have_root_ = false;
  // Every name that held a regular file written in the build, or linked to
  // one, by device and inode: where else a write through one name shows.
  void NoteName(const std::string& path, const struct stat& st);
  absl::flat_hash_map<std::pair<dev_t, ino_t>, std::vector<std::string>> names_of_file_;
  proto::Record record_;  // reused to avoid an allocation per operation
};

}  // namespace dodo::model

#endif  // DODO_MODEL_RECORDER_H_
