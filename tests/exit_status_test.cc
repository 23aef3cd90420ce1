// Acceptance: dodo exits as the traced command did, and a signal to dodo
// ends the whole traced tree.
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "tests/trace_loader.h"
#include "tests/trace_test_util.h"

namespace dodo::test {
namespace {

TEST(ExitStatusTest, CommandStatusIsDodosStatus) {
  const std::string dir = MakeTempDir();
  EXPECT_EQ(TraceCommand({"/bin/sh", "-c", "exit 7"}, dir).exit_status, 7);
  EXPECT_EQ(TraceCommand({"/bin/true"}, dir).exit_status, 0);
}

TEST(ExitStatusTest, DeathBySignalIs128PlusSignal) {
  const std::string dir = MakeTempDir();
  TracedRun segv = TraceCommand({ProgramPath("segv")}, dir);
  EXPECT_EQ(segv.exit_status, 128 + SIGSEGV);
  std::vector<const TracedCommand*> commands = segv.trace.CommandsRunning("segv");
  ASSERT_EQ(commands.size(), 1u);
  EXPECT_EQ(commands[0]->how, proto::CommandEnd::KILLED);
  EXPECT_EQ(commands[0]->signal, SIGSEGV);
  EXPECT_EQ(TraceCommand({"/bin/sh", "-c", "kill -TERM $$"}, dir).exit_status, 128 + SIGTERM);
}

TEST(ExitStatusTest, MissingCommandIs127) {
  const std::string dir = MakeTempDir();
  TracedRun run = TraceCommand({"no-such-command-dodo-test"}, dir);
  EXPECT_EQ(run.exit_status, 127);
  EXPECT_NE(run.err.find("no-such-command-dodo-test"), std::string::npos);
}

// Processes whose command line contains `marker`.
std::vector<pid_t> ProcessesWith(const std::string& marker) {
  std::vector<pid_t> found;
  DIR* proc = opendir("/proc");
  while (dirent* entry = readdir(proc)) {
    pid_t pid = atoi(entry->d_name);
    if (pid <= 0 || pid == getpid()) continue;
    std::ifstream cmdline("/proc/" + std::string(entry->d_name) + "/cmdline");
    std::stringstream text;
    text << cmdline.rdbuf();
    if (text.str().find(marker) != std::string::npos) found.push_back(pid);
  }
  closedir(proc);
  return found;
}

TEST(ExitStatusTest, SigintToDodoLeavesNoTracedProcess) {
  const std::string dir = MakeTempDir();
  const std::string marker =
      "4242.5" + std::to_string(getpid());  // a sleep length no one else uses
  const std::string script =
      "sleep " + marker + " & (setsid sleep " + marker + " &); sleep " + marker + "; wait";
  pid_t dodo = fork();
  ASSERT_GE(dodo, 0);
  if (dodo == 0) {
    execl(DodoPath().c_str(), "dodo", "trace", "-o", (dir + "/t.trace").c_str(), "--", "/bin/sh",
          "-c", script.c_str(), static_cast<char*>(nullptr));
    _exit(126);
  }
  const std::string needle = std::string("sleep") + '\0' + marker;
  // Wait until all three sleeps run.
  for (int i = 0; i < 200 && ProcessesWith(needle).size() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(ProcessesWith(needle).size(), 3u);
  kill(dodo, SIGINT);
  int status = 0;
  ASSERT_EQ(waitpid(dodo, &status, 0), dodo);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGINT);
  // SIGKILL is immediate, but reaping by the new parent may lag a moment.
  std::vector<pid_t> left;
  for (int i = 0; i < 50; ++i) {
    left = ProcessesWith(needle);
    if (left.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(left.empty()) << left.size() << " traced processes survived";
  // The trace was finished properly.
  LoadedTrace trace = LoadTrace(dir + "/t.trace");
  EXPECT_TRUE(trace.complete) << trace.reader_warning;
}

}  // namespace
}  // namespace dodo::test
