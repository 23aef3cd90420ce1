#include "tracer/syscall_table.h"

#include <seccomp.h>

#include <cstdlib>
#include <set>
#include <string>

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
                           "dup",
                           "dup2",
                           "dup3",
                           "fcntl",
                           "close_range",
                           "pipe",
                           "pipe2",
                           "socket",
                           "socketpair",
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

TEST(SyscallTableTest, DataTransferNeverStops) {
  for (const char* name :
       {"read", "write", "pread64", "pwrite64", "readv", "writev", "lseek", "close", "mmap",
        "fstat", "copy_file_range", "flock", "fsync", "fdatasync"}) {
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
    if (row.effect == Effect::kOpen || row.handler == Handler::kPipe ||
        row.handler == Handler::kNewFd || row.handler == Handler::kExec) {
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

TEST(SeccompFilterTest, ListenerRulesBuild) {
  absl::StatusOr<SeccompFilter> plain = SeccompFilter::Build(false);
  absl::StatusOr<SeccompFilter> with_listener = SeccompFilter::Build(true);
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(with_listener.ok()) << with_listener.status();
  EXPECT_FALSE(plain->with_listener());
  EXPECT_TRUE(with_listener->with_listener());
  EXPECT_EQ(plain->ListenerFd(), -1);
}

}  // namespace
}  // namespace dodo::tracer
