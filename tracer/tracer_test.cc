#include "tracer/tracer.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace dodo::tracer {
namespace {

// Counts what the tracer reports.
class CountingSink : public EventSink {
 public:
  void OnSyscall(const SyscallEvent& event) override { syscalls.push_back(event); }
  void OnExec(const ExecEvent& event) override { execs.push_back(event); }
  void OnExecFailed(const ExecFailedEvent&) override { ++failed_execs; }
  void OnFork(const ForkEvent&) override { ++forks; }
  void OnExit(const ExitEvent& event) override { exits.push_back(event); }
  void OnWarning(const WarningEvent& event) override { warnings.push_back(event); }
  std::vector<SyscallEvent> syscalls;
  std::vector<ExecEvent> execs;
  std::vector<ExitEvent> exits;
  std::vector<WarningEvent> warnings;
  int failed_execs = 0;
  int forks = 0;
};

TEST(TracerTest, ReadsAndWritesDoNotStopTheTracee) {
  CountingSink sink;
  Tracer tracer(&sink);
  // 20,000 one-byte reads and writes, plus the usual start-up.
  absl::StatusOr<int> status =
      tracer.Run({"dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=20000", "status=none"});
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 0);
  EXPECT_LT(tracer.stats().seccomp_stops, 200u);
  EXPECT_LT(tracer.stats().exit_stops, 100u);
}

TEST(TracerTest, LookupsNeedNoExitStop) {
  CountingSink sink;
  Tracer tracer(&sink);
  // 300 stat() calls through the shell's `test -e`.
  absl::StatusOr<int> status = tracer.Run(
      {"/bin/sh", "-c", "i=0; while [ $i -lt 300 ]; do test -e /nonexistent/$i; i=$((i+1)); done"});
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 0);
  int lookups = 0;
  for (const SyscallEvent& event : sink.syscalls) {
    if (event.path.has_value() && event.path->path.rfind("/nonexistent/", 0) == 0) {
      ++lookups;
      EXPECT_FALSE(event.result.has_value());  // reported at entry
    }
  }
  EXPECT_EQ(lookups, 300);
  EXPECT_LT(tracer.stats().exit_stops, 50u);
}

// A filter built beforehand serves only the run it was built for: one that
// leaves the lookups to the eBPF observer, handed to a tracer that is to
// trap them, would let them all through unseen.
TEST(TracerTest, AFilterBuiltBeforehandIsTakenOnlyWithTheOptionsItWasBuiltFor) {
  const std::vector<std::string> argv = {
      "/bin/sh", "-c", "i=0; while [ $i -lt 20 ]; do test -e /nonexistent/$i; i=$((i+1)); done"};
  for (const bool observed : {true, false}) {
    SCOPED_TRACE(observed ? "built to leave the lookups to the observer" : "built to trap them");
    CountingSink sink;
    Tracer tracer(&sink);
    tracer.set_use_bpf(false);
    tracer.set_filter(
        FilterOptions{.lookups_observed = observed},
        SeccompFilter::BuildInBackground(FilterOptions{.lookups_observed = observed}));
    absl::StatusOr<int> status = tracer.Run(argv);
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(*status, 0);
    int lookups = 0;
    for (const SyscallEvent& event : sink.syscalls) {
      if (event.path.has_value() && event.path->path.rfind("/nonexistent/", 0) == 0) ++lookups;
    }
    EXPECT_EQ(lookups, 20);
  }
}

