// The events the tracer reports: what traced processes did, in terms of
// system calls, paths and file descriptors. Nothing here knows about builds;
// the model turns these events into operations.
#ifndef DODO_TRACER_EVENTS_H_
#define DODO_TRACER_EVENTS_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dodo::tracer {

// What a traced system call does to the file system, as far as dependencies
// go. One syscall table row maps a syscall to one effect.
enum class Effect {
  kOpen,        // open/openat/openat2/creat: flags says how
  kExec,        // execve/execveat (reported by ExecEvent, not SyscallEvent)
  kStat,        // stat family, statfs: metadata read
  kAccess,      // access/faccessat: a lookup (and permission check)
  kReadlink,    // readlink/readlinkat
  kList,        // getdents64: directory listing (once per open directory)
  kChdir,       // chdir/fchdir
  kMkdir,       // mkdir/mkdirat
  kRmdir,       // rmdir, unlinkat(AT_REMOVEDIR)
  kUnlink,      // unlink/unlinkat
  kRename,      // rename family: path -> path2
  kLink,        // link/linkat: path (existing) -> path2 (new name)
  kSymlink,     // symlink/symlinkat: text (target) -> path (new name)
  kMknod,       // mknod/mknodat: mode says the kind
  kChmod,       // chmod family; mode
  kChown,       // chown family; uid, gid
  kUtimes,      // utime family
  kTruncate,    // truncate/ftruncate; length
  kXattrRead,   // getxattr/listxattr family
  kXattrWrite,  // setxattr/removexattr family
  kProbe,       // other path lookups (inotify_add_watch, name_to_handle_at, ...)
};

const char* EffectName(Effect effect);

// A path argument as the process passed it, with what is needed to resolve
// it the way the kernel will: the directory it is relative to.
struct PathArg {
  std::string path;  // as passed; may be relative, may be empty (AT_EMPTY_PATH)
  // Absolute path of the directory a relative `path` starts from: the cwd,
  // or the directory behind `dirfd`. Empty when unknown.
  std::string base;
  int dirfd = -100;          // AT_FDCWD (-100) or the descriptor passed
  bool follow_final = true;  // false for lstat, O_NOFOLLOW, AT_SYMLINK_NOFOLLOW, ...
};

enum class FdKind { kUnknown, kFile, kDirectory, kPipe, kSocket, kTty, kOther };

// What a file descriptor refers to, as the tracer knows it.
struct FdInfo {
  int fd = -1;
  FdKind kind = FdKind::kUnknown;
  std::string path;      // absolute path for files and directories
  uint64_t pipe_id = 0;  // inode number of a pipe
  bool readable = false;
  bool writable = false;
  bool cloexec = false;
  std::string description;  // /proc's text for kinds without a path
  // What /proc/PID/fd/N said when the tracer learnt this descriptor (empty:
  // not read). Descriptors are closed without a stop and read-only opens
  // make none, so a number can be reused unseen; a different link text now
  // means the entry is stale.
  std::string target;
  // A pipe read end with nothing buffered that no process can write to any
  // more: every read returns end-of-file, whatever ran before. Set in
  // ExecEvent::fds only.
  bool drained = false;
  // A writable regular file's size, read while the new program was still
  // stopped at its exec: what it writes is after this. Set in
  // ExecEvent::fds only.
  std::optional<uint64_t> size;
};

// One system call that touches the file system.
struct SyscallEvent {
  pid_t pid = 0;   // thread id that made the call
  pid_t tgid = 0;  // its process (thread group)
  Effect effect = Effect::kProbe;
  const char* syscall = "";  // name, from the syscall table
  // Path arguments. For fd-based calls (fchmod, ftruncate, getdents64, ...)
  // `fd` is set and `path` is empty.
  std::optional<PathArg> path;
  std::optional<PathArg> path2;
  std::optional<FdInfo> fd;
  uint64_t flags = 0;   // open flags, AT_* flags, rename flags
  uint64_t mode = 0;    // open/mkdir/mknod/chmod mode
  uint64_t length = 0;  // truncate length
  uint32_t uid = static_cast<uint32_t>(-1);
  uint32_t gid = static_cast<uint32_t>(-1);
  std::string text;  // symlink target, xattr name
  // The syscall's return value when the tracer waited for it (>= 0 success,
  // -errno failure). Empty when the event is reported at syscall entry: the
  // model then works out the outcome from the file system itself.
  std::optional<int64_t> result;
};

