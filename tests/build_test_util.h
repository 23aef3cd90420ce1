// Helpers for the `dodo build` scenario tests: scratch copies of the projects
// in testdata/scenarios, running `dodo build` and `dodo why -q` in them, naming
// the commands of .dodo/trace so that tests can compare which ones ran, and
// the edit-then-rebuild scenario every test follows (RunScenario).
#ifndef DODO_TESTS_BUILD_TEST_UTIL_H_
#define DODO_TESTS_BUILD_TEST_UTIL_H_

#include <functional>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tests/trace_loader.h"
#include "tests/trace_test_util.h"

namespace dodo::test {

// Extra environment variables for dodo, as "NAME=value" entries.
using Env = std::vector<std::string>;

// One `dodo build`: how dodo exited and the .dodo/trace it left behind.
struct BuildRun {
  RunResult run;
  // The trace the build left. When it kept the last one (it ran nothing and
  // restored nothing), every command in it is marked restored here.
  LoadedTrace trace;
  bool trace_kept = false;
};

// A scratch copy of a project. The edit methods fail the current test (without
// aborting it) when the file system refuses them.
class Project {
 public:
  // Copies testdata/scenarios/<scenario> into a new temporary directory; the
  // test needs data = ["//testdata/scenarios:<scenario>"].
  static Project Copy(std::string_view scenario);

  explicit Project(std::string dir) : dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }
  std::string Path(std::string_view relative) const;

  // Runs `dodo build args...` in the project, under /usr/bin/env when `env`
  // adds variables, and loads .dodo/trace afterwards.
  BuildRun Build(const std::vector<std::string>& args = {}, const Env& env = {}) const;
  // `dodo why -q`'s exit status: 0 when up to date, 1 when something must
  // rerun or be restored. Expects it to print nothing.
  int WhyQuiet() const;
  // Runs a program the build produced (e.g. "prog") and returns its stdout.
  std::string RunProgram(std::string_view relative) const;

  std::optional<std::string> Read(std::string_view relative) const;
  void Write(std::string_view relative, std::string_view content) const;
  void Append(std::string_view relative, std::string_view content) const;
  // Replaces the first occurrence of `from`, which must be there.
  void Replace(std::string_view relative, std::string_view from, std::string_view to) const;
  // With must_exist false, a missing file is not an error: edits are applied
  // both to a built tree and to a fresh copy that has no outputs yet.
  void Remove(std::string_view relative, bool must_exist = true) const;
  void Rename(std::string_view from, std::string_view to) const;
  // Makes `relative` a symlink to `target`, replacing any existing link.
  void Symlink(std::string_view relative, std::string_view target) const;
  // Moves the file's mtime ten seconds on without changing its content.
  void Touch(std::string_view relative) const;

 private:
  std::string dir_;
};

// How tests name a command of a trace: "root" for the command without a
// parent; for gcc, "gcc -c <source>" when it compiles and "gcc -o <output>"
// when it links; for the tools below a gcc (cc1, as, collect2, ld), that gcc's
// name, " > " and the tool's; otherwise the basename of argv[0] ("cat").
std::string CommandLabel(const LoadedTrace& trace, const TracedCommand& command);
// The labels of the commands that ran (restored == false).
std::multiset<std::string> RanLabels(const LoadedTrace& trace);
// The labels of all commands of the build, run or restored.
std::multiset<std::string> AllLabels(const LoadedTrace& trace);
// The labels of the dormant commands: kept from an earlier build, not part
// of this one (proto::CommandStart.dormant).
std::multiset<std::string> DormantLabels(const LoadedTrace& trace);
// One line per command: id, parent, ran/restored, label and argv; for
// failure messages, next to LoadedTrace::Dump().
std::string DescribeCommands(const LoadedTrace& trace);

// The labels of compiling `source` with `gcc -c`: gcc, cc1 and as.
std::vector<std::string> Compile(std::string_view source);
// gcc and cc1 only: a compile whose assembly came out as before, so that its
// `as`, matched up to its random input name, was skipped.
std::vector<std::string> CompileToSameAssembly(std::string_view source);
// The labels of linking `output` with gcc: gcc, collect2 and ld.
std::vector<std::string> Link(std::string_view output);
// Gathers groups of labels into one multiset, e.g.
// Labels({{"root"}, Compile("a.c"), Link("prog")}).
std::multiset<std::string> Labels(std::initializer_list<std::vector<std::string>> groups);

// Expects each path to hold the same bytes in both projects, or to be
// missing from both.
void ExpectSameFiles(const Project& actual, const Project& expected,
                     const std::vector<std::string>& paths);

// An incremental build scenario: build a copy of `project`, apply `edit`, build
// again, and check that exactly `expected_rerun` ran and that `outputs` equal a
// clean build of an edited copy.
// Every member has a default so that tests name only what they set
// (designated initializers, without -Wmissing-field-initializers noise).
struct Scenario {
  std::string project = {};                          // a directory of testdata/scenarios
  std::vector<std::string> build_args = {};          // after `dodo build`, e.g. {"--", "make"}
  std::function<void(const Project&)> prepare = {};  // on each copy before any build
  Env env = {};                                      // for the first build
  bool first_build_fails = false;                    // the first build must exit non-zero
  std::function<void(const Project&)> edit = {};     // none: the tree is left as built
  Env edited_env = {};                               // for every build after the edit
  std::multiset<std::string> expected_rerun = {};
  std::vector<std::string> outputs = {};  // compared with the clean build's
  // What `dodo why -q` must answer after the edit (and 0 after the rebuild);
  // std::nullopt skips both checks (e.g. when the edit is to dodo's own
  // environment, which `dodo why` does not get here).
  std::optional<int> why_after_edit = 1;
  // Whether the rebuild's trace lists every command of a clean build, run or
  // restored. Not under make, which itself leaves out the commands it finds
  // up to date by their mtimes: they are not even started, so not restored.
  bool lists_whole_build = true;
};

// The two trees of a scenario, for checks of their own.
struct ScenarioResult {
  Project incremental{""};  // built, edited, rebuilt
  Project clean{""};        // edited, then built once
  BuildRun first;
  BuildRun second;
  BuildRun clean_build;
};

// Runs the scenario and checks, with non-fatal expectations:
// - the first build's exit status, and that it ran every command;
// - `dodo why -q` after the edit, when asked for;
// - the rebuild exits 0 and ran exactly `expected_rerun`;
// - its trace lists the same commands (ran or restored) as the clean build's,
//   if `lists_whole_build`;
// - `outputs` are byte-identical to the clean build's;
// - afterwards the tree is up to date: `dodo why -q` exits 0 and one more
//   `dodo build` runs nothing.
ScenarioResult RunScenario(const Scenario& scenario);

}  // namespace dodo::test

#endif  // DODO_TESTS_BUILD_TEST_UTIL_H_