TEST(TracerTest, ExecReportsArgvEnvironmentAndDescriptors) {
  CountingSink sink;
  Tracer tracer(&sink);
  absl::StatusOr<int> status =
      tracer.Run({"/usr/bin/env", "-i", "DODO_TEST=1", "/bin/sh", "-c", "exit 0"});
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(sink.execs.size(), 2u);
  const ExecEvent& shell = sink.execs[1];
  EXPECT_EQ(shell.executable, "/usr/bin/dash");
  EXPECT_EQ(shell.argv, (std::vector<std::string>{"/bin/sh", "-c", "exit 0"}));
  EXPECT_EQ(shell.env, (std::vector<std::string>{"DODO_TEST=1"}));
  EXPECT_EQ(shell.pid, sink.execs[0].pid);
  bool has_stderr = false;
  for (const FdInfo& fd : shell.fds) has_stderr |= fd.fd == 2;
  EXPECT_TRUE(has_stderr);
}

TEST(TracerTest, DupAndCloexecAreFollowed) {
  CountingSink sink;
  Tracer tracer(&sink);
  // The shell opens out.txt, dup2s it onto fd 1 for `true`, then the child
  // inherits fd 1 but not the close-on-exec copies.
  const std::string dir = testing::TempDir();
  absl::StatusOr<int> status =
      tracer.Run({"/bin/sh", "-c", "cd " + dir + " && /bin/true > dup-test.txt"});
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(sink.execs.size(), 2u);
  const ExecEvent& child = sink.execs[1];
  bool fd1_is_file = false;
  for (const FdInfo& fd : child.fds) {
    if (fd.fd == 1) fd1_is_file = fd.path.ends_with("/dup-test.txt") && fd.writable;
  }
  EXPECT_TRUE(fd1_is_file);
}

// Reads, when an open of `name` with a result comes, what the file holds,
// after waiting long enough for the process to have written to it if it was
// running meanwhile.
class ContentAtOpenSink : public CountingSink {
 public:
  explicit ContentAtOpenSink(std::string name) : name_(std::move(name)) {}
  void OnSyscall(const SyscallEvent& event) override {
    CountingSink::OnSyscall(event);
    if (event.effect != Effect::kOpen || !event.result.has_value() || !event.path.has_value() ||
        !event.path->path.ends_with(name_)) {
      return;
    }
    usleep(50'000);
    std::ifstream in(event.path->base + "/" + event.path->path);
    std::stringstream content;
    content << in.rdbuf();
    seen.push_back(content.str());
  }
  std::vector<std::string> seen;

 private:
  std::string name_;
};

// The sink hashes the version an appending write starts from when it gets
// the open: the process, which writes next without stopping, must still be
// stopped then. (A truncating open is reported once the process runs.)
TEST(TracerTest, AnOpenThatWritesWithoutTruncatingIsReportedBeforeTheProcessWrites) {
  const std::string dir = testing::TempDir();
  const std::string file = dir + "/appended.txt";
  ASSERT_TRUE(std::ofstream(file) << "old\n");
  ContentAtOpenSink sink("appended.txt");
  Tracer tracer(&sink);
  absl::StatusOr<int> status =
      tracer.Run({"/bin/sh", "-c", "cd " + dir + " && echo new >> appended.txt"});
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 0);
  EXPECT_EQ(sink.seen, std::vector<std::string>{"old\n"});
  std::ifstream in(file);
  std::stringstream content;
  content << in.rdbuf();
  EXPECT_EQ(content.str(), "old\nnew\n");
}

// `: | cmd` with the writer gone first: the reader gets a drained pipe. With
// `sleep` still holding the write end, the pipe is not drained.
TEST(TracerTest, ExecReportsDrainedPipes) {
  CountingSink sink;
  Tracer tracer(&sink);
  absl::StatusOr<int> status =
      tracer.Run({"/bin/sh", "-c", ": | { sleep 0.5; exec /bin/true; }; sleep 1 | exec /bin/true"});
  ASSERT_TRUE(status.ok()) << status.status();
  std::vector<bool> stdin_drained;
  for (const ExecEvent& exec : sink.execs) {
    if (exec.argv != std::vector<std::string>{"/bin/true"}) continue;
    for (const FdInfo& fd : exec.fds) {
      if (fd.fd == 0) stdin_drained.push_back(fd.kind == FdKind::kPipe && fd.drained);
    }
  }
  EXPECT_EQ(stdin_drained, (std::vector<bool>{true, false}));
}

