#include "model/recorder.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "model/notation.h"

namespace dodo::model {

void SetListing(const std::vector<std::string>& names, proto::Version* version) {
  const Digest listing = HashNames(names);
  version->set_listing_sha256(listing.data(), listing.size());
  std::string* joined = version->mutable_listing_names();
  joined->clear();
  for (const std::string& name : names) joined->append(name).push_back('\0');
}

namespace {

using tracer::Effect;
using tracer::FdKind;

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

proto::FdKind ToProto(FdKind kind) {
  switch (kind) {
    case FdKind::kUnknown:
      return proto::FD_UNKNOWN;
    case FdKind::kFile:
      return proto::FD_FILE;
    case FdKind::kDirectory:
      return proto::FD_DIRECTORY;
    case FdKind::kPipe:
      return proto::FD_PIPE;
    case FdKind::kSocket:
      return proto::FD_SOCKET;
    case FdKind::kTty:
      return proto::FD_TTY;
    case FdKind::kOther:
      return proto::FD_OTHER;
  }
  return proto::FD_UNKNOWN;
}

// The errno an event's outcome carries: the syscall's own result when the
// tracer waited for it, else what resolving the path found.
int ErrorOf(const tracer::SyscallEvent& event, const Resolution* resolution) {
  if (event.result.has_value()) return *event.result < 0 ? static_cast<int>(-*event.result) : 0;
  return resolution != nullptr ? resolution->error : 0;
}

}  // namespace

Recorder::Recorder(TraceWriter* writer, PathResolver* resolver, FileHasher* hasher)
    : writer_(writer), resolver_(resolver), hasher_(hasher) {}

void Recorder::Write(const proto::Record& record) {
  absl::Status status = writer_->Write(record);
  if (!status.ok()) {
    ++stats_.write_errors;
    if (first_error_.ok()) first_error_ = status;
  }
}

uint64_t Recorder::CommandOf(pid_t pid) const {
  auto it = command_of_.find(pid);
  return it == command_of_.end() ? 0 : it->second;
}

Recorder::Command* Recorder::LiveCommand(uint64_t id) {
  auto it = live_.find(id);
  return it == live_.end() ? nullptr : &it->second;
}

namespace {

// A lookup that failed still names the components after the one it could
// not find: the path the program asked for. What it saw is that this one
// name was absent (or stood under a non-directory), and that is what replay
// compares: the path is cut after it. Every other path asked for under the
// same missing name is then the same observation, which IsRepeat leaves out.
// (cc1 asks each -I directory for every <bits/...> header it includes; on
// xz's make -j2 that was half of all operations.)
void CutAfterFailedName(proto::Operation& op) {
  switch (op.kind()) {
    case proto::GET:
    case proto::READ:
    case proto::EXEC:
    case proto::STAT:
    case proto::LIST:
    case proto::READLINK:
    case proto::XATTR_READ:
    case proto::CHDIR:
      break;
    default:
      return;
  }
  if (op.error() != ENOENT && op.error() != ENOTDIR) return;
  if (!op.has_ref() || op.ref().is_fd()) return;
  proto::Ref& ref = *op.mutable_ref();
  const int keep = static_cast<int>(ref.found()) + 1;
  if (keep >= ref.components_size()) return;
  ref.mutable_components()->Truncate(keep);
}

}  // namespace

bool Recorder::IsRepeat(const proto::Operation& op) {
  switch (op.kind()) {
    case proto::GET:
    case proto::READ:
    case proto::STAT:
    case proto::LIST:
    case proto::READLINK:
    case proto::XATTR_READ:
      break;
    case proto::EXEC:  // starts a command: kept, and changes no path
    case proto::CHDIR:
    case proto::PIPE_READ:
    case proto::PIPE_WRITE:
      return false;
    case proto::WRITE:
      if (WritesNoFile(op)) break;  // /dev/null: changes nothing either
      ++tree_epoch_;
      return false;
    default:
      // Changes a path (or is of a kind this code does not know): a later
      // look at any path may see something else, or mean something else to
      // replay (the reader of what this command left there).
      ++tree_epoch_;
      return false;
  }
  if (keep_repeats_) return false;
  Command* command = LiveCommand(op.command());
  if (command == nullptr) return false;
  if (command->observed_epoch != tree_epoch_) {
    command->observed.clear();
    command->observed_epoch = tree_epoch_;
  }
  // The whole operation is the key: kind, path, result, version, syscall.
  if (!op.SerializeToString(&serialized_)) return false;
  return !command->observed.insert(serialized_).second;
}

void Recorder::Emit(proto::Operation& op, pid_t pid) {
  CutAfterFailedName(op);
  if (op.command() == 0) {
    // No command yet: keep it for the command this process will exec.
    // (Only the root launcher acts before any exec.)
    ++stats_.operations;
    orphan_ops_[pid].push_back(op);
    return;
  }
  if (IsRepeat(op)) {
    ++stats_.repeats_dropped;
    return;
  }
  ++stats_.operations;
  record_.Clear();
  *record_.mutable_operation() = op;
  InternSyscall(record_.mutable_operation());
  Write(record_);
}

void Recorder::InternSyscall(proto::Operation* op) {
  if (op->syscall().empty()) return;
  op->set_syscall_name(writer_->Intern(op->syscall()));
  op->clear_syscall();
}

Resolution Recorder::ResolveInto(uint64_t command, pid_t pid, const tracer::PathArg& path,
                                 proto::Ref* ref) {
  Resolution res = resolver_->Resolve(path.base, path.path, path.follow_final);
  Command* owner = LiveCommand(command);
  // Before its exec the root has no command yet; its links are kept per pid
  // and handed to the command it execs.
  absl::flat_hash_set<std::string>& reported =
      owner != nullptr ? owner->links_reported : orphan_links_[pid];
  for (const Resolution::Link& link : res.links_followed) {
    if (!reported.insert(link.path).second) continue;
    // The walk read this link's target: that is a dependency of its own.
    proto::Operation op;
    op.set_command(command);
    op.set_kind(proto::READLINK);
    op.set_syscall("(path walk)");
    Resolution link_res = resolver_->Resolve("/", link.path, false);
    proto::Ref* link_ref = op.mutable_ref();
    link_ref->set_base(proto::BASE_ROOT);
    link_ref->set_base_path(writer_->Intern("/"));
    for (const std::string& name : link_res.components) {
      link_ref->add_components(writer_->Intern(name));
    }
    link_ref->set_found(static_cast<uint32_t>(link_res.found));
    op.set_text(link.target);
    Emit(op, pid);
  }
  ref->set_base(res.absolute ? proto::BASE_ROOT : proto::BASE_CWD);
  ref->set_base_path(writer_->Intern(res.base));
  if (path.dirfd != AT_FDCWD && !res.absolute) {
    ref->set_base(proto::BASE_FD);
    ref->set_base_fd(path.dirfd);
  }
  for (const std::string& name : res.components) ref->add_components(writer_->Intern(name));
  ref->set_found(static_cast<uint32_t>(res.found));
  return res;
}

void Recorder::FdRef(const tracer::FdInfo& fd, proto::Ref* ref) {
  ref->set_base(proto::BASE_FD);
  ref->set_base_fd(fd.fd);
  ref->set_base_path(writer_->Intern(fd.path.empty() ? fd.description : fd.path));
  ref->set_is_fd(true);
}

void Recorder::AddOutput(uint64_t command, const std::string& path) {
  Command* owner = LiveCommand(command);
  if (owner == nullptr) return;
  if (owner->output_set.insert(path).second) owner->outputs.push_back(path);
}

void Recorder::SetFileVersion(const std::string& path, proto::Version* version) {
  absl::StatusOr<FileVersion> file = hasher_->HashFile(Physical(path));
  if (!file.ok()) return;
  version->set_sha256(file->sha256.data(), file->sha256.size());
  version->set_size(file->size);
  version->set_mode(file->mode);
  version->set_mtime_ns(file->mtime_ns);
}

void Recorder::MarkNoFileWritten(const std::string& path, proto::Operation* op) {
  // A device, FIFO or socket: writing to it changes no file of the tree, and
  // O_CREAT or O_TRUNC do nothing there. The write keeps only its mode, by
  // which replay and the repeat filter know it for what it is: `2>/dev/null`
  // in every shell script would otherwise be a change of the tree that
  // resets the filter and makes each later reader of /dev/null depend on it.
  struct stat st;
  if (stat(Physical(path).c_str(), &st) != 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) return;
  op->set_create(proto::LINK_NONE);
  op->set_exclusive(false);
  op->set_truncate(false);
  op->mutable_version()->set_mode(st.st_mode);
}

void Recorder::KeepOutput(const std::string& path, proto::Version* version) {
  if (keeper_ != nullptr) {
    absl::StatusOr<FileVersion> kept = keeper_->Keep(path, Physical(path));
    if (kept.ok()) {
      version->set_sha256(kept->sha256.data(), kept->sha256.size());
      version->set_size(kept->size);
      version->set_mode(kept->mode);
      version->set_mtime_ns(kept->mtime_ns);
      return;
    }
    if (!absl::IsOutOfRange(kept.status())) {
      ++stats_.keep_errors;
      if (first_keep_error_.ok()) first_keep_error_ = kept.status();
    }
  }
  SetFileVersion(path, version);
}

void Recorder::OnFork(const tracer::ForkEvent& event) {
  auto it = command_of_.find(event.parent);
  if (it != command_of_.end()) command_of_[event.child] = it->second;
}

void Recorder::OnExec(const tracer::ExecEvent& event) {
  resolver_->set_process(event.pid, event.pid);
  const uint64_t parent = CommandOf(event.former_tid != 0 ? event.former_tid : event.pid);
  if (event.former_tid != 0) command_of_.erase(event.former_tid);

  // The program this process ran before is replaced.
  if (Command* previous = LiveCommand(parent); previous != nullptr && previous->pid == event.pid) {
    EndCommand(parent, proto::CommandEnd::REPLACED, 0, 0);
  }

  const uint64_t id = next_command_id_++;
  ++stats_.commands;
  Command& command = live_[id];
  command.id = id;
  command.pid = event.pid;
  command_of_[event.pid] = id;

  record_.Clear();
  proto::CommandStart* start = record_.mutable_command_start();
  start->set_id(id);
  start->set_parent_id(parent);
  start->set_pid(event.pid);
  start->set_executable(writer_->Intern(event.executable));
  for (const std::string& arg : event.argv) start->add_argv(writer_->Intern(arg));
  for (const std::string& entry : event.env) start->add_env(writer_->Intern(entry));
  start->set_cwd(writer_->Intern(event.cwd));
  start->set_start_time_ns(NowNs());
  const bool root = !have_root_;
  for (const tracer::FdInfo& fd : event.fds) {
    proto::InheritedFd* out = start->add_fds();
    out->set_fd(fd.fd);
    out->set_kind(ToProto(fd.kind));
    if (!fd.path.empty()) out->set_path(writer_->Intern(fd.path));
    out->set_pipe_id(fd.pipe_id);
    out->set_readable(fd.readable);
    out->set_writable(fd.writable);
    out->set_description(fd.description);
    out->set_drained(fd.drained);
    // As the tracer read it while the program was stopped at its exec: the
    // program runs meanwhile, and may have written to it already.
    if (fd.kind == FdKind::kFile && fd.writable && fd.size.has_value()) out->set_size(*fd.size);
    if (root) {
      if (fd.kind == FdKind::kPipe) external_pipes_.insert(fd.pipe_id);
      if (!fd.path.empty()) external_files_.insert(fd.path);
    }
    out->set_external(IsExternal(fd));
  }
  have_root_ = true;
  Write(record_);

  // What the root's launcher did before its exec belongs to the root.
  auto orphans = orphan_ops_.find(event.pid);
  if (orphans != orphan_ops_.end()) {
    for (proto::Operation& op : orphans->second) {
      op.set_command(id);
      record_.Clear();
      *record_.mutable_operation() = std::move(op);
      InternSyscall(record_.mutable_operation());
      Write(record_);
    }
    orphan_ops_.erase(orphans);
  }
  auto orphan_links = orphan_links_.find(event.pid);
  if (orphan_links != orphan_links_.end()) {
    command.links_reported = std::move(orphan_links->second);
    orphan_links_.erase(orphan_links);
  }

  // The exec itself: the program file was looked up and executed by the
  // command that called exec (the root's own exec belongs to the root).
  proto::Operation op;
  const uint64_t exec_owner = parent != 0 ? parent : id;
  op.set_command(exec_owner);
  op.set_kind(proto::EXEC);
  op.set_syscall("execve");
  Resolution res = ResolveInto(exec_owner, event.pid, event.path, op.mutable_ref());
  const std::string program = res.AbsolutePath();
  SetFileVersion(program, op.mutable_version());
  Emit(op);
  if (!event.executable.empty() && event.executable != program) {
    // A #! script: the kernel ran its interpreter, which the new command
    // executes (and depends on) too.
    proto::Operation interpreter;
    interpreter.set_command(id);
    interpreter.set_kind(proto::EXEC);
    interpreter.set_syscall("(interpreter)");
    const tracer::PathArg path{.path = event.executable, .base = "/"};
    ResolveInto(id, event.pid, path, interpreter.mutable_ref());
    SetFileVersion(event.executable, interpreter.mutable_version());
    Emit(interpreter);
  }

  // Pipes and files inherited from other commands of the build.
  for (const tracer::FdInfo& fd : event.fds) {
    if (root) break;
    if (fd.kind == FdKind::kPipe && !external_pipes_.contains(fd.pipe_id)) {
      for (bool write : {false, true}) {
        if (write ? !fd.writable : !fd.readable || fd.drained) continue;
        proto::Operation pipe_op;
        pipe_op.set_command(id);
        pipe_op.set_kind(write ? proto::PIPE_WRITE : proto::PIPE_READ);
        pipe_op.set_syscall("(inherited)");
        pipe_op.set_number(fd.pipe_id);
        FdRef(fd, pipe_op.mutable_ref());
        Emit(pipe_op);
      }
    } else if (fd.kind == FdKind::kFile && !external_files_.contains(fd.path)) {
      for (bool write : {false, true}) {
        if (write ? !fd.writable : !fd.readable) continue;
        proto::Operation file_op;
        file_op.set_command(id);
        file_op.set_kind(write ? proto::WRITE : proto::READ);
        file_op.set_syscall("(inherited)");
        FdRef(fd, file_op.mutable_ref());
        if (write) {
          AddOutput(id, fd.path);
        } else {
          SetFileVersion(fd.path, file_op.mutable_version());
        }
        Emit(file_op);
      }
    }
  }
}

void Recorder::OnExecFailed(const tracer::ExecFailedEvent& event) {
  resolver_->set_process(event.pid, event.pid);
  proto::Operation op;
  const uint64_t command = CommandOf(event.pid);
  op.set_command(command);
  op.set_kind(proto::EXEC);
  op.set_syscall("execve");
  ResolveInto(command, event.pid, event.path, op.mutable_ref());
  op.set_error(event.error);
  Emit(op, event.pid);
}

void Recorder::OnExit(const tracer::ExitEvent& event) {
  const uint64_t id = CommandOf(event.pid);
  command_of_.erase(event.pid);
  if (!event.process) return;
  Command* command = LiveCommand(id);
  if (command == nullptr || command->pid != event.pid) return;
  if (event.signaled) {
    EndCommand(id, proto::CommandEnd::KILLED, 0, event.signal);
  } else {
    EndCommand(id, proto::CommandEnd::EXITED, event.code, 0);
  }
}

void Recorder::EndCommand(uint64_t id, proto::CommandEnd::How how, int code, int signal) {
  auto it = live_.find(id);
  if (it == live_.end()) return;
  record_.Clear();
  proto::CommandEnd* end = record_.mutable_command_end();
  end->set_id(id);
  end->set_end_time_ns(NowNs());
  end->set_how(how);
  end->set_exit_code(code);
  end->set_signal(signal);
  const Command& command = it->second;
  // Regular files written that have other names, and where their versions went.
  std::vector<std::pair<struct stat, int>> linked_outputs;
  for (const std::string& path : command.outputs) {
    proto::Output* output = end->add_outputs();
    output->set_path(writer_->Intern(path));
    struct stat st;
    if (lstat(Physical(path).c_str(), &st) != 0) {
      output->mutable_version()->set_absent(true);
    } else if (S_ISREG(st.st_mode)) {
      KeepOutput(path, output->mutable_version());
      NoteName(path, st);
      if (st.st_nlink > 1) linked_outputs.emplace_back(st, end->outputs_size() - 1);
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = readlink(path.c_str(), target, sizeof(target));
      output->mutable_version()->set_mode(st.st_mode);
      if (n >= 0) output->mutable_version()->set_symlink_target(std::string(target, n));
    } else {
      output->mutable_version()->set_mode(st.st_mode);
    }
  }
  for (const std::string& path : command.linked) {
    struct stat st;
    if (lstat(Physical(path).c_str(), &st) == 0 && S_ISREG(st.st_mode)) NoteName(path, st);
  }
  // A write through one name of a file is a write under all its names: the
  // others are outputs too, holding the same version.
  for (const auto& [st, index] : linked_outputs) {
    auto names = names_of_file_.find({st.st_dev, st.st_ino});
    if (names == names_of_file_.end()) continue;
    for (const std::string& name : names->second) {
      if (command.output_set.contains(name)) continue;
      struct stat now;
      if (lstat(Physical(name).c_str(), &now) != 0 || now.st_dev != st.st_dev ||
          now.st_ino != st.st_ino) {
        continue;  // replaced since
      }
      const proto::Output& written = end->outputs(index);
      proto::Output* other = end->add_outputs();
      other->set_path(writer_->Intern(name));
      *other->mutable_version() = written.version();
      other->set_same_file_as(written.path());
    }
  }
  live_.erase(it);
  Write(record_);
}

void Recorder::NoteName(const std::string& path, const struct stat& st) {
  std::vector<std::string>& names = names_of_file_[{st.st_dev, st.st_ino}];
  if (std::find(names.begin(), names.end(), path) == names.end()) names.push_back(path);
}

void Recorder::NoteOutputName(const std::string& path) {
  struct stat st;
  if (lstat(Physical(path).c_str(), &st) == 0 && S_ISREG(st.st_mode)) NoteName(path, st);
}

void Recorder::OnWarning(const tracer::WarningEvent& event) {
  ++stats_.warnings;
  record_.Clear();
  proto::Warning* warning = record_.mutable_warning();
  warning->set_command(CommandOf(event.pid));
  warning->set_pid(event.pid);
  warning->set_message(event.message);
  warning->set_syscall(event.syscall);
  Write(record_);
}

void Recorder::OnOpen(const tracer::SyscallEvent& event, uint64_t command) {
  const uint64_t flags = event.flags;
  const int access = static_cast<int>(flags & O_ACCMODE);
  const bool creating = (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
  const bool truncating = (flags & O_TRUNC) != 0 && access != O_RDONLY;
  proto::Operation op;
  op.set_command(command);
  op.set_syscall(event.syscall);
  Resolution res = ResolveInto(command, event.pid, *event.path, op.mutable_ref());
  const int error = ErrorOf(event, &res);
  op.set_error(error);
  const std::string path = res.AbsolutePath();
  if ((flags & O_PATH) != 0 || (error == 0 && res.kind == Resolution::Kind::kDirectory)) {
    op.set_kind(proto::GET);  // a directory or O_PATH handle: a lookup
    Emit(op, event.pid);
    return;
  }
  if (creating) {
    op.set_create(proto::NEWFILE);
    op.set_exclusive((flags & O_EXCL) != 0);
    resolver_->Invalidate(path);
  }
  op.set_truncate(truncating);
  // O_EXCL means the file is new: there was nothing to read. A plain O_CREAT
  // read keeps its LINK_IF_NEEDED: it read the file, creating it if needed.
  const bool reads =
      (access == O_RDONLY || access == O_RDWR) && !truncating && !(creating && op.exclusive());
  const bool writes = access == O_WRONLY || access == O_RDWR;
  if (reads) {
    proto::Operation read = op;
    read.set_kind(proto::READ);
    if (error == 0) SetFileVersion(path, read.mutable_version());
    Emit(read, event.pid);
  }
  if (writes) {
    op.set_kind(proto::WRITE);
    // A write that keeps the existing contents (no O_TRUNC) builds on them:
    // the version it started from is an input. The open has not written
    // anything yet, so the file still holds that version.
    if (error == 0 && !reads && !truncating && !op.exclusive() &&
        res.kind == Resolution::Kind::kFile) {
      SetFileVersion(path, op.mutable_version());
    }
    // Writing to /dev/null or a terminal produces no file version.
    if (error == 0 && res.kind != Resolution::Kind::kOther) AddOutput(command, path);
    if (error == 0 && res.kind == Resolution::Kind::kOther) MarkNoFileWritten(path, &op);
    Emit(op, event.pid);
  }
}

void Recorder::OnPathChange(const tracer::SyscallEvent& event, uint64_t command) {
  proto::Operation op;
  op.set_command(command);
  op.set_syscall(event.syscall);
  Resolution res;
  if (event.path.has_value()) {
    res = ResolveInto(command, event.pid, *event.path, op.mutable_ref());
  } else if (event.fd.has_value()) {
    FdRef(*event.fd, op.mutable_ref());
  }
  const int error = ErrorOf(event, event.path.has_value() ? &res : nullptr);
  op.set_error(error);
  const std::string path =
      event.path.has_value() ? res.AbsolutePath() : (event.fd ? event.fd->path : "");

  switch (event.effect) {
    case Effect::kStat: {
      op.set_kind(proto::STAT);
      // What a replay compares: the kind and permissions, and a regular
      // file's size and mtime. The mtime is what make decides by: a make
      // that found its target up to date does something else once a
      // prerequisite is newer, whatever its size.
      struct stat st;
      const bool follow = !event.path.has_value() || event.path->follow_final;
      if (error == 0 && !path.empty() &&
          (follow ? stat(Physical(path).c_str(), &st) : lstat(Physical(path).c_str(), &st)) == 0) {
        proto::Version& version = *op.mutable_version();
        version.set_mode(st.st_mode);
        if (S_ISREG(st.st_mode)) {
          version.set_size(st.st_size);
          version.set_mtime_ns(st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec);
        }
      }
      break;
    }
    case Effect::kAccess:
      op.set_kind(proto::GET);
      // Existence is what the walk found; R_OK/W_OK/X_OK also ask for a
      // permission, which only the kernel's own check answers.
      if (error == 0 && (event.mode & (R_OK | W_OK | X_OK)) != 0 && !event.result.has_value() &&
          faccessat(AT_FDCWD, path.c_str(), static_cast<int>(event.mode), AT_EACCESS) != 0) {
        op.set_error(errno);
      }
      break;
    case Effect::kProbe:
      op.set_kind(proto::GET);
      break;
    case Effect::kReadlink: {
      op.set_kind(proto::READLINK);
      if (error == 0 && event.path.has_value() && res.kind != Resolution::Kind::kSymlink) {
        // The walk already knows it is no symlink; gcc asks this of every
        // header it opens (realpath), so no syscall is spent on it.
        op.set_error(EINVAL);
      } else if (error == 0 && !path.empty()) {
        // Through the resolver: /proc/self is the traced process, and a
        // descriptor on a staged file shows the path the process opened.
        std::string target;
        if (const int link_error = resolver_->ReadLink(path, &target); link_error == 0) {
          op.set_text(std::move(target));
        } else {
          op.set_error(link_error);
        }
      }
      break;
    }
    case Effect::kList: {
      op.set_kind(proto::LIST);
      absl::StatusOr<std::vector<std::string>> names = ListNames(path);
      if (names.ok()) SetListing(*names, op.mutable_version());
      break;
    }
    case Effect::kChdir:
      op.set_kind(proto::CHDIR);
      break;
    case Effect::kMkdir:
      op.set_kind(proto::LINK);
      op.set_create(proto::NEWDIR);
      resolver_->Invalidate(path);
      if (error == 0) AddOutput(command, path);
      break;
    case Effect::kMknod:
      op.set_kind(proto::LINK);
      op.set_create(S_ISREG(event.mode) || (event.mode & S_IFMT) == 0 ? proto::NEWFILE
                                                                      : proto::NEWNODE);
      resolver_->Invalidate(path);
      if (error == 0) AddOutput(command, path);
      break;
    case Effect::kSymlink:
      op.set_kind(proto::LINK);
      op.set_create(proto::SYMLINK);
      op.set_text(event.text);
      resolver_->Invalidate(path);
      if (error == 0) AddOutput(command, path);
      break;
    case Effect::kRmdir:
      op.set_kind(proto::RMDIR);
      resolver_->InvalidateTree(path);
      if (error == 0) AddOutput(command, path);
      break;
    case Effect::kUnlink:
      op.set_kind(proto::UNLINK);
      resolver_->Invalidate(path);
      if (error == 0) AddOutput(command, path);
      break;
    case Effect::kLink: {
      // link(old, new): the new name is the ref, the existing file ref2.
      op.set_kind(proto::LINK);
      op.set_create(proto::EXISTING);
      proto::Ref existing = op.ref();
      op.clear_ref();
      Resolution new_res = ResolveInto(command, event.pid, *event.path2, op.mutable_ref());
      *op.mutable_ref2() = std::move(existing);
      resolver_->Invalidate(new_res.AbsolutePath());
      if (error == 0) {
        AddOutput(command, new_res.AbsolutePath());
        if (Command* owner = LiveCommand(command); owner != nullptr) owner->linked.push_back(path);
      }
      break;
    }
    case Effect::kRename: {
      op.set_kind(proto::RENAME);
      op.set_number(event.flags);
      Resolution dest = ResolveInto(command, event.pid, *event.path2, op.mutable_ref2());
      // A directory moved: everything cached below either name is stale.
      resolver_->InvalidateTree(path);
      resolver_->InvalidateTree(dest.AbsolutePath());
      if (error == 0) {
        AddOutput(command, path);
        AddOutput(command, dest.AbsolutePath());
      }
      break;
    }
    case Effect::kChmod:
      op.set_kind(proto::CHMOD);
      op.set_number(event.mode & 07777);
      if (error == 0 && !path.empty()) AddOutput(command, path);
      break;
    case Effect::kChown:
      op.set_kind(proto::CHOWN);
      op.set_uid(event.uid);
      op.set_gid(event.gid);
      break;
    case Effect::kUtimes:
      op.set_kind(proto::UTIMES);
      break;
    case Effect::kTruncate:
      op.set_kind(proto::TRUNC);
      op.set_number(event.length);
      if (error == 0 && !path.empty()) AddOutput(command, path);
      break;
    case Effect::kXattrRead:
      op.set_kind(proto::XATTR_READ);
      op.set_xattr_name(writer_->Intern(event.text));
      break;
    case Effect::kXattrWrite:
      op.set_kind(proto::XATTR_WRITE);
      op.set_xattr_name(writer_->Intern(event.text));
      break;
    case Effect::kOpen:
    case Effect::kExec:
      return;  // handled elsewhere
  }
  Emit(op, event.pid);
}

void Recorder::OnSyscall(const tracer::SyscallEvent& event) {
  resolver_->set_process(event.tgid, event.pid);
  const uint64_t command = CommandOf(event.pid);
  if (event.effect == Effect::kOpen && event.path.has_value()) {
    OnOpen(event, command);
  } else {
    OnPathChange(event, command);
  }
}

absl::Status Recorder::Finish() {
  std::vector<uint64_t> open;
  for (const auto& [id, command] : live_) open.push_back(id);
  std::sort(open.begin(), open.end());
  for (uint64_t id : open) EndCommand(id, proto::CommandEnd::HOW_UNKNOWN, 0, 0);
  return first_error_;
}

}  // namespace dodo::model
