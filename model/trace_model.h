// A whole trace in memory, indexed for replay: commands with their children
// and operations, the exec that started each command, and the pipes that
// connect commands. `dodo why` and `dodo build` read the last build's trace
// into one of these; `dodo log` streams instead.
#ifndef DODO_MODEL_TRACE_MODEL_H_
#define DODO_MODEL_TRACE_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "google/protobuf/arena.h"
#include "model/trace_reader.h"
#include "proto/trace.pb.h"

namespace dodo::model {

inline constexpr size_t kNoCommand = static_cast<size_t>(-1);

struct TracedCommand {
  proto::CommandStart start;
  proto::CommandEnd end;
  bool ended = false;
  size_t parent = kNoCommand;    // index into TraceModel::commands
  std::vector<size_t> children;  // indices, in start order
  // Dormant commands kept under this one: it started them in an earlier
  // build, not in this one (see proto::CommandStart.dormant). A dormant
  // command's own children are dormant and listed in `children`.
  std::vector<size_t> dormant_children;
  // Holds one end of a pipe, not both (make's jobserver is no such pipe).
  bool uses_pipes = false;
  std::vector<size_t> ops;  // indices into TraceModel::ops, in trace order
  // The parent's successful EXEC operation that started this command (it is
  // the parent's operation: the parent looked the program up and ran it).
  std::optional<size_t> exec_op;
  // Where its CommandStart and CommandEnd records stood in the trace: the
  // number of operations before each, and their rank among the starts and
  // ends (for a copy that keeps the order; see Rebuilder::CopyRecords).
  size_t start_at = 0;
  size_t end_at = 0;
  size_t start_rank = 0;
  size_t end_rank = 0;

  // Ended by exiting with status 0, or by exec'ing the next program.
  bool Succeeded() const {
    return ended && ((end.how() == proto::CommandEnd::EXITED && end.exit_code() == 0) ||
                     end.how() == proto::CommandEnd::REPLACED);
  }
};

// What one operation does to paths, as replay sees it.
struct OpPaths {
  bool observation = false;               // compared with the tree on replay
  std::string observed;                   // the path it looked at (LIST: the directory)
  bool listing = false;                   // observed a directory's entries
  std::vector<std::string> written;       // paths it created, changed or removed
  std::vector<std::string> dirs_changed;  // directories whose entries it changed
};

// Whether TraceModel::PathsOf gives `op` no written path: it only observes,
// or it failed. Loops that want the paths a trace changed skip these without
// building their path (nine in ten operations of a build).
bool WritesNoPath(const proto::Operation& op);

inline constexpr size_t kNever = static_cast<size_t>(-1);

// The operations of a trace, in trace order, indexable like a vector. A
// dormant lookup left unparsed at load (TraceReader::ReadAll) is parsed the
// first time it is asked for: like the rest of a model, not thread-safe.
class OpList {
 public:
  size_t size() const { return size_; }
  const proto::Operation& operator[](size_t index) const {
    const proto::Operation* op = Slot(index);
    return op != nullptr ? *op : Parse(index);
  }
  // Its command, kind and error, without parsing it if it was left unparsed.
  OperationSummary Summary(size_t index) const {
    return index < split_ ? BuildSummary(index) : dormant_summaries_[index - split_];
  }
  // WritesNoPath((*this)[index]), without parsing it if it was left
  // unparsed: only operations that write no path are.
  bool WritesNoPath(size_t index) const;

 private:
  friend class TraceModel;
  const proto::Operation& Parse(size_t index) const;
  proto::Operation*& Slot(size_t index) const {
    return index < split_ ? ops_[index] : dormant_ops_[index - split_];
  }
  std::string_view Raw(size_t index) const {
    return index < split_ ? raw_[index] : dormant_raw_[index - split_];
  }
  OperationSummary BuildSummary(size_t index) const;