// A writable file's size is read while the new program is stopped at its
// exec. The sink hears of the exec only once the program runs, and a size
// read then may count what the program wrote already (with the lookups
// observed by eBPF, nothing holds the program back meanwhile).
class ExecSizeSink : public CountingSink {
 public:
  void OnExec(const ExecEvent& event) override {
    CountingSink::OnExec(event);
    if (event.argv.size() != 3 || event.argv[2] != "printf 12345") return;
    for (const FdInfo& fd : event.fds) {
      if (fd.fd == 1) size_at_exec = fd.size;
    }
  }
  std::optional<uint64_t> size_at_exec;
};

TEST(TracerTest, ExecReportsTheSizeOfAWritableFileBeforeTheProgramRuns) {
  char dir[] = "/tmp/tracer_size_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string out = std::string(dir) + "/out";
  ExecSizeSink sink;
  Tracer tracer(&sink);
  absl::StatusOr<int> status = tracer.Run(
      {"/bin/sh", "-c", "printf abc > " + out + "; exec /bin/sh -c 'printf 12345' >> " + out});
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 0);
  ASSERT_TRUE(sink.size_at_exec.has_value());
  EXPECT_EQ(*sink.size_at_exec, 3u);
  struct stat st;
  ASSERT_EQ(stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 8);  // then the program appended its 5 bytes
  unlink(out.c_str());
  rmdir(dir);
}

// A program of //testdata/programs, from the test's runfiles.
std::string TestProgram(const std::string& name) {
  const char* root = getenv("TEST_SRCDIR");
  const char* workspace = getenv("TEST_WORKSPACE");
  if (root == nullptr || workspace == nullptr) return "testdata/programs/" + name;
  return std::string(root) + "/" + workspace + "/testdata/programs/" + name;
}

std::string LookupsProgram() { return TestProgram("lookups"); }

// The stat, access and readlink families and read-only opens come from the
// seccomp listener, not from ptrace stops; the events are the same.
class TracerModeTest : public testing::TestWithParam<bool> {
 protected:
  bool listener() const { return GetParam(); }
};

TEST_P(TracerModeTest, LookupsAndReadOnlyOpensAreReportedEitherWay) {
  CountingSink sink;
  Tracer tracer(&sink);
  tracer.set_use_listener(listener());
  // 200 rounds of stat, access and a read-only open.
  absl::StatusOr<int> status = tracer.Run({LookupsProgram(), "200", "/etc/hostname"});
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 0);
  int lookups = 0;
  int opens = 0;
  for (const SyscallEvent& event : sink.syscalls) {
    if (!event.path.has_value()) continue;
    if (absl::StartsWith(event.path->path, "/etc/hostname.missing/")) {
      ++lookups;
      EXPECT_EQ(event.effect, Effect::kStat);
      EXPECT_FALSE(event.result.has_value());  // reported at entry
    }
    if (event.path->path == "/etc/hostname" && event.effect == Effect::kOpen) {
      ++opens;
      EXPECT_EQ(event.flags & O_ACCMODE, static_cast<uint64_t>(O_RDONLY));
      // Only a ptrace exit stop learns the result.
      EXPECT_EQ(event.result.has_value(), !listener());
    }
  }
  EXPECT_EQ(lookups, 200);
  EXPECT_EQ(opens, 200);
  EXPECT_EQ(tracer.stats().notifications > 0, listener());
  EXPECT_EQ(tracer.stats().listeners, listener() ? 1u : 0u);
}

