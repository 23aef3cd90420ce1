#include "tracer/syscall_table.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tracer/seccomp_filter.h"

namespace dodo::tracer {
namespace {

TEST(SyscallTableTest, NumbersAreUniqueAndNamesMatchLibseccomp) {
  std::set<int> seen;
  for (const SyscallRow& row : SyscallTable()) {
    EXPECT_TRUE(seen.insert(row.nr).second) << row.name;
    EXPECT_EQ(FindSyscall(row.nr), &row);
    char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, row.nr);
    if (name != nullptr) {
      EXPECT_STREQ(name, row.name) << row.nr;
    }
    free(name);
  }
}

const SyscallRow* Named(const std::string& name) {
  for (const SyscallRow& row : SyscallTable()) {
    if (name == row.name) return &row;
  }
  return nullptr;
}

TEST(SyscallTableTest, EveryPathAndDescriptorSyscallIsTraced) {
  for (const char* name : {"open",
                           "openat",
                           "openat2",
                           "creat",
                           "stat",
                           "lstat",
                           "newfstatat",
                           "statx",
                           "access",
                           "faccessat",
                           "faccessat2",
                           "readlink",
                           "readlinkat",
                           "execve",
                           "execveat",
                           "chdir",
                           "fchdir",
                           "mkdir",
                           "mkdirat",
                           "rmdir",
                           "unlink",
                           "unlinkat",
                           "rename",
                           "renameat",
                           "renameat2",
                           "link",
                           "linkat",
                           "symlink",
                           "symlinkat",
                           "mknod",
                           "mknodat",
                           "chmod",
                           "fchmod",
                           "fchmodat",
                           "fchmodat2",
                           "chown",
                           "fchown",
                           "lchown",
                           "fchownat",
                           "utime",
                           "utimes",
                           "futimesat",
                           "utimensat",
                           "truncate",
                           "ftruncate",
                           "getdents64",
                           "setxattr",
                           "lsetxattr",
                           "fsetxattr",
                           "getxattr",
                           "lgetxattr",
                           "fgetxattr",
                           "listxattr",
                           "llistxattr",
                           "flistxattr",
                           "removexattr",
                           "lremovexattr",
                           "fremovexattr",
                           "socket",
                           "memfd_create",
                           "clone3",
                           "name_to_handle_at",
                           "open_by_handle_at"}) {
    const SyscallRow* row = Named(name);
    ASSERT_NE(row, nullptr) << name;
    EXPECT_EQ(row->action, Action::kTrace) << name;
    EXPECT_NE(row->handler, Handler::kNone) << name;
  }
}

TEST(SyscallTableTest, DataTransferAndDescriptorCopiesNeverStop) {
  for (const char* name :
       {"read", "write", "pread64",         "pwrite64", "readv", "writev",    "lseek", "close",
        "mmap", "fstat", "copy_file_range", "flock",    "fsync", "fdatasync", "dup",   "dup2",
        "dup3", "fcntl", "close_range",     "pipe",     "pipe2", "socketpair"}) {
    const SyscallRow* row = Named(name);
    ASSERT_NE(row, nullptr) << name;
    EXPECT_EQ(row->action, Action::kAllow) << name;
  }
}

TEST(SyscallTableTest, UnfollowableSyscallsAreRefused) {
  for (const char* name :
       {"io_uring_setup", "io_uring_enter", "io_uring_register", "chroot", "mount", "setxattrat"}) {
    const SyscallRow* row = Named(name);
    ASSERT_NE(row, nullptr) << name;
    EXPECT_EQ(row->action, Action::kRefuse) << name;
    EXPECT_STRNE(row->why, "") << name;
  }
  EXPECT_EQ(UnknownSyscallRow().action, Action::kRefuse);
}

TEST(SyscallTableTest, RowsThatNeedAResultAskForTheExitStop) {
  for (const SyscallRow& row : SyscallTable()) {
    if (row.effect == Effect::kOpen || row.handler == Handler::kNewFd ||
        row.handler == Handler::kExec) {
      EXPECT_TRUE(row.exit_stop) << row.name;
    }
    // Lookups are answered from the file system at entry: no exit stop.
    if (row.effect == Effect::kStat || row.effect == Effect::kReadlink ||
        row.effect == Effect::kAccess) {
      EXPECT_FALSE(row.exit_stop) << row.name;
    }
  }
}

TEST(SeccompFilterTest, BuildsACompactProgram) {
  absl::StatusOr<SeccompFilter> filter = SeccompFilter::Build();
  ASSERT_TRUE(filter.ok()) << filter.status();
  absl::StatusOr<size_t> size = filter->ProgramSize();
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_GT(*size, 50u);
  EXPECT_LT(*size, 4096u);  // the kernel's limit per program
}

// The tracer answers a redirected listener call by running it itself
// (Tracer::AnswerOnPath), which knows exactly these; a row added to the
// listener without an answer there would escape redirection.
TEST(SyscallTableTest, ListenerRowsAreTheLookupsAndOpensTheTracerCanAnswer) {
  std::set<std::string> listener;
  for (const SyscallRow& row : SyscallTable()) {
    if (!row.listener) continue;
    listener.insert(row.name);
    EXPECT_EQ(row.action, Action::kTrace) << row.name;
    EXPECT_TRUE(row.handler == Handler::kPath || row.handler == Handler::kOpen) << row.name;
    EXPECT_EQ(row.path2, kNoArg) << row.name;
    EXPECT_EQ(row.exit_stop, row.handler == Handler::kOpen) << row.name;
  }
  EXPECT_EQ(listener, (std::set<std::string>{"stat", "lstat", "newfstatat", "statx", "statfs",
                                             "access", "faccessat", "faccessat2", "readlink",
                                             "readlinkat", "open", "openat"}));
}

// What each program can return: the plain filter traps with ptrace and
// never notifies; the one stacked for a listener notifies and otherwise
// allows, leaving every other decision to the plain filter under it.
std::set<uint32_t> ReturnedActions(const SeccompFilter& filter) {
  absl::StatusOr<std::vector<sock_filter>> program = filter.Program();
  EXPECT_TRUE(program.ok()) << program.status();
  std::set<uint32_t> actions;
  if (!program.ok()) return actions;
  for (const sock_filter& insn : *program) {
    if (insn.code == (BPF_RET | BPF_K)) actions.insert(insn.k & SECCOMP_RET_ACTION_FULL);
  }
  return actions;
}

TEST(SeccompFilterTest, ListenerOnlyFilterNotifiesOrAllows) {
  absl::StatusOr<SeccompFilter> plain = SeccompFilter::Build();
  absl::StatusOr<SeccompFilter> listener_only = SeccompFilter::BuildListenerOnly();
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(listener_only.ok()) << listener_only.status();
  EXPECT_EQ(ReturnedActions(*plain), (std::set<uint32_t>{SECCOMP_RET_ALLOW, SECCOMP_RET_TRACE}));
  EXPECT_EQ(ReturnedActions(*listener_only),
            (std::set<uint32_t>{SECCOMP_RET_ALLOW, SECCOMP_RET_USER_NOTIF}));
  EXPECT_LT(*listener_only->ProgramSize(), *plain->ProgramSize());
}

// Loads `filter` in a child and makes one call there: 0 when the call ran,
// 1 when the filter trapped it (with no tracer, a trap fails with ENOSYS).
int ChildCallTrapped(const SeccompFilter& filter, long (*call)()) {
  const pid_t child = fork();
  if (child == 0) {
    if (!filter.Load().ok()) _exit(2);
    const bool trapped = call() < 0 && errno == ENOSYS;
    _exit(trapped ? 1 : 0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

long Readlink() {
  char buffer[64];
  return readlink("/proc/self/exe", buffer, sizeof(buffer));
}
long Stat() {
  struct stat st;
  return stat("/", &st);
}
long ReadOnlyOpen() { return open("/proc/self/exe", O_RDONLY | O_CLOEXEC); }
long DirectoryOpen() { return open("/", O_RDONLY | O_DIRECTORY); }
long CreatingOpen() {
  return openat(AT_FDCWD, "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}
long Unlink() { return unlink("/no/such/file"); }
long Dup2() { return dup2(1, 100); }
long Pipe() {
  int ends[2];
  return pipe2(ends, O_CLOEXEC);
}

TEST(SeccompFilterTest, ObservedLookupsAreLeftUntrapped) {
  absl::StatusOr<SeccompFilter> trapping = SeccompFilter::Build();
  absl::StatusOr<SeccompFilter> observed = SeccompFilter::Build({.lookups_observed = true});
  ASSERT_TRUE(trapping.ok()) << trapping.status();
  ASSERT_TRUE(observed.ok()) << observed.status();
  for (long (*call)() : {Readlink, Stat, ReadOnlyOpen, DirectoryOpen, CreatingOpen, Unlink}) {
    EXPECT_EQ(ChildCallTrapped(*trapping, call), 1);
  }
  // What the observer reports runs untrapped; what it leaves alone traps.
  for (long (*call)() : {Readlink, Stat, ReadOnlyOpen}) {
    EXPECT_EQ(ChildCallTrapped(*observed, call), 0);
  }
  for (long (*call)() : {DirectoryOpen, CreatingOpen, Unlink}) {
    EXPECT_EQ(ChildCallTrapped(*observed, call), 1);
  }
  absl::StatusOr<SeccompFilter> listener_only =
      SeccompFilter::BuildListenerOnly({.lookups_observed = true});
  ASSERT_TRUE(listener_only.ok()) << listener_only.status();
  EXPECT_LT(*listener_only->ProgramSize(), *SeccompFilter::BuildListenerOnly()->ProgramSize());
}

TEST(SeccompFilterTest, DescriptorCopiesAreLeftUntrapped) {
  absl::StatusOr<SeccompFilter> filter = SeccompFilter::Build();
  ASSERT_TRUE(filter.ok()) << filter.status();
  for (long (*call)() : {Dup2, Pipe}) EXPECT_EQ(ChildCallTrapped(*filter, call), 0);
}

}  // namespace
}  // namespace dodo::tracer
