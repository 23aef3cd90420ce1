#include "tracer/bpf_observer.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace dodo::tracer {
namespace {

struct Seen {
  pid_t tid;
  pid_t tgid;
  long nr;
  uint64_t args[6];
  bool readable;
  std::string path;
  bool result_only = false;
  int64_t result = 0;
};

// Runs `body` in a child that waits until the test has decided whether to
// watch it; returns the child's pid after it exited.
pid_t RunChild(BpfObserver& observer, bool watch, const std::function<void()>& body) {
  int go[2];
  EXPECT_EQ(pipe(go), 0);
  const pid_t child = fork();
  if (child == 0) {
    char byte;
    if (read(go[0], &byte, 1) != 1) _exit(3);
    body();
    _exit(0);
  }
  if (watch) {
    EXPECT_TRUE(observer.Watch(child).ok());
  }
  EXPECT_EQ(write(go[1], "x", 1), 1);
  close(go[0]);
  close(go[1]);
  int status = 0;
  EXPECT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  return child;
}

std::vector<Seen> DrainAll(BpfObserver& observer) {
  std::vector<Seen> seen;
  observer.Drain([&](const ObservedCall& call) {
    Seen one{call.tid,         call.tgid,  call.nr, {}, call.readable, std::string(call.path),
             call.result_only, call.result};
    std::copy(std::begin(call.args), std::end(call.args), one.args);
    seen.push_back(std::move(one));
  });
  return seen;
}

// Only root may load tracing programs: anyone else gets a clear refusal,
// which the tracer answers by trapping readlink as before.
absl::StatusOr<std::unique_ptr<BpfObserver>> StartOrExplain() {
  absl::StatusOr<std::unique_ptr<BpfObserver>> observer = BpfObserver::Start();
  if (geteuid() != 0) {
    EXPECT_FALSE(observer.ok());
    EXPECT_NE(observer.status().message().find("bpf"), std::string::npos) << observer.status();
  }
  return observer;
}

TEST(BpfObserverTest, ReportsEveryReadlinkOfWatchedProcessesOnly) {
  absl::StatusOr<std::unique_ptr<BpfObserver>> observer = StartOrExplain();
  if (geteuid() != 0) return;
  ASSERT_TRUE(observer.ok()) << observer.status();
  const std::string too_long(PATH_MAX + 10, 'a');
  char buffer[64];
  const pid_t watched = RunChild(**observer, true, [&] {
    (void)!readlink("no/such/link", buffer, sizeof(buffer));
    (void)!readlinkat(7, "relative", buffer, sizeof(buffer));
    (void)!readlinkat(AT_FDCWD, too_long.c_str(), buffer, sizeof(buffer));
    (void)!readlink("/proc/self/exe", buffer, sizeof(buffer));
  });
  RunChild(**observer, false, [&] { (void)!readlink("unwatched", buffer, sizeof(buffer)); });

  std::vector<Seen> seen = DrainAll(**observer);
  ASSERT_EQ(seen.size(), 4u);
  for (const Seen& call : seen) {
    EXPECT_EQ(call.tid, watched);
    EXPECT_EQ(call.tgid, watched);
  }
  EXPECT_EQ(seen[0].nr, SYS_readlink);
  EXPECT_EQ(seen[0].path, "no/such/link");
  // Arguments the tracer does not use (the buffer, its size) are left out.
  EXPECT_EQ(seen[0].args[1], 0u);
  EXPECT_EQ(seen[0].args[2], 0u);
  EXPECT_EQ(seen[1].nr, SYS_readlinkat);
  EXPECT_EQ(seen[1].path, "relative");
  EXPECT_EQ(seen[1].args[0], 7u);
  EXPECT_EQ(seen[2].nr, SYS_readlinkat);
  EXPECT_FALSE(seen[2].readable);
  EXPECT_EQ(static_cast<int>(seen[2].args[0]), AT_FDCWD);
  EXPECT_TRUE(seen[3].readable);
  EXPECT_EQ(seen[3].path, "/proc/self/exe");
  EXPECT_EQ((*observer)->Unwatch(watched), 0u);
  EXPECT_TRUE(DrainAll(**observer).empty());
}

// The opens the filter traps (they write, create or list) come with their
// result alone, for the tracer to do without their exit stops.
TEST(BpfObserverTest, ReportsLookupsAndTheResultsOfTrappedOpensButNotFstat) {
  absl::StatusOr<std::unique_ptr<BpfObserver>> observer = StartOrExplain();
  if (geteuid() != 0) return;
  ASSERT_TRUE(observer.ok()) << observer.status();
  char dir_template[] = "/tmp/dodo-observer-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string file = dir + "/file";
  const pid_t watched = RunChild(**observer, true, [&] {
    struct stat st;
    struct statx stx;
    const int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    (void)!fstat(fd, &st);
    (void)!statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &stx);
    close(fd);
    for (int flags : {O_RDWR, O_RDONLY | O_TRUNC, O_RDONLY | O_DIRECTORY, O_RDONLY | O_NOFOLLOW}) {
      close(open(file.c_str(), flags));
    }
    close(open(file.c_str(), O_RDONLY | O_CLOEXEC));
    close(openat(AT_FDCWD, "no-such-file", O_RDONLY));
    (void)!stat(file.c_str(), &st);
    (void)!lstat("no-such-link", &st);
    (void)!fstatat(AT_FDCWD, file.c_str(), &st, AT_SYMLINK_NOFOLLOW);
    (void)!statx(AT_FDCWD, file.c_str(), 0, STATX_SIZE, &stx);
    (void)!access(file.c_str(), R_OK | W_OK);
    (void)!syscall(SYS_faccessat2, AT_FDCWD, file.c_str(), X_OK, AT_EACCESS);
  });
  std::vector<Seen> seen = DrainAll(**observer);
  (*observer)->Unwatch(watched);
  std::vector<std::string> lines;
  for (const Seen& call : seen) {
    // Only the child's own calls: glibc's loader has none here (it ran at
    // the test's start).
    std::string line = std::to_string(call.nr) + " " + call.path;
    if (call.result_only) {
      EXPECT_FALSE(call.readable);
      line += "(result " + std::string(call.result >= 0 ? "fd" : std::to_string(call.result)) + ")";
    }
    if (call.nr == SYS_open || call.nr == SYS_openat) {
      line += " flags " + std::to_string(call.args[call.nr == SYS_open ? 1 : 2]);
    }
    if (call.nr == SYS_newfstatat) line += " flags " + std::to_string(call.args[3]);
    if (call.nr == SYS_access) line += " mode " + std::to_string(call.args[1]);
    if (call.nr == SYS_faccessat2) line += " mode " + std::to_string(call.args[2]);
    lines.push_back(line);
  }
  const std::string trapped = std::to_string(SYS_openat) + " (result fd) flags ";
  const std::vector<std::string> expected = {
      trapped + std::to_string(O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC),
      trapped + std::to_string(O_RDWR),
      trapped + std::to_string(O_RDONLY | O_TRUNC),
      // Not a directory: the kernel's answer, with the flags it came with.
      std::to_string(SYS_openat) + " (result " + std::to_string(-ENOTDIR) + ") flags " +
          std::to_string(O_RDONLY | O_DIRECTORY),
      trapped + std::to_string(O_RDONLY | O_NOFOLLOW),
      std::to_string(SYS_openat) + " " + file + " flags " + std::to_string(O_RDONLY | O_CLOEXEC),
      std::to_string(SYS_openat) + " no-such-file flags 0",
      std::to_string(SYS_newfstatat) + " " + file + " flags 0",
      std::to_string(SYS_newfstatat) + " no-such-link flags " + std::to_string(AT_SYMLINK_NOFOLLOW),
      std::to_string(SYS_newfstatat) + " " + file + " flags " + std::to_string(AT_SYMLINK_NOFOLLOW),
      std::to_string(SYS_statx) + " " + file,
      std::to_string(SYS_access) + " " + file + " mode " + std::to_string(R_OK | W_OK),
      std::to_string(SYS_faccessat2) + " " + file + " mode " + std::to_string(X_OK),
  };
  EXPECT_EQ(lines, expected);
  unlink(file.c_str());
  rmdir(dir.c_str());
}