TEST(TracerTest, TheListenerSavesAPtraceStopPerLookupAndReadOnlyOpen) {
  // 100 of each: stat, access, read-only open, with and without the listener.
  const std::vector<std::string> argv = {LookupsProgram(), "100", "/etc/hostname"};
  TracerStats stats[2];
  for (bool listener : {false, true}) {
    CountingSink sink;
    Tracer tracer(&sink);
    tracer.set_use_listener(listener);
    absl::StatusOr<int> status = tracer.Run(argv);
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(*status, 0);
    stats[listener] = tracer.stats();
  }
  EXPECT_EQ(stats[false].notifications, 0u);
  EXPECT_GE(stats[true].notifications, 300u);
  EXPECT_GE(stats[false].seccomp_stops, stats[true].seccomp_stops + 300);
  // The opens' exit stops are gone too.
  EXPECT_GE(stats[false].exit_stops, stats[true].exit_stops + 100);
}

// Processes that run side by side get listeners of their own; the shell
// that starts them gets none (its lookups are ptrace stops), so that its
// children can. Every lookup is reported either way.
TEST(TracerTest, ProcessesSideBySideHaveListenersOfTheirOwn) {
  CountingSink sink;
  Tracer tracer(&sink);
  const std::string lookups = LookupsProgram();
  absl::StatusOr<int> status =
      tracer.Run({"/bin/sh", "-c",
                  absl::StrCat(lookups, " 300 /etc/hostname & ", lookups,
                               " 300 /etc/passwd; wait $!; test -e /nonexistent-shell-lookup")});
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 1);  // the last test -e
  EXPECT_EQ(tracer.stats().listeners, 2u);
  EXPECT_GE(tracer.stats().notifications, 2u * 900);
  int lookups_seen[2] = {0, 0};
  bool shell_lookup = false;
  for (const SyscallEvent& event : sink.syscalls) {
    if (!event.path.has_value()) continue;
    if (absl::StartsWith(event.path->path, "/etc/hostname.missing/")) ++lookups_seen[0];
    if (absl::StartsWith(event.path->path, "/etc/passwd.missing/")) ++lookups_seen[1];
    if (event.path->path == "/nonexistent-shell-lookup") shell_lookup = true;
  }
  EXPECT_EQ(lookups_seen[0], 300);
  EXPECT_EQ(lookups_seen[1], 300);
  EXPECT_TRUE(shell_lookup);
}

// A shell running a script file gets a listener, and the commands of the
// script share it instead of each getting one: lookups of the shell's own
// and of its commands are notifications, none a ptrace stop. As the traced
// command itself, the script gets none and its two commands one each.
TEST(TracerTest, AScriptSharesItsShellsListener) {
  char dir_template[] = "/tmp/dodo-script-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string script = std::string(dir_template) + "/run.sh";
  const std::string lookups = LookupsProgram();
  std::ofstream(script) << absl::StrCat("#!/bin/sh\n", lookups, " 200 /etc/hostname\n", lookups,
                                        " 200 /etc/passwd\n",
                                        "i=0; while [ $i -lt 300 ]; do test -e "
                                        "/nonexistent-script-lookup/$i || :; i=$((i+1)); done\n");
  ASSERT_EQ(chmod(script.c_str(), 0755), 0);
  // `; exit $?` keeps the shell from running the script in its own process,
  // which would make the script the root.
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{"/bin/sh", "-c", script + "; exit $?"},
        std::vector<std::string>{"/bin/sh", "-c", "/bin/sh -e " + script + "; exit $?"}}) {
    CountingSink sink;
    Tracer tracer(&sink);
    absl::StatusOr<int> status = tracer.Run(argv);
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(*status, 0);
    EXPECT_EQ(tracer.stats().listeners, 1u) << argv[0];
    EXPECT_GE(tracer.stats().notifications, 2u * 600 + 300);
    // The shell's 300 builtin lookups made no ptrace stop.
    EXPECT_LT(tracer.stats().seccomp_stops, 100u);
    int lookups_seen[2] = {0, 0};
    int shell_lookups = 0;
    for (const SyscallEvent& event : sink.syscalls) {
      if (!event.path.has_value()) continue;
      if (absl::StartsWith(event.path->path, "/etc/hostname.missing/")) ++lookups_seen[0];
      if (absl::StartsWith(event.path->path, "/etc/passwd.missing/")) ++lookups_seen[1];
      if (absl::StartsWith(event.path->path, "/nonexistent-script-lookup/")) ++shell_lookups;
    }
    EXPECT_EQ(lookups_seen[0], 200);
    EXPECT_EQ(lookups_seen[1], 200);
    EXPECT_EQ(shell_lookups, 300);
  }
  CountingSink sink;
  Tracer tracer(&sink);
  absl::StatusOr<int> status = tracer.Run({script});
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 0);
  EXPECT_EQ(tracer.stats().listeners, 2u);
  EXPECT_GE(tracer.stats().seccomp_stops, 300u);
  ASSERT_EQ(std::system(absl::StrCat("rm -rf ", dir_template).c_str()), 0);
}

