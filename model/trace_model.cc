#include "model/trace_model.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "model/notation.h"
#include "model/trace_reader.h"

namespace dodo::model {
namespace {

std::string Parent(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// The arena's blocks are the model's memory: about six bytes for each byte
// of trace, all of it written during the load. Mapping a block with its pages
// already in place costs one call instead of a page fault per 4 KiB, and page
// faults are slow in a VM (a quarter of a planned no-op's time on xz).
void* PopulatedBlock(size_t size) {
  void* block = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (block == MAP_FAILED) throw std::bad_alloc();
  return block;
}

void UnmapBlock(void* block, size_t size) { munmap(block, size); }

}  // namespace

constexpr size_t kMinOperationBytes = 24;

// The niceness of the thread that indexes dormant records meanwhile.
constexpr int kDormantNice = 10;

namespace {

// The kinds that only look at their path (PathsOf's observations, apart
// from a WRITE that read what it builds on).
bool IsObservationKind(proto::OpKind kind) {
  switch (kind) {
    case proto::GET:
    case proto::READ:
    case proto::EXEC:
    case proto::STAT:
    case proto::READLINK:
    case proto::XATTR_READ:
    case proto::CHDIR:
    case proto::LIST:
      return true;
    default:
      return false;
  }
}

}  // namespace

// What indexing the dormant records' operations needs (see IndexDormant).
// The commands and strings are the model's, through the buffers of its
// vectors, which stay in place while the model moves, and which nothing
// changes until WaitDormant.
struct TraceModel::DormantInput {
  size_t first_dormant = 0;  // command index
  size_t first_op = 0;       // operation index: the build's are before it
  // The starts and ends among the operations, in trace order: before
  // operation `at`.
  struct Mark {
    size_t at;
    size_t command;  // kNoCommand for an end
  };
  std::vector<Mark> marks;
  // The operations, as TraceReader::ReadAll gave them: runs of records
  // (deferred), or each one read already into `ops`, `raw` and `summaries`.
  std::vector<std::pair<std::string_view, uint32_t>> runs;  // bytes, count
  std::vector<proto::Operation*> ops;
  std::vector<std::string_view> raw;
  std::vector<OperationSummary> summaries;
  const TracedCommand* commands = nullptr;
  size_t command_count = 0;
  const std::string* strings = nullptr;
  size_t string_count = 0;
  absl::flat_hash_map<uint64_t, size_t> index_of;  // a copy
  google::protobuf::Arena* arena = nullptr;        // thread-safe
};

namespace {

void PathsWith(StringLookup strings, const proto::Operation& op, OpPaths* out);

// A dormant operation that changes no path and is no pipe end needs only its
// command, kind and error at load; it is parsed if a rebuild matches its
// command. After a small edit of xz, most of the trace.
bool LeaveUnparsed(const OperationSummary& op) {
  return op.kind != proto::PIPE_READ && op.kind != proto::PIPE_WRITE &&
         (IsObservationKind(op.kind) || op.error != 0);
}

// What an operation that follows a CommandStart in the trace is to that
// start. The recorder writes a command's start, then the exec that ran it
// (the parent's operation; the root's own), after the root's PATH search
// and the symlinks the owner read on the way to the program.
enum class AfterStart { kBeforeItsExec, kItsExec, kUnrelated };
AfterStart Follows(const proto::CommandStart& started, const OperationSummary& op) {
  const uint64_t owner = started.parent_id() != 0 ? started.parent_id() : started.id();
  if (op.kind == proto::EXEC && op.error == 0 && op.command == owner) return AfterStart::kItsExec;
  if (op.command == started.id() || (op.command == owner && op.kind == proto::READLINK)) {
    return AfterStart::kBeforeItsExec;
  }
  return AfterStart::kUnrelated;
}

// (command, pipe id) -> 1: holds the read end, 2: the write end, 3: both.
using PipeEnds = absl::flat_hash_map<std::pair<size_t, uint64_t>, int>;

// A command holding both ends of a pipe does not talk through it to others:
// that is make's jobserver (tokens, not data), which make and the recipes
// it runs as sub-makes hold, or a self-pipe. Calls `add(command, pipe id,
// bits)` for the others, in order. (MAKEFLAGS names the jobserver's
// descriptors, but is no guide: make 4.3 leaves `--jobserver-auth=3,4` in
// it for every recipe and closes 3 and 4 in those that are no sub-make,
// whose shells then open their own pipes on those numbers.)
template <typename Add>
void ForEachPipeEnd(const PipeEnds& pipe_ends, Add add) {
  std::vector<std::pair<std::pair<size_t, uint64_t>, int>> ends(pipe_ends.begin(), pipe_ends.end());
  std::sort(ends.begin(), ends.end());
  for (const auto& [key, bits] : ends) {
    if (bits != 3) add(key.first, key.second, bits);
  }
}

}  // namespace

absl::StatusOr<TraceModel> TraceModel::Load(const std::string& path, LoadOptions options) {
  absl::StatusOr<std::unique_ptr<TraceReader>> reader = TraceReader::Open(path);
  if (!reader.ok()) return reader.status();
  TraceReader& r = **reader;
  TraceModel model;
  model.path_ = path;
  model.header_ = r.header();
  struct stat file;
  const size_t file_size = stat(path.c_str(), &file) == 0 && file.st_size > 0 ? file.st_size : 0;
  // Operations are most of a trace's records, 38 bytes each on average in
  // lua's. Room for one per 24 bytes spares growing the vector again and
  // again; the pages of room left unused are never touched, so they cost no
  // memory.
  const size_t most_ops = file_size / kMinOperationBytes;
  model.ops_.ops_.reserve(most_ops);
  model.ops_.raw_.reserve(most_ops);
  google::protobuf::ArenaOptions arena_options;
  // Blocks of an eighth of the trace's size: few of them, and the last one
  // wastes little. (Transparent huge pages for them were tried: on this kind
  // of VM the first plan after a pause then took 60% longer, not less.)
  arena_options.start_block_size = std::max<size_t>(file_size / 8, 4096);
  arena_options.max_block_size = std::max<size_t>(file_size / 8, 1 << 20);
  arena_options.block_alloc = PopulatedBlock;
  arena_options.block_dealloc = UnmapBlock;
  model.arena_ = std::make_unique<google::protobuf::Arena>(arena_options);
  model.ops_.arena_ = model.arena_.get();
  std::vector<TraceReader::Item> items;
  r.ReadAll(model.arena_.get(), &items, LeaveUnparsed, options.defer_dormant);
  model.bytes_ = r.ReleaseBytes();
  // The exec operation that follows a CommandStart belongs to that start
  // (Follows).
  size_t just_started = kNoCommand;
  size_t starts_and_ends = 0;
  PipeEnds pipe_ends;
  // Where the dormant records begin (see proto::CommandStart.dormant):
  // every record from the first dormant start on is theirs. Their
  // operations are indexed apart (IndexDormant).
  std::optional<size_t> first_dormant;
  DormantInput dormant;
  for (const TraceReader::Item& item : items) {
    switch (item.operation != nullptr || item.unparsed || item.deferred
                ? proto::Record::kOperation
                : item.record->kind_case()) {
      case proto::Record::kCommandStart: {
        const size_t index = model.commands_.size();
        TracedCommand& command = model.commands_.emplace_back();
        command.start = std::move(*item.record->mutable_command_start());
        command.start_at = model.ops_.size();
        command.start_rank = starts_and_ends++;
        model.index_of_[command.start.id()] = index;
        if (command.start.dormant() && !first_dormant.has_value()) {
          first_dormant = index;
          model.build_ops_ = model.ops_.size();
          if (!options.defer_dormant) {
            const size_t rest = most_ops - std::min(most_ops, model.ops_.size());
            dormant.ops.reserve(rest);
            dormant.raw.reserve(rest);
            dormant.summaries.reserve(rest);
          }
        }
        if (command.start.parent_id() != 0) {
          auto parent = model.index_of_.find(command.start.parent_id());
          if (parent != model.index_of_.end()) {
            command.parent = parent->second;
            TracedCommand& started_by = model.commands_[parent->second];
            (first_dormant.has_value() && parent->second < *first_dormant
                 ? started_by.dormant_children
                 : started_by.children)
                .push_back(index);
          }
        }
        if (first_dormant.has_value()) dormant.marks.push_back({model.ops_.size(), index});
        just_started = index;
        break;
      }
      case proto::Record::kCommandEnd: {
        auto it = model.index_of_.find(item.record->command_end().id());
        if (it != model.index_of_.end()) {
          TracedCommand& command = model.commands_[it->second];
          command.end = std::move(*item.record->mutable_command_end());
          command.ended = true;
          command.end_at = model.ops_.size();
          command.end_rank = starts_and_ends++;
        }
        if (first_dormant.has_value()) dormant.marks.push_back({model.ops_.size(), kNoCommand});
        just_started = kNoCommand;
        break;
      }
      case proto::Record::kOperation: {
        if (item.deferred) {
          dormant.runs.emplace_back(item.bytes, item.deferred_count);
          model.ops_.size_ += item.deferred_count;
          break;
        }
        const size_t index = model.ops_.size_++;
        // Both live on the arena: a record lets go of its operation without
        // a copy.
        proto::Operation* parsed = item.unparsed ? nullptr
                                   : item.operation != nullptr
                                       ? item.operation
                                       : item.record->unsafe_arena_release_operation();
        const OperationSummary op =
            parsed != nullptr ? OperationSummary{parsed->command(), parsed->kind(), parsed->error()}
                              : item.summary;
        if (first_dormant.has_value()) {
          // Indexed apart, with the rest of the dormant records (IndexDormant).
          dormant.ops.push_back(parsed);
          dormant.raw.push_back(item.bytes);
          dormant.summaries.push_back(op);
          break;
        }
        model.ops_.ops_.push_back(parsed);
        model.ops_.raw_.push_back(item.bytes);
        if (parsed == nullptr) ++model.ops_left_unparsed_;
        auto it = model.index_of_.find(op.command);
        if (it == model.index_of_.end()) break;
        model.commands_[it->second].ops.push_back(index);
        if (just_started != kNoCommand) {
          const AfterStart after = Follows(model.commands_[just_started].start, op);
          if (after == AfterStart::kItsExec) model.commands_[just_started].exec_op = index;
          if (after != AfterStart::kBeforeItsExec) just_started = kNoCommand;
        }
        if (parsed != nullptr && (op.kind == proto::PIPE_READ || op.kind == proto::PIPE_WRITE)) {
          pipe_ends[{it->second, parsed->number()}] |= op.kind == proto::PIPE_READ ? 1 : 2;
        }
        break;
      }
      default:
        break;
    }
  }
  model.strings_.reserve(r.string_count());
  for (size_t id = 1; id <= r.string_count(); ++id) {
    model.strings_.emplace_back(r.String(static_cast<uint32_t>(id)));
  }
  model.build_size_ = first_dormant.value_or(model.commands_.size());
  if (!first_dormant.has_value()) model.build_ops_ = model.ops_.size();
  model.ops_.split_ = model.build_ops_;
  ForEachPipeEnd(pipe_ends, [&](size_t command, uint64_t id, int bits) {
    model.commands_[command].uses_pipes = true;
    Pipe& pipe = model.pipes_[id];
    (bits == 1 ? pipe.readers : pipe.writers).push_back(command);
  });
  OpPaths paths;
  for (size_t index = 0; index < model.build_ops_; ++index) {
    if (model.ops_.WritesNoPath(index)) continue;
    model.PathsOf(model.ops_[index], &paths);
    for (std::string& p : paths.written) {
      auto [it, added] = model.writes_.try_emplace(std::move(p), Writes{index, index});
      it->second.last = index;
    }
  }
  model.complete_ = r.complete();
  model.warning_ = r.warning();
  if (first_dormant.has_value()) {
    dormant.first_dormant = *first_dormant;
    dormant.first_op = model.build_ops_;
    dormant.commands = model.commands_.data();
    dormant.command_count = model.commands_.size();
    dormant.strings = model.strings_.data();
    dormant.string_count = model.strings_.size();
    dormant.index_of = model.index_of_;
    dormant.arena = model.arena_.get();
    if (!dormant.runs.empty()) {
      model.dormant_input_ = std::make_shared<DormantInput>(std::move(dormant));
    } else {
      model.TakeDormant(IndexDormant(std::move(dormant)));
    }
  }
  return model;
}

TraceModel::DormantIndex TraceModel::IndexDormant(DormantInput input) {
  DormantIndex out;
  const size_t dormant_commands = input.command_count - input.first_dormant;
  out.ops_of.resize(dormant_commands);
  out.exec_op_of.resize(dormant_commands);
  out.uses_pipes.resize(dormant_commands);
  auto string = [&input](uint32_t id) {
    return id == 0 || id > input.string_count ? std::string_view()
                                              : std::string_view(input.strings[id - 1]);
  };
  // What TraceReader::ReadAll leaves to its caller with `defer_dormant`.
  size_t deferred = 0;
  for (const auto& [bytes, count] : input.runs) deferred += count;
  if (deferred > 0) {
    input.ops.reserve(input.ops.size() + deferred);
    input.raw.reserve(input.raw.size() + deferred);
    input.summaries.reserve(input.summaries.size() + deferred);
  }
  for (const auto& [bytes, count] : input.runs) {
    const bool whole = ForEachFramedRecord(bytes, [&](std::string_view record) {
      OperationSummary summary;
      proto::Operation* op = nullptr;
      if (!SummarizeOperation(record, &summary) || !LeaveUnparsed(summary)) {
        op = ParseOperation(record, input.arena);
        if (op == nullptr) {
          if (out.damage.empty()) {
            out.damage = absl::StrCat("operation ", input.first_op + input.raw.size() + 1,
                                      " does not parse");
          }
        } else {
          summary = {op->command(), op->kind(), op->error()};
        }
      }
      input.ops.push_back(op);
      input.raw.push_back(record);
      input.summaries.push_back(summary);
    });
    if (!whole && out.damage.empty()) out.damage = "a run of operations is cut short";
  }
  if (!out.damage.empty()) {
    // Every index stays valid: what could not be read is left empty.
    const size_t total = input.ops.size() + deferred;
    input.ops.resize(total);
    input.raw.resize(total);
    input.summaries.resize(total);
    out.ops = std::move(input.ops);
    out.raw = std::move(input.raw);
    out.summaries = std::move(input.summaries);
    return out;
  }
  size_t just_started = kNoCommand;
  PipeEnds pipe_ends;
  auto mark = input.marks.begin();
  for (size_t k = 0; k < input.ops.size(); ++k) {
    const size_t index = input.first_op + k;
    for (; mark != input.marks.end() && mark->at <= index; ++mark) just_started = mark->command;
    const proto::Operation* parsed = input.ops[k];
    if (parsed == nullptr) ++out.left_unparsed;
    const OperationSummary& op = input.summaries[k];
    auto it = input.index_of.find(op.command);
    if (it == input.index_of.end()) continue;
    // An operation of a build command among the dormant records is the
    // exec (or a symlink read before it) that started a dormant one: it
    // belongs to no command of the build.
    if (it->second >= input.first_dormant) {
      out.ops_of[it->second - input.first_dormant].push_back(index);
    }
    if (just_started != kNoCommand) {
      const AfterStart after = Follows(input.commands[just_started].start, op);
      if (after == AfterStart::kItsExec) out.exec_op_of[just_started - input.first_dormant] = index;
      if (after != AfterStart::kBeforeItsExec) just_started = kNoCommand;
    }
    if (parsed != nullptr && it->second >= input.first_dormant &&
        (op.kind == proto::PIPE_READ || op.kind == proto::PIPE_WRITE)) {
      pipe_ends[{it->second, parsed->number()}] |= op.kind == proto::PIPE_READ ? 1 : 2;
    }
  }
  ForEachPipeEnd(pipe_ends, [&](size_t command, uint64_t id, int bits) {
    out.uses_pipes[command - input.first_dormant] = true;
    Pipe& pipe = out.pipes[id];
    (bits == 1 ? pipe.readers : pipe.writers).push_back(command);
  });
  OpPaths paths;
  for (size_t k = 0; k < input.ops.size(); ++k) {
    // (An operation left unparsed changes no path.)
    const proto::Operation* op = input.ops[k];
    if (op == nullptr || WritesNoPath(*op)) continue;
    PathsWith(string, *op, &paths);
    for (std::string& p : paths.written) {
      out.writes.insert_or_assign(std::move(p), input.first_op + k);
    }
  }
  out.ops = std::move(input.ops);
  out.raw = std::move(input.raw);
  out.summaries = std::move(input.summaries);
  return out;
}

void TraceModel::TakeDormant(DormantIndex index) const {
  // The model is whole from Load on, as far as its users can tell: this
  // ends what Load started. (No model is ever a const object.)
  TraceModel& self = const_cast<TraceModel&>(*this);
  self.ops_.dormant_ops_ = std::move(index.ops);
  self.ops_.dormant_raw_ = std::move(index.raw);
  self.ops_.dormant_summaries_ = std::move(index.summaries);
  if (!index.damage.empty()) {
    // The dormant records only spare work: without them, the commands they
    // kept run when they come again. (Never seen: traces are renamed into
    // place whole.)
    if (self.warning_.empty()) {
      self.warning_ = absl::StrCat(path_, ": ", index.damage,
                                   "; the commands kept from earlier builds are left out");
    }
    for (size_t c = build_size_; c < commands_.size(); ++c) {
      self.commands_[c].ended = false;
      self.commands_[c].end.Clear();
    }
    return;
  }
  for (size_t i = 0; i < index.ops_of.size(); ++i) {
    TracedCommand& command = self.commands_[build_size_ + i];
    command.ops = std::move(index.ops_of[i]);
    command.exec_op = index.exec_op_of[i];
    command.uses_pipes = index.uses_pipes[i];
  }
  self.ops_left_unparsed_ += index.left_unparsed;
  self.dormant_pipes_ = std::move(index.pipes);
  self.dormant_writes_ = std::move(index.writes);
}

void TraceModel::IndexDormantInBackground() {
  if (dormant_input_ == nullptr || dormant_.valid()) return;
  std::shared_ptr<DormantInput> input = dormant_input_;
  try {
    dormant_ = std::async(std::launch::async, [input] {
      // Behind the build's first commands, which start meanwhile. (Beside
      // the plan, on two CPUs, it made the plan 6-10 ms longer, of 12.)
      (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kDormantNice);
      return IndexDormant(std::move(*input));
    });
    dormant_input_.reset();
  } catch (const std::system_error&) {
    // No thread to be had: read where first needed.
  }
}

void TraceModel::WaitDormant() const {
  if (dormant_.valid()) {
    TakeDormant(dormant_.get());
  } else if (dormant_input_ != nullptr) {
    std::shared_ptr<DormantInput> input = std::move(dormant_input_);
    TakeDormant(IndexDormant(std::move(*input)));
  }
}

const proto::Operation& OpList::Parse(size_t index) const {
  proto::Operation* op = ParseOperation(Raw(index), arena_);
  if (op == nullptr) {
    // Its summary read at load, but the rest does not parse (a string that
    // is no UTF-8): what the summary says, and nothing more.
    const OperationSummary summary = Summary(index);
    op = google::protobuf::Arena::CreateMessage<proto::Operation>(arena_);
    op->set_command(summary.command);
    op->set_kind(summary.kind);
    op->set_error(summary.error);
  }
  Slot(index) = op;
  return *op;
}

OperationSummary OpList::BuildSummary(size_t index) const {
  if (const proto::Operation* op = ops_[index]; op != nullptr) {
    return {op->command(), op->kind(), op->error()};
  }
  OperationSummary summary;  // (never seen: the build's are all parsed)
  (void)SummarizeOperation(raw_[index], &summary);
  return summary;
}

bool OpList::WritesNoPath(size_t index) const {
  const proto::Operation* op = Slot(index);
  return op == nullptr || model::WritesNoPath(*op);
}

std::string_view TraceModel::FramedOperation(size_t index) const {
  const std::string_view record = RawOperation(index);
  if (record.empty() || record.size() > std::numeric_limits<uint32_t>::max()) return {};
  // The reader's buffer holds each record after its size prefix (see
  // TraceReader::Item), which the writer made the shortest varint: the
  // bytes before the record are that, or the framing is someone else's.
  uint8_t prefix[5];  // the longest varint of 32 bits
  const uint8_t* end = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(
      static_cast<uint32_t>(record.size()), prefix);
  const size_t prefix_size = static_cast<size_t>(end - prefix);
  const char* start = record.data() - prefix_size;
  // (A loop, not memcmp: one or two bytes, for each of a copy's operations.)
  for (size_t i = 0; i < prefix_size; ++i) {
    if (static_cast<uint8_t>(start[i]) != prefix[i]) return {};
  }
  return std::string_view(start, prefix_size + record.size());
}

OpPaths TraceModel::PathsOf(const proto::Operation& op) const {
  OpPaths out;
  PathsOf(op, &out);
  return out;
}

bool WritesNoPath(const proto::Operation& op) {
  return IsObservationKind(op.kind()) || op.kind() == proto::PIPE_READ ||
         op.kind() == proto::PIPE_WRITE ||
         op.error() != 0;  // every change PathsOf lists needs success
}

void TraceModel::PathsOf(const proto::Operation& op, OpPaths* out) const {
  PathsWith([this](uint32_t id) { return String(id); }, op, out);
}

namespace {

void PathsWith(StringLookup strings, const proto::Operation& op, OpPaths* out) {
  out->observation = false;
  out->listing = false;
  out->written.clear();
  out->dirs_changed.clear();
  // The path is built where an observation keeps it: most operations are.
  std::string& path = out->observed;
  path.clear();
  if (op.has_ref()) RefToPath(op.ref(), strings, &path);
  if (path.empty() || path[0] != '/') {
    path.clear();
    return;
  }
  if (IsObservationKind(op.kind())) {
    out->observation = true;
    out->listing = op.kind() == proto::LIST;
    return;
  }
  switch (op.kind()) {
    case proto::WRITE:
      out->observation = !op.version().sha256().empty();
      if (op.error() == 0 && !WritesNoFile(op)) {
        out->written.push_back(path);
        if (op.create() != proto::LINK_NONE) out->dirs_changed.push_back(Parent(path));
      }
      break;
    case proto::TRUNC:
    case proto::CHMOD:
    case proto::CHOWN:
    case proto::UTIMES:
    case proto::XATTR_WRITE:
      if (op.error() == 0) out->written.push_back(path);
      break;
    case proto::LINK:
    case proto::UNLINK:
    case proto::RMDIR:
      if (op.error() == 0) {
        out->written.push_back(path);
        out->dirs_changed.push_back(Parent(path));
      }
      break;
    case proto::RENAME: {
      const std::string dest = op.has_ref2() ? RefToPath(op.ref2(), strings) : "";
      if (op.error() == 0) {
        out->written.push_back(path);
        out->dirs_changed.push_back(Parent(path));
        if (!dest.empty() && dest[0] == '/') {
          out->written.push_back(dest);
          out->dirs_changed.push_back(Parent(dest));
        }
      }
      break;
    }
    default:
      break;
  }
  if (!out->observation) path.clear();
}

}  // namespace

bool TraceModel::BuildWrites(const std::string& dir, const std::string& name) const {
  return writes_.contains(dir == "/" ? "/" + name : dir + "/" + name);
}

size_t TraceModel::IndexOf(uint64_t id) const {
  auto it = index_of_.find(id);
  return it == index_of_.end() ? kNoCommand : it->second;
}

std::string TraceModel::Path(const proto::Ref& ref) const {
  return RefToPath(ref, [this](uint32_t id) { return String(id); });
}

void TraceModel::Path(const proto::Ref& ref, std::string* out) const {
  RefToPath(
      ref, [this](uint32_t id) { return String(id); }, out);
}

std::vector<std::string> TraceModel::Argv(size_t command) const {
  std::vector<std::string> out;
  for (uint32_t id : commands_[command].start.argv()) out.emplace_back(String(id));
  return out;
}

std::vector<std::string> TraceModel::Env(size_t command) const {
  std::vector<std::string> out;
  for (uint32_t id : commands_[command].start.env()) out.emplace_back(String(id));
  return out;
}

std::vector<size_t> TraceModel::Subtree(size_t command) const {
  std::vector<size_t> out = {command};
  for (size_t i = 0; i < out.size(); ++i) {
    for (size_t child : commands_[out[i]].children) out.push_back(child);
  }
  return out;
}

bool TraceModel::IsAncestor(size_t ancestor, size_t command) const {
  for (size_t c = command; c != kNoCommand; c = commands_[c].parent) {
    if (c == ancestor) return true;
  }
  return false;
}

}  // namespace dodo::model
