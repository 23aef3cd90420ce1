// Acceptance: `dodo build` rebuilds incrementally. Each test copies a project
// from testdata/scenarios, builds it, edits it, builds it again, and checks
// which commands reran (those .dodo/trace does not mark `restored`) and that
// the outputs equal a clean build of the edited tree (see RunScenario in
// build_test_util.h).
//
// Commands are named by CommandLabel: "root" is the Dodofile (or make),
// Compile("a.c") is `gcc -c a.c` with its cc1 and as, Link("prog") is the gcc
// that links prog with its collect2 and ld.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "model/trace_reader.h"
#include "tests/build_test_util.h"
#include "tests/trace_loader.h"
#include "tests/trace_test_util.h"

namespace dodo::test {
namespace {

const std::multiset<std::string> kNothing;

// What the C projects (c_build, include_order, symlink) produce.
const std::vector<std::string> kCOutputs = {"a.o", "b.o", "prog"};

// 1. A real change to a.c recompiles a.c and relinks; b.c's compile stays.
TEST(BuildScenariosTest, CodeChangeRecompilesOneFileAndRelinks) {
  ScenarioResult result = RunScenario({
      .project = "c_build",
      .edit = [](const Project& p) { p.Replace("a.c", "return 41;", "return 42;"); },
      .expected_rerun = Labels({{"root"}, Compile("a.c"), Link("prog")}),
      .outputs = kCOutputs,
  });
  EXPECT_EQ(result.incremental.RunProgram("prog"), "42\n");
}

// The temporary assembly file of `gcc -c source` in `trace`: the one its
// cc1 wrote (`program` "cc1") or its as read ("as").
std::string TempNameIn(const LoadedTrace& trace, std::string_view program,
                       std::string_view source) {
  for (const TracedCommand* command : trace.CommandsRunning(program)) {
    const std::vector<std::string>& argv = command->argv;
    if (program == "as" && !argv.empty() && argv.back().starts_with("/tmp/")) {
      const TracedCommand* gcc = trace.Command(command->parent);
      if (gcc != nullptr && CommandLabel(trace, *gcc) == "gcc -c " + std::string(source)) {
        return argv.back();
      }
    }
    if (program == "cc1" && std::find(argv.begin(), argv.end(), source) != argv.end()) {
      auto o = std::find(argv.begin(), argv.end(), "-o");
      if (o != argv.end() && o + 1 != argv.end()) return *(o + 1);
    }
  }
  return "";
}

// 2. Early cutoff: without -g a comment does not change a.o, so the link that
// reads a.o is skipped. So is the assembler: the rerun cc1 wrote the same
// assembly, under another random name. Its records are copied under that
// name, the one this build's cc1 wrote, so the next build is a no-op.
TEST(BuildScenariosTest, CommentOnlyEditStopsAtTheIdenticalObject) {
  ScenarioResult result = RunScenario({
      .project = "c_build",
      .edit = [](const Project& p) { p.Append("a.c", "/* comment */\n"); },
      .expected_rerun = Labels({{"root"}, CompileToSameAssembly("a.c")}),
      .outputs = kCOutputs,
  });
  const std::string before = TempNameIn(result.first.trace, "as", "a.c");
  const std::string now = TempNameIn(result.second.trace, "cc1", "a.c");
  ASSERT_FALSE(before.empty()) << result.first.trace.Dump();
  ASSERT_FALSE(now.empty()) << result.second.trace.Dump();
  EXPECT_NE(before, now);
  EXPECT_EQ(TempNameIn(result.second.trace, "as", "a.c"), now) << result.second.trace.Dump();
  const std::vector<const TracedOp*> reads = result.second.trace.Find(
      [&](const TracedOp& op) { return op.kind == proto::READ && op.path == now; });
  EXPECT_EQ(reads.size(), 1u) << "the skipped as reads what the new cc1 wrote\n"
                              << result.second.trace.Dump();
  EXPECT_TRUE(
      result.second.trace.Find([&](const TracedOp& op) { return op.path == before; }).empty())
      << "nothing in the new trace names the last build's temporary\n"
      << result.second.trace.Dump();
}

// A source that mktemp names at random is compiled where gcc names the
// object after it, and a rename gives the object a fixed name. The compile
// matches the last build's up to the temporary name, but its object does not
// keep its name: a skip would bring back the last build's object under the
// last build's name, and the rename would find nothing.
TEST(BuildScenariosTest, ObjectNamedAfterARenamedTemporaryIsMadeAgain) {
  Project project = Project::Copy("temp_named_source");
  BuildRun first = project.Build();
  ASSERT_EQ(first.run.exit_status, 0) << first.run.err;
  project.Append("Dodofile", "# edited\n");
  BuildRun second = project.Build();
  EXPECT_EQ(second.run.exit_status, 0) << second.run.err;
  EXPECT_EQ(project.Read("out.txt"), "compiled from a temporary\n");
  const std::vector<const TracedCommand*> compiles = second.trace.CommandsRunning("cc1");
  ASSERT_EQ(compiles.size(), 1u) << second.trace.Dump();
  EXPECT_FALSE(compiles[0]->restored) << "the compile was skipped\n"
                                      << DescribeCommands(second.trace);
  EXPECT_EQ(project.WhyQuiet(), 0);
}

// A real change gives other assembly: the assembler runs, under its new name.
TEST(BuildScenariosTest, ChangedAssemblyRunsTheAssembler) {
  RunScenario({
      .project = "c_build",
      .edit = [](const Project& p) { p.Replace("a.c", "return 41;", "return 40;"); },
      .expected_rerun = Labels({{"root"}, Compile("a.c"), Link("prog")}),
      .outputs = kCOutputs,
  });
}

// 3. An unchanged tree: nothing runs and `dodo why -q` says up to date.
TEST(BuildScenariosTest, NoChangeRunsNothing) {
  RunScenario({
      .project = "c_build",
      .expected_rerun = kNothing,
      .outputs = kCOutputs,
      .why_after_edit = 0,
  });
}

// New mtimes on a source and on the Dodofile change nothing: the commands
// that look at them read them too, and their contents are the same.
TEST(BuildScenariosTest, TouchIsNotAChange) {
  RunScenario({
      .project = "c_build",
      .edit =
          [](const Project& p) {
            p.Touch("a.c");
            p.Touch("Dodofile");
          },
      .expected_rerun = kNothing,
      .outputs = kCOutputs,
      .why_after_edit = 0,
  });
}

// 4. A deleted output comes back from the store; nothing reruns. (The clean
// copy has no output to delete yet, hence must_exist false.)
TEST(BuildScenariosTest, DeletedObjectIsRestored) {
  RunScenario({
      .project = "c_build",
      .edit = [](const Project& p) { p.Remove("a.o", /*must_exist=*/false); },
      .expected_rerun = kNothing,
      .outputs = kCOutputs,
  });
}

TEST(BuildScenariosTest, DeletedProgramIsRestored) {
  RunScenario({
      .project = "c_build",
      .edit = [](const Project& p) { p.Remove("prog", /*must_exist=*/false); },
      .expected_rerun = kNothing,
      .outputs = kCOutputs,
  });
}

// 5. A hand-edited output is replaced by the built version; nothing reruns.
TEST(BuildScenariosTest, HandEditedOutputIsRestored) {
  ScenarioResult result = RunScenario({
      .project = "c_build",
      .edit = [](const Project& p) { p.Write("prog", "garbage\n"); },
      .expected_rerun = kNothing,
      .outputs = kCOutputs,
  });
  EXPECT_EQ(result.incremental.RunProgram("prog"), "41\n");
}

// 6. a.c's "config.h" was found in inc2/ after a failed lookup in inc1/; a
// config.h added to inc1/ now comes first.
TEST(BuildScenariosTest, HeaderAddedEarlierOnTheIncludePathShadowsTheOldOne) {
  ScenarioResult result = RunScenario({
      .project = "include_order",
      .edit = [](const Project& p) { p.Write("inc1/config.h", "#define VALUE 2\n"); },
      .expected_rerun = Labels({{"root"}, Compile("a.c"), Link("prog")}),
      .outputs = kCOutputs,
  });
  EXPECT_EQ(result.clean.RunProgram("prog"), "value 2\n");
  EXPECT_EQ(result.incremental.RunProgram("prog"), "value 2\n");
}

// b.c's lookup of opt/greeting.h in inc1/ failed at "opt", and the trace
// keeps just that: inc1/ had no opt. A new inc1/opt/greeting.h is found
// first now, and only b.c's compile (then the link) must see it.
TEST(BuildScenariosTest, HeaderAddedInANewDirectoryEarlierOnTheIncludePath) {
  ScenarioResult result = RunScenario({
      .project = "include_order",
      .edit =
          [](const Project& p) {
            ASSERT_EQ(mkdir((p.dir() + "/inc1/opt").c_str(), 0755), 0);
            p.Write("inc1/opt/greeting.h", "#define GREETING \"shadowed\"\n");
          },
      .expected_rerun = Labels({{"root"}, Compile("b.c"), Link("prog")}),
      .outputs = kCOutputs,
  });
  EXPECT_EQ(result.clean.RunProgram("prog"), "shadowed 1\n");
  EXPECT_EQ(result.incremental.RunProgram("prog"), "shadowed 1\n");
}

// 7-9. The shell expands parts/*.txt: a new, deleted or renamed part changes
// what cat reads. Deleted and renamed inputs must stay as the edit left them.
TEST(BuildScenariosTest, FileAddedToAWildcard) {
  ScenarioResult result = RunScenario({
      .project = "wildcard",
      .edit = [](const Project& p) { p.Write("parts/c.txt", "charlie\n"); },
      .expected_rerun = Labels({{"root", "cat"}}),
      .outputs = {"all.txt"},
  });
  EXPECT_EQ(result.incremental.Read("all.txt"), "alpha\nbravo\ncharlie\ndelta\n");
}

TEST(BuildScenariosTest, DeletedInput) {
  ScenarioResult result = RunScenario({
      .project = "wildcard",
      .edit = [](const Project& p) { p.Remove("parts/b.txt"); },
      .expected_rerun = Labels({{"root", "cat"}}),
      .outputs = {"all.txt", "parts/b.txt"},
  });
  EXPECT_EQ(result.incremental.Read("all.txt"), "alpha\ndelta\n");
}

TEST(BuildScenariosTest, RenamedInput) {
  ScenarioResult result = RunScenario({
      .project = "wildcard",
      .edit = [](const Project& p) { p.Rename("parts/b.txt", "parts/z.txt"); },
      .expected_rerun = Labels({{"root", "cat"}}),
      .outputs = {"all.txt", "parts/b.txt", "parts/z.txt"},
  });
  EXPECT_EQ(result.incremental.Read("all.txt"), "alpha\ndelta\nbravo\n");
}

// 10. The environment dodo runs in is an input of the commands that read it.
// `dodo why` is not checked: it would see the test's own environment.
TEST(BuildScenariosTest, ChangedEnvironmentVariable) {
  ScenarioResult result = RunScenario({
      .project = "env",
      .env = {"GREETING=hello"},
      .edited_env = {"GREETING=bye"},
      .expected_rerun = Labels({{"root", "printenv"}}),
      .outputs = {"greeting.txt"},
      .why_after_edit = std::nullopt,
  });
  EXPECT_EQ(result.first.run.exit_status, 0);
  EXPECT_EQ(result.incremental.Read("greeting.txt"), "bye\n");
}

TEST(BuildScenariosTest, SameEnvironmentVariableRunsNothing) {
  RunScenario({
      .project = "env",
      .env = {"GREETING=hello"},
      .edited_env = {"GREETING=hello"},
      .expected_rerun = kNothing,
      .outputs = {"greeting.txt"},
      .why_after_edit = std::nullopt,
  });
}

// 11. A new line in the Dodofile reruns the script, but the gcc commands it
// runs again are skipped (their inputs are the same).
TEST(BuildScenariosTest, ChangedDodofileRerunsOnlyTheRoot) {
  ScenarioResult result = RunScenario({
      .project = "c_build",
      .edit = [](const Project& p) { p.Append("Dodofile", "echo done > done.txt\n"); },
      .expected_rerun = Labels({{"root"}}),
      .outputs = {"a.o", "b.o", "prog", "done.txt"},
  });
  EXPECT_EQ(result.incremental.Read("done.txt"), "done\n");
}

// 12. The first build fails at a.c (after compiling b.c); once a.c is fixed,
// the failed compile and the link that never ran both run, b.c's does not.
TEST(BuildScenariosTest, FailedCompileThenFixed) {
  RunScenario({
      .project = "failing_compile",
      .first_build_fails = true,
      .edit = [](const Project& p) { p.Replace("a.c", "return 41 }", "return 41; }"); },
      .expected_rerun = Labels({{"root"}, Compile("a.c"), Link("prog")}),
      .outputs = kCOutputs,
  });
}

// A command that exited non-zero is always rerun, even with nothing changed:
// gcc and cc1 fail again (as never ran); b.c's compile is skipped.
TEST(BuildScenariosTest, FailedCommandRerunsWithoutAnyChange) {
  Project project = Project::Copy("failing_compile");
  BuildRun first = project.Build();
  EXPECT_NE(first.run.exit_status, 0) << first.run.err;
  EXPECT_EQ(project.WhyQuiet(), 1);
  BuildRun second = project.Build();
  EXPECT_EQ(second.run.exit_status, first.run.exit_status) << second.run.err;
  EXPECT_EQ(RanLabels(second.trace), Labels({{"root", "gcc -c a.c", "gcc -c a.c > cc1"}}))
      << DescribeCommands(second.trace) << second.trace.Dump();
}

// 13. sort and uniq share a pipe: they are skipped together when nothing they
// read changed, and rerun together when in.txt did.
TEST(BuildScenariosTest, PipeUnchanged) {
  RunScenario({
      .project = "pipe",
      .expected_rerun = kNothing,
      .outputs = {"out.txt", "notes.out"},
      .why_after_edit = 0,
  });
}

TEST(BuildScenariosTest, PipeInputEditedRerunsBothEnds) {
  ScenarioResult result = RunScenario({
      .project = "pipe",
      .edit = [](const Project& p) { p.Append("in.txt", "banana\n"); },
      .expected_rerun = Labels({{"root", "sort", "uniq"}}),
      .outputs = {"out.txt", "notes.out"},
  });
  EXPECT_EQ(result.incremental.Read("out.txt"), "apple\nbanana\nfig\npear\n");
}

// cat's command line and input are the same, but its output goes to another
// file: skipped, it would restore the last run's tmp.PID and leave the new
// one empty, so out.txt would be empty.
TEST(BuildScenariosTest, OutputThroughADescriptorOnAnotherFileReruns) {
  ScenarioResult result = RunScenario({
      .project = "pid_named_output",
      .edit = [](const Project& p) { p.Write("notes.txt", "other notes\n"); },
      .expected_rerun = Labels({{"root", "cat", "mv", "cat"}}),
      .outputs = {"out.txt", "notes.out"},
  });
  EXPECT_EQ(result.incremental.Read("out.txt"), "hello\n");
  for (const auto& entry : std::filesystem::directory_iterator(result.incremental.dir())) {
    const std::string name = entry.path().filename().string();
    EXPECT_FALSE(name.starts_with("tmp.")) << name << " is left over";
  }
}

// The same through a pipeline: the group {cat, tr} is decided when the
// first of them execs, before tr's descriptors can be seen.
TEST(BuildScenariosTest, PipelineWritingAFileThatIsGoneReruns) {
  ScenarioResult result = RunScenario({
      .project = "pid_named_pipeline",
      .edit = [](const Project& p) { p.Write("notes.txt", "other notes\n"); },
      .expected_rerun = Labels({{"root", "cat", "tr", "mv", "cat"}}),
      .outputs = {"out.txt", "notes.out"},
  });
  EXPECT_EQ(result.incremental.Read("out.txt"), "HELLO\n");
  for (const auto& entry : std::filesystem::directory_iterator(result.incremental.dir())) {
    const std::string name = entry.path().filename().string();
    EXPECT_FALSE(name.starts_with("tmp.")) << name << " is left over";
  }
}

// A shell that keeps a log open (`exec 5>log.txt`, as configure keeps
// config.log) and has commands write to it (`cat a.txt >&5`). A skipped
// command's version of log.txt cannot be put in its place: the shell goes on
// writing into the file it holds, now unlinked, so what it and the later
// commands wrote was lost (log.txt ended after "a", and `why` found nothing
// to do). The skip writes what the command added through the descriptor
// instead, so the cats of a, c and d are skipped all the same.
TEST(BuildScenariosTest, CommandAddingToAFileItWasGivenIsSkippedByAddingTheSameBytes) {
  ScenarioResult result = RunScenario({
      .project = "shared_log",
      .edit = [](const Project& p) { p.Write("b.txt", "other b\n"); },
      .expected_rerun = Labels({{"root", "cat"}}),
      .outputs = {"log.txt", "b.out", "d.out"},
  });
  EXPECT_EQ(result.incremental.Read("log.txt"), "start\na\nc\nend\n");
  EXPECT_EQ(result.incremental.Read("b.out"), "other b\n");
  EXPECT_EQ(result.incremental.Read("d.out"), "d\n");
}

// A skipped command's listing is copied as the tree lists it now. `ls gen`
// ran before gen.sh wrote gen/out.h, so the check at its exec leaves out.h
// out of the comparison. gen.sh reruns, with new file names (its pid), finds
// out.h unchanged and does not write it: copied as it was recorded (no out.h), the
// listing differed from the tree at every later replay, and the build never came up to date.
TEST(BuildScenariosTest, ListingOfAFileTheRebuildLeftAloneIsUpToDateAfterward) {
  ScenarioResult result = RunScenario({
      .project = "unchanged_output",
      .edit = [](const Project& p) { p.Append("settings.txt", "# a comment\n"); },
      .expected_rerun = Labels({{"root", "sh", "sed", "cmp", "rm"}}),
      .outputs = {"names.txt", "gen/out.h"},
      .lists_whole_build = false,  // the clean build runs mv where this runs rm
  });
  EXPECT_EQ(result.incremental.Read("names.txt"), "README\n");
  EXPECT_EQ(result.incremental.Read("gen/out.h"), "#define LEVEL 1\n");
}

// A skipped configure restores only what no later command replaced: its
// dummy dep.d, which make's `mv dep.tmp dep.d` replaced, would hide the real
// one from make, which finds out.txt up to date and does not run again.
TEST(BuildScenariosTest, SkippedConfigureLeavesTheFileMakeReplaced) {
  ScenarioResult result = RunScenario({
      .project = "configure_depfiles",
      .edit = [](const Project& p) { p.Append("Makefile", "# edited\n"); },
      .expected_rerun = Labels({{"root", "make"}}),
      .outputs = {"out.txt", "dep.d", "config.txt"},
      .lists_whole_build = false,
  });
  EXPECT_EQ(result.incremental.Read("dep.d"), "out.txt: in.txt\n");
}

// A skipped command leaves its outputs as running it would: written now.
// grep reruns after a comment-only edit and writes the same objs/src.o;
// the skipped mv must leave obj.lo newer than lib.out, or make would not
// run the rule that removes objs/ (zlib's PIC objects go through objs/ so,
// and a sweep of zlib found it left behind).
TEST(BuildScenariosTest, SkippedCommandsOutputsLookJustWritten) {
  ScenarioResult result = RunScenario({
      .project = "skipped_move",
      .edit = [](const Project& p) { p.Append("src.txt", "# a comment\n"); },
      .expected_rerun = Labels({{"root", "make", "sh", "grep"}}),
      .outputs = {"obj.lo", "lib.out"},
  });
  EXPECT_EQ(result.incremental.Read("lib.out"), "alpha\nbeta\n");
  EXPECT_FALSE(std::filesystem::exists(result.incremental.Path("objs"))) << "objs/ was left behind";
  EXPECT_FALSE(std::filesystem::exists(result.clean.Path("objs")));
  EXPECT_EQ(result.incremental.WhyQuiet(), 0);
}

// mv reads nothing, yet what it leaves is what it moved: after an edit
// that changes what grep writes to objs/src.o, the mv that renames it to
// obj.lo must run, and so must the cat that reads obj.lo. Skipped, it left
// the old obj.lo from the store.
TEST(BuildScenariosTest, MoveOfAFileWithNewContentRuns) {
  ScenarioResult result = RunScenario({
      .project = "skipped_move",
      .edit = [](const Project& p) { p.Append("src.txt", "gamma\n"); },
      .expected_rerun = Labels({{"root", "make", "sh", "grep", "mv", "sh", "cat"}}),
      .outputs = {"obj.lo", "lib.out"},
  });
  EXPECT_EQ(result.incremental.Read("obj.lo"), "alpha\nbeta\ngamma\n");
  EXPECT_EQ(result.incremental.Read("lib.out"), "alpha\nbeta\ngamma\n");
  EXPECT_EQ(result.incremental.WhyQuiet(), 0);
}

// automake's recipe: the compile writes util.Tpo, mv renames it util.Po.
// A new #include changes what the compile writes there, so the mv runs and
// util.Po lists the header, as in a clean build.
TEST(BuildScenariosTest, NewIncludeReachesTheMovedDependencyFile) {
  ScenarioResult result = RunScenario({
      .project = "make_depfiles",
      .build_args = {"--", "make"},
      .edit =
          [](const Project& p) {
            p.Replace("util.c", "#include \"util.h\"", "#include <stdlib.h>\n#include \"util.h\"");
          },
      .expected_rerun = Labels({{"root", "mv"}, Compile("util.c")}),
      .outputs = {"util.o", "util.Po", "main.o", "main.Po", "hello"},
      // main.c's compile and mv are kept dormant, not restored.
      .lists_whole_build = false,
  });
  EXPECT_NE(result.incremental.Read("util.Po").value_or("").find("stdlib.h"), std::string::npos);
  EXPECT_EQ(result.incremental.WhyQuiet(), 0);
}

// A skipped command's output that a later command replaced (renamed its
// copy onto it) is left to that later version only while the tree holds
// it. Here the rerun rm removed it, so the skipped cat's archive comes back
// for the sort that reads it; left out, sort read an empty file (xz's
// libtool link failed in ranlib so: '.libs/liblzma.a': No such file).
TEST(BuildScenariosTest, ReplacedOutputThatARerunRemovedIsRestored) {
  ScenarioResult result = RunScenario({
      .project = "replaced_archive",
      .edit = [](const Project& p) { p.Append("stamp.txt", "2\n"); },
      // mv's O_DIRECTORY probe of lib.a (ENOTDIR) found a file, and
      // finds one again: mv is skipped.
      .expected_rerun = Labels({{"root", "wc", "rm"}}),
      .outputs = {"lib.a"},
  });
  EXPECT_EQ(result.incremental.Read("lib.a"), "a\nb\nc\nd\n");
  EXPECT_FALSE(std::filesystem::exists(result.incremental.Path("lib.tmp")));
  EXPECT_EQ(result.incremental.WhyQuiet(), 0);
}

// Expects `a` and `b` to be two names of one file in `project`, as `ln a b`
// left them.
void ExpectOneFile(const Project& project, const std::string& a, const std::string& b) {
  struct stat first, second;
  ASSERT_EQ(lstat(project.Path(a).c_str(), &first), 0) << a;
  ASSERT_EQ(lstat(project.Path(b).c_str(), &second), 0) << b;
  EXPECT_EQ(first.st_ino, second.st_ino) << a << " and " << b << " are two files";
  EXPECT_EQ(first.st_nlink, 2u) << a;
}

// A command that appends through one name of a file (b.txt, linked to a.txt)
// changes the other name too. When it reruns, so must the command that
// reads a.txt, and a.txt holds its bytes, not the ones it was written with.
TEST(BuildScenariosTest, WriteThroughAHardLinkShowsUnderTheOtherName) {
  ScenarioResult result = RunScenario({
      .project = "hard_link",
      .edit = [](const Project& p) { p.Write("extra.txt", "three\n"); },
      .expected_rerun = Labels({{"root", "sh", "cat", "cat"}}),
      .outputs = {"a.txt", "b.txt", "seen.txt"},
  });
  EXPECT_EQ(result.incremental.Read("seen.txt"), "one\nthree\n");
  ExpectOneFile(result.clean, "a.txt", "b.txt");
  ExpectOneFile(result.incremental, "a.txt", "b.txt");
}

// Nothing changed: a.txt was last written through b.txt, and is up to date
// as it is. (It used to be restored to what its first writer left.)
TEST(BuildScenariosTest, HardLinkedOutputsUnchanged) {
  ScenarioResult result = RunScenario({
      .project = "hard_link",
      .expected_rerun = kNothing,
      .outputs = {"a.txt", "b.txt", "seen.txt"},
      .why_after_edit = 0,
  });
  EXPECT_EQ(result.incremental.Read("a.txt"), "one\ntwo\n");
  ExpectOneFile(result.incremental, "a.txt", "b.txt");
}

// a.txt removed, or replaced by a copy: restored as a name of b.txt again.
TEST(BuildScenariosTest, HardLinkedOutputIsRestoredAsTheSameFile) {
  for (bool copy : {false, true}) {
    SCOPED_TRACE(copy ? "replaced by a copy" : "removed");
    ScenarioResult result = RunScenario({
        .project = "hard_link",
        .edit =
            [copy](const Project& p) {
              std::optional<std::string> bytes = p.Read("a.txt");
              p.Remove("a.txt", /*must_exist=*/false);
              if (copy && bytes.has_value()) p.Write("a.txt", *bytes);
            },
        .expected_rerun = kNothing,
        .outputs = {"a.txt", "b.txt", "seen.txt"},
        .why_after_edit = 1,
    });
    ExpectOneFile(result.incremental, "a.txt", "b.txt");
  }
}

// The Dodofile changed: its children are skipped, and what they left
// restored, the two names as one file.
TEST(BuildScenariosTest, HardLinkedOutputsOfSkippedCommands) {
  ScenarioResult result = RunScenario({
      .project = "hard_link",
      .edit = [](const Project& p) { p.Append("Dodofile", "# the end\n"); },
      .expected_rerun = Labels({{"root"}}),
      .outputs = {"a.txt", "b.txt", "seen.txt"},
  });
  ExpectOneFile(result.clean, "a.txt", "b.txt");
  ExpectOneFile(result.incremental, "a.txt", "b.txt");
}

TEST(BuildScenariosTest, PipeSkippedTogetherWhenTheRootReruns) {
  RunScenario({
      .project = "pipe",
      .edit = [](const Project& p) { p.Write("notes.txt", "other notes\n"); },
      .expected_rerun = Labels({{"root", "cat"}}),
      .outputs = {"out.txt", "notes.out"},
  });
}

// The shell reads what sed and tr write into command substitutions: with
// nothing changed, neither reruns (no reader to replay for is no cause).
TEST(BuildScenariosTest, CommandSubstitutionUnchanged) {
  RunScenario({
      .project = "command_substitution",
      .expected_rerun = kNothing,
      .outputs = {"out.txt", "notes.out"},
      .why_after_edit = 0,
  });
}

// gen.sh's shell reads sed's pipe itself: skipped as a whole, gen.sh leaves
// no reader waiting, so it is skipped when only the root must rerun.
TEST(BuildScenariosTest, ScriptReadingACommandSubstitutionIsSkippedWhole) {
  ScenarioResult result = RunScenario({
      .project = "nested_substitution",
      .edit = [](const Project& p) { p.Write("notes.txt", "other notes\n"); },
      .expected_rerun = Labels({{"root", "cat"}}),
      .outputs = {"greeting.txt", "notes.out"},
  });
  EXPECT_EQ(result.incremental.Read("greeting.txt"), "hello, world\n");
}

// Its input edited, gen.sh reruns, and sed with it: the shell needs its
// output again.
TEST(BuildScenariosTest, ScriptReadingACommandSubstitutionRerunsWithItsWriter) {
  ScenarioResult result = RunScenario({
      .project = "nested_substitution",
      .edit = [](const Project& p) { p.Write("name.txt", "dodo\n"); },
      .expected_rerun = Labels({{"root", "sh", "sed"}}),
      .outputs = {"greeting.txt", "notes.out"},
  });
  EXPECT_EQ(result.incremental.Read("greeting.txt"), "hello, dodo\n");
}

// tr reads a pipe that gen.sh's own shell feeds (echo is a builtin). The
// root reruns (it read notes.txt), but only gen.sh feeds that pipe, and it
// has nothing new to read: gen.sh is skipped, tr with it.
TEST(BuildScenariosTest, PipeFedByABuiltinIsSkippedWithTheShellThatFeedsIt) {
  ScenarioResult result = RunScenario({
      .project = "builtin_pipe",
      .edit = [](const Project& p) { p.Write("notes.txt", "other notes\n"); },
      .expected_rerun = Labels({{"root"}}),
      .outputs = {"name.txt", "greeting.txt", "notes.out"},
  });
  EXPECT_EQ(result.incremental.Read("greeting.txt"), "hello, ALPHA\n");
  EXPECT_EQ(result.incremental.Read("notes.out"), "notes: other notes\n");
}

// Reordered, names.txt sorts to the same name.txt. The plan cannot know
// that: gen.sh reads what sort will rewrite, and tr's pipe is fed by gen.sh.
// When gen.sh execs, name.txt is the same: gen.sh is skipped whole, tr with
// it (as libtool's link scripts are when the library they read comes out
// the same).
TEST(BuildScenariosTest, PipeFedByABuiltinIsSkippedWhenTheFeederFindsItsInputsTheSame) {
  ScenarioResult result = RunScenario({
      .project = "builtin_pipe",
      .edit = [](const Project& p) { p.Write("names.txt", "alpha\nworld\n"); },
      .expected_rerun = Labels({{"root", "sort"}}),
      .outputs = {"name.txt", "greeting.txt", "notes.out"},
  });
  EXPECT_EQ(result.incremental.Read("greeting.txt"), "hello, ALPHA\n");
}

// A new first name: gen.sh reruns, and tr with it.
TEST(BuildScenariosTest, PipeFedByABuiltinRerunsWithTheShellThatFeedsIt) {
  ScenarioResult result = RunScenario({
      .project = "builtin_pipe",
      .edit = [](const Project& p) { p.Write("names.txt", "world\naaron\n"); },
      .expected_rerun = Labels({{"root", "sort", "sh", "tr"}}),
      .outputs = {"name.txt", "greeting.txt", "notes.out"},
  });
  EXPECT_EQ(result.incremental.Read("greeting.txt"), "hello, AARON\n");
}

// When the shell reruns it needs their output again: they run with it.
TEST(BuildScenariosTest, CommandSubstitutionsRunWithTheShellThatReadsThem) {
  ScenarioResult result = RunScenario({
      .project = "command_substitution",
      .edit = [](const Project& p) { p.Write("notes.txt", "other notes\n"); },
      .expected_rerun = Labels({{"root", "sed", "cat", "tr", "cat"}}),
      .outputs = {"out.txt", "notes.out"},
  });
  EXPECT_EQ(result.incremental.Read("out.txt"), "all HELLO\n");
}

// A changed input of tr's writer changes what the shell reads.
TEST(BuildScenariosTest, CommandSubstitutionInputEdited) {
  ScenarioResult result = RunScenario({
      .project = "command_substitution",
      .edit = [](const Project& p) { p.Write("greeting.txt", "bye\n"); },
      .expected_rerun = Labels({{"root", "sed", "cat", "tr"}}),
      .outputs = {"out.txt", "notes.out"},
  });
  EXPECT_EQ(result.incremental.Read("out.txt"), "all BYE\n");
}

// cat's stdin is a pipe the root closed empty before cat started: cat could
// read only end-of-file from it, so the root's rerun does not drag cat along.
TEST(BuildScenariosTest, DrainedPipeIsNoInput) {
  ScenarioResult result = RunScenario({
      .project = "drained_pipe",
      .edit = [](const Project& p) { p.Write("label.txt", "second label\n"); },
      .expected_rerun = Labels({{"root"}}),
      .outputs = {"out.txt", "label.out"},
  });
  EXPECT_EQ(result.incremental.Read("out.txt"), "");
}

// The same pipe with data in it is no longer drained when cat starts again:
// cat reruns and reads it (skipping it would restore the old, empty out.txt).
TEST(BuildScenariosTest, DrainedPipeThatFillsUpRerunsItsReader) {
  ScenarioResult result = RunScenario({
      .project = "drained_pipe",
      .edit = [](const Project& p) { p.Write("feed.txt", "fed\n"); },
      .expected_rerun = Labels({{"root", "cat"}}),
      .outputs = {"out.txt", "label.out"},
  });
  EXPECT_EQ(result.incremental.Read("out.txt"), "fed\n");
}

// 14. link.h is a symlink (made here: git may not keep it); retargeting it
// changes what cc1 reads through it.
TEST(BuildScenariosTest, RetargetedSymlinkToAHeader) {
  ScenarioResult result = RunScenario({
      .project = "symlink",
      .prepare = [](const Project& p) { p.Symlink("link.h", "real1.h"); },
      .edit = [](const Project& p) { p.Symlink("link.h", "real2.h"); },
      .expected_rerun = Labels({{"root"}, Compile("a.c"), Link("prog")}),
      .outputs = kCOutputs,
  });
  EXPECT_EQ(result.first.run.exit_status, 0);
  EXPECT_EQ(result.clean.RunProgram("prog"), "2\n");
  EXPECT_EQ(result.incremental.RunProgram("prog"), "2\n");
}

// 15. ls and find list src/: a new file there changes both listings.
TEST(BuildScenariosTest, FileAddedToAListedDirectory) {
  ScenarioResult result = RunScenario({
      .project = "listing",
      .edit = [](const Project& p) { p.Write("src/new.c", "int n;\n"); },
      .expected_rerun = Labels({{"root", "ls", "find", "sort"}}),
      .outputs = {"list.txt", "files.txt"},
  });
  EXPECT_EQ(result.incremental.Read("files.txt"), "src/a.c\nsrc/b.c\nsrc/new.c\n");
}

// A directory listed as `out/` before the build writes into it: the names
// the build writes are left out of the listing, so nothing is left to do.
TEST(BuildScenariosTest, ListingWithATrailingSlashLeavesOutWhatTheBuildWrites) {
  RunScenario({
      .project = "listing_slash",
      .expected_rerun = kNothing,
      .outputs = {"listed.txt", "out/made.txt"},
      .why_after_edit = 0,
  });
}

// 16. Under make (the root here) the same rules hold: util.c's compile and the
// link rerun, main.c's compile does not.
TEST(BuildScenariosTest, MakeRebuildsTheEditedFile) {
  ScenarioResult result = RunScenario({
      .project = "make",
      .build_args = {"--", "make", "-j2"},
      .edit =
          [](const Project& p) {
            p.Replace("util.c", "\"hello from make\"", "\"hello again from make\"");
          },
      .expected_rerun = Labels({{"root"}, Compile("util.c"), Link("hello")}),
      .outputs = {"main.o", "util.o", "hello"},
      // make finds main.o newer than main.c and does not start its compile.
      .lists_whole_build = false,
  });
  EXPECT_EQ(result.incremental.RunProgram("hello"), "hello again from make\n");
}

// Early cutoff under make -j2: a comment in util.c reruns make and that
// compile only, not the two links of the unchanged util.o. make runs one of
// the parallel links with a stdin pipe whose write end it closed at once:
// reading it can only give end-of-file, so it is no data from make.
TEST(BuildScenariosTest, MakeCommentOnlyEditStopsAtTheIdenticalObject) {
  ScenarioResult result = RunScenario({
      .project = "make_parallel",
      .build_args = {"--", "make", "-j2"},
      .edit = [](const Project& p) { p.Append("util.c", "/* comment */\n"); },
      .expected_rerun = Labels({{"root"}, CompileToSameAssembly("util.c")}),
      .outputs = {"hello.o", "bye.o", "util.o", "hello", "bye"},
      .lists_whole_build = false,
  });
  EXPECT_EQ(result.incremental.RunProgram("hello"), "hello, make\n");
  EXPECT_EQ(result.incremental.RunProgram("bye"), "bye, make\n");
}

// make left main.c's compile out of the build after a util.c edit: its
// record is kept dormant. When a util.h edit makes make start it again, it
// is matched like any other, and its assembler, given the same assembly, is
// skipped. Before dormant records, the whole compile ran, as under make.
TEST(BuildScenariosTest, CompileMakeDidNotStartLastTimeIsMatchedWhenItStartsAgain) {
  const std::vector<std::string> make = {"--", "make", "-j2"};
  Project project = Project::Copy("make");
  ASSERT_EQ(project.Build(make).run.exit_status, 0);
  project.Append("util.c", "/* comment */\n");
  BuildRun second = project.Build(make);
  ASSERT_EQ(second.run.exit_status, 0);
  EXPECT_EQ(RanLabels(second.trace), Labels({{"root"}, CompileToSameAssembly("util.c")}))
      << DescribeCommands(second.trace);
  EXPECT_EQ(DormantLabels(second.trace), Labels({Compile("main.c")}))
      << DescribeCommands(second.trace);
  EXPECT_EQ(project.WhyQuiet(), 0);

  project.Append("util.h", "/* comment */\n");
  BuildRun third = project.Build(make);
  ASSERT_EQ(third.run.exit_status, 0);
  EXPECT_EQ(RanLabels(third.trace),
            Labels({{"root"}, CompileToSameAssembly("main.c"), CompileToSameAssembly("util.c")}))
      << DescribeCommands(third.trace);
  EXPECT_EQ(DormantLabels(third.trace), kNothing) << DescribeCommands(third.trace);

  Project clean = Project::Copy("make");
  clean.Append("util.c", "/* comment */\n");
  clean.Append("util.h", "/* comment */\n");
  ASSERT_EQ(clean.Build(make).run.exit_status, 0);
  ExpectSameFiles(project, clean, {"main.o", "util.o", "hello"});
  EXPECT_EQ(project.WhyQuiet(), 0);
}

// The same with automake's dependency files: the compile's main.Tpo is gone
// from the tree, since the next line of the recipe moved it to main.Po. That
// move is the last build's doing, not something the record could not give
// back: the compile is kept dormant all the same, and matched when make
// starts it again.
TEST(BuildScenariosTest, CompileWhoseDepFileTheRecipeMovedIsKeptDormant) {
  const std::vector<std::string> make = {"--", "make", "-j2"};
  Project project = Project::Copy("make_depfiles");
  ASSERT_EQ(project.Build(make).run.exit_status, 0);
  project.Append("util.c", "/* comment */\n");
  BuildRun second = project.Build(make);
  ASSERT_EQ(second.run.exit_status, 0);
  EXPECT_EQ(DormantLabels(second.trace), Labels({Compile("main.c"), {"mv"}}))
      << DescribeCommands(second.trace);
  EXPECT_EQ(project.WhyQuiet(), 0);

  // Kept a second time: the mv that took main.Tpo away is a dormant record
  // itself now.
  project.Append("util.c", "/* another */\n");
  BuildRun again = project.Build(make);
  ASSERT_EQ(again.run.exit_status, 0);
  EXPECT_EQ(DormantLabels(again.trace), Labels({Compile("main.c"), {"mv"}}))
      << DescribeCommands(again.trace);

  project.Append("util.h", "/* comment */\n");
  BuildRun third = project.Build(make);
  ASSERT_EQ(third.run.exit_status, 0);
  // Both assemblers and both moves are skipped: the .Tpo files come out
  // the same.
  EXPECT_EQ(RanLabels(third.trace),
            Labels({{"root"}, CompileToSameAssembly("main.c"), CompileToSameAssembly("util.c")}))
      << DescribeCommands(third.trace);

  Project clean = Project::Copy("make_depfiles");
  clean.Append("util.c", "/* comment */\n");
  clean.Append("util.c", "/* another */\n");
  clean.Append("util.h", "/* comment */\n");
  ASSERT_EQ(clean.Build(make).run.exit_status, 0);
  ExpectSameFiles(project, clean, {"main.o", "util.o", "hello", "main.Po", "util.Po"});
  EXPECT_EQ(project.WhyQuiet(), 0);
}

// libtool's compile script works out names with `echo | sed`: the compile's
// commands talk through pipes, among themselves only. Such a subtree is kept
// dormant like the others, pipes and all, and matched as one group once make
// starts it again: after the header edit, main.c's assembler is skipped.
TEST(BuildScenariosTest, CompileWhoseRecipePipesThroughSedIsKeptDormant) {
  const std::vector<std::string> make = {"--", "make", "-j2"};
  Project project = Project::Copy("make_piped_recipe");
  ASSERT_EQ(project.Build(make).run.exit_status, 0);
  project.Append("util.c", "/* comment */\n");
  BuildRun second = project.Build(make);
  ASSERT_EQ(second.run.exit_status, 0);
  EXPECT_EQ(DormantLabels(second.trace), Labels({{"sh", "sed"}, Compile("main.c")}))
      << DescribeCommands(second.trace);
  EXPECT_EQ(project.WhyQuiet(), 0);

  project.Append("util.h", "/* comment */\n");
  BuildRun third = project.Build(make);
  ASSERT_EQ(third.run.exit_status, 0);
  EXPECT_EQ(RanLabels(third.trace), Labels({{"root", "sh", "sed", "sh", "sed"},
                                            CompileToSameAssembly("main.c"),
                                            CompileToSameAssembly("util.c")}))
      << DescribeCommands(third.trace);
  EXPECT_EQ(project.RunProgram("hello"), "hello from make\n");

  Project clean = Project::Copy("make_piped_recipe");
  clean.Append("util.c", "/* comment */\n");
  clean.Append("util.h", "/* comment */\n");
  ASSERT_EQ(clean.Build(make).run.exit_status, 0);
  ExpectSameFiles(project, clean, {"main.o", "util.o", "hello"});
  EXPECT_EQ(project.WhyQuiet(), 0);
}

// Under a recursive make, a sub-make that is skipped (an edit of the top
// Makefile only) carries its own records over; the dormant compiles kept
// under it stay too, and are matched once it reruns and starts them.
TEST(BuildScenariosTest, DormantCompilesStayUnderASkippedSubMake) {
  const std::vector<std::string> make = {"--", "make", "-j2"};
  Project project = Project::Copy("make_recursive");
  ASSERT_EQ(project.Build(make).run.exit_status, 0);
  project.Append("src/util.c", "/* comment */\n");
  ASSERT_EQ(project.Build(make).run.exit_status, 0);
  project.Append("Makefile", "# comment\n");
  BuildRun top_only = project.Build(make);
  ASSERT_EQ(top_only.run.exit_status, 0);
  EXPECT_EQ(RanLabels(top_only.trace), Labels({{"root"}})) << DescribeCommands(top_only.trace);
  EXPECT_EQ(DormantLabels(top_only.trace), Labels({Compile("hello.c"), Compile("bye.c")}))
      << DescribeCommands(top_only.trace);

  project.Append("src/util.h", "/* comment */\n");
  BuildRun header = project.Build(make);
  ASSERT_EQ(header.run.exit_status, 0);
  EXPECT_EQ(RanLabels(header.trace), Labels({{"root", "make"},
                                             CompileToSameAssembly("hello.c"),
                                             CompileToSameAssembly("bye.c"),
                                             CompileToSameAssembly("util.c")}))
      << DescribeCommands(header.trace);

  Project clean = Project::Copy("make_recursive");
  clean.Append("src/util.c", "/* comment */\n");
  clean.Append("Makefile", "# comment\n");
  clean.Append("src/util.h", "/* comment */\n");
  ASSERT_EQ(clean.Build(make).run.exit_status, 0);
  ExpectSameFiles(project, clean,
                  {"src/hello.o", "src/bye.o", "src/util.o", "src/hello", "src/bye"});
  EXPECT_EQ(project.WhyQuiet(), 0);
}

// make stats util.c and the compile it starts reads it: a touch alone
// changes what make would do, but not what it would make. Nothing runs.
TEST(BuildScenariosTest, TouchedSourceUnderMakeRunsNothing) {
  RunScenario({
      .project = "make_recursive",
      .build_args = {"--", "make", "-j2"},
      .edit = [](const Project& p) { p.Touch("src/util.c"); },
      .expected_rerun = kNothing,
      .outputs = {"src/hello.o", "src/bye.o", "src/util.o", "src/hello", "src/bye"},
      .why_after_edit = 0,
  });
}

// A tree make built before dodo first saw it: that first build records
// sub-makes that found every target up to date and only looked at mtimes.
// An edit that keeps the file's size leaves every size they saw as it was;
// the new mtime alone must make the sub-make run, and with it the compile
// and both links, as a clean build would.
TEST(BuildScenariosTest, SubMakeThatFoundItsTargetsUpToDateRunsWhenAnMtimeMoves) {
  const std::vector<std::string> make = {"--", "make", "-j2"};
  Project project = Project::Copy("make_recursive");
  RunResult native = RunCommand({"make", "-s", "-j2"}, project.Path("."));
  ASSERT_EQ(native.exit_status, 0) << native.err;
  BuildRun adopted = project.Build(make);
  ASSERT_EQ(adopted.run.exit_status, 0) << adopted.run.err;
  ASSERT_TRUE(adopted.trace.CommandsRunning("cc1").empty()) << DescribeCommands(adopted.trace);

  project.Replace("src/util.c", "\"%s, %s\\n\"", "\"%s; %s\\n\"");
  BuildRun edited = project.Build(make);
  ASSERT_EQ(edited.run.exit_status, 0) << edited.run.err;
  EXPECT_EQ(RanLabels(edited.trace),
            Labels({{"root", "make"}, Compile("util.c"), Link("hello"), Link("bye")}))
      << DescribeCommands(edited.trace);
  EXPECT_EQ(project.RunProgram("src/hello"), "hello; make\n");
  EXPECT_EQ(project.RunProgram("src/bye"), "bye; make\n");

  Project clean = Project::Copy("make_recursive");
  clean.Replace("src/util.c", "\"%s, %s\\n\"", "\"%s; %s\\n\"");
  ASSERT_EQ(clean.Build(make).run.exit_status, 0);
  ExpectSameFiles(project, clean,
                  {"src/hello.o", "src/bye.o", "src/util.o", "src/hello", "src/bye"});
  EXPECT_EQ(project.WhyQuiet(), 0);
}

// The sub-makes of a build plain make finished first: dodo's first build
// over it records an app/ make that found hello up to date and only stat'ed
// lib/libutil.la, a file the build writes with the same bytes every time.
// After a same-size edit of util.c, lib/'s make archives the new code and
// moves a new libutil.la into place: same bytes, new mtime. Plain make would
// now relink hello, so app/'s make must run, and hello must print the edit.
TEST(BuildScenariosTest, UpToDateSubMakeRunsWhenTheBuildRewritesAFileItStats) {
  const std::vector<std::string> make = {"--", "make"};
  Project project = Project::Copy("make_libdir");
  BuildRun first = project.Build(make);
  ASSERT_EQ(first.run.exit_status, 0) << first.run.err;
  project.Replace("lib/util.c", "%s, lib", "%s; lib");
  RunResult native = RunCommand({"make", "-s"}, project.Path("."));
  ASSERT_EQ(native.exit_status, 0) << native.err;
  BuildRun adopted = project.Build(make);
  ASSERT_EQ(adopted.run.exit_status, 0) << adopted.run.err;
  ASSERT_EQ(RanLabels(adopted.trace), Labels({{"root", "make", "make"}}))
      << DescribeCommands(adopted.trace);

  project.Replace("lib/util.c", "%s; lib", "%s: lib");
  BuildRun edited = project.Build(make);
  ASSERT_EQ(edited.run.exit_status, 0) << edited.run.err;
  EXPECT_EQ(RanLabels(edited.trace),
            Labels({{"root", "make"}, Compile("util.c"), {"ar", "sh", "make"}, Link("hello")}))
      << DescribeCommands(edited.trace);
  EXPECT_EQ(project.RunProgram("app/hello"), "hello: lib\n");

  Project clean = Project::Copy("make_libdir");
  clean.Replace("lib/util.c", "%s, lib", "%s: lib");
  ASSERT_EQ(clean.Build(make).run.exit_status, 0);
  ExpectSameFiles(project, clean,
                  {"lib/util.o", "lib/libutil.a", "lib/libutil.la", "app/hello.o", "app/hello"});
  EXPECT_EQ(project.WhyQuiet(), 0);
}

// The header of the trace a project's last build left.
proto::Header LastTraceHeader(const Project& project) {
  absl::StatusOr<std::unique_ptr<model::TraceReader>> reader =
      model::TraceReader::Open(project.Path(".dodo/trace"));
  EXPECT_TRUE(reader.ok()) << reader.status();
  return reader.ok() ? (*reader)->header() : proto::Header();
}

// Commands kept dormant keep their ids from one trace to the next, in a
// range of their own, and their operations are copied as they were: the
// trace that keeps them begins with the string table of the one before.
TEST(BuildScenariosTest, DormantRecordsAreCopiedUnchangedFromTraceToTrace) {
  const std::vector<std::string> make = {"--", "make", "-j2"};
  Project project = Project::Copy("make_parallel");
  ASSERT_EQ(project.Build(make).run.exit_status, 0);
  project.Replace("hello.c", "\"hello\"", "\"hallo\"");
  BuildRun second = project.Build(make);
  ASSERT_EQ(second.run.exit_status, 0) << second.run.err;
  EXPECT_EQ(LastTraceHeader(project).strings_inherited_builds(), 0u);
  std::map<uint64_t, std::vector<std::string>> dormant;  // id -> notations
  for (const TracedCommand& command : second.trace.commands) {
    if (!command.dormant) continue;
    EXPECT_GE(command.id, uint64_t{1} << 40) << DescribeCommands(second.trace);
    for (const TracedOp* op : second.trace.OpsOf(command.id)) {
      dormant[command.id].push_back(op->notation);
    }
  }
  ASSERT_FALSE(dormant.empty()) << DescribeCommands(second.trace);

  project.Replace("hello.c", "\"hallo\"", "\"hullo\"");
  BuildRun third = project.Build(make);
  ASSERT_EQ(third.run.exit_status, 0) << third.run.err;
  EXPECT_EQ(LastTraceHeader(project).strings_inherited_builds(), 1u);
  std::map<uint64_t, std::vector<std::string>> kept;
  for (const TracedCommand& command : third.trace.commands) {
    if (!command.dormant) continue;
    for (const TracedOp* op : third.trace.OpsOf(command.id)) {
      kept[command.id].push_back(op->notation);
    }
  }
  EXPECT_EQ(kept, dormant) << DescribeCommands(third.trace);
  EXPECT_EQ(project.RunProgram("hello"), "hullo, make\n");
  EXPECT_EQ(project.WhyQuiet(), 0);
}

// A dormant command is no part of the build: its outputs are neither
// restored by a build that does not start it nor a reason to rerun. Once
// its parent starts it again with the same inputs, it is skipped and its
// output comes back from the store.
TEST(BuildScenariosTest, DormantCommandsOutputsComeBackOnlyWhenItIsStartedAgain) {
  Project project = Project::Copy("conditional");
  ASSERT_EQ(project.Build().run.exit_status, 0);
  ASSERT_EQ(project.Read("out.txt"), "kept\n");
  project.Remove("flag");
  BuildRun second = project.Build();
  ASSERT_EQ(second.run.exit_status, 0);
  EXPECT_EQ(RanLabels(second.trace), Labels({{"root"}})) << DescribeCommands(second.trace);
  EXPECT_EQ(DormantLabels(second.trace), Labels({{"cp"}})) << DescribeCommands(second.trace);

  // A build without flag never writes out.txt: gone, it stays gone.
  project.Remove("out.txt");
  EXPECT_EQ(project.WhyQuiet(), 0);
  BuildRun third = project.Build();
  ASSERT_EQ(third.run.exit_status, 0);
  EXPECT_EQ(RanLabels(third.trace), kNothing) << DescribeCommands(third.trace);
  EXPECT_EQ(project.Read("out.txt"), std::nullopt);
  EXPECT_EQ(DormantLabels(third.trace), Labels({{"cp"}})) << DescribeCommands(third.trace);

  project.Write("flag", "");
  BuildRun fourth = project.Build();
  ASSERT_EQ(fourth.run.exit_status, 0);
  EXPECT_EQ(RanLabels(fourth.trace), Labels({{"root"}})) << DescribeCommands(fourth.trace);
  EXPECT_EQ(project.Read("out.txt"), "kept\n");
  EXPECT_EQ(DormantLabels(fourth.trace), kNothing) << DescribeCommands(fourth.trace);
  EXPECT_EQ(project.WhyQuiet(), 0);
}

// The same under a recursive make: the sub-make reruns (it saw util.c
// change), but what it starts is decided command by command, so the links of
// the unchanged util.o are skipped. --explain says why each command ran.
TEST(BuildScenariosTest, RecursiveMakeDecidesEachCommandItStarts) {
  ScenarioResult result = RunScenario({
      .project = "make_recursive",
      .build_args = {"--explain", "--", "make", "-j2"},
      .edit = [](const Project& p) { p.Append("src/util.c", "/* comment */\n"); },
      .expected_rerun = Labels({{"root", "make"}, CompileToSameAssembly("util.c")}),
      .outputs = {"src/hello.o", "src/bye.o", "src/util.o", "src/hello", "src/bye"},
      .lists_whole_build = false,
  });
  EXPECT_EQ(result.incremental.RunProgram("src/bye"), "bye, make\n");
  const std::string& out = result.second.run.out;
  EXPECT_NE(out.find("run  gcc -O1 -c -o util.o util.c\n     because content of src/util.c "
                     "changed (sha256 "),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("run  make -j2\n     because starts 'make -C src', which must run\n"),
            std::string::npos)
      << out;
}

// A no-op build that plans and finds the tree up to date leaves .dodo/uptodate; the
// next no-op is answered from it with stat calls alone (and leaves the trace
// as it is). A same-size edit that keeps the old mtime still moves the
// ctime: the stamp no longer holds and the compile reruns.
TEST(BuildScenariosTest, UpToDateStampAnswersNoOpsUntilAnythingChanges) {
  Project project = Project::Copy("c_build");
  // No planner in the background: the no-op below is the one that plans.
  ASSERT_EQ(project.Build({"--no-background-plan"}).run.exit_status, 0);
  // Changes younger than a timestamp tick cannot be told apart by time: the
  // stamp is written only once the build's outputs are older than that.
  absl::SleepFor(absl::Milliseconds(200));
  BuildRun noop = project.Build();
  ASSERT_EQ(noop.run.exit_status, 0) << noop.run.err;
  EXPECT_EQ(RanLabels(noop.trace), kNothing);
  ASSERT_TRUE(project.Read(".dodo/uptodate").has_value());
  struct stat trace_before;
  ASSERT_EQ(stat(project.Path(".dodo/trace").c_str(), &trace_before), 0);

  BuildRun fast = project.Build();
  EXPECT_EQ(fast.run.exit_status, 0) << fast.run.err;
  EXPECT_NE(fast.run.out.find("dodo: 0 run, "), std::string::npos) << fast.run.out;
  struct stat trace_after;
  ASSERT_EQ(stat(project.Path(".dodo/trace").c_str(), &trace_after), 0);
  EXPECT_EQ(trace_after.st_ino, trace_before.st_ino);  // not even rewritten

  struct stat source;
  ASSERT_EQ(stat(project.Path("a.c").c_str(), &source), 0);
  project.Replace("a.c", "return 41;", "return 14;");
  const timespec times[2] = {source.st_atim, source.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, project.Path("a.c").c_str(), times, 0), 0);
  BuildRun edited = project.Build();
  EXPECT_EQ(edited.run.exit_status, 0) << edited.run.err;
  EXPECT_EQ(RanLabels(edited.trace), Labels({{"root"}, Compile("a.c"), Link("prog")}));
  EXPECT_EQ(project.RunProgram("prog"), "14\n");
}

// A no-op that plans (no stamp yet) and finds nothing to run, restore or
// relist keeps the last build's trace, manifest and hash cache as they are:
// same inodes, same bytes, nothing rewritten or synced.
TEST(BuildScenariosTest, NoOpThatPlansLeavesTheStoreFilesAsTheyWere) {
  Project project = Project::Copy("c_build");
  BuildRun first = project.Build({"--no-background-plan"});
  ASSERT_EQ(first.run.exit_status, 0) << first.run.err;
  // The build hashed its outputs right after writing them, too soon for the
  // hash cache to keep those digests: the first no-op reads them again and
  // saves the cache (the background planner does it otherwise). Its stamp,
  // if the outputs were old enough for one, goes, so that the no-op under
  // test plans too. (It waits out the racy window first, as a user would:
  // a read of an output changed less than that ago is not trusted either.)
  absl::SleepFor(absl::Milliseconds(50));
  ASSERT_EQ(project.Build({"--no-background-plan"}).run.exit_status, 0);
  unlink(project.Path(".dodo/uptodate").c_str());
  std::map<std::string, struct stat> before;
  for (const char* file : {".dodo/trace", ".dodo/manifest", ".dodo/hashes"}) {
    ASSERT_EQ(stat(project.Path(file).c_str(), &before[file]), 0) << file;
  }
  const std::optional<std::string> trace_bytes = project.Read(".dodo/trace");
  ASSERT_TRUE(trace_bytes.has_value());

  BuildRun noop = project.Build({"--no-background-plan"});
  ASSERT_EQ(noop.run.exit_status, 0) << noop.run.err;
  EXPECT_NE(noop.run.out.find("dodo: 0 run, " + std::to_string(first.trace.commands.size()) +
                              " skipped, 0 restored"),
            std::string::npos)
      << noop.run.out;
  EXPECT_TRUE(noop.trace_kept);
  for (const auto& [file, was] : before) {
    struct stat now;
    ASSERT_EQ(stat(project.Path(file).c_str(), &now), 0) << file;
    EXPECT_EQ(now.st_ino, was.st_ino) << file << " was replaced";
    EXPECT_EQ(now.st_mtim.tv_nsec, was.st_mtim.tv_nsec) << file << " was rewritten";
    EXPECT_EQ(now.st_mtim.tv_sec, was.st_mtim.tv_sec) << file << " was rewritten";
  }
  EXPECT_EQ(project.Read(".dodo/trace"), trace_bytes);
  EXPECT_EQ(project.WhyQuiet(), 0);
  EXPECT_EQ(project.RunProgram("prog"), "41\n");

  // The same holds for the next edit: it is planned from the kept trace.
  project.Replace("a.c", "return 41;", "return 14;");
  BuildRun edited = project.Build({"--no-background-plan"});
  ASSERT_EQ(edited.run.exit_status, 0) << edited.run.err;
  EXPECT_EQ(RanLabels(edited.trace), Labels({{"root"}, Compile("a.c"), Link("prog")}));
  EXPECT_EQ(project.RunProgram("prog"), "14\n");
}

// A no-op that must restore an output (deleted by hand) skips the whole
// build at once and copies the last build into the new trace: every
// command, marked restored, with the same place in the tree of commands,
// and every operation in the same order with the same paths and results.
TEST(BuildScenariosTest, WholeBuildSkipCopiesEveryCommandAndOperation) {
  Project project = Project::Copy("c_build");
  BuildRun first = project.Build({"--no-background-plan"});
  ASSERT_EQ(first.run.exit_status, 0) << first.run.err;
  ASSERT_EQ(unlink(project.Path("prog").c_str()), 0);
  BuildRun noop = project.Build({"--no-background-plan"});
  ASSERT_EQ(noop.run.exit_status, 0) << noop.run.err;
  EXPECT_NE(noop.run.out.find("dodo: 0 run, "), std::string::npos) << noop.run.out;
  EXPECT_FALSE(noop.trace_kept);
  EXPECT_EQ(project.RunProgram("prog"), "41\n");

  ASSERT_EQ(noop.trace.commands.size(), first.trace.commands.size());
  std::map<uint64_t, uint64_t> new_id;  // first build's id -> the copy's
  for (size_t i = 0; i < first.trace.commands.size(); ++i) {
    const TracedCommand& was = first.trace.commands[i];
    const TracedCommand& copy = noop.trace.commands[i];
    SCOPED_TRACE(absl::StrJoin(was.argv, " "));
    EXPECT_TRUE(copy.restored);
    EXPECT_EQ(copy.argv, was.argv);
    EXPECT_EQ(copy.executable, was.executable);
    EXPECT_EQ(copy.cwd, was.cwd);
    EXPECT_EQ(copy.exit_code, was.exit_code);
    EXPECT_EQ(copy.outputs.size(), was.outputs.size());
    new_id[was.id] = copy.id;
    if (was.parent != 0) {
      EXPECT_EQ(copy.parent, new_id[was.parent]);
    }
  }
  ASSERT_EQ(noop.trace.ops.size(), first.trace.ops.size());
  for (size_t i = 0; i < first.trace.ops.size(); ++i) {
    const TracedOp& was = first.trace.ops[i];
    const TracedOp& copy = noop.trace.ops[i];
    ASSERT_EQ(copy.notation, was.notation) << "operation " << i;
    EXPECT_EQ(copy.syscall, was.syscall) << "operation " << i;
    EXPECT_EQ(copy.command, new_id[was.command]) << "operation " << i << ": " << was.notation;
  }
  EXPECT_EQ(project.WhyQuiet(), 0);
}

// The copy of a whole-build skip keeps the order in which the build made
// prog and then ran it: on
// the next edit, the run of prog depends on the new prog and reruns.
TEST(BuildScenariosTest, ProgramTheBuildMadeAndRanRerunsAfterANoOpThatPlanned) {
  Project project = Project::Copy("c_build");
  project.Append("Dodofile", "./prog > out.txt\n");
  ASSERT_EQ(project.Build({"--no-background-plan"}).run.exit_status, 0);
  EXPECT_EQ(project.Read("out.txt"), "41\n");
  // Deleted, so that the no-op restores it and copies the trace.
  ASSERT_EQ(unlink(project.Path("out.txt").c_str()), 0);
  BuildRun noop = project.Build({"--no-background-plan"});
  ASSERT_EQ(noop.run.exit_status, 0) << noop.run.err;
  EXPECT_EQ(RanLabels(noop.trace), kNothing);

  project.Replace("a.c", "return 41;", "return 14;");
  BuildRun edited = project.Build({"--no-background-plan"});
  ASSERT_EQ(edited.run.exit_status, 0) << edited.run.err;
  EXPECT_EQ(project.Read("out.txt"), "14\n");
  EXPECT_EQ(RanLabels(edited.trace), Labels({{"root", "prog"}, Compile("a.c"), Link("prog")}))
      << DescribeCommands(edited.trace);
}

// A command skipped because what it reads came out the same leaves the tree
// as running it would: a file it renamed away stays away. depcomp's pattern:
// gcc writes .deps/a.Tpo, mv renames it to .deps/a.Po. After a comment-only
// edit gcc reruns and writes an identical .Tpo, mv is skipped, and the .Tpo
// must not be left behind (a clean build has none).
TEST(BuildScenariosTest, ASkippedRenameStillRemovesWhatItRenamedAway) {
  Project project = Project::Copy("c_build");
  const std::vector<std::string> args = {
      "--no-background-plan", "--", "/bin/sh", "-c",
      "mkdir -p .deps && gcc -c -MT a.o -MD -MP -MF .deps/a.Tpo a.c -o a.o && "
      "mv -f .deps/a.Tpo .deps/a.Po"};
  ASSERT_EQ(project.Build(args).run.exit_status, 0);
  ASSERT_TRUE(project.Read(".deps/a.Po").has_value());
  EXPECT_FALSE(project.Read(".deps/a.Tpo").has_value());
  project.Replace("a.c", "return 41; }", "return 41; }  // a comment");
  BuildRun edited = project.Build(args);
  EXPECT_EQ(edited.run.exit_status, 0) << edited.run.err;
  EXPECT_NE(edited.run.out.find("run  gcc -c"), std::string::npos) << edited.run.out;
  EXPECT_EQ(edited.run.out.find("run  mv"), std::string::npos) << edited.run.out;
  EXPECT_FALSE(project.Read(".deps/a.Tpo").has_value()) << "left behind by the skipped mv";
  EXPECT_TRUE(project.Read(".deps/a.Po").has_value());
  EXPECT_EQ(project.WhyQuiet(), 0);
}

// The same for a directory: configure's `mkdir .tst; ...; rmdir .tst`, with
// mkdir rerun (here its environment changed) and rmdir skipped.
TEST(BuildScenariosTest, ASkippedRmdirStillRemovesTheDirectory) {
  Project project = Project::Copy("c_build");
  const std::vector<std::string> args = {
      "--no-background-plan", "--", "/bin/sh", "-c",
      "N=$(wc -c < a.c) mkdir .tst && rmdir .tst && gcc -c a.c -o a.o"};
  ASSERT_EQ(project.Build(args).run.exit_status, 0);
  project.Replace("a.c", "return 41; }", "return 41; }  // a comment");
  BuildRun edited = project.Build(args);
  EXPECT_EQ(edited.run.exit_status, 0) << edited.run.err;
  EXPECT_NE(edited.run.out.find("run  mkdir"), std::string::npos) << edited.run.out;
  EXPECT_EQ(edited.run.out.find("run  rmdir"), std::string::npos) << edited.run.out;
  struct stat st;
  EXPECT_NE(stat(project.Path(".tst").c_str(), &st), 0) << "left behind by the skipped rmdir";
  EXPECT_EQ(project.WhyQuiet(), 0);
}

// Waits up to 10 s for the stamp of the detached planner a build started;
// whether it came.
bool WaitForStamp(const Project& project) {
  for (int i = 0; i < 200; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    if (project.Read(".dodo/uptodate").has_value()) return true;
  }
  return false;
}

// A build that ran commands starts a detached dodo that plans the next build
// at once and leaves the stamp: the very first no-op after a build is then
// answered from it too, without loading the trace.
TEST(BuildScenariosTest, ABuildThatRanLeavesTheStampForTheFirstNoOp) {
  Project project = Project::Copy("c_build");
  ASSERT_EQ(project.Build().run.exit_status, 0);
  ASSERT_TRUE(WaitForStamp(project)) << "no .dodo/uptodate 10 s after the build";
  struct stat trace_before;
  ASSERT_EQ(stat(project.Path(".dodo/trace").c_str(), &trace_before), 0);
  BuildRun noop = project.Build();
  EXPECT_EQ(noop.run.exit_status, 0) << noop.run.err;
  EXPECT_NE(noop.run.out.find("dodo: 0 run, "), std::string::npos) << noop.run.out;
  struct stat trace_after;
  ASSERT_EQ(stat(project.Path(".dodo/trace").c_str(), &trace_after), 0);
  EXPECT_EQ(trace_after.st_ino, trace_before.st_ino);  // answered from the stamp
}

// The detached planner reads the outputs the build hashed too soon after
// writing them to trust, and saves their digests: a no-op that plans after
// it (here: its stamp deleted) finds every file in the hash cache.
TEST(BuildScenariosTest, TheDetachedPlannerSettlesTheHashCache) {
  Project project = Project::Copy("c_build");
  ASSERT_EQ(project.Build().run.exit_status, 0);
  ASSERT_TRUE(WaitForStamp(project)) << "no .dodo/uptodate 10 s after the build";
  ASSERT_EQ(unlink(project.Path(".dodo/uptodate").c_str()), 0);
  struct stat hashes_before;
  ASSERT_EQ(stat(project.Path(".dodo/hashes").c_str(), &hashes_before), 0);
  BuildRun noop = project.Build({"--no-background-plan"});
  EXPECT_EQ(noop.run.exit_status, 0) << noop.run.err;
  EXPECT_NE(noop.run.out.find("dodo: 0 run, "), std::string::npos) << noop.run.out;
  struct stat hashes_after;
  ASSERT_EQ(stat(project.Path(".dodo/hashes").c_str(), &hashes_after), 0);
  EXPECT_EQ(hashes_after.st_ino, hashes_before.st_ino) << "the no-op had files to hash";
}

// An edit made right after the build, while that planner may be looking,
// leaves no stamp that hides it; --no-background-plan starts no planner.
TEST(BuildScenariosTest, TheBackgroundPlanNeverHidesAnEditMadeRightAfterTheBuild) {
  Project project = Project::Copy("c_build");
  ASSERT_EQ(project.Build().run.exit_status, 0);
  project.Replace("a.c", "return 41;", "return 14;");
  absl::SleepFor(absl::Seconds(1));
  EXPECT_FALSE(project.Read(".dodo/uptodate").has_value());
  BuildRun edited = project.Build({"--no-background-plan"});
  EXPECT_EQ(edited.run.exit_status, 0) << edited.run.err;
  EXPECT_EQ(RanLabels(edited.trace), Labels({{"root"}, Compile("a.c"), Link("prog")}));
  EXPECT_EQ(project.RunProgram("prog"), "14\n");
  absl::SleepFor(absl::Seconds(1));
  EXPECT_FALSE(project.Read(".dodo/uptodate").has_value());
}

// The same for a listing: with the stamp in place, a new file in the listed
// directory still reruns ls and find.
TEST(BuildScenariosTest, UpToDateStampSeesANewEntryInAListedDirectory) {
  Project project = Project::Copy("listing");
  ASSERT_EQ(project.Build({"--no-background-plan"}).run.exit_status, 0);
  absl::SleepFor(absl::Milliseconds(200));
  ASSERT_EQ(project.Build().run.exit_status, 0);
  ASSERT_TRUE(project.Read(".dodo/uptodate").has_value());
  project.Write("src/new.c", "int n;\n");
  BuildRun edited = project.Build();
  EXPECT_EQ(edited.run.exit_status, 0) << edited.run.err;
  EXPECT_EQ(RanLabels(edited.trace), Labels({{"root", "ls", "find", "sort"}}));
  EXPECT_EQ(project.Read("files.txt"), "src/a.c\nsrc/b.c\nsrc/new.c\n");
}

// 17. --fresh ignores the previous build: every command of a clean build runs
// again, and the outputs come out the same.
TEST(BuildScenariosTest, FreshRerunsEverything) {
  Project project = Project::Copy("c_build");
  BuildRun first = project.Build();
  ASSERT_EQ(first.run.exit_status, 0) << first.run.err;
  std::vector<std::optional<std::string>> before;
  for (const std::string& output : kCOutputs) before.push_back(project.Read(output));

  BuildRun fresh = project.Build({"--fresh"});
  EXPECT_EQ(fresh.run.exit_status, 0) << fresh.run.err;
  EXPECT_EQ(RanLabels(fresh.trace), AllLabels(first.trace))
      << DescribeCommands(fresh.trace) << fresh.trace.Dump();
  EXPECT_EQ(RanLabels(fresh.trace),
            Labels({{"root"}, Compile("a.c"), Compile("b.c"), Link("prog")}));
  for (size_t i = 0; i < kCOutputs.size(); ++i) {
    EXPECT_TRUE(project.Read(kCOutputs[i]) == before[i]) << kCOutputs[i] << " changed";
  }
  EXPECT_EQ(project.WhyQuiet(), 0);
}

}  // namespace
}  // namespace dodo::test
