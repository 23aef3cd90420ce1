// Acceptance: processes and threads. Threads opening files, exec from a
// non-leader thread, posix_spawn (vfork), a double-forked daemon writing
// after its parent exited, and a pipeline joined by a pipe.
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "tests/trace_loader.h"
#include "tests/trace_test_util.h"

namespace dodo::test {
namespace {

TEST(ThreadsTest, FilesOpenedByEveryThreadBelongToTheProcess) {
  const std::string dir = MakeTempDir();
  TracedRun run = TraceCommand({ProgramPath("threads"), dir}, dir);
  ASSERT_EQ(run.exit_status, 0) << run.err;
  const LoadedTrace& t = run.trace;
  std::vector<const TracedCommand*> commands = t.CommandsRunning("threads");
  ASSERT_EQ(commands.size(), 1u) << t.Dump();
  for (int i = 0; i < 4; ++i) {
    const std::string path = dir + "/thread-" + std::to_string(i) + ".txt";
    EXPECT_EQ(t.Find([&](const TracedOp& op) {
                 return op.kind == proto::WRITE && op.path == path &&
                        op.command == commands[0]->id && op.create == proto::NEWFILE;
               }).size(),
              1u)
        << path << "\n"
        << t.Dump();
    EXPECT_TRUE(commands[0]->outputs.contains(path));
  }
}

TEST(ExecFromThreadTest, NewProgramIsACommandOfTheSamePid) {
  const std::string dir = MakeTempDir();
  TracedRun run = TraceCommand(
      {ProgramPath("exec_from_thread"), "/bin/sh", "-c", "echo done > from-thread.txt; exit 5"},
      dir);
  EXPECT_EQ(run.exit_status, 5) << run.err;
  const LoadedTrace& t = run.trace;
  std::vector<const TracedCommand*> first = t.CommandsRunning("exec_from_thread");
  std::vector<const TracedCommand*> shell = t.CommandsRunning("dash");
  ASSERT_EQ(first.size(), 1u) << t.Dump();
  ASSERT_EQ(shell.size(), 1u) << t.Dump();
  EXPECT_EQ(shell[0]->parent, first[0]->id);
  EXPECT_EQ(shell[0]->pid, first[0]->pid);  // the thread took the leader's pid
  EXPECT_EQ(first[0]->how, proto::CommandEnd::REPLACED);
  EXPECT_EQ(shell[0]->exit_code, 5);
  EXPECT_EQ(t.Find([&](const TracedOp& op) {
               return op.command == shell[0]->id && op.kind == proto::WRITE &&
                      op.path == dir + "/from-thread.txt";
             }).size(),
            1u)
      << t.Dump();
}

class SpawnTest : public ::testing::TestWithParam<const char*> {};

TEST_P(SpawnTest, ChildIsACommandOfTheSpawner) {
  const std::string dir = MakeTempDir();
  TracedRun run = TraceCommand(
      {ProgramPath(GetParam()), "/bin/sh", "-c", "echo hi > spawned.txt; exit 3"}, dir);
  EXPECT_EQ(run.exit_status, 3) << run.err;
  const LoadedTrace& t = run.trace;
  std::vector<const TracedCommand*> spawner = t.CommandsRunning(GetParam());
  std::vector<const TracedCommand*> shell = t.CommandsRunning("dash");
  ASSERT_EQ(spawner.size(), 1u) << t.Dump();
  ASSERT_EQ(shell.size(), 1u) << t.Dump();
  EXPECT_EQ(shell[0]->parent, spawner[0]->id);
  EXPECT_NE(shell[0]->pid, spawner[0]->pid);
  EXPECT_FALSE(t.Find([&](const TracedOp& op) {
                  return op.command == shell[0]->id && op.kind == proto::WRITE &&
                         op.path == dir + "/spawned.txt";
                }).empty())
      << t.Dump();
}

INSTANTIATE_TEST_SUITE_P(DynamicAndStatic, SpawnTest, ::testing::Values("spawn", "spawn_static"));

TEST(DaemonTest, WriteAfterParentExitIsRecorded) {
  const std::string dir = MakeTempDir();
  const std::string file = dir + "/daemon.txt";
  TracedRun run = TraceCommand({ProgramPath("daemon"), file}, dir);
  EXPECT_EQ(run.exit_status, 0) << run.err;
  // dodo waited for the grandchild: the file exists once dodo has returned.
  EXPECT_TRUE(ReadFile(file).has_value());
  const LoadedTrace& t = run.trace;
  std::vector<const TracedCommand*> daemon = t.CommandsRunning("daemon");
  ASSERT_EQ(daemon.size(), 1u) << t.Dump();
  EXPECT_EQ(t.Find([&](const TracedOp& op) {
               return op.command == daemon[0]->id && op.kind == proto::WRITE && op.path == file;
             }).size(),
            1u)
      << t.Dump();
}

TEST(PipelineTest, TwoCommandsJoinedByOnePipe) {
  const std::string dir = MakeTempDir();
  TracedRun run =
      TraceCommand({"/bin/sh", "-c", "/bin/echo hello | /usr/bin/tr a-z A-Z > out.txt"}, dir);
  ASSERT_EQ(run.exit_status, 0) << run.err;
  EXPECT_EQ(ReadFile(dir + "/out.txt").value_or(""), "HELLO\n");
  const LoadedTrace& t = run.trace;
  std::vector<const TracedCommand*> echo = t.CommandsRunning("echo");
  std::vector<const TracedCommand*> tr = t.CommandsRunning("tr");
  ASSERT_EQ(echo.size(), 1u) << t.Dump();
  ASSERT_EQ(tr.size(), 1u) << t.Dump();
  std::vector<const TracedOp*> writes = t.Find([&](const TracedOp& op) {
    return op.command == echo[0]->id && op.kind == proto::PIPE_WRITE;
  });
  std::vector<const TracedOp*> reads = t.Find(
      [&](const TracedOp& op) { return op.command == tr[0]->id && op.kind == proto::PIPE_READ; });
  ASSERT_EQ(writes.size(), 1u) << t.Dump();
  ASSERT_EQ(reads.size(), 1u) << t.Dump();
  EXPECT_EQ(writes[0]->number, reads[0]->number);  // the same pipe
  EXPECT_NE(writes[0]->number, 0u);
  // tr's stdout is the file the shell opened for it.
  EXPECT_FALSE(t.Find([&](const TracedOp& op) {
                  return op.command == tr[0]->id && op.kind == proto::WRITE &&
                         op.path == dir + "/out.txt";
                }).empty())
      << t.Dump();
}

}  // namespace
// dodo trace writes a command's repeated look at an unchanged path once;
// --keep-repeats writes each.
TEST(RepeatsTest, ShellLookingThreeTimesIsOneOperationUnlessKeepRepeats) {
  for (const bool keep : {false, true}) {
    SCOPED_TRACE(keep ? "--keep-repeats" : "default");
    const std::string dir = MakeTempDir();
    const std::string trace = dir + "/run.trace";
    std::vector<std::string> argv = {DodoPath(), "trace", "-o", trace};
    if (keep) argv.push_back("--keep-repeats");
    argv.insert(argv.end(), {"--", "/bin/sh", "-c", "test -e x; test -e x; test -e x; exit 0"});
    RunResult run = RunCommand(argv, dir);
    ASSERT_EQ(run.exit_status, 0) << run.err;
    LoadedTrace t = LoadTrace(trace);
    std::vector<const TracedCommand*> shells = t.CommandsRunning("sh");
    if (shells.empty()) shells = t.CommandsRunning("dash");
    ASSERT_EQ(shells.size(), 1u) << t.Dump();
    const size_t looks =
        t.Find([&](const TracedOp& op) {
           return op.command == shells[0]->id && op.path == dir + "/x" && op.error == ENOENT;
         }).size();
    EXPECT_EQ(looks, keep ? 3u : 1u) << t.Dump();
  }
}

}  // namespace dodo::test