// A program's own seccomp listener would take the calls its filter names
// away from dodo, so it is refused with EBUSY even in a process that dodo
// gave no listener (a copy of the program named `make` gets none). Under
// --ptrace-only it is let through.
TEST(TracerTest, AListenerOfTheProgramsOwnIsRefused) {
  char dir_template[] = "/tmp/dodo-new-listener-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string copy = std::string(dir_template) + "/make";
  ASSERT_EQ(std::system(absl::StrCat("cp ", TestProgram("new_listener"), " ", copy).c_str()), 0);
  for (bool listener : {true, false}) {
    CountingSink sink;
    Tracer tracer(&sink);
    tracer.set_use_listener(listener);
    absl::StatusOr<int> status = tracer.Run({copy});
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(*status, listener ? 0 : 1) << "listener " << listener;
    EXPECT_EQ(tracer.stats().listeners, 0u);
  }
  ASSERT_EQ(std::system(absl::StrCat("rm -rf ", dir_template).c_str()), 0);
}

// An exec that will fail gets no listener: the filter would stay behind in
// the process that goes on, with the listener's descriptor open.
TEST(TracerTest, FailingExecGetsNoListener) {
  CountingSink sink;
  Tracer tracer(&sink);
  absl::StatusOr<int> status =
      tracer.Run({"/bin/sh", "-c", "/nonexistent/program; /dev/null; exit 0"});
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 0);
  EXPECT_EQ(tracer.stats().listeners, 0u);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Serves /virtual/NAME from a real directory, the way dodo build serves
// staged outputs.
class VirtualDirectory : public PathRedirector {
 public:
  explicit VirtualDirectory(std::string real) : real_(std::move(real)) {}
  bool RewritesPaths() const override { return true; }
  Redirection Redirect(const SyscallEvent& event) override {
    if (!event.path.has_value() || !absl::StartsWith(event.path->path, "/virtual/")) return {};
    return {.path = real_ + event.path->path.substr(8)};
  }
  void AfterSyscall(const SyscallEvent&, int64_t) override {}
  std::optional<std::string> Logical(const std::string&) const override { return std::nullopt; }

 private:
  std::string real_;
};

