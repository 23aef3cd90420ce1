#include "model/rebuilder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "model/file_errors.h"

namespace dodo::model {
namespace {

// String ids of the last trace mean nothing in the new one: re-intern.
// `known` remembers each answer (0: not asked yet) across all the copies into
// one writer, so a string is hashed once per build, not once per use.
class Reinterner {
 public:
  Reinterner(const TraceModel& from, TraceWriter* to, std::vector<uint32_t>* known,
             const TempRenames* renames = nullptr)
      : from_(from), to_(to), known_(*known), renames_(renames) {
    known_.resize(from_.strings().size() + 1, 0);  // ids count from 1
  }
  uint32_t operator()(uint32_t id) {
    if (id == 0) return 0;
    if (id < known_.size()) {
      uint32_t& answer = known_[id];
      if (answer == 0) answer = to_->Intern(from_.String(id));
      return answer;
    }
    return to_->Intern(from_.String(id));
  }
  // A path under today's temporary names (not cached: the same string of
  // the last trace may stand for another name in another copy).
  uint32_t Path(uint32_t id) { return Renamed(id, /*component=*/false); }
  void Ref(proto::Ref* ref) {
    ref->set_base_path(Path(ref->base_path()));
    for (int i = 0; i < ref->components_size(); ++i) {
      ref->set_components(i, Renamed(ref->components(i), /*component=*/true));
    }
  }
  void Op(proto::Operation* op) {
    if (op->has_ref()) Ref(op->mutable_ref());
    if (op->has_ref2()) Ref(op->mutable_ref2());
    op->set_xattr_name((*this)(op->xattr_name()));
    op->set_syscall_name((*this)(op->syscall_name()));
  }

 private:
  uint32_t Renamed(uint32_t id, bool component) {
    if (renames_ != nullptr && id != 0) {
      const std::string_view text = from_.String(id);
      std::optional<std::string> now = component ? renames_->Component(text) : renames_->Path(text);
      if (now.has_value()) return to_->Intern(*now);
    }
    return (*this)(id);
  }

