// The tracer with its eBPF observer of lookups (bpf_observer.h) against
// the same run with every lookup trapped: the same events, in the same
// order among each process's other events. Outside Bazel's sandbox, whose user
// namespace cannot load tracing programs.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tracer/tracer.h"

namespace dodo::tracer {
namespace {

// Keeps, per process, the path syscalls whose path is one of the program's
// own names (the lookups of the dynamic loader and libc vary).
class PathSink : public EventSink {
 public:
  void OnSyscall(const SyscallEvent& event) override {
    if (!event.path.has_value()) return;
    const std::string& path = event.path->path;
    for (const char* name :
         {"link", "missing-", "child-link", "thread-link", "burst", "file", "out"}) {
      if (absl::StartsWith(path, name)) {
        const bool main = event.tgid == root;
        std::string line = absl::StrCat(event.syscall, " ", path, " in ", event.path->base,
                                        event.path->dirfd == AT_FDCWD ? " cwd" : " dirfd");
        if (main && event.pid != event.tgid) line += " (thread)";
        if (!main) line += " (child)";
        if (path == "burst") {
          ++bursts;
        } else {
          lines.push_back(line);
        }
        return;
      }
    }
  }
  void OnExec(const ExecEvent& event) override {
    if (root == 0) root = event.pid;
  }
  void OnExecFailed(const ExecFailedEvent&) override {}
  void OnFork(const ForkEvent&) override {}
  void OnExit(const ExitEvent&) override {}
  void OnWarning(const WarningEvent& event) override { warnings.push_back(event.message); }
  pid_t root = 0;
  std::vector<std::string> lines;
  int bursts = 0;
  std::vector<std::string> warnings;
};

std::string TestProgram(const char* name) {
  const char* root = getenv("TEST_SRCDIR");
  const char* workspace = getenv("TEST_WORKSPACE");
  if (root == nullptr || workspace == nullptr) return absl::StrCat("testdata/programs/", name);
  return absl::StrCat(root, "/", workspace, "/testdata/programs/", name);
}

struct TracedRun {
  PathSink sink;
  TracerStats stats;
  std::string refusal;
};

// 30,000 rounds of a readlink and an open fill the ring buffer past its
// wake-up mark (about 45,000 records of that size).
constexpr int kBurst = 30000;

void Trace(const std::string& dir, bool use_bpf, TracedRun& run) {
  Tracer tracer(&run.sink);
  tracer.set_use_bpf(use_bpf);
  absl::StatusOr<int> status =
      tracer.Run({TestProgram("observed_lookups"), dir, absl::StrCat(kBurst)});
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 0);
  run.stats = tracer.stats();
  run.refusal = tracer.bpf_refusal();
}

TEST(TracerBpfTest, LookupsAreTheSameEventsInTheSameOrderEitherWay) {
  char dir_template[] = "/tmp/dodo-lookups-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  for (const char* link : {"link", "child-link", "thread-link"}) {
    ASSERT_EQ(symlink("target", (dir + "/" + link).c_str()), 0);
  }
  const std::string file = dir + "/file";
  ASSERT_TRUE(std::ofstream(file) << "data");

  TracedRun observed;
  Trace(dir, /*use_bpf=*/true, observed);
  TracedRun trapped;
  Trace(dir, /*use_bpf=*/false, trapped);

  if (geteuid() == 0) {
    EXPECT_EQ(observed.refusal, "");
    EXPECT_GE(observed.stats.observed, 2u * kBurst);
  } else {
    // Not allowed to load the program: readlink stays trapped, and the
    // reason is kept for --stats.
    EXPECT_NE(observed.refusal, "");
    EXPECT_EQ(observed.stats.observed, 0u);
  }
  EXPECT_EQ(observed.stats.observed_lost, 0u);
  EXPECT_TRUE(observed.sink.warnings.empty());
  EXPECT_EQ(trapped.stats.observed, 0u);
  EXPECT_EQ(trapped.refusal, "");
  // Without the observer every readlink traps; with it, none does.
  EXPECT_GE(trapped.stats.notifications + trapped.stats.seccomp_stops, 2u * kBurst);
  if (geteuid() == 0) {
    EXPECT_LT(observed.stats.notifications + observed.stats.seccomp_stops, 500u);
  }

