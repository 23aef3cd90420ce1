// `dodo trace` with the eBPF observer of lookups (the default, as root)
// against `dodo trace --no-bpf`, where every lookup traps: on the same
// programs in the same directory, the two traces must hold the same
// commands with the same operations, in the same order. The same for
// `dodo build`, whose default (writes in place) lets the lookups go
// untrapped too.
#include <unistd.h>

#include <regex>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/trace_loader.h"
#include "tests/trace_test_util.h"

namespace dodo::test {
namespace {

// One line per operation, under its command's argv; compiler temporaries
// (/tmp/ccAbc123.s) get one name, and so do pids (/proc/self -> "1234").
std::vector<std::string> Lines(const LoadedTrace& trace) {
  static const std::regex kTemporary("/tmp/cc[A-Za-z0-9]+|cc[A-Za-z0-9]{6}\\.[a-z]+|\"[0-9]+\"");
  std::vector<std::string> lines;
  for (const TracedCommand& command : trace.commands) {
    std::string argv;
    for (const std::string& arg : command.argv) argv += arg + " ";
    lines.push_back("command " + std::regex_replace(argv, kTemporary, "/tmp/cc*"));
    for (const TracedOp* op : trace.OpsOf(command.id)) {
      lines.push_back("  " + std::regex_replace(op->notation, kTemporary, "/tmp/cc*") + " by " +
                      op->syscall);
    }
  }
  return lines;
}

// What differs between two line lists: the lines only one of them has
// (counted), or else the first place where their order differs.
std::string Difference(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::multiset<std::string> only_a(a.begin(), a.end());
  std::multiset<std::string> only_b;
  for (const std::string& line : b) {
    auto it = only_a.find(line);
    if (it != only_a.end()) {
      only_a.erase(it);
    } else {
      only_b.insert(line);
    }
  }
  std::string text;
  for (const std::string& line : only_a) text += "only observed: " + line + "\n";
  for (const std::string& line : only_b) text += "only trapped: " + line + "\n";
  if (!text.empty()) return text;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (a[i] != b[i]) return "line " + std::to_string(i) + ": " + a[i] + "\n  against " + b[i];
  }
  return "";
}

// How many calls the observer reported, from `--stats`.
long ObservedCount(const std::string& err) {
  static const std::regex kObserved("([0-9]+) lookups from eBPF");
  std::smatch match;
  return std::regex_search(err, match, kObserved) ? std::stol(match[1]) : -1;
}

// Makes `dir` afresh, empty but for what `setup` (a shell command) puts there.
void Fresh(const std::string& dir, const std::string& setup) {
  RunResult made = RunCommand(
      {"/bin/sh", "-c", "rm -rf work && mkdir work && cd work && " + (setup.empty() ? ":" : setup)},
      dir.substr(0, dir.rfind('/')));
  ASSERT_EQ(made.exit_status, 0) << made.err;
}

// Runs `command` in a fresh `dir` (made by `setup`) both ways.
void ExpectSameTraces(const std::vector<std::string>& command, const std::string& setup) {
  const std::string dir = MakeTempDir() + "/work";
  auto fresh = [&] { Fresh(dir, setup); };
  fresh();
  TracedRun observed = TraceCommand(command, dir, {"--stats"});
  fresh();
  TracedRun trapped = TraceCommand(command, dir, {"--stats", "--no-bpf"});
  ASSERT_EQ(observed.exit_status, 0) << observed.err;
  ASSERT_EQ(trapped.exit_status, 0) << trapped.err;
  if (geteuid() == 0) {
    EXPECT_GT(ObservedCount(observed.err), 0) << observed.err;
  }
  EXPECT_EQ(ObservedCount(trapped.err), 0) << trapped.err;
  EXPECT_TRUE(observed.trace.warnings.empty()) << observed.trace.Dump();
  EXPECT_EQ(Difference(Lines(observed.trace), Lines(trapped.trace)), "");
}

// A first `dodo build` of `command` in a fresh directory, with and without
// the observer: the same trace (.dodo/trace), and the same files.
void ExpectSameBuilds(const std::vector<std::string>& command) {
  const std::string dir = MakeTempDir() + "/work";
  std::vector<std::string> build = {DodoPath(), "build", "--stats", "--no-background-plan", "--"};
  build.insert(build.end(), command.begin(), command.end());
  std::vector<std::string> trapped_build = build;
  trapped_build.insert(trapped_build.begin() + 2, "--no-bpf");
  const std::string list = "find . -path ./.dodo -prune -o -type f -print | sort | xargs md5sum";

  Fresh(dir, "");
  RunResult observed = RunCommand(build, dir);
  ASSERT_EQ(observed.exit_status, 0) << observed.err;
  const LoadedTrace observed_trace = LoadTrace(dir + "/.dodo/trace");
  const std::string observed_files = RunCommand({"/bin/sh", "-c", list}, dir).out;
  Fresh(dir, "");
  RunResult trapped = RunCommand(trapped_build, dir);
  ASSERT_EQ(trapped.exit_status, 0) << trapped.err;
  const LoadedTrace trapped_trace = LoadTrace(dir + "/.dodo/trace");

  if (geteuid() == 0) {
    EXPECT_GT(ObservedCount(observed.err), 0) << observed.err;
  }
  EXPECT_EQ(ObservedCount(trapped.err), 0) << trapped.err;
  EXPECT_TRUE(observed_trace.warnings.empty()) << observed_trace.Dump();
  EXPECT_EQ(Difference(Lines(observed_trace), Lines(trapped_trace)), "");
  EXPECT_EQ(observed_files, RunCommand({"/bin/sh", "-c", list}, dir).out);
  EXPECT_NE(observed_files.find("./a.o"), std::string::npos)
      << observed_files << RunCommand({"/bin/sh", "-c", "pwd; ls -la; " + list}, dir).out;
}

TEST(ObserverEquivalenceTest, FileOps) {
  ExpectSameTraces({ProgramPath("file_ops"), "."}, "");
  ExpectSameTraces({ProgramPath("file_ops_static"), "."}, "");
}

TEST(ObserverEquivalenceTest, GoProgram) { ExpectSameTraces({ProgramPath("gofiles"), "."}, ""); }

TEST(ObserverEquivalenceTest, ShellCompilerAndRfcGaps) {
  const std::string script =
      "mkdir -p inc sub && echo \"#define GREETING 1\" > inc/greeting.h && "
      "ln -s inc linked && echo \"#include <greeting.h>\" > a.c && cat \"$SOURCE\" >> a.c && "
      "gcc -Ilinked -Isub -c a.c -o a.o && test -e a.o && "
      "\"$SPAWN\" /bin/cat a.c > copy.c && \"$GAPS\" dup2 out.txt && "
      "\"$GAPS\" readat copy.c 2 5 > part.txt && ls -l . > listing.txt && rm -f a.o";
  const std::string vars = "SOURCE=" + RunfilePath("testdata/hello/a.c") +
                           " SPAWN=" + ProgramPath("spawn") + " GAPS=" + ProgramPath("rfc_gaps");
  ExpectSameTraces({"/usr/bin/env", "sh", "-c", vars + " sh -c '" + script + "'"}, "");
}

// A build that compiles through a symlinked -I, rewrites a file and fails
// one command on the way (so that its output is put back).
TEST(ObserverEquivalenceTest, BuildWritingInPlace) {
  const std::string script =
      "mkdir -p inc && echo \"#define GREETING 1\" > inc/greeting.h && ln -s inc linked && "
      "echo \"#include <greeting.h>\" > a.c && cat \"$SOURCE\" >> a.c && gcc -Ilinked -c a.c -o "
      "a.o && echo one > log && "
      "echo two >> log && (echo half > log; exit 1) || stat -c %s log > size.txt && "
      "\"$GAPS\" readat a.c 2 5 > part.txt && ls . > listing.txt";
  const std::string vars =
      "SOURCE=" + RunfilePath("testdata/hello/a.c") + " GAPS=" + ProgramPath("rfc_gaps");
  ExpectSameBuilds({"/usr/bin/env", "sh", "-c", vars + " sh -c '" + script + "'"});
}

}  // namespace
}  // namespace dodo::test