TEST(BpfObserverTest, ThreadsReportTheirOwnTid) {
  absl::StatusOr<std::unique_ptr<BpfObserver>> observer = StartOrExplain();
  if (geteuid() != 0) return;
  ASSERT_TRUE(observer.ok()) << observer.status();
  // The test's own process: a second thread's calls carry its tid.
  ASSERT_TRUE((*observer)->Watch(getpid()).ok());
  pid_t thread_tid = 0;
  std::thread([&] {
    thread_tid = static_cast<pid_t>(syscall(SYS_gettid));
    char buffer[8];
    (void)!readlink("from-thread", buffer, sizeof(buffer));
  }).join();
  (*observer)->Unwatch(getpid());
  std::vector<Seen> seen = DrainAll(**observer);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].path, "from-thread");
  EXPECT_EQ(seen[0].tid, thread_tid);
  EXPECT_EQ(seen[0].tgid, getpid());
  EXPECT_NE(seen[0].tid, getpid());
}

TEST(BpfObserverTest, CountsWhatAFullRingLost) {
  absl::StatusOr<std::unique_ptr<BpfObserver>> observer = StartOrExplain();
  if (geteuid() != 0) return;
  ASSERT_TRUE(observer.ok()) << observer.status();
  // Far more calls than the ring holds (about 90,000 of these), with nobody
  // draining meanwhile.
  constexpr int kCalls = 200000;
  const pid_t watched = RunChild(**observer, true, [] {
    char buffer[8];
    for (int i = 0; i < kCalls; ++i) (void)!readlink("x", buffer, sizeof(buffer));
  });
  const size_t kept = DrainAll(**observer).size();
  const uint32_t lost = (*observer)->Unwatch(watched);
  EXPECT_GT(lost, 0u);
  EXPECT_GT(kept, 50000u);
  EXPECT_EQ(kept + lost, static_cast<size_t>(kCalls));
}

