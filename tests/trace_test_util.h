// Helpers for dodo's integration tests: locating the dodo binary and the
// test programs in Bazel's runfiles, running a command with its output
// captured, and making scratch directories.
#ifndef DODO_TESTS_TRACE_TEST_UTIL_H_
#define DODO_TESTS_TRACE_TEST_UTIL_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dodo::test {

// Absolute path of a file in this test's runfiles, given its path relative to
// the workspace root (e.g. "cli/dodo"). Under `bazel test` that is
// $TEST_SRCDIR/$TEST_WORKSPACE/<path>; outside it, $RUNFILES_DIR or the
// binary's own <exe>.runfiles tree. The file must be in the test's `data`.
std::string RunfilePath(std::string_view workspace_relative);

// The dodo binary; the test needs data = ["//cli:dodo"].
std::string DodoPath();

// A program from //testdata/programs, e.g. ProgramPath("file_ops_static");
// the test needs data = ["//testdata/programs:<name>"].
std::string ProgramPath(std::string_view name);

struct RunResult {
  // The exit code, or 128 + signal number if the process was killed by a
  // signal (like a shell's $?). 127 if the program could not be started, with
  // the reason in `err`.
  int exit_status = -1;
  std::string out;
  std::string err;
};

// Runs argv (argv[0] is looked up in PATH if it has no slash) with stdin from
// /dev/null, in `cwd` if it is not empty, and captures stdout and stderr.
// Returns once the process has exited and both pipes are closed, so it also
// waits for any descendant that keeps them open (e.g. a daemon).
// (Not called Run: inside a TEST body that name finds testing::Test::Run.)
RunResult RunCommand(const std::vector<std::string>& argv, const std::string& cwd = "");

// Creates a new empty directory under $TEST_TMPDIR (or /tmp) and returns its
// absolute path. Aborts on failure: no test can go on without it.
std::string MakeTempDir();

// The whole content of a file, or std::nullopt if it cannot be read; for
// checking what a traced program wrote.
std::optional<std::string> ReadFile(const std::string& path);

}  // namespace dodo::test

#endif  // DODO_TESTS_TRACE_TEST_UTIL_H_
