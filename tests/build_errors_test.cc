// What `dodo build` and `dodo why` do with bad input: a one-line error that
// names the file and the cause, a non-zero exit, and nothing lost.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/build_test_util.h"
#include "tests/trace_test_util.h"

namespace dodo::test {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

int Lines(const std::string& text) {
  int lines = 0;
  for (char c : text) lines += c == '\n';
  return lines;
}

TEST(BuildErrorsTest, MissingDodofileIsAUsageErrorNamingTheFile) {
  const std::string dir = MakeTempDir();
  RunResult r = RunCommand({DodoPath(), "build"}, dir);
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_THAT(r.err, HasSubstr(dir + "/Dodofile: no such file"));
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_NE(access((dir + "/.dodo").c_str(), F_OK), 0) << "nothing is created for a failed start";
}

// A mistyped command is named, with the commands there are; a known
// command's own usage errors keep their wording.
TEST(CommandLineTest, AnUnknownCommandIsNamedWithTheCommandsThatExist) {
  const std::string dir = MakeTempDir();
  RunResult typo = RunCommand({DodoPath(), "biuld", "--", "make"}, dir);
  EXPECT_EQ(typo.exit_status, 2);
  EXPECT_THAT(typo.err, HasSubstr("'biuld' is not a dodo command"));
  EXPECT_THAT(typo.err, HasSubstr("trace, build, why"));
  EXPECT_EQ(Lines(typo.err), 1) << typo.err;
  EXPECT_NE(access((dir + "/.dodo").c_str(), F_OK), 0);

  RunResult no_trace = RunCommand({DodoPath(), "log"}, dir);
  EXPECT_EQ(no_trace.exit_status, 2);
  EXPECT_THAT(no_trace.err, HasSubstr("TRACE is required"));
  EXPECT_THAT(no_trace.err, Not(HasSubstr("not a dodo command")));
}

// After `dodo build -- make`, a plain `dodo build` repeats that command
// (there is no Dodofile), as `dodo why` does.
TEST(BuildErrorsTest, NoDodofileRepeatsTheLastBuildsCommand) {
  Project project = Project::Copy("make");
  BuildRun first = project.Build({"--no-background-plan", "--", "make"});
  ASSERT_EQ(first.run.exit_status, 0) << first.run.err;
  project.Replace("util.c", "\"hello from make\"", "\"hello again from make\"");

  BuildRun second = project.Build({"--no-background-plan"});
  EXPECT_EQ(second.run.exit_status, 0) << second.run.err;
  EXPECT_THAT(second.run.err, HasSubstr("no Dodofile; running the last build's command: make"));
  EXPECT_EQ(Lines(second.run.err), 1) << second.run.err;
  EXPECT_EQ(RanLabels(second.trace), Labels({{"root"}, Compile("util.c"), Link("hello")}))
      << DescribeCommands(second.trace);
  EXPECT_EQ(project.RunProgram("hello"), "hello again from make\n");
  EXPECT_EQ(project.WhyQuiet(), 0);
}

// --stats says how long each phase took, so that a slow rebuild shows
// whether dodo planned, traced or stored.
TEST(BuildStatsTest, StatsTimeEachPhase) {
  Project project = Project::Copy("make");
  BuildRun first = project.Build({"--stats", "--no-background-plan", "--", "make"});
  ASSERT_EQ(first.run.exit_status, 0) << first.run.err;
  EXPECT_THAT(first.run.err,
              ContainsRegex("time: stamp [0-9.]+s, load [0-9.]+s, plan [0-9.]+s, setup "
                            "[0-9.]+s, run [0-9.]+s, finish [0-9.]+s\n"));
  project.Replace("util.c", "\"hello from make\"", "\"hello again from make\"");
  BuildRun second = project.Build({"--stats", "--no-background-plan", "--", "make"});
  ASSERT_EQ(second.run.exit_status, 0) << second.run.err;
  EXPECT_THAT(second.run.err, ContainsRegex("time: stamp .*, run [0-9.]+s, finish [0-9.]+s\n"));
  // Nothing changed: the plan answers, and nothing runs.
  BuildRun third = project.Build({"--stats", "--no-background-plan", "--", "make"});
  ASSERT_EQ(third.run.exit_status, 0) << third.run.err;
  EXPECT_THAT(third.run.err, ContainsRegex("time: stamp [0-9.]+s, load [0-9.]+s, plan [0-9.]+s\n"));
}

// A last build whose root was the Dodofile, which is gone: nothing to repeat.
TEST(BuildErrorsTest, NoDodofileAfterADodofileBuildIsStillAUsageError) {
  Project project = Project::Copy("c_build");
  ASSERT_EQ(project.Build().run.exit_status, 0);
  project.Remove("Dodofile");
  RunResult r = RunCommand({DodoPath(), "build"}, project.dir());
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_THAT(r.err, HasSubstr(project.Path("Dodofile") + ": no such file"));
  EXPECT_EQ(Lines(r.err), 1) << r.err;
}

TEST(BuildErrorsTest, CorruptLastTraceRunsEverythingAndIsReplaced) {
  Project project = Project::Copy("c_build");
  BuildRun first = project.Build();
  ASSERT_EQ(first.run.exit_status, 0) << first.run.err;
  project.Write(".dodo/trace", "this is not a trace");
  const std::optional<std::string> prog = project.Read("prog");

  BuildRun second = project.Build();
  EXPECT_EQ(second.run.exit_status, 0) << second.run.err;
  EXPECT_THAT(second.run.err, HasSubstr(project.Path(".dodo/trace")));
  EXPECT_THAT(second.run.err, HasSubstr("not a dodo trace"));
  EXPECT_EQ(RanLabels(second.trace), AllLabels(first.trace)) << "everything reran";
  EXPECT_EQ(project.Read("prog"), prog);
  EXPECT_EQ(project.WhyQuiet(), 0) << "the new trace replaced the corrupt one";
}

TEST(BuildErrorsTest, SecondBuildInTheSameTreeIsRefusedWhileTheStoreIsLocked) {
  Project project = Project::Copy("c_build");
  ASSERT_EQ(project.Build().run.exit_status, 0);
  // Hold the lock the way a running build does.
  const int fd = open(project.Path(".dodo/lock").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  RunResult r = RunCommand({DodoPath(), "build"}, project.dir());
  close(fd);
  EXPECT_EQ(r.exit_status, 125);
  EXPECT_THAT(r.err, HasSubstr("another dodo build is running"));
  EXPECT_THAT(r.err, HasSubstr(project.Path(".dodo")));
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_EQ(project.WhyQuiet(), 0) << "the refused build changed nothing";
}

TEST(BuildErrorsTest, UnwritableStoreIsAToolFailureNamingIt) {
  if (geteuid() == 0) {
    // root ignores permission bits: make .dodo a regular file instead.
    const std::string dir = MakeTempDir();
    Project project(dir);
    project.Write("Dodofile", "#!/bin/sh\ntrue\n");
    project.Write(".dodo", "a file where the store should be");
    RunResult r = RunCommand({DodoPath(), "build"}, dir);
    EXPECT_EQ(r.exit_status, 125);
    EXPECT_THAT(r.err, HasSubstr(dir + "/.dodo"));
    EXPECT_EQ(Lines(r.err), 1) << r.err;
    EXPECT_EQ(project.Read(".dodo"), "a file where the store should be");
    return;
  }
  const std::string dir = MakeTempDir();
  Project project(dir);
  project.Write("Dodofile", "#!/bin/sh\ntrue\n");
  ASSERT_EQ(chmod(dir.c_str(), 0555), 0);
  RunResult r = RunCommand({DodoPath(), "build"}, dir);
  chmod(dir.c_str(), 0755);
  EXPECT_EQ(r.exit_status, 125);
  EXPECT_THAT(r.err, HasSubstr(dir + "/.dodo"));
}

TEST(BuildErrorsTest, FailingBuildExitsWithTheRootsStatusAndKeepsTheTrace) {
  const std::string dir = MakeTempDir();
  Project project(dir);
  project.Write("Dodofile", "#!/bin/sh\necho partial > out.txt\nexit 3\n");
  ASSERT_EQ(chmod(project.Path("Dodofile").c_str(), 0755), 0);
  BuildRun run = project.Build();
  EXPECT_EQ(run.run.exit_status, 3);
  EXPECT_THAT(run.run.err, HasSubstr("exited with status 3"));
  // The shell that wrote it failed: the file it made is gone again.
  EXPECT_EQ(project.Read("out.txt"), std::nullopt);
  EXPECT_EQ(project.WhyQuiet(), 1) << "a failed root must rerun";
}

// dodo killed (SIGKILL, no chance to clean up) while a command wrote in
// place: the build dies with it, and the next build first puts back what the
// killed one had changed, from its journal.
TEST(BuildErrorsTest, NextBuildPutsBackWhatAKilledBuildWasWriting) {
  const std::string dir = MakeTempDir();
  Project project(dir);
  project.Write("out.txt", "good\n");
  project.Write("Dodofile",
                "#!/bin/sh\necho half > out.txt\necho new > new.txt\nkill -9 $PPID\nsleep 10\n");
  ASSERT_EQ(chmod(project.Path("Dodofile").c_str(), 0755), 0);
  // Killed, dodo writes no trace: run it without Project::Build's checks.
  RunResult killed = RunCommand({DodoPath(), "build"}, dir);
  EXPECT_EQ(killed.exit_status, 128 + SIGKILL);
  ASSERT_EQ(project.Read("out.txt"), "half\n") << "the command did not run as planned";

  project.Write("Dodofile", "#!/bin/sh\ntrue\n");
  BuildRun next = project.Build();
  EXPECT_EQ(next.run.exit_status, 0) << next.run.err;
  EXPECT_EQ(project.Read("out.txt"), "good\n");
  EXPECT_EQ(project.Read("new.txt"), std::nullopt);
}

TEST(BuildErrorsTest, FailingBuildUnderDirectKeepsWhatItWrote) {
  const std::string dir = MakeTempDir();
  Project project(dir);
  project.Write("Dodofile", "#!/bin/sh\necho partial > out.txt\nexit 3\n");
  ASSERT_EQ(chmod(project.Path("Dodofile").c_str(), 0755), 0);
  BuildRun run = project.Build({"--direct"});
  EXPECT_EQ(run.run.exit_status, 3);
  EXPECT_EQ(project.Read("out.txt"), "partial\n");
}

TEST(WhyErrorsTest, NoBuildYetIsAnErrorNamingTheTrace) {
  const std::string dir = MakeTempDir();
  RunResult r = RunCommand({DodoPath(), "why"}, dir);
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_THAT(r.err, HasSubstr(dir + "/.dodo/trace"));
  EXPECT_THAT(r.out, IsEmpty());
}

TEST(WhyErrorsTest, CorruptTraceArgumentIsAnErrorNamingIt) {
  const std::string dir = MakeTempDir();
  Project project(dir);
  project.Write("bad.trace", "garbage");
  RunResult r = RunCommand({DodoPath(), "why", "bad.trace"}, dir);
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_THAT(r.err, HasSubstr("bad.trace"));
  EXPECT_EQ(Lines(r.err), 1) << r.err;
}

TEST(WhyTest, ExplainsAContentChangeWithBothDigests) {
  Project project = Project::Copy("c_build");
  ASSERT_EQ(project.Build().run.exit_status, 0);
  project.Append("b.c", "int another(void) { return 1; }\n");
  RunResult r = RunCommand({DodoPath(), "why"}, project.dir());
  EXPECT_EQ(r.exit_status, 0);
  EXPECT_THAT(r.out, HasSubstr("content of b.c changed (sha256 "));
  EXPECT_THAT(r.out, HasSubstr("reads b.o, which "));
  RunResult json = RunCommand({DodoPath(), "why", "--json"}, project.dir());
  EXPECT_THAT(json.out, HasSubstr("\"type\":\"rerun\""));
  EXPECT_THAT(json.out, HasSubstr("content of b.c changed"));
}

TEST(WhyTest, NewHeaderEarlierInTheSearchPathShadowsTheOneUsed) {
  Project project = Project::Copy("include_order");
  ASSERT_EQ(project.Build().run.exit_status, 0);
  project.Write("inc1/config.h", "#define VALUE 2\n");
  RunResult r = RunCommand({DodoPath(), "why"}, project.dir());
  EXPECT_THAT(r.out, HasSubstr("new file inc1/config.h shadows inc2/config.h"));
}

}  // namespace
}  // namespace dodo::test