// Run in a child whose mount namespace hides tracefs behind empty tmpfs
// mounts, as on a machine that booted without it. Exit codes: 0 started, 1
// could not hide tracefs, 2 Start failed, 3 the lookup's mount showed here.
int StartWithoutTracefs() {
  if (unshare(CLONE_NEWNS) != 0 ||
      mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      mount("none", "/sys/kernel/tracing", "tmpfs", 0, nullptr) != 0) {
    return 1;
  }
  struct stat debug;
  if (stat("/sys/kernel/debug", &debug) == 0 &&
      mount("none", "/sys/kernel/debug", "tmpfs", 0, nullptr) != 0) {
    return 1;
  }
  absl::StatusOr<std::unique_ptr<BpfObserver>> observer = BpfObserver::Start();
  if (!observer.ok()) {
    fprintf(stderr, "%s\n", std::string(observer.status().message()).c_str());
    return 2;
  }
  struct stat events;
  if (stat("/sys/kernel/tracing/events", &events) == 0) return 3;
  return 0;
}

TEST(BpfObserverTest, StartsWhereTracefsIsNotMountedAndMountsNothingVisible) {
  if (geteuid() != 0) return;  // neither the test's mounts nor the observer
  const pid_t child = fork();
  if (child == 0) _exit(StartWithoutTracefs());
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(LoadTracepointProgramTest, TakesAProgramAndSaysWhyTheVerifierRefusesOne) {
  const bpf_insn set_r0{
      .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0};
  const bpf_insn exit{.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0};
  absl::StatusOr<int> good = LoadTracepointProgram({set_r0, exit});
  // Returning r0 before anything set it: the verifier says so.
  absl::StatusOr<int> bad = LoadTracepointProgram({exit});
  ASSERT_FALSE(bad.ok());
  if (geteuid() != 0) {
    EXPECT_FALSE(good.ok());
    EXPECT_NE(bad.status().message().find("bpf(BPF_PROG_LOAD)"), std::string::npos) << bad.status();
    return;
  }
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_GE(*good, 0);
  close(*good);
  EXPECT_NE(bad.status().message().find("the eBPF verifier refused the program: R0 !read_ok"),
            std::string::npos)
      << bad.status();
}

}  // namespace
}  // namespace dodo::tracer