  // The build's operations, all parsed at load, then from `split_` on the
  // dormant records', filled in by TraceModel::WaitDormant.
  mutable std::vector<proto::Operation*> ops_;          // owned by arena_
  std::vector<std::string_view> raw_;                   // each one's Record, as the file held it
  mutable std::vector<proto::Operation*> dormant_ops_;  // null: not parsed yet
  std::vector<std::string_view> dormant_raw_;
  std::vector<OperationSummary> dormant_summaries_;  // each one's, read at load
  size_t split_ = 0;
  size_t size_ = 0;
  google::protobuf::Arena* arena_ = nullptr;
};

struct LoadOptions {
  // Leave the dormant commands' operations unread: after a small edit they
  // are most of a trace, and a build looks at them late if at all (a command
  // of an earlier build starts again; the dormant records are copied at the
  // end). IndexDormantInBackground reads them on a thread of its own;
  // whatever needs them first waits for it (WaitDormant).
  bool defer_dormant = false;
};

class TraceModel {
 public:
  // Reads the whole trace at `path`. Errors are the reader's (they name the
  // file). A trace cut short loads up to its last whole record; warning()
  // then says so.
  static absl::StatusOr<TraceModel> Load(const std::string& path, LoadOptions options = {});

  // Starts reading the dormant operations that Load left (LoadOptions) on a
  // thread of its own, at a low priority. The model can be used and moved
  // meanwhile.
  void IndexDormantInBackground();
  // Makes sure the dormant commands' operations are in: their `ops`,
  // `exec_op` and `uses_pipes`, dormant_pipes() and the dormant writes. It
  // waits for the thread, or reads them here if none was started. The
  // accessors of those, and OpsOf, call it; a caller that reads those
  // fields of a dormant command itself calls it first. Not thread-safe,
  // like the rest of a model.
  void WaitDormant() const;

  // Every command: first the build's, in start order, then the dormant ones
  // (proto::CommandStart.dormant), which only a rebuild matches against.
  const std::vector<TracedCommand>& commands() const { return commands_; }
  // Every operation: first the build's, then the dormant commands'.
  const OpList& ops() const { return ops_; }
  // How many commands and operations are the build's: replay and plans look
  // at those only. Dormant ones are never in pipes() nor in
  // FirstWrite/LastWrite/BuildWrites.
  size_t build_size() const { return build_size_; }
  size_t build_ops() const { return build_ops_; }
  bool IsDormant(size_t command) const { return command >= build_size_; }
  // Whether a dormant command created, changed or removed `path`.
  bool DormantWrites(const std::string& path) const {
    WaitDormant();
    return dormant_writes_.contains(path);
  }
  // Index of the last operation of a dormant command that changed `path`, or
  // kNever. Dormant records keep the order their build wrote them in.
  size_t DormantLastWrite(const std::string& path) const {
    WaitDormant();
    auto it = dormant_writes_.find(path);
    return it == dormant_writes_.end() ? kNever : it->second;
  }
  // Index of the command with trace id `id`, or kNoCommand.
  size_t IndexOf(uint64_t id) const;
  // Index of the root command (the first one), or kNoCommand for an empty trace.
  size_t root() const { return commands_.empty() ? kNoCommand : 0; }

  std::string_view String(uint32_t id) const {
    return id == 0 || id > strings_.size() ? std::string_view() : strings_[id - 1];
  }
  const std::vector<std::string>& strings() const { return strings_; }
  // The system call that produced `op`, interned or, in older traces, as text.
  std::string_view Syscall(const proto::Operation& op) const {
    return op.syscall_name() != 0 ? String(op.syscall_name()) : std::string_view(op.syscall());
  }
  // Absolute path an operation's ref names ("" for pipes and unknown fds).
  std::string Path(const proto::Ref& ref) const;
  void Path(const proto::Ref& ref, std::string* out) const;  // reuses out's buffer
  std::vector<std::string> Argv(size_t command) const;
  std::vector<std::string> Env(size_t command) const;
  std::string Cwd(size_t command) const {
    return std::string(String(commands_[command].start.cwd()));
  }

  OpPaths PathsOf(const proto::Operation& op) const;
  // The same into `out`, reusing its buffers: loops over every operation
  // then allocate only for the paths they keep.
  void PathsOf(const proto::Operation& op, OpPaths* out) const;
  // Index of the first operation of the build that changed `path`, or kNever.
  size_t FirstWrite(const std::string& path) const {
    auto it = writes_.find(path);
    return it == writes_.end() ? kNever : it->second.first;
  }
  // Index of the last operation of the build that changed `path`, or kNever.
  size_t LastWrite(const std::string& path) const {
    auto it = writes_.find(path);
    return it == writes_.end() ? kNever : it->second.last;
  }
  // Whether the build created, changed or removed `dir`/`name` at any time.
  bool BuildWrites(const std::string& dir, const std::string& name) const;

