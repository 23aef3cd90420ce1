// Acceptance: `dodo log` through the real binary on real traces: the
// notation, --json, --command, a trace cut short, and a file that is not a
// trace.
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/trace_loader.h"
#include "tests/trace_test_util.h"

namespace dodo::test {
namespace {

using ::testing::HasSubstr;

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    run_ = TraceCommand({"/bin/sh", "-c", "echo text > made.txt; cat made.txt > copy.txt"}, dir_);
    ASSERT_EQ(run_.exit_status, 0) << run_.err;
  }
  std::string dir_;
  TracedRun run_;
};

TEST_F(LogTest, PrintsCommandsAndOperationsInTheNotation) {
  RunResult log = RunCommand({DodoPath(), "log", run_.trace_path});
  ASSERT_EQ(log.exit_status, 0) << log.err;
  EXPECT_THAT(log.out, HasSubstr("W(TRUNC(LINK_IF_NEEDED(NEWFILE, \"made.txt\", "));
  EXPECT_THAT(log.out, HasSubstr("R(GET(\"made.txt\", "));
  EXPECT_THAT(log.out, HasSubstr("cat made.txt"));  // the header line shows argv
}

TEST_F(LogTest, JsonIsOneObjectPerOperation) {
  RunResult log = RunCommand({DodoPath(), "log", "--json", run_.trace_path});
  ASSERT_EQ(log.exit_status, 0) << log.err;
  size_t lines = 0, writes = 0;
  std::stringstream stream(log.out);
  for (std::string line; std::getline(stream, line);) {
    EXPECT_EQ(line.front(), '{');
    EXPECT_EQ(line.back(), '}');
    if (line.find("\"type\":\"operation\"") == std::string::npos) continue;
    ++lines;
    if (line.find("\"kind\":\"WRITE\"") != std::string::npos &&
        line.find(dir_ + "/copy.txt") != std::string::npos) {
      ++writes;
    }
  }
  EXPECT_EQ(lines, run_.trace.ops.size());
  // The shell opens copy.txt for the redirection and cat inherits it as
  // its stdout: both write it.
  EXPECT_EQ(writes, 2u) << log.out;
}

TEST_F(LogTest, CommandFilterKeepsOneCommand) {
  std::vector<const TracedCommand*> cat = run_.trace.CommandsRunning("cat");
  ASSERT_EQ(cat.size(), 1u);
  RunResult log = RunCommand(
      {DodoPath(), "log", "--json", "--command", std::to_string(cat[0]->id), run_.trace_path});
  ASSERT_EQ(log.exit_status, 0) << log.err;
  EXPECT_THAT(log.out, HasSubstr("made.txt"));
  EXPECT_THAT(log.out,
              ::testing::Not(HasSubstr("\"command\":" + std::to_string(cat[0]->parent) + ",")));
}

TEST_F(LogTest, TruncatedTracePrintsWholeRecordsAndWarns) {
  std::optional<std::string> bytes = ReadFile(run_.trace_path);
  ASSERT_TRUE(bytes.has_value());
  const std::string cut = dir_ + "/cut.trace";
  int fd = open(cut.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  // Cut into the last records (the trailer and the commands' ends).
  const size_t keep = bytes->size() - 12;
  ASSERT_EQ(write(fd, bytes->data(), keep), static_cast<ssize_t>(keep));
  close(fd);
  RunResult log = RunCommand({DodoPath(), "log", cut});
  EXPECT_EQ(log.exit_status, 0);
  EXPECT_THAT(log.err, HasSubstr("cut.trace"));
  EXPECT_THAT(log.out, HasSubstr("W(TRUNC(LINK_IF_NEEDED(NEWFILE, \"made.txt\""));
}

TEST_F(LogTest, NotATraceIsAOneLineErrorWithStatus2) {
  const std::string bogus = dir_ + "/made.txt";
  RunResult log = RunCommand({DodoPath(), "log", bogus});
  EXPECT_EQ(log.exit_status, 2);
  EXPECT_THAT(log.err, HasSubstr(bogus));
  EXPECT_EQ(std::count(log.err.begin(), log.err.end(), '\n'), 1) << log.err;
  RunResult missing = RunCommand({DodoPath(), "log", dir_ + "/nope.trace"});
  EXPECT_EQ(missing.exit_status, 2);
  EXPECT_THAT(missing.err, HasSubstr("nope.trace"));
}

}  // namespace
}  // namespace dodo::test