TEST_P(TracerModeTest, RedirectedLookupsAndReadsSeeTheRealFile) {
  char dir_template[] = "/tmp/dodo-virtual-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  std::ofstream(dir + "/file") << "hello\n";
  ASSERT_EQ(symlink("file", (dir + "/link").c_str()), 0);
  CountingSink sink;
  VirtualDirectory redirector(dir);
  Tracer tracer(&sink);
  tracer.set_use_listener(listener());
  tracer.set_path_redirector(&redirector);
  // cat: openat; test -e: stat; readlink: readlinkat; stat -c: statx;
  // test -r: faccessat. None of /virtual exists: only redirection finds it.
  // The programs, not the shell's builtins: the shell has no listener.
  absl::StatusOr<int> status = tracer.Run(
      {"/bin/sh", "-c",
       "cd " + dir +
           " && cat /virtual/file > cat.out && /usr/bin/test -e /virtual/file && "
           "readlink /virtual/link > readlink.out && stat -c %s /virtual/file > stat.out && "
           "/usr/bin/test -r /virtual/file && ! /usr/bin/test -e /virtual/missing"});
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 0);
  EXPECT_EQ(ReadFile(dir + "/cat.out"), "hello\n");
  EXPECT_EQ(ReadFile(dir + "/readlink.out"), "file\n");
  EXPECT_EQ(ReadFile(dir + "/stat.out"), "6\n");
  // The events keep the paths the program passed.
  bool saw_virtual_open = false;
  for (const SyscallEvent& event : sink.syscalls) {
    saw_virtual_open |= event.effect == Effect::kOpen && event.path.has_value() &&
                        event.path->path == "/virtual/file";
  }
  EXPECT_TRUE(saw_virtual_open);
  if (listener()) {
    EXPECT_GE(tracer.stats().answered, 5u);
  }
}

// A descriptor closed and its number reused by a read-only open (which makes
// no stop under the listener) must not be mistaken for the old file.
TEST_P(TracerModeTest, AReusedDescriptorNamesItsNewFile) {
  char dir_template[] = "/tmp/dodo-reuse-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  std::ofstream(dir + "/file") << "x";
  CountingSink sink;
  Tracer tracer(&sink);
  tracer.set_use_listener(listener());
  absl::StatusOr<int> status =
      tracer.Run({"/usr/bin/python3", "-S", "-c",
                  "import os, sys\n"
                  "d = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
                  "os.close(d)\n"
                  "f = os.open(sys.argv[1] + '/file', os.O_RDONLY)\n"
                  "assert f == d, (f, d)\n"
                  "os.fchmod(f, 0o600)\n",
                  dir});
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(*status, 0);
  int chmods = 0;
  for (const SyscallEvent& event : sink.syscalls) {
    if (event.effect != Effect::kChmod || !event.fd.has_value()) continue;
    ++chmods;
    EXPECT_EQ(event.fd->path, dir + "/file");
    EXPECT_EQ(event.fd->kind, FdKind::kFile);
  }
  EXPECT_EQ(chmods, 1);
}

// `ls src/` opens "src/": the descriptor is known as "src", like every
// lookup that reaches the same directory, or a listing would not match the
// paths the build writes in it.
TEST_P(TracerModeTest, ADescriptorIsKnownByItsPathWithoutEmptyOrDotComponents) {
  char dir_template[] = "/tmp/dodo-fdpath-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  ASSERT_EQ(mkdir((dir + "/sub").c_str(), 0755), 0);
  CountingSink sink;
  Tracer tracer(&sink);
  tracer.set_use_listener(listener());
  absl::StatusOr<int> status =
      tracer.Run({"/usr/bin/python3", "-S", "-c",
                  "import os, sys\n"
                  "for name in ('/./sub//', '/sub/.', '/sub'):\n"
                  "  d = os.open(sys.argv[1] + name, os.O_RDONLY | os.O_DIRECTORY)\n"
                  "  os.listdir(d)\n"
                  "  os.close(d)\n",
                  dir});
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(*status, 0);
  std::vector<std::string> listed;
  for (const SyscallEvent& event : sink.syscalls) {
    // (Python lists its own library directories too.)
    if (event.effect == Effect::kList && event.fd.has_value() && event.fd->path.starts_with(dir)) {
      listed.push_back(event.fd->path);
    }
  }
  EXPECT_EQ(listed, std::vector<std::string>(3, dir + "/sub"));
  rmdir((dir + "/sub").c_str());
  rmdir(dir.c_str());
}

INSTANTIATE_TEST_SUITE_P(Stops, TracerModeTest, testing::Bool(),
                         [](const testing::TestParamInfo<bool>& info) {
                           return info.param ? "Listener" : "PtraceOnly";
                         });

}  // namespace
}  // namespace dodo::tracer
