// The table of x86_64 system calls the tracer knows: one row per syscall,
// saying whether the seccomp filter lets it through, traps it or refuses it,
// where its path and descriptor arguments are, and which handler follows it.
// The BPF filter and the dispatch at each stop are both built from this one
// table.
#ifndef DODO_TRACER_SYSCALL_TABLE_H_
#define DODO_TRACER_SYSCALL_TABLE_H_

#include <fcntl.h>

#include <cstdint>
#include <span>

#include "tracer/events.h"

namespace dodo::tracer {

enum class Action : uint8_t {
  kAllow,   // never stops the tracee
  kTrace,   // SECCOMP_RET_TRACE: the tracer sees it at entry
  kRefuse,  // trapped, then failed with ENOSYS and a warning in the trace
};

enum class Handler : uint8_t {
  kNone,          // allowed rows
  kPath,          // one path (+ optional second path): reports `effect`
  kFdOrPath,      // utimensat: a NULL path means the call works on dirfd
  kFd,            // works on the descriptor in `fd`: reports `effect`
  kOpen,          // open/openat/creat: flags in `flags` (creat: fixed)
  kOpenat2,       // openat2: flags inside struct open_how
  kOpenByHandle,  // open_by_handle_at: the path is learnt from /proc at exit
  kExec,          // execve/execveat
  kChdir,         // chdir
  kFchdir,        // fchdir
  kList,          // getdents/getdents64
  kNewFd,         // socket, eventfd, memfd_create, ...: the result is a new fd
  kClone,         // clone with CLONE_UNTRACED (the filter passes only those)
  kClone3,        // clone3: flags in memory
  kSeccomp,       // seccomp() asking for a listener (the filter passes only those)
  kUnknown,       // a number the table does not know (default action)
};

// How symbolic links in the last path component are treated.
enum class Follow : uint8_t {
  kYes,         // followed (stat, open without O_NOFOLLOW, ...)
  kNo,          // not followed (lstat, readlink, unlink, ...)
  kAtNoFollow,  // followed unless AT_SYMLINK_NOFOLLOW is in `flags`
  kAtFollow,    // not followed unless AT_SYMLINK_FOLLOW is in `flags` (linkat)
  kOpenFlags,   // followed unless O_NOFOLLOW is in `flags`
};

// Argument filters the BPF program applies before trapping.
enum class Filter : uint8_t {
  kNone,
  kNotEmptyPath,   // skip when AT_EMPTY_PATH is in `flags`: fstat() goes through newfstatat(fd, "")
  kCloneUntraced,  // only when CLONE_UNTRACED is set
  kNewListener,    // seccomp(SECCOMP_SET_MODE_FILTER) with SECCOMP_FILTER_FLAG_NEW_LISTENER
};

constexpr int8_t kNoArg = -1;

// open/openat flags that make an open more than a read of an existing file:
// such opens trap with an exit stop, which learns the new descriptor. The
// others (read-only opens) are lookups, for a listener or the eBPF observer.
// O_NOFOLLOW stays with ptrace too: its ELOOP is the kernel's to report.
// O_TMPFILE includes O_DIRECTORY.
constexpr uint64_t kOpenChangesOrLists =
    O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_DIRECTORY | O_NOFOLLOW;

struct SyscallRow {
  int nr = -1;
  const char* name = "";
  Action action = Action::kAllow;
  Handler handler = Handler::kNone;
  Effect effect = Effect::kProbe;
  // Argument positions (0-5), kNoArg when absent.
  int8_t dirfd = kNoArg;
  int8_t path = kNoArg;
  int8_t dirfd2 = kNoArg;
  int8_t path2 = kNoArg;
  int8_t fd = kNoArg;
  int8_t flags = kNoArg;
  int8_t mode = kNoArg;
  int8_t length = kNoArg;
  int8_t uid = kNoArg;
  int8_t gid = kNoArg;
  int8_t text = kNoArg;  // symlink target or xattr name
  Follow follow = Follow::kYes;
  Filter filter = Filter::kNone;
  // The handler needs the result (a new fd, or the outcome of a change), so
  // the tracee is resumed with PTRACE_SYSCALL for one exit stop.
  bool exit_stop = false;
  // Calls the tracer can take from the seccomp listener
  // (SECCOMP_RET_USER_NOTIF) instead of a ptrace stop: the entry-only lookups
  // (stat, access, readlink families) and, for open/openat, the opens that
  // neither write nor create nor open a directory. The process blocks in the
  // kernel while dodo records the event, then the call goes on, or dodo
  // answers it on the process's behalf when the path is redirected. No exit
  // stop and no register change are possible there: the open's descriptor
  // number is learnt from /proc when it is first used.
  bool listener = false;
  const char* why = "";  // for allowed and refused rows: the reason
};

// Every row, in syscall number order.
std::span<const SyscallRow> SyscallTable();

// The row for `nr`, or nullptr when the table has no row for it.
const SyscallRow* FindSyscall(long nr);

// Numbers the kernel may answer that no row names are trapped by default;
// this row describes what happens to them.
const SyscallRow& UnknownSyscallRow();

}  // namespace dodo::tracer

#endif  // DODO_TRACER_SYSCALL_TABLE_H_
