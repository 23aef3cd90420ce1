#include "tracer/tracer.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dodo::tracer {
namespace {

// Counts what the tracer reports.
class CountingSink : public EventSink {
 public:
  void OnSyscall(const SyscallEvent& event) override { syscalls.push_back(event); }
  void OnExec(const ExecEvent& event) override { execs.push_back(event); }
  void OnExecFailed(const ExecFailedEvent&) override { ++failed_execs; }
  void OnFork(const ForkEvent&) override { ++forks; }
  void OnExit(const ExitEvent& event) override { exits.push_back(event); }
  void OnWarning(const WarningEvent& event) override { warnings.push_back(event); }
  std::vector<SyscallEvent> syscalls;
  std::vector<ExecEvent> execs;
  std::vector<ExitEvent> exits;
  std::vector<WarningEvent> warnings;
  int failed_execs = 0;
  int forks = 0;
};

TEST(TracerTest, ReadsAndWritesDoNotStopTheTracee) {
  CountingSink sink;
  Tracer tracer(&sink);
  // 20,000 one-byte reads and writes, plus the usual start-up.
  absl::StatusOr<int> status =
      tracer.Run({"dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=20000", "status=none"});
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 0);
  EXPECT_LT(tracer.stats().seccomp_stops, 200u);
  EXPECT_LT(tracer.stats().exit_stops, 100u);
}

TEST(TracerTest, LookupsNeedNoExitStop) {
  CountingSink sink;
  Tracer tracer(&sink);
  // 300 stat() calls through the shell's `test -e`.
  absl::StatusOr<int> status = tracer.Run(
      {"/bin/sh", "-c", "i=0; while [ $i -lt 300 ]; do test -e /nonexistent/$i; i=$((i+1)); done"});
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 0);
  int lookups = 0;
  for (const SyscallEvent& event : sink.syscalls) {
    if (event.path.has_value() && event.path->path.rfind("/nonexistent/", 0) == 0) {
      ++lookups;
      EXPECT_FALSE(event.result.has_value());  // reported at entry
    }
  }
  EXPECT_EQ(lookups, 300);
  EXPECT_LT(tracer.stats().exit_stops, 50u);
}

TEST(TracerTest, ExecReportsArgvEnvironmentAndDescriptors) {
  CountingSink sink;
  Tracer tracer(&sink);
  absl::StatusOr<int> status =
      tracer.Run({"/usr/bin/env", "-i", "DODO_TEST=1", "/bin/sh", "-c", "exit 0"});
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(sink.execs.size(), 2u);
  const ExecEvent& shell = sink.execs[1];
  EXPECT_EQ(shell.executable, "/usr/bin/dash");
  EXPECT_EQ(shell.argv, (std::vector<std::string>{"/bin/sh", "-c", "exit 0"}));
  EXPECT_EQ(shell.env, (std::vector<std::string>{"DODO_TEST=1"}));
  EXPECT_EQ(shell.pid, sink.execs[0].pid);
  bool has_stderr = false;
  for (const FdInfo& fd : shell.fds) has_stderr |= fd.fd == 2;
  EXPECT_TRUE(has_stderr);
}

TEST(TracerTest, DupAndCloexecAreFollowed) {
  CountingSink sink;
  Tracer tracer(&sink);
  // The shell opens out.txt, dup2s it onto fd 1 for `true`, then the child
  // inherits fd 1 but not the close-on-exec copies.
  const std::string dir = testing::TempDir();
  absl::StatusOr<int> status =
      tracer.Run({"/bin/sh", "-c", "cd " + dir + " && /bin/true > dup-test.txt"});
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(sink.execs.size(), 2u);
  const ExecEvent& child = sink.execs[1];
  bool fd1_is_file = false;
  for (const FdInfo& fd : child.fds) {
    if (fd.fd == 1) fd1_is_file = fd.path.ends_with("/dup-test.txt") && fd.writable;
  }
  EXPECT_TRUE(fd1_is_file);
}

// `: | cmd` with the writer gone first: the reader gets a drained pipe. With
// `sleep` still holding the write end, the pipe is not drained.
TEST(TracerTest, ExecReportsDrainedPipes) {
  CountingSink sink;
  Tracer tracer(&sink);
  absl::StatusOr<int> status =
      tracer.Run({"/bin/sh", "-c", ": | { sleep 0.5; exec /bin/true; }; sleep 1 | exec /bin/true"});
  ASSERT_TRUE(status.ok()) << status.status();
  std::vector<bool> stdin_drained;
  for (const ExecEvent& exec : sink.execs) {
    if (exec.argv != std::vector<std::string>{"/bin/true"}) continue;
    for (const FdInfo& fd : exec.fds) {
      if (fd.fd == 0) stdin_drained.push_back(fd.kind == FdKind::kPipe && fd.drained);
    }
  }
  EXPECT_EQ(stdin_drained, (std::vector<bool>{true, false}));
}

}  // namespace
}  // namespace dodo::tracer
