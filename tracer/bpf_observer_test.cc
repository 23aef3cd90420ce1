#include "tracer/bpf_observer.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
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
  int64_t dirfd;
  bool readable;
  std::string path;
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
    seen.push_back({call.tid, call.tgid, call.nr, static_cast<int>(call.args[0]), call.readable,
                    std::string(call.path)});
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
  EXPECT_EQ(seen[0].dirfd, 0);
  EXPECT_EQ(seen[1].nr, SYS_readlinkat);
  EXPECT_EQ(seen[1].path, "relative");
  EXPECT_EQ(seen[1].dirfd, 7);
  EXPECT_EQ(seen[2].nr, SYS_readlinkat);
  EXPECT_FALSE(seen[2].readable);
  EXPECT_EQ(seen[2].dirfd, AT_FDCWD);
  EXPECT_TRUE(seen[3].readable);
  EXPECT_EQ(seen[3].path, "/proc/self/exe");
  EXPECT_EQ((*observer)->Unwatch(watched), 0u);
  EXPECT_TRUE(DrainAll(**observer).empty());
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
  // Far more calls than the ring holds, with nobody draining meanwhile.
  constexpr int kCalls = 5000;
  const pid_t watched = RunChild(**observer, true, [] {
    char buffer[8];
    for (int i = 0; i < kCalls; ++i) (void)!readlink("x", buffer, sizeof(buffer));
  });
  const size_t kept = DrainAll(**observer).size();
  const uint32_t lost = (*observer)->Unwatch(watched);
  EXPECT_GT(lost, 0u);
  EXPECT_GT(kept, 1000u);
  EXPECT_EQ(kept + lost, static_cast<size_t>(kCalls));
}

}  // namespace
}  // namespace dodo::tracer