  const std::string cwd = " in " + dir + " cwd";
  const std::string at = " in " + dir + " dirfd";
  const std::vector<std::string> expected = {
      "readlink link" + cwd,
      "newfstatat missing-1" + cwd,
      "openat file" + cwd,
      "openat out" + cwd,  // O_CREAT: trapped either way
      "readlinkat link" + at,
      "readlinkat missing-2" + at,
      "openat file" + at,  // through the dup2'd descriptor
      "openat missing-4" + at,
      "newfstatat link" + cwd,
      "newfstatat file" + at,
      "statx file" + at,
      "access file" + cwd,
      "faccessat2 missing-5" + at,
      "unlink out" + cwd,  // trapped either way, so before the next stat
      "newfstatat out" + cwd,
      "readlink child-link" + cwd + " (child)",
      "openat file" + cwd + " (child)",
      "readlink thread-link" + cwd + " (thread)",
      "newfstatat file" + cwd + " (thread)",
      "newfstatat missing-3" + cwd,
  };

  EXPECT_EQ(observed.sink.lines, expected);
  EXPECT_EQ(trapped.sink.lines, expected);
  EXPECT_EQ(observed.sink.bursts, 2 * kBurst);
  EXPECT_EQ(trapped.sink.bursts, 2 * kBurst);

  for (const char* link : {"link", "child-link", "thread-link"}) unlink((dir + "/" + link).c_str());
  unlink(file.c_str());
  rmdir(dir.c_str());
}

// The root process's events in the order the sink got them: a run of
// lookups of one name is one line, with how many calls it had.
class OrderSink : public EventSink {
 public:
  void OnSyscall(const SyscallEvent& event) override {
    if (event.tgid != root || !event.path.has_value()) return;
    const std::string& path = event.path->path;
    if (path == "out") {
      Add(absl::StrCat(event.syscall, " out"));
    } else if (absl::StartsWith(path, "before-") || absl::StartsWith(path, "after-")) {
      Add(path);
      ++lookups[path];
    }
  }
  void OnExec(const ExecEvent& event) override {
    if (root == 0) {
      root = event.pid;
    } else if (event.pid == root) {
      Add("exec");
    }
  }
  void OnExecFailed(const ExecFailedEvent& event) override {
    if (event.pid == root) Add("failed exec");
  }
  void OnFork(const ForkEvent& event) override {
    if (event.parent == root) Add("fork");
  }
  void OnExit(const ExitEvent&) override {}
  void OnWarning(const WarningEvent& event) override { warnings.push_back(event.message); }

  pid_t root = 0;
  std::vector<std::string> lines;
  absl::flat_hash_map<std::string, int> lookups;
  std::vector<std::string> warnings;

 private:
  void Add(const std::string& line) {
    if (lines.empty() || lines.back() != line) lines.push_back(line);
  }
};