  // `command` and everything it started, directly or not, in start order.
  std::vector<size_t> Subtree(size_t command) const;
  bool IsAncestor(size_t ancestor, size_t command) const;

  // Pipes between commands of the trace, by pipe id: who holds each end.
  struct Pipe {
    std::vector<size_t> readers;
    std::vector<size_t> writers;
  };
  // In id order, so that what is said about pipes comes out the same each run.
  const absl::btree_map<uint64_t, Pipe>& pipes() const { return pipes_; }
  // The same for the dormant commands, which pipes() leaves out.
  const absl::btree_map<uint64_t, Pipe>& dormant_pipes() const {
    WaitDormant();
    return dormant_pipes_;
  }

  // Operation `index`'s Record as the file held it, or "" if unknown: a
  // copy into another trace that changes nothing in it (the same string ids,
  // the same command id) writes these bytes instead of encoding it again.
  std::string_view RawOperation(size_t index) const {
    return index < ops_.size() ? ops_.Raw(index) : std::string_view();
  }
  // The same bytes with the size prefix before them, as the file held
  // both, or "" if unknown. Operations that lay side by side in the file
  // give views that do too: a copy of many writes them at once.
  std::string_view FramedOperation(size_t index) const;

  // How many operations Load left unparsed (dormant lookups, see OpList).
  size_t ops_left_unparsed() const {
    WaitDormant();
    return ops_left_unparsed_;
  }
  bool complete() const { return complete_; }
  const std::string& warning() const { return warning_; }
  const std::string& path() const { return path_; }
  const proto::Header& header() const { return header_; }

 private:
  std::string path_;
  proto::Header header_;
  std::vector<std::string> strings_;
  std::vector<TracedCommand> commands_;
  // A trace holds up to millions of operations. Parsed on an arena, with
  // their references and versions, they cost no allocation of their own, and
  // freeing the model frees a few large blocks: one allocation per message
  // was about a third of a plan's time.
  std::unique_ptr<google::protobuf::Arena> arena_;
  OpList ops_;
  // The file's bytes, which the operations' raw records point into.
  std::unique_ptr<TraceReader::Bytes> bytes_;
  absl::flat_hash_map<uint64_t, size_t> index_of_;
  absl::btree_map<uint64_t, Pipe> pipes_;
  absl::btree_map<uint64_t, Pipe> dormant_pipes_;
  struct Writes {
    size_t first;
    size_t last;
  };
  absl::flat_hash_map<std::string, Writes> writes_;          // path -> ops that changed it
  absl::flat_hash_map<std::string, size_t> dormant_writes_;  // path -> last dormant op
  size_t ops_left_unparsed_ = 0;
  size_t build_size_ = 0;
  size_t build_ops_ = 0;
  bool complete_ = false;
  std::string warning_;

  // What indexing the dormant records' operations finds (see LoadOptions),
  // taken into the model by WaitDormant. Indices into `ops_of`, `exec_op_of`
  // and `uses_pipes` count from the first dormant command.
  struct DormantIndex {
    // Their operations (see OpList), from the first dormant one on.
    std::vector<proto::Operation*> ops;
    std::vector<std::string_view> raw;
    std::vector<OperationSummary> summaries;
    std::vector<std::vector<size_t>> ops_of;
    std::vector<std::optional<size_t>> exec_op_of;
    std::vector<bool> uses_pipes;
    size_t left_unparsed = 0;
    absl::btree_map<uint64_t, Pipe> pipes;
    absl::flat_hash_map<std::string, size_t> writes;
    // An operation that neither summarizes nor parses, or "".
    std::string damage;
  };
  struct DormantInput;
  static DormantIndex IndexDormant(DormantInput input);
  void TakeDormant(DormantIndex index) const;
  // What Load left to read, until a thread takes it or WaitDormant reads it.
  mutable std::shared_ptr<DormantInput> dormant_input_;
  // Last, so that it is destroyed first: its thread reads the file's bytes,
  // the strings and the commands, and fills in the dormant operations'
  // parses and summaries, through buffers that a move keeps in place.
  mutable std::future<DormantIndex> dormant_;
};

}  // namespace dodo::model

#endif  // DODO_MODEL_TRACE_MODEL_H_