// A successful exec: the process now runs a new program.
struct ExecEvent {
  pid_t pid = 0;           // the process (after a non-leader exec: the leader's pid)
  pid_t former_tid = 0;    // the thread that called exec, if it was not the leader
  PathArg path;            // as passed to execve/execveat
  std::string executable;  // absolute path of the program, from /proc/PID/exe
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd;
  std::vector<FdInfo> fds;  // descriptors open across the exec
};

// A failed exec attempt (PATH searches make many).
struct ExecFailedEvent {
  pid_t pid = 0;
  PathArg path;
  int error = 0;  // errno
};

struct ForkEvent {
  pid_t parent = 0;  // thread that called fork/vfork/clone/clone3
  pid_t child = 0;
  bool thread = false;     // CLONE_THREAD: same process
  bool share_fds = false;  // CLONE_FILES
  bool share_fs = false;   // CLONE_FS (cwd)
};

struct ExitEvent {
  pid_t pid = 0;
  bool process = true;  // the whole thread group is gone (leader's exit)
  bool signaled = false;
  int code = 0;    // exit code
  int signal = 0;  // terminating signal
};

struct WarningEvent {
  pid_t pid = 0;
  std::string syscall;
  std::string message;
};

// An exec about to happen: the process is stopped at the syscall's entry.
struct ExecRequest {
  pid_t pid = 0;   // the thread calling exec
  pid_t tgid = 0;  // its process
  const PathArg* path = nullptr;
  const std::vector<std::string>* argv = nullptr;
  const std::vector<std::string>* env = nullptr;
  std::string cwd;
  // What descriptor `fd` will be in the new program, `drained` included;
  // nothing if the exec closes it. Looked up on demand: most execs never ask.
  std::function<std::optional<FdInfo>(int fd)> describe_fd = {};
  // A descriptor of the caller's own on the open file behind `fd` (sharing
  // its offset), which the caller closes; an error if there is none.
  std::function<absl::StatusOr<int>(int fd)> copy_fd = {};
};

// Decides, before the kernel runs an exec, whether it runs at all. A build
// system uses it to skip a program whose work is already done.
class ExecGate {
 public:
  virtual ~ExecGate() = default;
  // Returns an exit status to make the process exit with it instead of
  // exec'ing (the program never runs, its parent sees that status), or
  // nothing to let the exec go ahead.
  virtual std::optional<int> BeforeExec(const ExecRequest& request) = 0;
};

// What a PathRedirector wants done with one path syscall.
struct Redirection {
  // Absolute paths the kernel gets instead of the first and second path
  // argument. The process keeps seeing its own arguments: the registers are
  // put back when the call returns.
  std::optional<std::string> path = {};
  std::optional<std::string> path2 = {};
  // Call AfterSyscall with the result (e.g. to follow a rename).
  bool wants_result = false;
};

// Serves the paths of a traced build from somewhere else (dodo build's
// staging area), by rewriting path arguments at syscall entry. The tracer
// asks before it reports the event to the EventSink, which still gets the
// paths the process passed.
class PathRedirector {
 public:
  virtual ~PathRedirector() = default;
  // False when Redirect never rewrites a path (it only watches): the tracer
  // then needs no scratch memory in the processes.
  virtual bool RewritesPaths() const = 0;
  virtual Redirection Redirect(const SyscallEvent& event) = 0;
  virtual void AfterSyscall(const SyscallEvent& event, int64_t result) = 0;
  // The path a process must be shown for `physical`, a path the kernel
  // reports (a /proc/PID/fd link), or nothing when it is shown as it is.
  virtual std::optional<std::string> Logical(const std::string& physical) const = 0;
};

// Receives the tracer's events, on the tracer's thread: each process's in the
// order they happened, and each before the tracer handles any later stop.
// An entry event (no result) comes while the process is stopped at the call,
// so the file system is as the call found it. An event with a result, a fork
// or an exec may come just after the process was resumed, so that it does
// not wait for the sink: names are as the call left them (every call that
// changes one stops first), but the process may have written to its files
// since, except when the sink needs their contents or times as the call left
// them (a stat, an open that writes without truncating: reported stopped).
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void OnSyscall(const SyscallEvent& event) = 0;
  virtual void OnExec(const ExecEvent& event) = 0;
  virtual void OnExecFailed(const ExecFailedEvent& event) = 0;
  virtual void OnFork(const ForkEvent& event) = 0;
  virtual void OnExit(const ExitEvent& event) = 0;
  virtual void OnWarning(const WarningEvent& event) = 0;
};

}  // namespace dodo::tracer

#endif  // DODO_TRACER_EVENTS_H_
