#include "model/trace_model.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_set.h"
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

// make passes its jobserver (a pipe of tokens, not data) to the commands it
// runs, and names the descriptors in MAKEFLAGS: --jobserver-auth=R,W (make
// 4.2+) or --jobserver-fds=R,W (older).
bool IsJobserverFd(const TraceModel& model, const proto::CommandStart& start, int fd) {
  for (uint32_t id : start.env()) {
    std::string_view entry = model.String(id);
    if (!entry.starts_with("MAKEFLAGS=")) continue;
    for (std::string_view key : {"--jobserver-auth=", "--jobserver-fds="}) {
      size_t at = entry.find(key);
      if (at == std::string_view::npos) continue;
      int r = -1, w = -1;
      const std::string value(entry.substr(at + key.size()));
      if (std::sscanf(value.c_str(), "%d,%d", &r, &w) == 2 && (fd == r || fd == w)) return true;
    }
  }
  return false;
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

absl::StatusOr<TraceModel> TraceModel::Load(const std::string& path) {
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
  model.ops_.ops_.reserve(file_size / kMinOperationBytes);
  model.ops_.raw_.reserve(file_size / kMinOperationBytes);
  google::protobuf::ArenaOptions options;
  // Blocks of an eighth of the trace's size: few of them, and the last one
  // wastes little. (Transparent huge pages for them were tried: on this kind
  // of VM the first plan after a pause then took 60% longer, not less.)
  options.start_block_size = std::max<size_t>(file_size / 8, 4096);
  options.max_block_size = std::max<size_t>(file_size / 8, 1 << 20);
  options.block_alloc = PopulatedBlock;
  options.block_dealloc = UnmapBlock;
  model.arena_ = std::make_unique<google::protobuf::Arena>(options);
  model.ops_.arena_ = model.arena_.get();
  std::vector<TraceReader::Item> items;
  // A dormant operation that changes no path and is no pipe end needs only
  // its command, kind and error here; it is parsed if a rebuild matches its
  // command. After a small edit of xz, most of the trace.
  r.ReadAll(model.arena_.get(), &items, [](const OperationSummary& op) {
    return op.kind != proto::PIPE_READ && op.kind != proto::PIPE_WRITE &&
           (IsObservationKind(op.kind) || op.error != 0);
  });
  model.bytes_ = r.ReleaseBytes();
  // The exec operation that follows a CommandStart belongs to that start.
  size_t just_started = kNoCommand;
  size_t starts_and_ends = 0;
  // (command, pipe id) -> 1: holds the read end, 2: the write end, 3: both.
  absl::flat_hash_map<std::pair<size_t, uint64_t>, int> pipe_ends;
  absl::flat_hash_set<uint64_t> jobserver_pipes;
  // Where the dormant records begin (see proto::CommandStart.dormant):
  // every record from the first dormant start on is theirs.
  std::optional<size_t> first_dormant;
  for (const TraceReader::Item& item : items) {
    switch (item.operation != nullptr || item.unparsed ? proto::Record::kOperation
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
        just_started = kNoCommand;
        break;
      }
      case proto::Record::kOperation: {
        const size_t index = model.ops_.size();
        // Both live on the arena: a record lets go of its operation without
        // a copy.
        proto::Operation* parsed = item.unparsed ? nullptr
                                   : item.operation != nullptr
                                       ? item.operation
                                       : item.record->unsafe_arena_release_operation();
        model.ops_.ops_.push_back(parsed);
        if (parsed == nullptr) ++model.ops_left_unparsed_;
        model.ops_.raw_.push_back(item.bytes);
        const OperationSummary op =
            parsed != nullptr ? OperationSummary{parsed->command(), parsed->kind(), parsed->error()}
                              : item.summary;
        auto it = model.index_of_.find(op.command);
        if (it == model.index_of_.end()) break;
        // Among the dormant records, an operation of a build command is the
        // exec (or a symlink read before it) that started a dormant one:
        // it belongs to no command of the build.
        if (!first_dormant.has_value() || it->second >= *first_dormant) {
          model.commands_[it->second].ops.push_back(index);
        }
        if (just_started != kNoCommand) {
          // The recorder writes a command's start, then the exec that ran it
          // (the parent's operation; the root's own), after the root's PATH
          // search.
          TracedCommand& started = model.commands_[just_started];
          const uint64_t owner =
              started.start.parent_id() != 0 ? started.start.parent_id() : started.start.id();
          if (op.kind == proto::EXEC && op.error == 0 && op.command == owner) {
            started.exec_op = index;
            just_started = kNoCommand;
          } else if (op.command != started.start.id() &&
                     !(op.command == owner && op.kind == proto::READLINK)) {
            // (Symlinks on the way to the program are read by the owner
            // just before its exec.)
            just_started = kNoCommand;
          }
        }
        // (Pipe ends are never left unparsed.)
        if (parsed != nullptr && (op.kind == proto::PIPE_READ || op.kind == proto::PIPE_WRITE)) {
          pipe_ends[{it->second, parsed->number()}] |= op.kind == proto::PIPE_READ ? 1 : 2;
          // make strips the jobserver from MAKEFLAGS for commands that are
          // not sub-makes but they keep the descriptors: the pipe is known
          // as a jobserver once any command names it.
          if (IsJobserverFd(model, model.commands_[it->second].start, parsed->ref().base_fd())) {
            jobserver_pipes.insert(parsed->number());
          }
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
  // A command holding both ends of a pipe does not talk through it to
  // others: that is make's jobserver (tokens, not data) or a self-pipe.
  std::vector<std::pair<std::pair<size_t, uint64_t>, int>> ends(pipe_ends.begin(), pipe_ends.end());
  std::sort(ends.begin(), ends.end());
  model.build_size_ = first_dormant.value_or(model.commands_.size());
  if (!first_dormant.has_value()) model.build_ops_ = model.ops_.size();
  for (const auto& [key, bits] : ends) {
    if (jobserver_pipes.contains(key.second) || bits == 3) continue;
    model.commands_[key.first].uses_pipes = true;
    Pipe& pipe =
        model.IsDormant(key.first) ? model.dormant_pipes_[key.second] : model.pipes_[key.second];
    if (bits == 1) pipe.readers.push_back(key.first);
    if (bits == 2) pipe.writers.push_back(key.first);
  }
  OpPaths paths;
  for (size_t index = 0; index < model.ops_.size(); ++index) {
    // (An operation left unparsed changes no path.)
    if (model.ops_.WritesNoPath(index)) continue;
    model.PathsOf(model.ops_[index], &paths);
    for (std::string& p : paths.written) {
      if (index >= model.build_ops_) {
        model.dormant_writes_.insert_or_assign(std::move(p), index);
        continue;
      }
      auto [it, added] = model.writes_.try_emplace(std::move(p), Writes{index, index});
      it->second.last = index;
    }
  }
  model.complete_ = r.complete();
  model.warning_ = r.warning();
  return model;
}

const proto::Operation& OpList::Parse(size_t index) const {
  proto::Operation* op = ParseOperation(raw_[index], arena_);
  if (op == nullptr) {
    // Its summary read at load, but the rest does not parse (a string that
    // is no UTF-8): what the summary says, and nothing more.
    const OperationSummary summary = Summary(index);
    op = google::protobuf::Arena::CreateMessage<proto::Operation>(arena_);
    op->set_command(summary.command);
    op->set_kind(summary.kind);
    op->set_error(summary.error);
  }
  ops_[index] = op;
  return *op;
}

bool OpList::WritesNoPath(size_t index) const {
  const proto::Operation* op = ops_[index];
  return op == nullptr || model::WritesNoPath(*op);
}

OperationSummary OpList::Summary(size_t index) const {
  if (const proto::Operation* op = ops_[index]; op != nullptr) {
    return {op->command(), op->kind(), op->error()};
  }
  OperationSummary summary;
  (void)SummarizeOperation(raw_[index], &summary);
  return summary;
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
  if (std::memcmp(start, prefix, prefix_size) != 0) return {};
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
  out->observation = false;
  out->listing = false;
  out->written.clear();
  out->dirs_changed.clear();
  // The path is built where an observation keeps it: most operations are.
  std::string& path = out->observed;
  path.clear();
  if (op.has_ref()) Path(op.ref(), &path);
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
      const std::string dest = op.has_ref2() ? Path(op.ref2()) : "";
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
