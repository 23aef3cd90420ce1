#include "model/replay.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <utility>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dodo::model {
namespace {

std::string ShortDigest(const std::string& raw) {
  return absl::BytesToHexString(raw).substr(0, 8) + "..";
}

std::string ShortDigest(const Digest& d) { return DigestHex(d).substr(0, 8) + ".."; }

// A digest as the trace stores it (bytes) against one computed now.
bool SameDigest(const std::string& recorded, const Digest& now) {
  return recorded.size() == now.size() && std::memcmp(recorded.data(), now.data(), now.size()) == 0;
}

// ENOTDIR with every name found: the last one was there but is not a
// directory (an O_DIRECTORY open of a file, as `mv a b` probes b, or a
// trailing slash). With a name left over, a non-directory stood in the way
// of that name, which is as absent as an ENOENT leaves it.
bool FoundNonDirectory(const proto::Operation& op) {
  const proto::Ref& ref = op.ref();
  return op.error() == ENOTDIR && !ref.is_fd() && ref.components_size() > 0 &&
         ref.found() == static_cast<uint32_t>(ref.components_size());
}

bool ExpectAbsent(const proto::Operation& op) {
  return op.error() == ENOENT || (op.error() == ENOTDIR && !FoundNonDirectory(op));
}

// /proc/self, /proc/thread-self and /proc/PID describe the process that
// looks (glibc reads /proc/self/maps for pthread_getattr_np): a new run is a
// new process, so they always differ, and what they hold follows from what
// the process executed and read, which is compared.
bool DescribesAProcess(std::string_view path) {
  if (!path.starts_with("/proc/")) return false;
  path.remove_prefix(6);
  const std::string_view first = path.substr(0, path.find('/'));
  if (first == "self" || first == "thread-self") return true;
  return !first.empty() &&
         std::all_of(first.begin(), first.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

std::string Quote(const std::vector<std::string>& argv) {
  return "'" + ShortCommand(argv, 48) + "'";
}

}  // namespace

LiveTree::LiveTree(FileHasher* hasher, std::string display_root)
    : hasher_(hasher), display_root_(std::move(display_root)) {
  if (!display_root_.empty() && display_root_.back() != '/') display_root_ += '/';
}

void LiveTree::Forget() { entries_.clear(); }

void LiveTree::Forget(const std::string& path) { entries_.erase(path); }

std::string LiveTree::Display(const std::string& path) const {
  if (!display_root_.empty() && path.starts_with(display_root_) &&
      path.size() > display_root_.size()) {
    return path.substr(display_root_.size());
  }
  return path;
}

LiveTree::Identity LiveTree::IdentityNow(const std::string& path, bool follow) {
  struct stat st;
  if ((follow ? stat(path.c_str(), &st) : lstat(path.c_str(), &st)) != 0) return {.error = errno};
  return {.dev = st.st_dev,
          .ino = st.st_ino,
          .mode = st.st_mode,
          .size = st.st_size,
          .mtime_ns = st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec,
          .ctime_ns = st.st_ctim.tv_sec * 1'000'000'000LL + st.st_ctim.tv_nsec};
}

const LiveTree::Entry& LiveTree::Lookup(const std::string& path) { return LookedUp(path); }

LiveTree::Entry& LiveTree::LookedUp(const std::string& path) {
  auto [it, added] = entries_.try_emplace(path);
  Entry& e = it->second;
  if (!added) return e;
  const std::string& physical = Physical(path);
  e.lstat = IdentityNow(physical, /*follow=*/false);
  e.stat = e.lstat.error == 0 && S_ISLNK(e.lstat.mode) ? IdentityNow(physical, /*follow=*/true)
                                                       : e.lstat;
  return e;
}

absl::StatusOr<FileVersion> LiveTree::Hash(const std::string& path) {
  Entry& e = LookedUp(path);
  if (!e.version.has_value()) e.version = hasher_->HashFile(Physical(path));
  return *e.version;
}

const std::string* LiveTree::LinkTarget(const std::string& path) {
  Entry& e = LookedUp(path);
  if (!e.link_target.has_value()) {
    char target[4096];
    const ssize_t n = readlink(Physical(path).c_str(), target, sizeof(target));
    e.link_target.emplace(n < 0 ? std::nullopt
                                : std::optional<std::string>(std::string(target, n)));
  }
  return e.link_target->has_value() ? &**e.link_target : nullptr;
}

std::string LiveTree::Check(const TraceModel& model, const proto::Operation& op) {
  return Check(model, op, model.Path(op.ref()));
}

std::string LiveTree::Check(const TraceModel& model, const proto::Operation& op,
                            const std::string& path) {
  if (path.empty() || path[0] != '/' || DescribesAProcess(path)) return "";
  Entry& now = LookedUp(path);
  const bool exists = now.lstat.error == 0;
  // Only a cause shows the path: most checks find nothing.
  auto shown = [&] { return Display(path); };
  // Existence: the lookup found the name, or failed to.
  auto existence = [&]() -> std::string {
    // The same ENOTDIR needs a non-directory there now.
    if (FoundNonDirectory(op)) {
      if (!exists) return absl::StrCat(shown(), " was removed");
      if (S_ISDIR(now.lstat.mode)) return absl::StrCat(shown(), " is now a directory");
      return "";
    }
    if (op.error() == 0 && !exists) return absl::StrCat(shown(), " was removed");
    if (ExpectAbsent(op) && exists) return absl::StrCat("new file ", shown());
    return "";
  };
  auto content = [&](std::string_view what) -> std::string {
    if (op.error() != 0 || op.version().sha256().empty()) return existence();
    if (!exists || now.stat.error != 0) return absl::StrCat(shown(), " was removed");
    absl::StatusOr<FileVersion> file = Hash(path);
    if (!file.ok()) return absl::StrCat(shown(), ": ", file.status().message());
    const std::string& before = op.version().sha256();
    if (SameDigest(before, file->sha256)) return "";
    return absl::StrCat(std::string(what), shown(), " changed (sha256 ", ShortDigest(before),
                        " -> ", ShortDigest(file->sha256), ")");
  };
  switch (op.kind()) {
    case proto::GET:
    case proto::CHDIR:
    case proto::XATTR_READ:
      return existence();
    case proto::READ:
    case proto::EXEC:
      return content("content of ");
    case proto::WRITE:
      // Only a write that kept the old contents carries a version: the one
      // it built on.
      return op.version().sha256().empty() ? "" : content("previous content of ");
    case proto::STAT: {
      if (std::string e = existence(); !e.empty() || op.error() != 0) return e;
      const proto::Version& v = op.version();
      if (v.mode() == 0) return "";
      const bool link = S_ISLNK(v.mode());
      const mode_t mode = link ? now.lstat.mode : now.stat.mode;
      if (!link && now.stat.error != 0) return absl::StrCat(shown(), " was removed");
      if ((mode & (S_IFMT | 07777)) != (v.mode() & (S_IFMT | 07777))) {
        return absl::StrCat("mode of ", shown(), " changed (", absl::StrCat(absl::Hex(v.mode())),
                            " -> ", absl::StrCat(absl::Hex(mode)), ")");
      }
      if (S_ISREG(v.mode()) && static_cast<uint64_t>(now.stat.size) != v.size()) {
        return absl::StrCat("size of ", shown(), " changed (", v.size(), " -> ", now.stat.size,
                            ")");
      }
      return "";
    }
    case proto::LIST: {
      now.listed = true;
      if (std::string e = existence(); !e.empty() || op.error() != 0) return e;
      // Names the build itself creates or removes come and go with it; the
      // others are inputs.
      absl::StatusOr<std::vector<std::string>> names = ListNames(path);
      if (!names.ok()) return absl::StrCat(shown(), ": ", names.status().message());
      std::vector<std::string> now_inputs;
      for (std::string& name : *names) {
        if (!model.BuildWrites(path, name)) now_inputs.push_back(std::move(name));
      }
      std::vector<std::string> then_inputs;
      const std::string& joined = op.version().listing_names();
      for (size_t at = 0; at < joined.size();) {
        size_t nul = joined.find('\0', at);
        if (nul == std::string::npos) nul = joined.size();
        std::string name = joined.substr(at, nul - at);
        if (!model.BuildWrites(path, name)) then_inputs.push_back(std::move(name));
        at = nul + 1;
      }
      if (now_inputs == then_inputs) return "";
      for (const std::string& name : now_inputs) {
        if (!std::binary_search(then_inputs.begin(), then_inputs.end(), name)) {
          return absl::StrCat("new entry ", name, " in directory ", shown());
        }
      }
      for (const std::string& name : then_inputs) {
        if (!std::binary_search(now_inputs.begin(), now_inputs.end(), name)) {
          return absl::StrCat("entry ", name, " left directory ", shown());
        }
      }
      return absl::StrCat("entries of directory ", shown(), " changed");
    }
    case proto::READLINK: {
      if (op.error() == EINVAL) {
        if (!exists) return absl::StrCat(shown(), " was removed");
        if (S_ISLNK(now.lstat.mode)) return absl::StrCat(shown(), " is now a symlink");
        return "";
      }
      if (std::string e = existence(); !e.empty() || op.error() != 0) return e;
      if (!S_ISLNK(now.lstat.mode)) return absl::StrCat(shown(), " is no longer a symlink");
      const std::string* target = LinkTarget(path);
      if (target == nullptr) return absl::StrCat(shown(), ": cannot read the link");
      if (*target == op.text()) return "";
      return absl::StrCat("symlink ", shown(), " now points to ", *target, " (was ", op.text(),
                          ")");
    }
    default:
      return "";
  }
}

bool LiveTree::MtimeMoved(const proto::Operation& op, const std::string& path) {
  const proto::Version& v = op.version();
  if (op.kind() != proto::STAT || op.error() != 0 || !S_ISREG(v.mode()) || v.mtime_ns() == 0) {
    return false;
  }
  if (path.empty() || path[0] != '/' || DescribesAProcess(path)) return false;
  const Entry& now = LookedUp(path);
  return now.stat.error == 0 && now.stat.mtime_ns != v.mtime_ns();
}

std::vector<std::string> ChangedVariables(const std::vector<std::string>& before,
                                          const std::vector<std::string>& after) {
  // What nearly every exec of a rebuild finds, and cheap to see: the same
  // entries in the same order.
  if (before == after) return {};
  auto split = [](const std::vector<std::string>& env) {
    absl::flat_hash_map<std::string, std::string> out;
    for (const std::string& entry : env) {
      size_t eq = entry.find('=');
      if (eq == std::string::npos) continue;
      out.emplace(entry.substr(0, eq), entry.substr(eq + 1));
    }
    return out;
  };
  auto a = split(before);
  auto b = split(after);
  std::vector<std::string> changed;
  // OLDPWD changes with every `cd` of the user's shell, and builds do not
  // read it: it would make every build after a `cd` rerun its root.
  a.erase("OLDPWD");
  a.erase("_");  // bash: the path of the command it last ran
  b.erase("_");
  b.erase("OLDPWD");
  for (const auto& [name, value] : a) {
    auto it = b.find(name);
    if (it == b.end() || it->second != value) changed.push_back(name);
  }
  for (const auto& [name, value] : b) {
    if (!a.contains(name)) changed.push_back(name);
  }
  std::sort(changed.begin(), changed.end());
  return changed;
}

namespace {

std::string FailureCause(const TracedCommand& c) {
  if (!c.ended) return "did not finish last time";
  if (c.end.how() == proto::CommandEnd::KILLED) {
    return absl::StrCat("was killed by signal ", c.end.signal(), " last time");
  }
  return absl::StrCat("failed last time (exit ", c.end.exit_code(), ")");
}

// A failure is replayed like any other result when an ancestor went on and
// succeeded (`mkdir d || test -d d`; configure's test compiles, where cc1
// fails, then gcc, and the shell carries on): same inputs, same failure, same
// handling. A failure that failed the build (every ancestor up to the root
// failed too) is retried.
bool FailureMatters(const TraceModel& model, size_t c) {
  const TracedCommand& command = model.commands()[c];
  if (command.Succeeded()) return false;
  if (!command.ended || command.end.how() != proto::CommandEnd::EXITED) return true;
  for (size_t a = command.parent; a != kNoCommand; a = model.commands()[a].parent) {
    if (model.commands()[a].Succeeded()) return false;
  }
  return true;
}

// A name that did not exist and now does often sits earlier in a search
// path than the file the command went on to use (an include directory, PATH):
// " shadows <that file>", or "" if the command found no namesake.
std::string Shadows(const TraceModel& model, size_t command, size_t op_index,
                    const std::string& path, const LiveTree& tree) {
  const std::string name = path.substr(path.rfind('/') + 1);
  for (size_t index : model.commands()[command].ops) {
    if (index <= op_index) continue;
    const proto::Operation& op = model.ops()[index];
    if (op.error() != 0 || (op.kind() != proto::READ && op.kind() != proto::EXEC)) continue;
    const std::string found = model.Path(op.ref());
    if (found != path && found.size() > name.size() && found.ends_with("/" + name)) {
      return absl::StrCat(" shadows ", tree.Display(found));
    }
  }
  return "";
}

// Exec operations that started a command: checked for that command.
absl::flat_hash_map<size_t, size_t> ExecOwners(const TraceModel& model) {
  absl::flat_hash_map<size_t, size_t> out;
  for (size_t c = 0; c < model.build_size(); ++c) {
    if (model.commands()[c].exec_op.has_value()) out[*model.commands()[c].exec_op] = c;
  }
  return out;
}

}  // namespace

std::vector<size_t> OpsOf(const TraceModel& model, const std::vector<size_t>& commands) {
  std::vector<size_t> ops;
  if (std::any_of(commands.begin(), commands.end(), [&](size_t c) { return model.IsDormant(c); })) {
    model.WaitDormant();
  }
  for (size_t c : commands) {
    const TracedCommand& command = model.commands()[c];
    ops.insert(ops.end(), command.ops.begin(), command.ops.end());
    if (command.exec_op.has_value()) ops.push_back(*command.exec_op);
  }
  // Operations that fill most of the span they lie in are put in order by
  // marking: a large share of the trace (a whole build skipped), where
  // sorting a million indices took a tenth of a planned no-op, and a subtree
  // copied as a whole into the last trace (a dormant one: a build keeps
  // hundreds of them).
  if (ops.empty()) return ops;
  const auto [low, high] = std::minmax_element(ops.begin(), ops.end());
  const size_t first = *low;
  const size_t span = *high - first + 1;
  if (span <= 4 * ops.size()) {
    std::vector<bool> member(span, false);
    for (size_t index : ops) member[index - first] = true;
    ops.clear();
    for (size_t i = 0; i < span; ++i) {
      if (member[i]) ops.push_back(first + i);
    }
    return ops;
  }
  std::sort(ops.begin(), ops.end());
  ops.erase(std::unique(ops.begin(), ops.end()), ops.end());
  return ops;
}

namespace {

// Operations whose command then acted on the file's contents.
bool ReadsContents(const proto::Operation& op) {
  return (op.kind() == proto::READ || op.kind() == proto::EXEC) && op.error() == 0;
}

std::string MtimeCause(const LiveTree& tree, const std::string& path) {
  return absl::StrCat("mtime of ", tree.Display(path), " changed, and nothing reads it");
}

}  // namespace

namespace {

// A rename reads nothing, yet the file it leaves under the new name is the
// one it found under the old: `mv objs/src.o obj.lo` (libtool's `mv x.loT
// x.lo`, automake's `mv x.Tpo x.Po`) makes obj.lo whatever grep wrote
// before it. So the file there now is an input, compared with what the
// command left at the new name, unless the commands checked wrote it
// themselves before (`written`). A source that is gone now says nothing:
// the writer that put it there was skipped, and the skip restores what the
// rename left. The same holds for a hard link (`ln a b`: LINK EXISTING,
// whose ref2 is the file linked to).
std::string MovedContentCause(const TraceModel& model, const proto::Operation& op, LiveTree& tree,
                              const absl::flat_hash_set<std::string>& written,
                              const TempRenames* renames) {
  if (!op.has_ref2()) return "";
  const bool link = op.kind() == proto::LINK;
  std::string from = model.Path(link ? op.ref2() : op.ref());
  const std::string to = model.Path(link ? op.ref() : op.ref2());
  if (from.empty() || from[0] != '/' || to.empty() || written.contains(from)) return "";
  const size_t command = model.IndexOf(op.command());
  if (command == kNoCommand || !model.commands()[command].ended) return "";
  const proto::Version* left = nullptr;
  for (const proto::Output& output : model.commands()[command].end.outputs()) {
    if (model.String(output.path()) == to) left = &output.version();
  }
  if (left == nullptr || left->absent() || left->sha256().empty()) return "";
  if (renames != nullptr) from = renames->Path(from).value_or(from);
  const LiveTree::Entry& now = tree.Lookup(from);
  if (now.lstat.error != 0 || !S_ISREG(now.lstat.mode)) return "";
  absl::StatusOr<FileVersion> file = tree.Hash(from);
  if (!file.ok()) return absl::StrCat(tree.Display(from), ": ", file.status().message());
  if (SameDigest(left->sha256(), file->sha256)) return "";
  return absl::StrCat("content of ", tree.Display(from), ", which it ",
                      link ? "links as " : "renames to ", tree.Display(to), ", changed (sha256 ",
                      ShortDigest(left->sha256()), " -> ", ShortDigest(file->sha256), ")");
}

}  // namespace

std::vector<std::string> CheckCommands(const TraceModel& model, std::vector<size_t> commands,
                                       LiveTree& tree, size_t max_causes,
                                       const TempRenames* renames) {
  std::vector<std::string> causes;
  std::sort(commands.begin(), commands.end());
  for (size_t c : commands) {
    if (FailureMatters(model, c)) {
      causes.push_back(FailureCause(model.commands()[c]));
      if (causes.size() >= max_causes) return causes;
    }
  }
  absl::flat_hash_set<std::string> written;
  // Paths whose STAT found only a new mtime.
  absl::btree_set<std::string> mtime_only;
  const std::vector<size_t> ops = OpsOf(model, commands);
  // Dormant commands were no part of the last build (see
  // TraceModel::build_size): of what their build wrote, only their own
  // writes are known.
  absl::flat_hash_map<std::string, size_t> own_first_write;
  const bool dormant = !commands.empty() && model.IsDormant(commands.front());
  if (dormant) {
    OpPaths paths;
    for (size_t index : ops) {
      if (model.ops().WritesNoPath(index)) continue;
      model.PathsOf(model.ops()[index], &paths);
      for (std::string& p : paths.written) own_first_write.try_emplace(std::move(p), index);
    }
  }
  auto first_write_of = [&](const std::string& path) {
    if (!dormant) return model.FirstWrite(path);
    auto it = own_first_write.find(path);
    return it == own_first_write.end() ? kNever : it->second;
  };
  for (size_t index : ops) {
    const proto::Operation& op = model.ops()[index];
    OpPaths paths = model.PathsOf(op);
    // Not compared: what the commands changed themselves, and what the
    // build changes only later or with this very operation (an append that
    // creates the file; before that, a clean build finds nothing there; the
    // tree now holds the last build's result). Listings leave
    // out the names the build writes, so they are compared even in a
    // directory the build made, as MakePlan does, unless it is gone now: the
    // build removed it again (configure's `rm -rf conftest.dir`, or
    // config.guess's `mktemp -d /tmp/cgXXXXXX`).
    const size_t first_write = paths.observation ? first_write_of(paths.observed) : kNever;
    const bool compare =
        paths.listing
            ? first_write > index || tree.Lookup(paths.observed).stat.error == 0
            : first_write == kNever || (first_write < index && !written.contains(paths.observed));
    std::optional<std::string> renamed;
    if (renames != nullptr) {
      for (const std::string& path : paths.written) {
        if (renames->Mentions(path)) {
          causes.push_back(
              absl::StrCat("it writes ", tree.Display(path),
                           ", named after a temporary file this build named otherwise"));
          return causes;
        }
      }
      if (paths.observation) renamed = renames->Path(paths.observed);
      if (renamed.has_value() && paths.listing) {
        causes.push_back(absl::StrCat("it lists ", tree.Display(paths.observed),
                                      ", a temporary directory this build named otherwise"));
        return causes;
      }
      // A name made from an old one (`x.d` beside `x.c`): the command would
      // look for it under the new name, which nothing maps.
      if (paths.observation && !renamed.has_value() && renames->Mentions(paths.observed)) {
        causes.push_back(absl::StrCat("it looks at ", tree.Display(paths.observed),
                                      ", named after a temporary file this build named otherwise"));
        return causes;
      }
    }
    if (paths.observation && compare) {
      const std::string& now_at = renamed.has_value() ? *renamed : paths.observed;
      std::string cause = tree.Check(model, op, now_at);
      if (!cause.empty()) {
        causes.push_back(std::move(cause));
        if (causes.size() >= max_causes) return causes;
      } else if (op.kind() == proto::STAT && first_write == kNever &&
                 (!dormant || model.FirstWrite(paths.observed) == kNever) &&
                 tree.MtimeMoved(op, now_at)) {
        mtime_only.insert(paths.observed);
      }
    }
    if ((op.kind() == proto::RENAME ||
         (op.kind() == proto::LINK && op.create() == proto::EXISTING)) &&
        op.error() == 0) {
      if (std::string cause = MovedContentCause(model, op, tree, written, renames);
          !cause.empty()) {
        causes.push_back(std::move(cause));
        if (causes.size() >= max_causes) return causes;
      }
    }
    for (std::string& p : paths.written) written.insert(std::move(p));
  }
  if (!mtime_only.empty()) {
    // Only a file none of the commands reads (see LiveTree::MtimeMoved).
    OpPaths paths;
    for (size_t index : ops) {
      const proto::Operation& op = model.ops()[index];
      if (!ReadsContents(op)) continue;
      model.PathsOf(op, &paths);
      mtime_only.erase(paths.observed);
      if (mtime_only.empty()) break;
    }
    for (const std::string& path : mtime_only) {
      causes.push_back(MtimeCause(tree, path));
      if (causes.size() >= max_causes) return causes;
    }
  }
  return causes;
}

namespace {

// The last command to change each path, and the paths in trace order of
// their first change: what FinalStates needs from a pass over the ops.
// The version each written path was left in: the one its writer that ended
// last saw at its end. Not the writer of the last operation on it: writes
// through a descriptor make no operation, so a shell's `echo end >&5` after
// its last `cmd >&5` would be credited to cmd, whose version lacks "end".
// An end's version is the file as it was then, whoever wrote it.
class LastWriters {
 public:
  explicit LastWriters(const TraceModel& model) : model_(model) {}

  void Note(const std::string& path, size_t command) {
    auto [it, inserted] = last_writer_.try_emplace(path, command);
    if (inserted) {
      order_.push_back(it->first);
      return;
    }
    const TracedCommand& now = model_.commands()[command];
    const TracedCommand& before = model_.commands()[it->second];
    // Killed commands recorded no outputs: any that ended is better.
    if (!before.ended || (now.ended && now.end_rank >= before.end_rank)) it->second = command;
  }

  // Its other names (see proto::Output.same_file_as): written when it ended.
  void NoteEnd(size_t command) {
    for (const proto::Output& output : model_.commands()[command].end.outputs()) {
      if (output.same_file_as() != 0) Note(std::string(model_.String(output.path())), command);
    }
  }

  std::vector<FinalState> States() const {
    const TraceModel& model = model_;
    std::vector<FinalState> out;
    for (const std::string& path : order_) {
      const size_t index = last_writer_.at(path);
      const TracedCommand& writer = model.commands()[index];
      for (const proto::Output& output : writer.end.outputs()) {
        if (model.String(output.path()) == path) {
          FinalState& state = out.emplace_back();
          state.path = path;
          state.version = output.version();
          state.writer = index;
          // Still one file at the end only if nothing changed the other
          // name after this writer.
          const std::string_view first = model.String(output.same_file_as());
          if (auto w = last_writer_.find(std::string(first));
              w != last_writer_.end() && w->second == index) {
            state.same_file_as = first;
          }
          break;
        }
      }
    }
    return out;
  }

 private:
  const TraceModel& model_;
  absl::flat_hash_map<std::string, size_t> last_writer_;
  std::vector<std::string> order_;
};

}  // namespace

std::vector<FinalState> FinalStates(const TraceModel& model, const std::vector<size_t>& commands) {
  LastWriters last(model);
  OpPaths paths;
  for (size_t index : OpsOf(model, commands)) {
    if (model.ops().WritesNoPath(index)) continue;
    const proto::Operation& op = model.ops()[index];
    model.PathsOf(op, &paths);
    for (const std::string& p : paths.written) last.Note(p, model.IndexOf(op.command()));
  }
  for (size_t command : commands) last.NoteEnd(command);
  return last.States();
}

std::optional<std::string> DiffersFromFinal(const std::string& path, const proto::Version& version,
                                            LiveTree& tree) {
  const proto::Version& v = version;
  const LiveTree::Entry& now = tree.Lookup(path);
  const bool exists = now.lstat.error == 0;
  const mode_t mode = now.lstat.mode;
  auto shown = [&] { return tree.Display(path); };
  if (v.absent()) return std::nullopt;  // removals are not redone (see FinalStates users)
  if (!exists) return absl::StrCat(shown(), " is missing");
  if (!v.sha256().empty()) {
    if (!S_ISREG(mode)) return absl::StrCat(shown(), " is no longer a regular file");
    absl::StatusOr<FileVersion> file = tree.Hash(path);
    if (!file.ok()) return absl::StrCat(shown(), ": ", file.status().message());
    const std::string& before = v.sha256();
    if (!SameDigest(before, file->sha256)) {
      return absl::StrCat(shown(), " was modified");
    }
    if ((mode & 07777) != (v.mode() & 07777)) return absl::StrCat(shown(), ": mode changed");
    return std::nullopt;
  }
  if (S_ISLNK(v.mode())) {
    const std::string* target = tree.LinkTarget(path);
    if (target == nullptr || *target != v.symlink_target()) {
      return absl::StrCat(shown(), " no longer points to ", v.symlink_target());
    }
    return std::nullopt;
  }
  if (S_ISDIR(v.mode()) && !S_ISDIR(mode))
    return absl::StrCat(shown(), " is no longer a directory");
  return std::nullopt;
}

std::optional<std::string> DiffersFromFinal(const FinalState& state, LiveTree& tree) {
  std::optional<std::string> differs = DiffersFromFinal(state.path, state.version, tree);
  if (differs.has_value() || state.same_file_as.empty() || state.version.absent()) return differs;
  // Copies: a lookup may move the entries of earlier ones.
  const LiveTree::Identity now = tree.Lookup(state.path).lstat;
  const LiveTree::Identity first = tree.Lookup(state.same_file_as).lstat;
  if (first.error != 0 || first.dev != now.dev || first.ino != now.ino) {
    return absl::StrCat(tree.Display(state.path), " is no longer the file ",
                        tree.Display(state.same_file_as), " is");
  }
  return std::nullopt;
}

bool Plan::UpToDate() const {
  if (root_changed || !restores.empty()) return false;
  for (const CommandVerdict& v : commands) {
    if (v.runs) return false;
  }
  return true;
}

Plan MakePlan(const TraceModel& model, LiveTree& tree, const std::vector<std::string>& argv,
              const std::string& cwd, const std::vector<std::string>& env) {
  Plan plan;
  // Dormant commands are no part of the build (proto::CommandStart.dormant).
  const size_t n = model.build_size();
  plan.commands.resize(n);
  if (n == 0) {
    plan.root_changed = true;
    return plan;
  }
  auto add_cause = [&](size_t c, std::string cause) {
    CommandVerdict& v = plan.commands[c];
    v.dirty = true;
    // A script is both executed and read: one change, said once.
    if (v.causes.size() < 8 &&
        std::find(v.causes.begin(), v.causes.end(), cause) == v.causes.end()) {
      v.causes.push_back(std::move(cause));
    }
  };

  // The root: the same command, from the same directory, in what environment.
  const size_t root = model.root();
  if (model.Argv(root) != argv || model.Cwd(root) != cwd) {
    plan.root_changed = true;
    add_cause(root, "the root command is not the one recorded");
  }
  const std::vector<std::string> root_env = model.Env(root);
  const std::vector<std::string> changed = ChangedVariables(root_env, env);
  if (!changed.empty()) {
    // Commands inherit the root's environment: the ones that had a changed
    // variable as the root had it will see the new value.
    absl::flat_hash_map<std::string, std::string> old_values;
    for (const std::string& entry : root_env) {
      size_t eq = entry.find('=');
      if (eq != std::string::npos) old_values.emplace(entry.substr(0, eq), entry);
    }
    for (size_t c = 0; c < n; ++c) {
      const std::vector<std::string> command_env = model.Env(c);
      for (const std::string& name : changed) {
        auto old = old_values.find(name);
        const bool had =
            old != old_values.end() &&
            std::find(command_env.begin(), command_env.end(), old->second) != command_env.end();
        const bool lacked =
            old == old_values.end() &&
            std::none_of(command_env.begin(), command_env.end(),
                         [&](const std::string& e) { return e.starts_with(name + "="); });
        if (had || lacked) add_cause(c, absl::StrCat("environment variable ", name, " changed"));
      }
    }
  }
  for (size_t c = 0; c < n; ++c) {
    if (FailureMatters(model, c)) add_cause(c, FailureCause(model.commands()[c]));
  }

  // One pass over the operations in trace order. Observations of paths an
  // earlier command changed depend on that command; the others are
  // compared with the tree.
  const absl::flat_hash_map<size_t, size_t> exec_owner = ExecOwners(model);
  // Per path the build changes: the command whose change an observation
  // sees (the last so far), and every command whose operations changed it
  // (SuspectCause's writers).
  struct PathWriters {
    size_t latest = kNoCommand;
    absl::InlinedVector<size_t, 2> all;
  };
  absl::flat_hash_map<std::string, PathWriters> writer;
  LastWriters last_writers(model);  // as FinalStates(model, every command) finds them
  // readers[w]: who observed what w left there: the command, the path
  // ("" for a pipe) and the operation.
  struct Reader {
    size_t command;
    std::string path;
    size_t op = kNever;
  };
  std::vector<std::vector<Reader>> readers(n);
  auto add_suspect = [&](size_t c, size_t op) {
    std::vector<size_t>& suspects = plan.commands[c].suspects;
    if (suspects.size() < kMaxSuspects) suspects.push_back(op);
  };
  // Ends that wrote other names of a file (hard links), in trace order: the
  // command is those names' writer from then on.
  std::vector<size_t> linked_ends;
  for (size_t c = 0; c < n; ++c) {
    const TracedCommand& command = model.commands()[c];
    if (command.ended &&
        std::any_of(command.end.outputs().begin(), command.end.outputs().end(),
                    [](const proto::Output& o) { return o.same_file_as() != 0; })) {
      linked_ends.push_back(c);
    }
  }
  std::sort(linked_ends.begin(), linked_ends.end(), [&](size_t a, size_t b) {
    return model.commands()[a].end_rank < model.commands()[b].end_rank;
  });
  size_t next_linked_end = 0;
  auto take_linked_ends = [&](size_t ops_before) {
    for (; next_linked_end < linked_ends.size(); ++next_linked_end) {
      const size_t c = linked_ends[next_linked_end];
      if (model.commands()[c].end_at > ops_before) break;
      last_writers.NoteEnd(c);
      for (const proto::Output& output : model.commands()[c].end.outputs()) {
        if (output.same_file_as() != 0) {
          writer[std::string(model.String(output.path()))].latest = c;
        }
      }
    }
  };
  // Observations that found only a new mtime on a path the build never
  // writes, decided once all reads are known.
  struct MtimeOnly {
    size_t command;
    std::string path;
  };
  std::vector<MtimeOnly> mtime_only;
  OpPaths paths;
  for (size_t index = 0; index < model.build_ops(); ++index) {
    take_linked_ends(index);
    const proto::Operation& op = model.ops()[index];
    const size_t recorded_by = model.IndexOf(op.command());
    if (recorded_by == kNoCommand) continue;
    size_t c = recorded_by;
    if (auto owner = exec_owner.find(index); owner != exec_owner.end()) c = owner->second;
    model.PathsOf(op, &paths);
    if (paths.observation) {
      auto w = writer.find(paths.observed);
      const bool made_by_build = w != writer.end();
      if (made_by_build && w->second.latest != c) {
        readers[w->second.latest].push_back({c, paths.observed, index});
      }
      // Listings leave out the names the build writes, so they are compared
      // even in a directory the build made, unless the build removed it
      // again after the listing (configure's `rm -rf conftest.dir`). Other
      // observations are compared only if the build never writes the path:
      // one it writes only later is not there in a clean build (see
      // CheckCommands).
      const bool compare = paths.listing
                               ? !made_by_build || tree.Lookup(paths.observed).stat.error == 0
                               : !made_by_build && model.FirstWrite(paths.observed) == kNever;
      if (compare) {
        if (std::string cause = tree.Check(model, op, paths.observed); !cause.empty()) {
          if (ExpectAbsent(op)) cause += Shadows(model, c, index, paths.observed, tree);
          add_cause(c, std::move(cause));
          add_suspect(c, index);
        } else if (tree.MtimeMoved(op, paths.observed)) {
          mtime_only.push_back({c, paths.observed});
        }
      }
    }
    for (std::string& p : paths.written) {
      last_writers.Note(p, recorded_by);
      PathWriters& writers = writer[std::move(p)];
      writers.latest = c;
      if (std::find(writers.all.begin(), writers.all.end(), recorded_by) == writers.all.end()) {
        writers.all.push_back(recorded_by);
      }
    }
  }
  take_linked_ends(model.build_ops());
  if (!mtime_only.empty()) {
    // A new mtime is a cause for a command unless it or a command it started
    // read the file (see LiveTree::MtimeMoved). Only a same-size edit or a
    // touch gets here, hence a second pass rather than an index of reads.
    absl::flat_hash_map<std::string, std::vector<size_t>> readers_of;
    for (const MtimeOnly& m : mtime_only) readers_of.try_emplace(m.path);
    for (size_t index = 0; index < model.build_ops(); ++index) {
      const proto::Operation& op = model.ops()[index];
      if (!ReadsContents(op)) continue;
      size_t c = model.IndexOf(op.command());
      if (c == kNoCommand) continue;
      if (auto owner = exec_owner.find(index); owner != exec_owner.end()) c = owner->second;
      model.PathsOf(op, &paths);
      if (auto it = readers_of.find(paths.observed); it != readers_of.end()) {
        it->second.push_back(c);
      }
    }
    for (const MtimeOnly& m : mtime_only) {
      const std::vector<size_t>& readers = readers_of.at(m.path);
      if (std::none_of(readers.begin(), readers.end(), [&](size_t r) {
            return r == m.command || model.IsAncestor(m.command, r);
          })) {
        add_cause(m.command, MtimeCause(tree, m.path));
      }
    }
  }

  // Pipes: a reader depends on the writers; a pipe with an end outside the
  // recorded commands (a shell builtin, the root's own end) cannot be replayed.
  std::vector<std::vector<size_t>> pipe_partners(n);
  // Ordered: the order dirt spreads in decides which cause a command is
  // given first, and `dodo why` says the same thing each time.
  // Readers of pipes no command writes, by the command whose own processes
  // fed them (kNoCommand: not known, any ancestor may have).
  absl::btree_map<size_t, absl::btree_set<size_t>> fed_by;
  for (const auto& [id, pipe] : model.pipes()) {
    // A pipe no command writes is fed by an ancestor's own process (a shell
    // builtin: `echo $x | sed ...`). No command between that ancestor and the
    // reader held the pipe at its exec, or it would be a writer: the feeder
    // is the nearest ancestor that does not hold it (the one that made it).
    // Only what that command does can change what the pipe carries.
    if (pipe.writers.empty()) {
      for (size_t r : pipe.readers) {
        size_t feeder = model.commands()[r].parent;
        while (feeder != kNoCommand &&
               std::find(pipe.readers.begin(), pipe.readers.end(), feeder) != pipe.readers.end()) {
          feeder = model.commands()[feeder].parent;
        }
        fed_by[feeder].insert(r);
      }
    }
    if (pipe.readers.empty()) {
      // No command held the read end at its exec, so the pipe was made
      // after the exec of the command whose own processes read it: the
      // nearest ancestor not holding the pipe itself (a shell reading a
      // command substitution, `x=$(echo $@ | sed s/-r//)`). Skipping the
      // writer would leave that reader with no data, so the writer reruns
      // whenever the reader runs, and is no cause of its own.
      for (size_t w : pipe.writers) {
        size_t reader = model.commands()[w].parent;
        while (reader != kNoCommand &&
               std::find(pipe.writers.begin(), pipe.writers.end(), reader) != pipe.writers.end()) {
          reader = model.commands()[reader].parent;
        }
        if (reader == kNoCommand) {
          add_cause(w, "writes a pipe read by a process that is not a command");
          continue;
        }
        readers[w].push_back({reader, ""});
        pipe_partners[w].push_back(reader);
        pipe_partners[reader].push_back(w);
      }
    }
    for (size_t w : pipe.writers) {
      for (size_t r : pipe.readers) {
        if (r == w) continue;
        readers[w].push_back({r, ""});
        pipe_partners[w].push_back(r);
        pipe_partners[r].push_back(w);
      }
    }
  }

  // Dirty spreads to whoever read what a dirty command will rewrite.
  std::deque<size_t> work;
  for (size_t c = 0; c < n; ++c) {
    if (plan.commands[c].dirty) work.push_back(c);
  }
  while (!work.empty()) {
    const size_t w = work.front();
    work.pop_front();
    for (size_t feeder : {w, kNoCommand}) {
      auto fed = fed_by.find(feeder);
      if (fed == fed_by.end()) continue;
      for (size_t r : fed->second) {
        if (plan.commands[r].dirty || r == w || !model.IsAncestor(w, r)) continue;
        add_cause(r,
                  absl::StrCat("reads a pipe fed by ", Quote(model.Argv(w)), ", which must rerun"));
        plan.commands[r].pinned = true;
        plan.commands[r].pinned_by = feeder;  // (none known: nothing skips it)
        work.push_back(r);
      }
    }
    for (const auto& [r, path, op] : readers[w]) {
      // Each read of what w rewrites may be the one that differs.
      if (!path.empty()) add_suspect(r, op);
      if (plan.commands[r].dirty) continue;
      add_cause(r, path.empty() ? absl::StrCat("reads a pipe from ", Quote(model.Argv(w)),
                                               ", which must rerun")
                                : absl::StrCat("reads ", tree.Display(path), ", which ",
                                               Quote(model.Argv(w)), " will rewrite"));
      work.push_back(r);
    }
  }

  // Runs: dirty ones, their ancestors (someone must exec them) and the
  // other ends of their pipes.
  for (size_t c = 0; c < n; ++c) {
    if (plan.commands[c].dirty) work.push_back(c);
  }
  for (size_t c : work) plan.commands[c].runs = true;
  while (!work.empty()) {
    const size_t c = work.front();
    work.pop_front();
    std::vector<std::pair<size_t, std::string>> next;
    const size_t parent = model.commands()[c].parent;
    if (parent != kNoCommand) {
      next.emplace_back(parent, absl::StrCat("starts ", Quote(model.Argv(c)), ", which must run"));
    }
    for (size_t p : pipe_partners[c]) {
      next.emplace_back(
          p, absl::StrCat("shares a pipe with ", Quote(model.Argv(c)), ", which must run"));
    }
    for (auto& [m, why] : next) {
      CommandVerdict& v = plan.commands[m];
      if (v.runs) continue;
      v.runs = true;
      v.causes.push_back(std::move(why));
      work.push_back(m);
    }
  }

  // The writers of what the suspects read, for SuspectCause.
  for (const CommandVerdict& verdict : plan.commands) {
    for (size_t index : verdict.suspects) {
      model.PathsOf(model.ops()[index], &paths);
      if (!paths.observation) continue;
      if (auto w = writer.find(paths.observed); w != writer.end()) {
        plan.writers.try_emplace(paths.observed, w->second.all);
      }
    }
  }

  if (!plan.commands[root].runs) {
    for (FinalState& state : last_writers.States()) {
      if (std::optional<std::string> why = DiffersFromFinal(state, tree)) {
        plan.restores.push_back(std::move(state));
        plan.restore_reasons.push_back(*std::move(why));
      }
    }
  }
  return plan;
}

std::string SuspectCause(const TraceModel& model, const Plan& plan,
                         const std::vector<size_t>& group,
                         const absl::flat_hash_set<size_t>& members, LiveTree& tree) {
  // A group of dormant commands compares against its own writes only (see
  // CheckCommands); the plan does not cover those.
  if (group.empty() || model.IsDormant(*std::min_element(group.begin(), group.end()))) return "";
  OpPaths paths;
  for (size_t member : group) {
    if (member >= plan.commands.size()) continue;
    for (size_t index : plan.commands[member].suspects) {
      const proto::Operation& op = model.ops()[index];
      model.PathsOf(op, &paths);
      if (!paths.observation) continue;
      // Compared by CheckCommands too: the same rules, with what it learns
      // from the operations before this one (the paths the group changed
      // itself) taken from the plan's writers: no member changes the path.
      const size_t first_write = model.FirstWrite(paths.observed);
      bool compare = false;
      if (paths.listing) {
        compare = first_write > index || tree.Lookup(paths.observed).stat.error == 0;
      } else if (first_write == kNever) {
        compare = true;
      } else if (first_write < index) {
        auto writers = plan.writers.find(paths.observed);
        compare = writers != plan.writers.end() &&
                  std::none_of(writers->second.begin(), writers->second.end(),
                               [&](size_t w) { return members.contains(w); });
      }
      if (!compare) continue;
      if (std::string cause = tree.Check(model, op, paths.observed); !cause.empty()) return cause;
    }
  }
  return "";
}

std::string ShortCommand(const std::vector<std::string>& argv, size_t width) {
  std::vector<std::string> shown;
  for (size_t i = 0; i < argv.size(); ++i) {
    std::string arg = argv[i];
    if (i == 0) {
      size_t slash = arg.rfind('/');
      if (slash != std::string::npos && slash + 1 < arg.size()) arg = arg.substr(slash + 1);
    }
    shown.push_back(std::move(arg));
  }
  std::string line = absl::StrJoin(shown, " ");
  if (line.size() > width && width > 3) line = line.substr(0, width - 3) + "...";
  return line;
}

}  // namespace dodo::model