  const TraceModel& from_;
  TraceWriter* to_;
  std::vector<uint32_t>& known_;
  const TempRenames* renames_;
};

}  // namespace

Rebuilder::Rebuilder(Recorder* recorder, const TraceModel* previous, Store* store, LiveTree* tree,
                     RebuildOptions options)
    : recorder_(recorder),
      previous_(previous),
      store_(store),
      tree_(tree),
      options_(std::move(options)),
      store_prefix_(store->dir() + "/") {
  if (previous_ != nullptr) {
    consumed_.assign(previous_->commands().size(), false);
    if (previous_->root() != kNoCommand) {
      for (const proto::InheritedFd& fd : previous_->commands()[previous_->root()].start.fds()) {
        if (fd.path() != 0)
          previous_external_files_.insert(std::string(previous_->String(fd.path())));
      }
    }
    for (const TracedCommand& command : previous_->commands()) {
      next_dormant_id_ = std::max(next_dormant_id_, command.start.id() + 1);
    }
    AddPartners(previous_->pipes());
  }
  if (!options_.project_root.empty() && options_.project_root.back() != '/') {
    options_.project_root += '/';
  }
}

void Rebuilder::AddPartners(const absl::btree_map<uint64_t, TraceModel::Pipe>& pipes) {
  for (const auto& [id, pipe] : pipes) {
    for (size_t w : pipe.writers) {
      for (size_t r : pipe.readers) {
        partners_[w].push_back(r);
        partners_[r].push_back(w);
      }
    }
  }
}

bool Rebuilder::ShouldInheritStrings(const TraceModel* previous) {
  return previous != nullptr && previous->build_size() < previous->commands().size() &&
         previous->header().strings_inherited_builds() < kMaxInheritedBuilds;
}

absl::Status Rebuilder::InheritStrings() {
  if (previous_ == nullptr) return absl::OkStatus();
  if (absl::Status s = recorder_->writer()->InheritStrings(previous_->strings()); !s.ok()) return s;
  const size_t count = previous_->strings().size();
  reinterned_.resize(count + 1);
  for (size_t id = 1; id <= count; ++id) reinterned_[id] = static_cast<uint32_t>(id);
  strings_inherited_ = true;
  return absl::OkStatus();
}

void Rebuilder::Progress(const char* verb, const std::vector<std::string>& argv) {
  if (options_.progress == nullptr) return;
  std::fprintf(options_.progress, "%s %s\n", verb, ShortCommand(argv, options_.width).c_str());
  std::fflush(options_.progress);
}

void Rebuilder::OnExec(const tracer::ExecEvent& event) {
  recorder_->OnExec(event);
  ++stats_.run;
  Progress("run ", event.argv);
  const uint64_t id = recorder_->CommandOf(event.pid);
  const pid_t caller = event.former_tid != 0 ? event.former_tid : event.pid;
  auto pending = pending_.find(caller);
  const bool first_exec = match_.empty() && stats_.run == 1;
  if (pending != pending_.end()) {
    match_[id] = pending->second;
    pending_.erase(pending);
  } else if (previous_ != nullptr && match_.empty() && previous_->root() != kNoCommand &&
             previous_->Argv(previous_->root()) == event.argv) {
    // The root: the build's first exec.
    match_[id] = previous_->root();
    consumed_[previous_->root()] = true;
  }
  if (!options_.explain || options_.progress == nullptr) return;
  std::string cause;
  if (auto it = run_cause_.find(caller); it != run_cause_.end()) {
    cause = std::move(it->second);
    run_cause_.erase(it);
  } else if (previous_ == nullptr) {
    cause = "no last build to reuse";
  } else if (first_exec) {
    // The root always runs when anything does; the plan says why.
    const size_t root = previous_->root();
    cause = root == kNoCommand ? "the last build has no root command"
            : plan_ != nullptr && !plan_->commands[root].causes.empty()
                ? plan_->commands[root].causes.front()
                : "the root of the build";
  } else {
    cause = "not started by a command of the last build";
  }
  std::fprintf(options_.progress, "     because %s\n", cause.c_str());
  std::fflush(options_.progress);
}

std::string Rebuilder::RunCause(const tracer::ExecRequest& request, uint64_t parent_id,
                                size_t matched) {
  if (parent_id == 0) return "";
  if (matched == kNoCommand) {
    return absl::StrCat("the last build has no such command in ", request.cwd);
  }
  auto cause = group_cause_.find(matched);
  return cause != group_cause_.end() ? cause->second : "its group runs";
}

std::vector<size_t> Rebuilder::Connected(size_t command, bool with_subtrees) const {
  absl::flat_hash_set<size_t> members = {command};
  std::vector<size_t> queue = {command};
  std::vector<size_t> out;
  while (!queue.empty()) {
    const size_t c = queue.back();
    queue.pop_back();
    for (size_t s : with_subtrees ? previous_->Subtree(c) : std::vector<size_t>{c}) {
      out.push_back(s);
      auto partners = partners_.find(s);
      if (partners == partners_.end()) continue;
      for (size_t p : partners->second) {
        if (members.insert(p).second) queue.push_back(p);
      }
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

namespace {

// What skipping must keep the same about one descriptor: which file or
// directory of the build it is, and how it is open. Pipes are left to the
// group rules; terminals, sockets and files from outside the build ("")
// hold no output of the build's.
// Paths are shown as `tree` shows them, which keeps them apart.
std::string DescriptorIdentity(const LiveTree& tree, bool is_file, bool is_directory,
                               std::string_view path, bool readable, bool writable, bool external) {
  if (path.empty() || external || !(is_file || is_directory)) return "";
  const std::string shown = tree.Display(std::string(path));
  if (is_directory) return absl::StrCat("directory ", shown);
  const char* access = readable && writable ? "read and written" : writable ? "written" : "read";
  return absl::StrCat(shown, " (", access, ")");
}

}  // namespace

std::string Rebuilder::ChangedDescriptor(const tracer::ExecRequest& request, size_t matched) const {
  if (!request.describe_fd) return "";
  const auto& recorded = previous_->commands()[matched].start.fds();
  // The recorded descriptors, and the standard ones even if the recorded
  // command had them closed: `cmd > out` after a bare `cmd` writes a file.
  std::vector<int> numbers = {0, 1, 2};
  for (const proto::InheritedFd& fd : recorded) numbers.push_back(fd.fd());
  std::sort(numbers.begin(), numbers.end());
  numbers.erase(std::unique(numbers.begin(), numbers.end()), numbers.end());
  for (int number : numbers) {
    std::string then;
    for (const proto::InheritedFd& fd : recorded) {
      if (fd.fd() != number) continue;
      const std::string_view path = previous_->String(fd.path());
      then =
          DescriptorIdentity(*tree_, fd.kind() == proto::FD_FILE, fd.kind() == proto::FD_DIRECTORY,
                             path, fd.readable(), fd.writable(),
                             fd.external() || previous_external_files_.contains(std::string(path)));
    }
    std::string now;
    if (std::optional<tracer::FdInfo> info = request.describe_fd(number)) {
      now = DescriptorIdentity(*tree_, info->kind == tracer::FdKind::kFile,
                               info->kind == tracer::FdKind::kDirectory, info->path, info->readable,
                               info->writable, recorder_->IsExternal(*info));
    }
    if (then == now) continue;
    return absl::StrCat("descriptor ", number, " was ",
                        then.empty() ? "no file of the build" : then, ", now ",
                        now.empty() ? "no file of the build" : now);
  }
  return "";
}

std::string Rebuilder::WhyRun(const std::vector<size_t>& group, const tracer::ExecRequest& request,
                              size_t matched,
                              absl::flat_hash_map<size_t, std::vector<Append>>& appends,
                              const TempRenames* renames) {
  const std::vector<std::string> changed = ChangedVariables(previous_->Env(matched), *request.env);
  if (!changed.empty()) return absl::StrCat("environment variable ", changed[0], " changed");
  const absl::flat_hash_set<size_t> members(group.begin(), group.end());
  tree_->Forget();
  // What the plan found changed is looked at first: a make has the whole
  // build below it, and the source that changed may come last. (Before the
  // descriptors, too: each costs a look at /proc.)
  if (plan_ != nullptr && renames == nullptr) {
    if (std::string cause = SuspectCause(*previous_, *plan_, group, members, *tree_);
        !cause.empty()) {
      return cause;
    }
  }
  // A drained pipe was no input (the recorder left it out): the program
  // reads the same end-of-file from it only if it is drained again. (Or if
  // it now comes from outside the build, which is no input either: make
  // gives its real stdin to one job and a drained pipe to the others.)
  for (const proto::InheritedFd& fd : previous_->commands()[matched].start.fds()) {
    if (!fd.drained()) continue;
    std::optional<tracer::FdInfo> now =
        request.describe_fd ? request.describe_fd(fd.fd()) : std::nullopt;
    if (!now.has_value() || !(now->drained || recorder_->IsExternal(*now))) {
      return absl::StrCat("descriptor ", fd.fd(),
                          " was an empty pipe nobody could write to, and is not now");
    }
  }
  if (std::string changed = ChangedDescriptor(request, matched); !changed.empty()) return changed;
  if (plan_ != nullptr) {
    for (size_t member : group) {
      // (The plan covers the build's commands, not the dormant ones.) A
      // member whose feeder is skipped with it reads nothing from it.
      if (member < plan_->commands.size() && plan_->commands[member].pinned &&
          !members.contains(plan_->commands[member].pinned_by)) {
        return plan_->commands[member].causes.back();
      }
    }
  }
  // A pipe whose other end is no recorded command of the group cannot be
  // replayed: that end is a live process waiting for data or for a reader.
  // A pipe no recorded command reads is read by a process that is no
  // command: a shell reading `$(...)`, say. Made inside the group, it is
  // held only by the group's own processes, which are skipped with it; only
  // a pipe that a command at the top of the group inherited can have its
  // reader outside, running now.
  absl::flat_hash_set<uint64_t> inherited_pipes;
  for (size_t member : group) {
    const TracedCommand& command = previous_->commands()[member];
    if (command.parent != kNoCommand && members.contains(command.parent)) continue;
    for (const proto::InheritedFd& fd : command.start.fds()) {
      if (fd.kind() == proto::FD_PIPE) inherited_pipes.insert(fd.pipe_id());
    }
  }
  // A group is dormant as a whole or not at all (pipes join only commands of
  // one kind). The plan, which pins the readers of what a rerun writes into
  // a pipe, covers the build's commands only: a dormant reader of a pipe
  // that a process of a running ancestor feeds (`echo | sed` in a shell)
  // runs, since that process writes now what it writes.
  const bool dormant = previous_->IsDormant(matched);
  for (const auto& [id, pipe] : dormant ? previous_->dormant_pipes() : previous_->pipes()) {
    const bool touches = std::any_of(pipe.readers.begin(), pipe.readers.end(),
                                     [&](size_t c) { return members.contains(c); }) ||
                         std::any_of(pipe.writers.begin(), pipe.writers.end(),
                                     [&](size_t c) { return members.contains(c); });
    if (!touches || !inherited_pipes.contains(id)) continue;
    if (pipe.readers.empty()) return "writes a pipe read by a process that is not a command";
    if (dormant && pipe.writers.empty()) {
      return "reads a pipe fed by a process that is not a command";
    }
  }
  // The group is decided now, before its pipe partners that have not exec'd
  // yet can show their descriptors. One that wrote through a file it was
  // given, a file that is gone now (a temporary named after its shell's pid,
  // then renamed), may be given another file this time: skipped, its output
  // would come back under the old name and the new file would stay empty.
  for (size_t member : group) {
    if (member == matched || consumed_[member]) continue;
    const TracedCommand& command = previous_->commands()[member];
    if (command.parent != kNoCommand && members.contains(command.parent)) continue;
    for (const proto::InheritedFd& fd : command.start.fds()) {
      if (fd.kind() != proto::FD_FILE || !fd.writable() || fd.external()) continue;
      const std::string path(previous_->String(fd.path()));
      if (path.empty() || previous_external_files_.contains(path) ||
          tree_->Lookup(path).lstat.error == 0) {
        continue;
      }
      return absl::StrCat("'", ShortCommand(previous_->Argv(member), 48), "' wrote ",
                          tree_->Display(path), " through descriptor ", fd.fd(),
                          ", which is gone: it may be given another file now");
    }
  }
  std::vector<std::string> causes = CheckCommands(*previous_, group, *tree_, 1, renames);
  if (!causes.empty()) return causes[0];
  auto in_store = [&](const proto::Version& v) {
    Digest digest;
    if (v.sha256().size() != digest.size()) return false;
    std::copy(v.sha256().begin(), v.sha256().end(), digest.begin());
    return store_->Has(digest);
  };
  absl::flat_hash_map<std::string, size_t> added_by;
  for (size_t member : group) {
    const TracedCommand& command = previous_->commands()[member];
    if (command.parent != kNoCommand && members.contains(command.parent)) continue;
    std::vector<Append> added = AppendsOf(member, group);
    for (const Append& append : added) {
      auto [it, first] = added_by.try_emplace(append.path, member);
      if (!first) {
        return absl::StrCat("'", ShortCommand(previous_->Argv(it->second), 32), "' and '",
                            ShortCommand(previous_->Argv(member), 32), "' both wrote ",
                            tree_->Display(append.path), " through descriptors they were given");
      }
      if (!in_store(append.version)) {
        return absl::StrCat(tree_->Display(append.path), " is not in the store");
      }
    }
    if (!added.empty()) appends[member] = std::move(added);
  }
  for (const FinalState& state : StatesToRestore(group)) {
    if (added_by.contains(state.path)) continue;
    if (!DiffersFromFinal(state, *tree_).has_value()) continue;
    const proto::Version& v = state.version;
    if (!v.sha256().empty()) {
      if (!in_store(v)) {
        return v.sha256().size() == Digest().size()
                   ? absl::StrCat(tree_->Display(state.path), " is not in the store")
                   : "an output has no usable digest";
      }
    }
  }
  return "";
}

std::vector<Rebuilder::Append> Rebuilder::AppendsOf(size_t top,
                                                    const std::vector<size_t>& group) const {
  const TracedCommand& command = previous_->commands()[top];
  std::vector<Append> out;
  for (const proto::InheritedFd& fd : command.start.fds()) {
    if (fd.kind() != proto::FD_FILE || !fd.writable() || fd.external() || !fd.has_size()) continue;
    std::string path(previous_->String(fd.path()));
    if (path.empty() || previous_external_files_.contains(path)) continue;
    if (std::any_of(out.begin(), out.end(), [&](const Append& a) { return a.path == path; })) {
      continue;  // `cmd >&5` has it on 1 and 5: one file, one offset
    }
    for (const proto::Output& output : command.end.outputs()) {
      if (previous_->String(output.path()) != path) continue;
      const proto::Version& v = output.version();
      if (!v.absent() && !v.sha256().empty() && v.size() >= fd.size()) {
        out.push_back(
            Append{.fd = fd.fd(), .path = std::move(path), .from = fd.size(), .version = v});
      }
      break;
    }
  }
  if (out.empty()) return out;
  // Only files the group changed in no other way: a command that also
  // truncated, renamed or reopened one left a version that is no addition.
  OpPaths paths;
  for (size_t index : OpsOf(*previous_, group)) {
    if (previous_->ops().WritesNoPath(index)) continue;
    const proto::Operation& op = previous_->ops()[index];
    if (op.kind() == proto::WRITE && previous_->Syscall(op) == "(inherited)") continue;
    previous_->PathsOf(op, &paths);
    for (const std::string& written : paths.written) {
      std::erase_if(out, [&](const Append& a) { return a.path == written; });
    }
    if (out.empty()) break;
  }
  return out;
}

absl::Status Rebuilder::ReplayAppends(const std::vector<Append>& appends,
                                      const tracer::ExecRequest& request) {
  for (const Append& append : appends) {
    const std::string shown = tree_->Display(append.path);
    std::optional<tracer::FdInfo> now =
        request.describe_fd ? request.describe_fd(append.fd) : std::nullopt;
    if (!now.has_value() || now->path != append.path || !now->writable || !request.copy_fd) {
      return absl::FailedPreconditionError(
          absl::StrCat(shown, ": descriptor ", append.fd, " is no longer open on it"));
    }
    absl::StatusOr<int> copy = request.copy_fd(append.fd);
    if (!copy.ok()) return copy.status();
    ScopedFd fd(*copy);
    Digest digest;
    std::copy(append.version.sha256().begin(), append.version.sha256().end(), digest.begin());
    if (absl::Status s = store_->WriteTail(digest, append.from, fd.get(), shown); !s.ok()) return s;
    ++stats_.files_restored;
  }
  if (!appends.empty()) {
    tree_->Forget();
    recorder_->NoteTreeChanged();
  }
  return absl::OkStatus();
}

std::vector<FinalState> Rebuilder::StatesToRestore(const std::vector<size_t>& commands) {
  std::vector<FinalState> states = FinalStates(*previous_, commands);
  // A dormant group was not part of the last build: no later command of it
  // replaced what the group left.
  if (!commands.empty() && previous_->IsDormant(commands.front())) return states;
  const absl::flat_hash_set<size_t> members(commands.begin(), commands.end());
  std::erase_if(states, [&](const FinalState& state) {
    const size_t last = previous_->LastWrite(state.path);
    if (last == kNever) return false;
    // Another name of a file written later than any operation on this name
    // (a hard link): no later command replaced it.
    if (!state.same_file_as.empty() && state.writer != kNoCommand &&
        last < previous_->commands()[state.writer].end_at) {
      return false;
    }
    const proto::Operation& op = previous_->ops()[last];
    const size_t writer = previous_->IndexOf(op.command());
    if (writer == kNoCommand || members.contains(writer)) return false;
    // Replaced without being read: renamed onto, or opened with O_TRUNC or
    // O_EXCL. A rename away from the path (depcomp's `mv x.Tpo x.Po`) or an
    // append (config.status's `cat <<EOF >> libtool`, whose cat writes
    // through the descriptor it was given) needs the version restored.
    const bool replaced =
        (op.kind() == proto::RENAME && op.has_ref2() && previous_->Path(op.ref2()) == state.path) ||
        (op.kind() == proto::WRITE && (op.truncate() || op.exclusive()));
    if (!replaced) return false;
    for (const proto::Output& output : previous_->commands()[writer].end.outputs()) {
      if (previous_->String(output.path()) == state.path) {
        // Only if the tree holds that later version now. A command that
        // reran may have removed it since: libtool's link runs `rm -fr
        // .libs/liblzma.a`, then `ar cr` (skipped here), then `ranlib`,
        // which renames its copy onto the archive. Left alone, the archive
        // would be missing for ranlib.
        if (DiffersFromFinal(state.path, output.version(), *tree_).has_value()) {
          kept_later_.erase(state.path);
          return false;
        }
        kept_later_[state.path] = output.version();
        return true;
      }
    }
    return false;  // the writer's end is lost: restore as before
  });
  return states;
}

absl::Status Rebuilder::RestoreOutputs(const std::vector<size_t>& group, bool redo_removals,
                                       const absl::flat_hash_set<std::string>& leave) {
  std::vector<FinalState> states = StatesToRestore(group);
  if (!leave.empty()) {
    std::erase_if(states, [&](const FinalState& state) { return leave.contains(state.path); });
  }
  // Files whose times the group set itself (`touch -t`, `cp -p`): running it
  // again would set the same times, not the time of the run.
  absl::flat_hash_set<std::string> times_set;
  for (size_t index : OpsOf(*previous_, group)) {
    const proto::Operation& op = previous_->ops()[index];
    if (op.kind() == proto::UTIMES && op.error() == 0) times_set.insert(previous_->Path(op.ref()));
  }
  return RestoreStates(states, redo_removals, &times_set);
}

bool Rebuilder::LinkToSameFile(const FinalState& state) {
  const std::string& first = state.same_file_as;
  // Not behind the virtual store's back: a staged name has its own file.
  if (first.empty() || tree_->Physical(first) != first ||
      tree_->Physical(state.path) != state.path) {
    return false;
  }
  if (DiffersFromFinal(first, state.version, *tree_).has_value()) return false;
  const std::string temp = state.path + ".dodo-link";
  unlink(temp.c_str());
  if (link(first.c_str(), temp.c_str()) != 0) return false;
  if (rename(temp.c_str(), state.path.c_str()) != 0) {
    unlink(temp.c_str());
    return false;
  }
  return true;
}

absl::Status Rebuilder::RestoreStates(const std::vector<FinalState>& states, bool redo_removals,
                                      const absl::flat_hash_set<std::string>* times_set) {
  tree_->Forget();
  recorder_->NoteTreeChanged();
  // Directories to remove again, once what was in them is gone.
  std::vector<std::string> removed_dirs;
  // Other names of files last: linked to their first name once that holds
  // its version, they are one file again, as the build left them.
  std::vector<const FinalState*> order;
  for (const FinalState& state : states) {
    if (state.same_file_as.empty()) order.push_back(&state);
  }
  for (const FinalState& state : states) {
    if (!state.same_file_as.empty()) order.push_back(&state);
  }
  for (const FinalState* each : order) {
    const FinalState& state = *each;
    if (state.version.absent()) {
      // The group removed this path, or renamed it away (depcomp's `mv
      // .deps/x.Tpo .deps/x.Po`, libtool's `.loT`). A command that reran in
      // this build may have made it again, and the skip check found it as
      // the group found it then: skipping must leave it removed too, as
      // running would. Not for a whole-build skip, where nothing ran and a
      // file there now was put there by someone else.
      if (!redo_removals) continue;
      const LiveTree::Entry& now = tree_->Lookup(state.path);
      if (now.lstat.error != 0) continue;
      if (S_ISDIR(now.lstat.mode)) {
        // configure's `mkdir .tst; ...; rmdir .tst` with mkdir rerun and
        // rmdir skipped. Only an empty one: what else is in it now was
        // put there by a command that ran.
        removed_dirs.push_back(state.path);
        continue;
      }
      absl::Status removed = absl::OkStatus();
      if (remove_path_) {
        removed = remove_path_(state.path);
      } else if (unlink(state.path.c_str()) != 0 && errno != ENOENT) {
        removed = absl::ErrnoToStatus(errno, absl::StrCat(state.path, ": cannot remove"));
      }
      if (!removed.ok()) return removed;
      continue;
    }
    const proto::Version& v = state.version;
    const bool own_times = times_set != nullptr && times_set->contains(state.path);
    if (!DiffersFromFinal(state, *tree_).has_value()) {
      // The file is there already, but as it was written last time. A
      // command that ran would have written it now, and make decides by
      // that: zlib's rule that links the moved PIC objects also removes
      // their scratch directory, and runs only if they look newer.
      if (times_set != nullptr && !own_times && !v.sha256().empty()) {
        const struct timespec now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
        utimensat(AT_FDCWD, tree_->Physical(state.path).c_str(), now, AT_SYMLINK_NOFOLLOW);
      }
      continue;
    }
    absl::Status status;
    if (!v.sha256().empty()) {
      Digest digest;
      std::copy(v.sha256().begin(), v.sha256().end(), digest.begin());
      // A path the build has staged is restored into its staged file, which
      // reaches the tree when it is committed.
      if (!LinkToSameFile(state)) {
        status = store_->Restore(digest, v.mode(), tree_->Physical(state.path));
      }
      if (status.ok() && own_times && v.mtime_ns() > 0) {
        const struct timespec times[2] = {{0, UTIME_OMIT},
                                          {v.mtime_ns() / 1000000000, v.mtime_ns() % 1000000000}};
        utimensat(AT_FDCWD, tree_->Physical(state.path).c_str(), times, AT_SYMLINK_NOFOLLOW);
      }
    } else if (S_ISLNK(v.mode())) {
      status = MakeParentDirs(state.path);
      const std::string temp = state.path + ".dodo-link";
      unlink(temp.c_str());
      if (status.ok() && (symlink(v.symlink_target().c_str(), temp.c_str()) != 0 ||
                          rename(temp.c_str(), state.path.c_str()) != 0)) {
        status = absl::ErrnoToStatus(errno, absl::StrCat(state.path, ": cannot restore symlink"));
      }
    } else if (S_ISDIR(v.mode())) {
      status = MakeParentDirs(state.path + "/");
    }
    if (!status.ok()) return status;
    tree_->Forget(state.path);  // another name linked to it may look again
    ++stats_.files_restored;
  }
  for (auto dir = removed_dirs.rbegin(); dir != removed_dirs.rend(); ++dir) {
    if (rmdir(dir->c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST) {
      return absl::ErrnoToStatus(errno, absl::StrCat(*dir, ": cannot remove"));
    }
  }
  tree_->Forget();
  return absl::OkStatus();
}

void Rebuilder::CopyRecords(const std::vector<size_t>& commands, uint64_t parent, bool relist,
                            const TempRenames* renames, CopyAs as) {
  TraceWriter* writer = recorder_->writer();
  // The copied operations change paths as far as replay is concerned.
  if (as != CopyAs::kDormant) recorder_->NoteTreeChanged();
  auto dormant = [&](size_t c) {
    return as == CopyAs::kDormant || (as == CopyAs::kAsRecorded && previous_->IsDormant(c));
  };
  Reinterner intern(*previous_, writer, &reinterned_, renames);
  absl::flat_hash_map<uint64_t, uint64_t> new_id;  // recorded id -> id in the new trace
  auto mapped = [&](uint64_t recorded) {
    // Only the exec that started a copied subtree is another command's: the
    // parent's, which runs in this build as `parent`.
    auto it = new_id.find(recorded);
    return it != new_id.end() ? it->second : parent;
  };
  proto::Record record;
  auto write_start = [&](size_t c) {
    const TracedCommand& command = previous_->commands()[c];
    // A command that stays dormant keeps the id it had as one.
    const uint64_t id = !dormant(c) ? recorder_->ReserveCommandId()
                        : previous_->IsDormant(c) && command.start.id() >= kFirstDormantId
                            ? command.start.id()
                            : next_dormant_id_++;
    new_id[command.start.id()] = id;
    record.Clear();
    proto::CommandStart* start = record.mutable_command_start();
    *start = command.start;
    start->set_id(id);
    start->set_parent_id(mapped(command.start.parent_id()));
    start->set_restored(true);
    if (as == CopyAs::kDormant) {
      start->set_dormant(true);
      start->set_dormant_builds(command.start.dormant_builds() + 1);
    } else if (as == CopyAs::kSkipped) {
      start->clear_dormant();
      start->clear_dormant_builds();
    }
    start->set_executable(intern.Path(start->executable()));
    for (int i = 0; i < start->argv_size(); ++i) start->set_argv(i, intern.Path(start->argv(i)));
    for (int i = 0; i < start->env_size(); ++i) start->set_env(i, intern(start->env(i)));
    start->set_cwd(intern.Path(start->cwd()));
    for (proto::InheritedFd& fd : *start->mutable_fds()) fd.set_path(intern.Path(fd.path()));
    (void)writer->Write(record);
    if (dormant(c)) return;
    ++stats_.skipped;
    if (as == CopyAs::kSkipped && !command.dormant_children.empty()) {
      skipped_with_dormant_.emplace_back(id, c);
    }
    if (options_.show_skipped) {
      std::vector<std::string> argv = previous_->Argv(c);
      if (renames != nullptr) {
        for (std::string& arg : argv) arg = renames->Path(arg).value_or(arg);
      }
      Progress("skip", argv);
    }
  };
  auto write_end = [&](size_t c) {
    const TracedCommand& command = previous_->commands()[c];
    record.Clear();
    proto::CommandEnd* end = record.mutable_command_end();
    *end = command.end;
    end->set_id(new_id[command.start.id()]);
    const bool kept_dormant = dormant(c);
    for (proto::Output& output : *end->mutable_outputs()) {
      if (kept_dormant) {
        // No output of this build's: only interned anew.
        output.set_path(intern(output.path()));
        if (output.same_file_as() != 0) output.set_same_file_as(intern(output.same_file_as()));
        continue;
      }
      // What the tree keeps instead (see StatesToRestore): the new trace
      // must end where the tree does.
      if (!kept_later_.empty()) {
        auto kept = kept_later_.find(std::string(previous_->String(output.path())));
        if (kept != kept_later_.end()) *output.mutable_version() = kept->second;
      }
      if (!output.version().sha256().empty()) {
        recorder_->NoteOutputName(std::string(previous_->String(output.path())));
      }
      output.set_path(intern(output.path()));
      if (output.same_file_as() != 0) output.set_same_file_as(intern(output.same_file_as()));
    }
    (void)writer->Write(record);
  };

  // The records go out in the order the last build wrote them. Replay reads
  // meaning into that order: a program the build made and then ran is
  // looked up after it was written, so running it depends on its link.
  // (Starts first, then every operation, made a copied `./prog > out`
  // independent of prog, and out stale after the next edit.)
  struct Mark {
    size_t at;    // operations before it
    size_t rank;  // among the starts and ends
    size_t command;
    bool start;
  };
  std::vector<Mark> marks;
  marks.reserve(2 * commands.size());
  for (size_t c : commands) {
    const TracedCommand& command = previous_->commands()[c];
    marks.push_back({command.start_at, command.start_rank, c, true});
    if (command.ended) marks.push_back({command.end_at, command.end_rank, c, false});
  }
  std::sort(marks.begin(), marks.end(),
            [](const Mark& a, const Mark& b) { return a.rank < b.rank; });
  // Operations copied as they were and lying side by side in the last
  // trace go out in one write: a dormant command's are most of the trace.
  std::string_view run;
  uint64_t run_count = 0;
  auto write_run = [&] {
    if (run_count == 0) return;
    (void)writer->WriteFramedOperations(run, run_count);
    run = {};
    run_count = 0;
  };
  auto next_mark = marks.begin();
  auto write_marks_before = [&](size_t op_index) {
    if (next_mark != marks.end() && next_mark->at <= op_index) write_run();
    for (; next_mark != marks.end() && next_mark->at <= op_index; ++next_mark) {
      if (next_mark->start) {
        write_start(next_mark->command);
      } else {
        write_end(next_mark->command);
      }
    }
  };
  for (size_t index : OpsOf(*previous_, commands)) {
    write_marks_before(index);
    // (Summary: most dormant operations were never parsed, and a raw copy
    // needs none.)
    const OperationSummary recorded = previous_->ops().Summary(index);
    const bool relisted = relist && recorded.kind == proto::LIST && recorded.error == 0;
    // The same strings under the same ids, the same command id: the bytes
    // the last trace held are the record (most of a dormant command's
    // copies, build after build).
    if (strings_inherited_ && renames == nullptr && !relisted &&
        mapped(recorded.command) == recorded.command) {
      if (const std::string_view framed = previous_->FramedOperation(index); !framed.empty()) {
        if (run_count > 0 && run.data() + run.size() == framed.data()) {
          run = std::string_view(run.data(), run.size() + framed.size());
        } else {
          write_run();
          run = framed;
        }
        ++run_count;
        continue;
      }
      if (const std::string_view raw = previous_->RawOperation(index); !raw.empty()) {
        write_run();
        (void)writer->WriteRawOperation(raw);
        continue;
      }
    }
    write_run();
    // Not cleared: assigning over the last operation reuses its
    // submessages instead of freeing and allocating them per record.
    proto::Operation* op = record.mutable_operation();
    *op = previous_->ops()[index];
    if (relisted) {
      // The skip check compared the listing leaving out names the last
      // build wrote later (configure's checks run before config.status
      // writes config.h). This build may not write them again (config.status
      // leaves an unchanged config.h alone), and then the old listing, which
      // lacks them, would differ from the tree at the next replay for good.
      // What the command would list now is what it is taken to have seen.
      absl::StatusOr<std::vector<std::string>> names = ListNames(previous_->Path(op->ref()));
      if (names.ok()) SetListing(*names, op->mutable_version());
    }
    op->set_command(mapped(op->command()));
    intern.Op(op);
    (void)writer->Write(record);
  }
  write_run();
  write_marks_before(static_cast<size_t>(-1));
}

bool Rebuilder::Superseded(size_t recorded, uint64_t parent) const {
  auto started = unmatched_.find(parent);
  if (started == unmatched_.end()) return false;
  const std::string cwd = previous_->Cwd(recorded);
  const std::vector<std::string> argv = previous_->Argv(recorded);
  for (const auto& [now_cwd, now_argv] : started->second) {
    if (now_cwd != cwd || now_argv.size() != argv.size()) continue;
    size_t differences = 0;
    for (size_t i = 0; i < argv.size() && differences < 2; ++i) {
      if (argv[i] != now_argv[i]) ++differences;
    }
    if (differences <= 1) return true;
  }
  return false;
}

void Rebuilder::KeepDormant() {
  if (previous_ == nullptr) return;
  previous_->WaitDormant();  // their uses_pipes, read below
  // The matched commands that ran, in the order the new trace numbers them;
  // then the skipped ones that had dormant children: their own children were
  // copied with them and never exec'd, so only the dormant ones are kept.
  std::vector<std::pair<uint64_t, size_t>> parents(match_.begin(), match_.end());
  std::sort(parents.begin(), parents.end());
  const size_t ran = parents.size();
  parents.insert(parents.end(), skipped_with_dormant_.begin(), skipped_with_dormant_.end());
  tree_->Forget();  // the build is over: the tree is the one it leaves
  // Only records a later skip can use: a command whose outputs are all in
  // the tree as it left them, one of them at least in the project. A link
  // that reran wrote another prog; gcc's collect2 names a new temporary in
  // every build; a command that only prints says nothing a skip restores.
  // Such records would never be matched, yet keep old outputs in the store.
  // An output that a command outside the subtree changed later is no
  // longer the subtree's to leave: depcomp's `mv -f .deps/x.Tpo .deps/x.Po`
  // takes away the .Tpo that every compile of automake's makes writes.
  auto changed_later_by_another = [&](const std::string& path, const std::vector<size_t>& subtree) {
    size_t last = previous_->LastWrite(path);
    // A subtree kept dormant before: the `mv` of its recipe was kept
    // dormant beside it, and still moved the .Tpo away.
    if (last == kNever && previous_->IsDormant(subtree.front())) {
      last = previous_->DormantLastWrite(path);
    }
    if (last == kNever) return false;
    const size_t by = previous_->IndexOf(previous_->ops()[last].command());
    return !std::binary_search(subtree.begin(), subtree.end(), by);
  };
  auto outputs_still_there = [&](const std::vector<size_t>& subtree) {
    bool in_project = false;
    for (const FinalState& state : FinalStates(*previous_, subtree)) {
      if (state.version.absent() || changed_later_by_another(state.path, subtree)) continue;
      if (DiffersFromFinal(state, *tree_).has_value()) return false;
      if (!options_.project_root.empty() && state.path.starts_with(options_.project_root)) {
        in_project = true;
      }
    }
    return in_project;
  };
  // Pipes to commands outside the subtree are matched as groups (see
  // Connected), which the dormant records do not keep. Pipes made inside it
  // go with it: libtool's compile script runs `echo ... | sed ...` a few
  // times over, and make rebuilds every object of a library after a header
  // edit. Every command holding such a pipe must be in the subtree, and the
  // pipe no descriptor its top command inherited: a pipe made inside is held
  // by the subtree's processes alone (a shell reading `$(...)` is no
  // command of its own), and skipping the subtree skips them all.
  absl::flat_hash_map<size_t, std::vector<std::pair<uint64_t, const TraceModel::Pipe*>>> pipes_of;
  for (const auto* pipes : {&previous_->pipes(), &previous_->dormant_pipes()}) {
    for (const auto& [pipe_id, pipe] : *pipes) {
      for (size_t c : pipe.readers) pipes_of[c].emplace_back(pipe_id, &pipe);
      for (size_t c : pipe.writers) pipes_of[c].emplace_back(pipe_id, &pipe);
    }
  }
  auto pipes_stay_inside = [&](size_t top, const std::vector<size_t>& subtree) {
    auto inside = [&](size_t c) { return std::binary_search(subtree.begin(), subtree.end(), c); };
    absl::flat_hash_set<uint64_t> inherited;
    for (const proto::InheritedFd& fd : previous_->commands()[top].start.fds()) {
      if (fd.kind() == proto::FD_PIPE) inherited.insert(fd.pipe_id());
    }
    for (size_t c : subtree) {
      if (!previous_->commands()[c].uses_pipes) continue;
      auto held = pipes_of.find(c);
      if (held == pipes_of.end()) return false;
      for (const auto& [pipe_id, pipe] : held->second) {
        if (inherited.contains(pipe_id) ||
            !std::all_of(pipe->readers.begin(), pipe->readers.end(), inside) ||
            !std::all_of(pipe->writers.begin(), pipe->writers.end(), inside)) {
          return false;
        }
      }
    }
    return true;
  };
  for (size_t i = 0; i < parents.size(); ++i) {
    const auto& [id, recorded] = parents[i];
    const TracedCommand& command = previous_->commands()[recorded];
    const std::vector<const std::vector<size_t>*> lists =
        i < ran
            ? std::vector<const std::vector<size_t>*>{&command.children, &command.dormant_children}
            : std::vector<const std::vector<size_t>*>{&command.dormant_children};
    for (const std::vector<size_t>* started : lists) {
      for (size_t child : *started) {
        if (consumed_[child]) continue;
        const TracedCommand& kept = previous_->commands()[child];
        // A failed command would run anyway; old ones (a command line that
        // changes with every build leaves one per build) are let go.
        if (!kept.Succeeded() || kept.start.dormant_builds() >= kMaxDormantBuilds) continue;
        std::vector<size_t> subtree = previous_->Subtree(child);
        if (std::any_of(subtree.begin(), subtree.end(),
                        [&](size_t c) { return !previous_->commands()[c].ended; })) {
          continue;
        }
        if (Superseded(child, id)) continue;
        std::sort(subtree.begin(), subtree.end());
        if (!pipes_stay_inside(child, subtree) || !outputs_still_there(subtree)) continue;
        CopyRecords(subtree, id, /*relist=*/false, nullptr, CopyAs::kDormant);
        ++stats_.kept_dormant;
      }
    }
  }
}

std::optional<int> Rebuilder::BeforeExec(const tracer::ExecRequest& request) {
  if (previous_ == nullptr) return std::nullopt;
  const uint64_t parent_id = recorder_->CommandOf(request.pid);
  auto parent = match_.find(parent_id);
  if (parent_id == 0 || parent == match_.end()) {
    if (options_.explain && parent_id != 0) {
      run_cause_[request.pid] = "its parent is not a command of the last build";
    }
    return std::nullopt;
  }
  // The first recorded child of the matched parent with the same command
  // line and directory that no exec claimed yet.
  size_t matched = kNoCommand;
  // Then the dormant ones: commands it started in an earlier build and not
  // in the last (make found their targets up to date then).
  const TracedCommand& started_by = previous_->commands()[parent->second];
  const std::vector<size_t>* const candidates[] = {&started_by.children,
                                                   &started_by.dormant_children};
  for (const std::vector<size_t>* children : candidates) {
    for (size_t child : *children) {
      if (!consumed_[child] && previous_->Cwd(child) == request.cwd &&
          previous_->Argv(child) == *request.argv) {
        matched = child;
        break;
      }
    }
    if (matched != kNoCommand) break;
  }
  // Else one whose command line differs only in temporary names: the last
  // build made a file and removed it, this build made one of the same shape
  // (gcc's `as ... /tmp/ccX1b2Qz.s`).
  std::optional<TempRenames> renames;
  if (matched == kNoCommand) {
    auto was_temporary = [&](const std::string& path) {
      return (previous_->FirstWrite(path) != kNever || previous_->DormantWrites(path)) &&
             tree_->Lookup(path).lstat.error == ENOENT;
    };
    for (const std::vector<size_t>* children : candidates) {
      for (size_t child : *children) {
        if (consumed_[child] || decided_.contains(child) || previous_->Cwd(child) != request.cwd) {
          continue;
        }
        renames = MatchTempNames(previous_->Argv(child), *request.argv, was_temporary);
        if (renames.has_value()) {
          matched = child;
          break;
        }
      }
      if (matched != kNoCommand) break;
    }
  }
  if (matched == kNoCommand) {
    // An exec that searches PATH tries one file after another. Once one try
    // matched a command, the later tries of the same exec find it taken:
    // they change neither the match nor the cause.
    if (pending_.contains(request.pid)) return std::nullopt;
    unmatched_[parent_id].push_back({request.cwd, *request.argv});
    if (options_.explain) run_cause_[request.pid] = RunCause(request, parent_id, matched);
    return std::nullopt;
  }
  consumed_[matched] = true;
  if (previous_->IsDormant(matched) && !dormant_partners_added_) {
    // Dormant commands too: a pipe kept with them joins their ends in one
    // group, decided at once (see KeepDormant). (A group is dormant as a
    // whole or not at all.)
    AddPartners(previous_->dormant_pipes());
    dormant_partners_added_ = true;
  }

  auto decided = decided_.find(matched);
  if (decided == decided_.end()) {
    const std::vector<size_t> group = Connected(matched, /*with_subtrees=*/true);
    absl::flat_hash_map<size_t, std::vector<Append>> appends;
    std::string cause;
    if (renames.has_value() && group.size() != previous_->Subtree(matched).size()) {
      // Its pipe partners would exec later under names of their own.
      cause =
          "its command line names temporary files this build named otherwise, and it "
          "talks to other commands through pipes";
    } else {
      cause = WhyRun(group, request, matched, appends, renames ? &*renames : nullptr);
    }
    bool skip = cause.empty();
    auto appended = std::make_shared<absl::flat_hash_set<std::string>>();
    for (const auto& [top, added] : appends) {
      for (const Append& append : added) appended->insert(append.path);
    }
    if (skip) {
      absl::Status restored = RestoreOutputs(group, /*redo_removals=*/true, *appended);
      if (restored.ok()) {
        auto own = appends.find(matched);
        if (own != appends.end()) restored = ReplayAppends(own->second, request);
      }
      if (!restored.ok()) {
        if (first_error_.ok()) first_error_ = restored;
        skip = false;
        cause = absl::StrCat("its outputs could not be restored: ", restored.message());
      }
    }
    // Skipped, the whole group is: its members never exec, or (pipe
    // partners) must not run without the rest. Run, only the commands that
    // talk to this one through pipes must run too; the commands it starts
    // are decided one by one when they exec (a make that reruns need not
    // rerun every compile).
    for (size_t member : skip ? group : Connected(matched, /*with_subtrees=*/false)) {
      decided_[member] = skip;
      if (skip) {
        appended_paths_[member] = appended;
        auto added = appends.find(member);
        if (added != appends.end() && member != matched) {
          decided_appends_[member] = std::move(added->second);
        }
      }
      if (!skip && options_.explain) {
        group_cause_[member] =
            member == matched
                ? cause
                : absl::StrCat("'", ShortCommand(previous_->Argv(matched), 48), "' runs: ", cause);
      }
    }
    decided = decided_.find(matched);
    if (skip) {
      // Copy the matched command's records now, its partners' when they exec.
      std::vector<size_t> own = previous_->Subtree(matched);
      std::sort(own.begin(), own.end());
      CopyRecords(own, parent_id, /*relist=*/true, renames ? &*renames : nullptr);
      return previous_->commands()[matched].end.exit_code();
    }
  } else if (decided->second) {
    std::vector<size_t> own = previous_->Subtree(matched);
    std::sort(own.begin(), own.end());
    // Restored when the group was decided, but its parent may have touched
    // them since (a shell's `> out` truncates before the exec).
    static const absl::flat_hash_set<std::string> kNone;
    auto appended = appended_paths_.find(matched);
    absl::Status restored = RestoreOutputs(
        own, /*redo_removals=*/true, appended != appended_paths_.end() ? *appended->second : kNone);
    if (auto added = decided_appends_.find(matched);
        restored.ok() && added != decided_appends_.end()) {
      restored = ReplayAppends(added->second, request);
    }
    if (!restored.ok() && first_error_.ok()) first_error_ = restored;
    CopyRecords(own, parent_id, /*relist=*/true);
    return previous_->commands()[matched].end.exit_code();
  }
  pending_[request.pid] = matched;
  if (options_.explain) run_cause_[request.pid] = RunCause(request, parent_id, matched);
  return std::nullopt;
}

absl::StatusOr<FileVersion> Rebuilder::Keep(const std::string& path, const std::string& bytes_at) {
  if (options_.project_root.empty() || !path.starts_with(options_.project_root) ||
      path.starts_with(store_prefix_)) {
    return absl::OutOfRangeError("not a project file");
  }
  return store_->Save(bytes_at, tree_->hasher());
}

absl::StatusOr<int> Rebuilder::SkipEverything(const Plan& plan) {
  if (previous_ == nullptr || previous_->root() == kNoCommand) {
    return absl::FailedPreconditionError("no previous build to reuse");
  }
  for (const FinalState& state : plan.restores) {
    const proto::Version& v = state.version;
    if (v.sha256().empty()) continue;
    Digest digest;
    if (v.sha256().size() != digest.size()) continue;
    std::copy(v.sha256().begin(), v.sha256().end(), digest.begin());
    if (!store_->Has(digest)) {
      return absl::NotFoundError(
          absl::StrCat(tree_->Display(state.path), ": its last version is not in the store"));
    }
  }
  // The plan compared every final state with the tree just now: what it
  // found different is all there is to restore.
  if (absl::Status s = RestoreStates(plan.restores, /*redo_removals=*/false); !s.ok()) return s;
  std::vector<size_t> all(previous_->commands().size());
  for (size_t c = 0; c < all.size(); ++c) all[c] = c;
  // The dormant commands stay dormant (nothing ran that could start them).
  CopyRecords(all, 0, /*relist=*/false, nullptr, CopyAs::kAsRecorded);
  return previous_->commands()[previous_->root()].end.exit_code();
}

}  // namespace dodo::model