// The tracer resumes a process before it hands on the event of its fork,
// exec, failed exec or exit stop (and the lookups the observer held then):
// the lookups it makes once resumed must still come after that event, and
// those it made before, before.
TEST(TracerBpfTest, EventsReportedAfterTheResumeStayBetweenTheLookupsAroundThem) {
  char dir_template[] = "/tmp/dodo-order-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  constexpr int kRun = 2000;
  for (const bool use_bpf : {true, false}) {
    SCOPED_TRACE(use_bpf ? "observed" : "trapped");
    OrderSink sink;
    Tracer tracer(&sink);
    tracer.set_use_bpf(use_bpf);
    absl::StatusOr<int> status =
        tracer.Run({TestProgram("observed_order"), dir, absl::StrCat(kRun)});
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(*status, 0);
    if (use_bpf && geteuid() == 0) {
      EXPECT_EQ(tracer.bpf_refusal(), "");
      EXPECT_GE(tracer.stats().observed, 5u * kRun);
    }
    EXPECT_EQ(tracer.stats().observed_lost, 0u);
    EXPECT_TRUE(sink.warnings.empty());
    const std::vector<std::string> expected = {
        "before-fork",       "fork", "after-fork", "openat out", "after-open", "failed exec",
        "after-failed-exec", "exec", "after-exec",
    };
    EXPECT_EQ(sink.lines, expected);
    for (const char* run :
         {"before-fork", "after-fork", "after-open", "after-failed-exec", "after-exec"}) {
      EXPECT_EQ(sink.lookups[run], kRun) << run;
    }
    unlink((dir + "/out").c_str());
  }
  rmdir(dir.c_str());
}

// What the trapped opens of one process returned, in the order the sink
// got them.
class OpenResultSink : public EventSink {
 public:
  void OnSyscall(const SyscallEvent& event) override {
    if (event.effect != Effect::kOpen || !event.path.has_value()) return;
    const std::string& path = event.path->path;
    if (path != "out" && path != "missing/out") return;
    std::string line = path;
    if ((event.flags & O_APPEND) != 0) line += " (append)";
    if (!event.result.has_value()) {
      line += " = ?";
    } else if (*event.result >= 0) {
      line += " = fd";
    } else {
      line += absl::StrCat(" = ", *event.result);
    }
    lines.push_back(line);
  }
  void OnExec(const ExecEvent&) override {}
  void OnExecFailed(const ExecFailedEvent&) override {}
  void OnFork(const ForkEvent&) override {}
  void OnExit(const ExitEvent&) override {}
  void OnWarning(const WarningEvent& event) override { warnings.push_back(event.message); }
  std::vector<std::string> lines;
  std::vector<std::string> warnings;
};

// A truncating open's result comes from the observer, without an exit
// stop; an append's does not (the sink reads the file it appends to before
// the process writes). Either way every open reaches the sink with what it
// returned, in order.
TEST(TracerBpfTest, TruncatingOpensGetTheirResultsWithoutAnExitStop) {
  char dir_template[] = "/tmp/dodo-results-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  constexpr int kRounds = 40;
  const std::string script = absl::StrCat(
      "cd ", dir, " && i=0; while [ $i -lt ", kRounds,
      " ]; do echo a > out; echo b >> out; true 2>/dev/null > missing/out; i=$((i+1)); done");
  std::vector<std::string> expected;
  for (int i = 0; i < kRounds; ++i) {
    expected.push_back("out = fd");
    expected.push_back("out (append) = fd");
    expected.push_back(absl::StrCat("missing/out = ", -ENOENT));
  }
  for (bool use_bpf : {true, false}) {
    OpenResultSink sink;
    Tracer tracer(&sink);
    tracer.set_use_bpf(use_bpf);
    absl::StatusOr<int> status = tracer.Run({"/bin/sh", "-c", script});
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(*status, 0);
    EXPECT_EQ(sink.lines, expected) << (use_bpf ? "observed" : "trapped");
    EXPECT_TRUE(sink.warnings.empty());
    const TracerStats& stats = tracer.stats();
    if (use_bpf && tracer.bpf_refusal().empty()) {
      // The two truncating opens of each round (with the 2>/dev/null).
      EXPECT_GE(stats.results_observed, 3u * kRounds);
      // The appends keep theirs.
      EXPECT_GE(stats.exit_stops, 1u * kRounds);
      EXPECT_LT(stats.exit_stops, 2u * kRounds);
    } else {
      EXPECT_EQ(stats.results_observed, 0u);
      EXPECT_GE(stats.exit_stops, 4u * kRounds);
    }
  }
  unlink((dir + "/out").c_str());
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace dodo::tracer
