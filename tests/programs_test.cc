// Checks that each test program in //testdata/programs does what its header
// says when run natively, without dodo. The tracer's integration tests rely
// on that behaviour, so a failure there can then be blamed on the tracer.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "tests/trace_test_util.h"

namespace dodo::test {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Each C program is built twice; the parameter is the target-name suffix.
class ProgramTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::string Program(const std::string& name) { return ProgramPath(name + GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(Linking, ProgramTest, ::testing::Values("", "_static"),
                         [](const auto& info) {
                           return info.param.empty() ? "dynamic" : "static";
                         });

TEST_P(ProgramTest, FileOps) {
  std::string dir = MakeTempDir();
  RunResult result = RunCommand({Program("file_ops"), dir});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_EQ(ReadFile(dir + "/in.txt"), "input data\n");
  EXPECT_EQ(ReadFile(dir + "/renamed.txt"), "hello");  // Truncated to 5 bytes.
  EXPECT_EQ(ReadFile(dir + "/link"), "hello");         // Follows the symlink.
  EXPECT_FALSE(Exists(dir + "/out.txt"));
  EXPECT_FALSE(Exists(dir + "/hard.txt"));
  EXPECT_FALSE(Exists(dir + "/sub"));
  struct stat st;
  ASSERT_EQ(stat((dir + "/renamed.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1000000000);
}

TEST_P(ProgramTest, Threads) {
  std::string dir = MakeTempDir();
  RunResult result = RunCommand({Program("threads"), dir});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  for (int i = 0; i < 4; ++i) {
    std::string n = std::to_string(i);
    EXPECT_EQ(ReadFile(dir + "/thread-" + n + ".txt"), "thread " + n + "\n");
  }
}

TEST_P(ProgramTest, ExecFromThreadBecomesTheProgram) {
  RunResult result =
      RunCommand({Program("exec_from_thread"), "/bin/sh", "-c", "echo replaced; exit 7"});
  EXPECT_EQ(result.exit_status, 7) << result.err;
  EXPECT_EQ(result.out, "replaced\n");
}

TEST_P(ProgramTest, SpawnPassesExitStatusAndSignals) {
  EXPECT_EQ(RunCommand({Program("spawn"), "/bin/sh", "-c", "exit 5"}).exit_status, 5);
  EXPECT_EQ(RunCommand({Program("spawn"), "/bin/sh", "-c", "kill -9 $$"}).exit_status, 128 + 9);
  EXPECT_EQ(RunCommand({Program("spawn"), "/nonexistent"}).exit_status, 127);
}

TEST_P(ProgramTest, DaemonWritesAfterOriginalExited) {
  std::string file = MakeTempDir() + "/daemon.txt";
  RunResult result = RunCommand({Program("daemon"), file});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  // The grandchild sleeps 300 ms first; RunCommand returned as soon as the
  // original exited because the grandchild dropped our pipes.
  EXPECT_FALSE(Exists(file));
  for (int i = 0; i < 100 && !ReadFile(file).has_value(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(ReadFile(file), "daemon was here\n");
}

TEST_P(ProgramTest, IoUringReportsWhatItGot) {
  // Natively io_uring either works (exit 1) or is disabled by the kernel
  // (e.g. ENOSYS when compiled out: exit 0); either way it says so.
  RunResult result = RunCommand({Program("io_uring")});
  EXPECT_TRUE(result.exit_status == 0 || result.exit_status == 1) << result.exit_status;
  EXPECT_TRUE(result.out.starts_with("io_uring_setup: result=")) << result.out;
}

TEST_P(ProgramTest, Int80IsNotRefusedNatively) {
  // Without a tracer the i386 getpid succeeds (exit 1). A kernel built or
  // booted without IA32 emulation kills the process with SIGSEGV instead.
  RunResult result = RunCommand({Program("int80")});
  EXPECT_TRUE(result.exit_status == 1 || result.exit_status == 128 + SIGSEGV)
      << result.exit_status << " " << result.out;
}

TEST_P(ProgramTest, SegvDiesOfSigsegv) {
  EXPECT_EQ(RunCommand({Program("segv")}).exit_status, 128 + SIGSEGV);
}

TEST_P(ProgramTest, PwriteThreads) {
  std::string file = MakeTempDir() + "/pwrite.bin";
  RunResult result = RunCommand({Program("pwrite_threads"), file});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_EQ(ReadFile(file), std::string(4096, 'A') + std::string(4096, 'B'));
}

TEST(GoProgramTest, GoFiles) {
  std::string dir = MakeTempDir();
  RunResult result = RunCommand({ProgramPath("gofiles"), dir});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_EQ(ReadFile(dir + "/gen/final.txt"), "hello from go\n");
  EXPECT_EQ(ReadFile(dir + "/gen/link"), "hello from go\n");
  EXPECT_FALSE(Exists(dir + "/gen/tmp.txt"));
}

}  // namespace
}  // namespace dodo::test
