// The tracer with its eBPF observer of readlink (bpf_observer.h) against
// the same run with readlink trapped: the same events, in the same order
// among each process's other events. Outside Bazel's sandbox, whose user
// namespace cannot load tracing programs.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <vector>

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
    for (const char* name : {"link", "missing-", "child-link", "thread-link", "burst"}) {
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

std::string ReadlinksProgram() {
  const char* root = getenv("TEST_SRCDIR");
  const char* workspace = getenv("TEST_WORKSPACE");
  if (root == nullptr || workspace == nullptr) return "testdata/programs/readlinks";
  return absl::StrCat(root, "/", workspace, "/testdata/programs/readlinks");
}

struct TracedRun {
  PathSink sink;
  TracerStats stats;
  std::string refusal;
};

// 5,000 readlinks in a row fill the ring buffer past its wake-up mark
// (about 1,000 records) more than once.
constexpr int kBurst = 5000;

void Trace(const std::string& dir, bool use_bpf, TracedRun& run) {
  Tracer tracer(&run.sink);
  tracer.set_use_bpf(use_bpf);
  absl::StatusOr<int> status = tracer.Run({ReadlinksProgram(), dir, absl::StrCat(kBurst)});
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 0);
  run.stats = tracer.stats();
  run.refusal = tracer.bpf_refusal();
}

TEST(TracerBpfTest, ReadlinksAreTheSameEventsInTheSameOrderEitherWay) {
  char dir_template[] = "/tmp/dodo-readlinks-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  for (const char* link : {"link", "child-link", "thread-link"}) {
    ASSERT_EQ(symlink("target", (dir + "/" + link).c_str()), 0);
  }

  TracedRun observed;
  Trace(dir, /*use_bpf=*/true, observed);
  TracedRun trapped;
  Trace(dir, /*use_bpf=*/false, trapped);

  if (geteuid() == 0) {
    EXPECT_EQ(observed.refusal, "");
    EXPECT_GE(observed.stats.observed, 5u + kBurst);
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
  EXPECT_GE(trapped.stats.notifications + trapped.stats.seccomp_stops, 5u + kBurst);
  if (geteuid() == 0) {
    EXPECT_LT(observed.stats.notifications + observed.stats.seccomp_stops, 500u);
  }

  const std::vector<std::string> expected = {
      "readlink link in " + dir + " cwd",
      "newfstatat missing-1 in " + dir + " cwd",
      "readlinkat link in " + dir + " dirfd",
      "readlinkat missing-2 in " + dir + " dirfd",
      "readlink child-link in " + dir + " cwd (child)",
      "readlink thread-link in " + dir + " cwd (thread)",
      "newfstatat missing-3 in " + dir + " cwd",
  };
  EXPECT_EQ(observed.sink.lines, expected);
  EXPECT_EQ(trapped.sink.lines, expected);
  EXPECT_EQ(observed.sink.bursts, kBurst);
  EXPECT_EQ(trapped.sink.bursts, kBurst);

  for (const char* link : {"link", "child-link", "thread-link"}) unlink((dir + "/" + link).c_str());
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace dodo::tracer
