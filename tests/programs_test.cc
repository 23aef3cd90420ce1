// Checks that each test program in //testdata/programs does what its header
// says when run natively, without dodo. The tracer's integration tests rely
// on that behaviour, so a failure there can then be blamed on the tracer.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
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

// rfc_gaps: one subcommand per file-system pattern of the vfs tests.
TEST_P(ProgramTest, RfcGapsFtruncateShrinksInPlace) {
  std::string dir = MakeTempDir();
  ASSERT_EQ(RunCommand({"/bin/sh", "-c", "head -c 100 /dev/zero > out.o"}, dir).exit_status, 0);
  RunResult result = RunCommand({Program("rfc_gaps"), "ftruncate", "out.o"}, dir);
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_EQ(ReadFile(dir + "/out.o"), "0123456789");
}

TEST_P(ProgramTest, RfcGapsAppendAndReadAt) {
  std::string dir = MakeTempDir();
  ASSERT_EQ(RunCommand({"/bin/sh", "-c", "printf 'first\\n' > log.txt"}, dir).exit_status, 0);
  RunResult append = RunCommand({Program("rfc_gaps"), "append", "log.txt", "second"}, dir);
  ASSERT_EQ(append.exit_status, 0) << append.err;
  EXPECT_EQ(ReadFile(dir + "/log.txt"), "first\nsecond");
  RunResult read = RunCommand({Program("rfc_gaps"), "readat", "log.txt", "6", "3"}, dir);
  EXPECT_EQ(read.exit_status, 0) << read.err;
  EXPECT_EQ(read.out, "sec");
  // Past the end it copies what there is.
  EXPECT_EQ(RunCommand({Program("rfc_gaps"), "readat", "log.txt", "9", "100"}, dir).out, "ond");
}

TEST_P(ProgramTest, RfcGapsPwriteFromThreads) {
  std::string file = MakeTempDir() + "/big.bin";
  RunResult result = RunCommand({Program("rfc_gaps"), "pwrite", file});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_EQ(ReadFile(file), std::string(4096, 'A') + std::string(4096, 'B'));
}

TEST_P(ProgramTest, RfcGapsInstallSetsTheMode) {
  std::string file = MakeTempDir() + "/tool";
  for (mode_t mode : {0755, 0700}) {
    char octal[8];
    snprintf(octal, sizeof(octal), "%o", mode);
    RunResult result = RunCommand({Program("rfc_gaps"), "install", file, octal});
    ASSERT_EQ(result.exit_status, 0) << result.err;
    EXPECT_EQ(ReadFile(file), "installed\n");
    struct stat st;
    ASSERT_EQ(stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, mode);
  }
}

TEST_P(ProgramTest, RfcGapsDup2SendsEverythingToTheFile) {
  std::string file = MakeTempDir() + "/out.txt";
  RunResult result = RunCommand({Program("rfc_gaps"), "dup2", file});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_EQ(result.out + result.err, "");
  EXPECT_EQ(ReadFile(file), "to stdout\nto stderr\nexec-ed\n");
}

TEST_P(ProgramTest, RfcGapsFsync) {
  std::string file = MakeTempDir() + "/f";
  RunResult result = RunCommand({Program("rfc_gaps"), "fsync", file});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_EQ(ReadFile(file), "synced\n");
}

TEST_P(ProgramTest, RfcGapsCounterUnderFlockFromTwoProcesses) {
  std::string dir = MakeTempDir();
  const std::string counter = "'" + Program("rfc_gaps") + "' counter n.txt 200";
  RunResult result = RunCommand(
      {"/bin/sh", "-c",
       "s=0; " + counter + " & pid=$!; " + counter + " || s=1; wait $pid || s=1; exit $s"},
      dir);
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_EQ(ReadFile(dir + "/n.txt"), "400\n");
}

TEST_P(ProgramTest, RfcGapsFailHalfWritesThenFails) {
  std::string file = MakeTempDir() + "/out.o";
  RunResult result = RunCommand({Program("rfc_gaps"), "fail-half", file});
  EXPECT_EQ(result.exit_status, 1);
  EXPECT_EQ(ReadFile(file), "partial" + std::string(43, '.'));
}

TEST_P(ProgramTest, RfcGapsPathsReportsWhereTheFileIs) {
  std::string dir = MakeTempDir();
  RunResult result = RunCommand({Program("rfc_gaps"), "paths", "out.bin", "report.txt"}, dir);
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_EQ(ReadFile(dir + "/out.bin"), "x");
  EXPECT_EQ(ReadFile(dir + "/report.txt"), dir + "\n" + dir + "/out.bin\n" + dir + "/out.bin\n");
}

TEST_P(ProgramTest, RfcGapsMtime) {
  std::string file = MakeTempDir() + "/header.h";
  ASSERT_EQ(RunCommand({"touch", "-d", "@1700000000", file}).exit_status, 0);
  RunResult result = RunCommand({Program("rfc_gaps"), "mtime", file});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_EQ(result.out, "1700000000\n");
}

TEST_P(ProgramTest, RfcGapsBadUsage) {
  EXPECT_EQ(RunCommand({Program("rfc_gaps")}).exit_status, 2);
  EXPECT_EQ(RunCommand({Program("rfc_gaps"), "nonsense"}).exit_status, 2);
  EXPECT_EQ(RunCommand({Program("rfc_gaps"), "readat", "f", "x", "1"}).exit_status, 2);
  EXPECT_EQ(RunCommand({Program("rfc_gaps"), "ftruncate", "/nonexistent/f"}).exit_status, 1);
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
