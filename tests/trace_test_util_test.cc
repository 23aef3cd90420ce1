// Tests of the integration-test helpers themselves, so that a failing tracer
// test can be trusted to be about the tracer.
#include "tests/trace_test_util.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <string>

#include "gtest/gtest.h"

namespace dodo::test {
namespace {

TEST(RunTest, CapturesStdoutStderrAndExitCode) {
  RunResult result = RunCommand({"/bin/sh", "-c", "echo hi; echo err >&2; exit 3"});
  EXPECT_EQ(result.exit_status, 3);
  EXPECT_EQ(result.out, "hi\n");
  EXPECT_EQ(result.err, "err\n");
}

TEST(RunTest, SignalDeathIs128PlusSignal) {
  RunResult result = RunCommand({"/bin/sh", "-c", "kill -9 $$"});
  EXPECT_EQ(result.exit_status, 128 + 9);
}

TEST(RunTest, LargeOutputOnBothPipesDoesNotDeadlock) {
  // Each stream is far larger than a pipe buffer (64 KiB), and stdout is
  // written completely before stderr, so a reader that drained stdout first
  // would still work; the reverse order checks the other direction.
  RunResult result =
      RunCommand({"/bin/sh", "-c", "head -c 1000000 /dev/zero >&2; head -c 700000 /dev/zero"});
  EXPECT_EQ(result.exit_status, 0);
  EXPECT_EQ(result.err.size(), 1000000u);
  EXPECT_EQ(result.out.size(), 700000u);
}

TEST(RunTest, RunsInGivenDirectory) {
  std::string dir = MakeTempDir();
  RunResult result = RunCommand({"pwd", "-P"}, dir);
  EXPECT_EQ(result.exit_status, 0);
  EXPECT_EQ(result.out, dir + "\n");
}

TEST(RunTest, StdinIsEmpty) {
  RunResult result = RunCommand({"cat"});
  EXPECT_EQ(result.exit_status, 0);
  EXPECT_EQ(result.out, "");
}

TEST(RunTest, MissingProgramIs127) {
  RunResult result = RunCommand({"/nonexistent/program"});
  EXPECT_EQ(result.exit_status, 127);
  EXPECT_NE(result.err.find("/nonexistent/program"), std::string::npos) << result.err;
}

TEST(MakeTempDirTest, CreatesDistinctEmptyDirectories) {
  std::string a = MakeTempDir();
  std::string b = MakeTempDir();
  EXPECT_NE(a, b);
  struct stat st;
  ASSERT_EQ(stat(a.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(a[0], '/');
}

TEST(ReadFileTest, ReadsContentAndReportsMissingFiles) {
  std::string dir = MakeTempDir();
  ASSERT_EQ(RunCommand({"/bin/sh", "-c", "printf 'a\\0b' > f"}, dir).exit_status, 0);
  EXPECT_EQ(ReadFile(dir + "/f"), std::string("a\0b", 3));
  EXPECT_EQ(ReadFile(dir + "/missing"), std::nullopt);
}

TEST(RunfilesTest, FindsTestPrograms) {
  // file_ops is in this test's data, so it must be in the runfiles tree.
  std::string dir = MakeTempDir();
  RunResult result = RunCommand({ProgramPath("file_ops"), dir});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_EQ(ReadFile(dir + "/renamed.txt"), "hello");  // Truncated to 5 bytes.
}

TEST(RunfilesTest, DodoPathIsInRunfiles) {
  // Not in this test's data (the tracer is tested elsewhere): only the shape.
  std::string path = DodoPath();
  EXPECT_TRUE(path.ends_with("/dodo/cli/dodo")) << path;
}

}  // namespace
}  // namespace dodo::test
