// Acceptance: system calls dodo cannot follow faithfully (io_uring, the
// 32-bit int 0x80 ABI) fail with ENOSYS and leave a warning in the trace.
#include <string>

#include "gtest/gtest.h"
#include "tests/trace_loader.h"
#include "tests/trace_test_util.h"

namespace dodo::test {
namespace {

class RefusedTest : public ::testing::TestWithParam<std::pair<const char*, const char*>> {};

TEST_P(RefusedTest, GetsEnosysAndTheTraceWarns) {
  const auto [program, expected_in_warning] = GetParam();
  const std::string dir = MakeTempDir();
  TracedRun run = TraceCommand({ProgramPath(program)}, dir);
  // The programs exit 0 exactly when their call failed with ENOSYS.
  EXPECT_EQ(run.exit_status, 0) << run.out << run.err;
  ASSERT_FALSE(run.trace.warnings.empty()) << run.trace.Dump();
  bool named = false;
  for (const proto::Warning& w : run.trace.warnings) {
    if (w.message().find(expected_in_warning) != std::string::npos ||
        w.syscall().find(expected_in_warning) != std::string::npos) {
      named = true;
      EXPECT_NE(w.command(), 0u);
    }
  }
  EXPECT_TRUE(named) << run.trace.Dump();
  // `dodo log` shows the warning too.
  RunResult log = RunCommand({DodoPath(), "log", run.trace_path});
  EXPECT_EQ(log.exit_status, 0);
  EXPECT_NE(log.out.find("warning"), std::string::npos) << log.out;
}

INSTANTIATE_TEST_SUITE_P(Programs, RefusedTest,
                         ::testing::Values(std::make_pair("io_uring", "io_uring_setup"),
                                           std::make_pair("io_uring_static", "io_uring_setup"),
                                           std::make_pair("int80", "int 0x80"),
                                           std::make_pair("int80_static", "int 0x80")));

}  // namespace
}  // namespace dodo::test
