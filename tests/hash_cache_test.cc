// `dodo trace` keeps file digests between runs in a hash cache: a file that
// has not changed is not read again, and the versions in the trace are the
// same as without the cache.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/trace_loader.h"
#include "tests/trace_test_util.h"

namespace dodo::test {
namespace {

// Long enough for a file changed just now to be trusted by the cache (the
// racy window is two ticks of the coarse clock, 10 ms at least; HZ=100 is
// the slowest kernel clock).
void LetSettle() { usleep(50'000); }

void Write(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::trunc) << content;
}

struct CachedRun {
  TracedRun run;
  int files_hashed = -1;  // from --stats
  std::string input_sha256;
};

// Traces `cat input` in `dir` with the given extra `dodo trace` flags.
CachedRun TraceCat(const std::string& dir, const std::vector<std::string>& flags) {
  CachedRun result;
  result.run.trace_path = MakeTempDir() + "/run.trace";
  std::vector<std::string> argv = {DodoPath(), "trace", "--stats", "-o", result.run.trace_path};
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.insert(argv.end(), {"--", "/bin/cat", "input"});
  RunResult run = RunCommand(argv, dir);
  result.run.exit_status = run.exit_status;
  result.run.err = run.err;
  result.run.trace = LoadTrace(result.run.trace_path);
  std::smatch match;
  if (std::regex_search(run.err, match, std::regex(R"((\d+) files hashed)"))) {
    result.files_hashed = std::stoi(match[1]);
  }
  for (const TracedOp* op : result.run.trace.Find([&](const TracedOp& op) {
         return op.kind == proto::READ && op.path == dir + "/input";
       })) {
    result.input_sha256 = op->sha256;
  }
  return result;
}

TEST(HashCacheTest, UnchangedFilesAreNotReadAgainAndKeepTheirVersions) {
  const std::string dir = MakeTempDir();
  const std::string cache = dir + "/cache/dodo/hashes";  // directories created by dodo
  Write(dir + "/input", "one\n");
  LetSettle();

  CachedRun first = TraceCat(dir, {"--hash-cache", cache});
  ASSERT_EQ(first.run.exit_status, 0) << first.run.err;
  ASSERT_FALSE(first.input_sha256.empty()) << first.run.trace.Dump();
  EXPECT_GE(first.files_hashed, 2) << first.run.err;  // cat and input, at least
  struct stat st;
  ASSERT_EQ(stat(cache.c_str(), &st), 0) << "no hash cache written";
  ASSERT_EQ(stat((dir + "/cache").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  CachedRun second = TraceCat(dir, {"--hash-cache", cache});
  ASSERT_EQ(second.run.exit_status, 0) << second.run.err;
  EXPECT_EQ(second.files_hashed, 0) << second.run.err;
  EXPECT_EQ(second.input_sha256, first.input_sha256);
  EXPECT_EQ(second.run.trace.ops.size(), first.run.trace.ops.size());

  // Same size, new content: read again, new version.
  Write(dir + "/input", "two\n");
  LetSettle();
  CachedRun third = TraceCat(dir, {"--hash-cache", cache});
  ASSERT_EQ(third.run.exit_status, 0) << third.run.err;
  EXPECT_EQ(third.files_hashed, 1) << third.run.err;
  EXPECT_NE(third.input_sha256, first.input_sha256);

  // The digest the cache gave is the one a run without it computes.
  CachedRun uncached = TraceCat(dir, {"--no-hash-cache"});
  ASSERT_EQ(uncached.run.exit_status, 0) << uncached.run.err;
  EXPECT_EQ(uncached.input_sha256, third.input_sha256);
  EXPECT_EQ(uncached.files_hashed, first.files_hashed);
}

TEST(HashCacheTest, DefaultCacheIsInHomeAndNoHashCacheWritesNone) {
  const std::string home = MakeTempDir();
  const std::string dir = MakeTempDir();
  Write(dir + "/input", "x\n");
  const std::string trace = MakeTempDir() + "/run.trace";
  auto trace_with = [&](const std::vector<std::string>& flags) {
    std::vector<std::string> argv = {
        "env", "-u", "XDG_CACHE_HOME", "HOME=" + home, DodoPath(), "trace", "-o", trace};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.insert(argv.end(), {"--", "/bin/cat", "input"});
    return RunCommand(argv, dir);
  };
  struct stat st;
  RunResult off = trace_with({"--no-hash-cache"});
  ASSERT_EQ(off.exit_status, 0) << off.err;
  EXPECT_NE(stat((home + "/.cache").c_str(), &st), 0) << "--no-hash-cache wrote a cache";

  RunResult on = trace_with({});
  ASSERT_EQ(on.exit_status, 0) << on.err;
  EXPECT_EQ(stat((home + "/.cache/dodo/hashes").c_str(), &st), 0) << on.err;
}

// A cache that cannot be written costs the next run its speed-up, nothing
// else: the command's status and the trace are as without it.
TEST(HashCacheTest, UnwritableCacheGivesAWarningAndAWholeTrace) {
  const std::string dir = MakeTempDir();
  Write(dir + "/input", "x\n");
  const std::string cache = "/proc/no-such-dir/hashes";
  CachedRun run = TraceCat(dir, {"--hash-cache", cache});
  EXPECT_EQ(run.run.exit_status, 0) << run.run.err;
  EXPECT_NE(run.run.err.find("warning: hash cache " + cache + " not saved"), std::string::npos)
      << run.run.err;
  EXPECT_TRUE(run.run.trace.complete);
  EXPECT_FALSE(run.input_sha256.empty());
}

// dodo build writes the hash caches while it finishes the trace: a user's
// cache that cannot be written is one warning line, and the build is whole.
TEST(HashCacheTest, BuildWithAnUnwritableCacheWarnsOnceAndIsWhole) {
  const std::string dir = MakeTempDir();
  Write(dir + "/input", "from the build\n");
  const std::string cache = "/proc/no-such-dir/hashes";
  RunResult run = RunCommand({DodoPath(), "build", "--no-background-plan", "--hash-cache", cache,
                              "--", "/bin/sh", "-c", "cat input > output"},
                             dir);
  ASSERT_EQ(run.exit_status, 0) << run.err;
  const std::string warning = "dodo build: warning: hash cache " + cache + " not saved: ";
  const size_t at = run.err.find(warning);
  ASSERT_NE(at, std::string::npos) << run.err;
  EXPECT_EQ(run.err.find(warning, at + 1), std::string::npos) << run.err;
  EXPECT_NE(run.err.find(" (--no-hash-cache turns it off)\n", at), std::string::npos) << run.err;
  EXPECT_EQ(ReadFile(dir + "/output").value_or("(missing)"), "from the build\n");
  struct stat st;
  EXPECT_EQ(stat((dir + "/.dodo/hashes").c_str(), &st), 0) << "the store's cache was not saved";
  RunResult why = RunCommand({DodoPath(), "why", "-q"}, dir);
  EXPECT_EQ(why.exit_status, 0) << why.out << why.err;
}

// dodo build shares the user's hash cache: the digests of what its commands
// read are saved there (besides .dodo/hashes), and a no-op leaves it alone.
TEST(HashCacheTest, BuildSavesTheUserCacheWhenCommandsRan) {
  const std::string dir = MakeTempDir();
  const std::string cache = MakeTempDir() + "/hashes";
  Write(dir + "/input", "from the build\n");
  LetSettle();
  auto build = [&](const std::vector<std::string>& flags) {
    std::vector<std::string> argv = {DodoPath(), "build", "--no-background-plan"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.insert(argv.end(), {"--", "/bin/cat", "input"});
    return RunCommand(argv, dir);
  };
  struct stat st;
  RunResult off = build({"--hash-cache", cache, "--no-hash-cache"});
  ASSERT_EQ(off.exit_status, 0) << off.err;
  EXPECT_NE(stat(cache.c_str(), &st), 0) << "--no-hash-cache wrote the user's cache";

  RunResult fresh = build({"--hash-cache", cache, "--fresh"});
  ASSERT_EQ(fresh.exit_status, 0) << fresh.err;
  ASSERT_EQ(stat(cache.c_str(), &st), 0) << fresh.err;
  // What the build hashed, a trace need not hash again.
  CachedRun traced = TraceCat(dir, {"--hash-cache", cache});
  ASSERT_EQ(traced.run.exit_status, 0) << traced.run.err;
  EXPECT_EQ(traced.files_hashed, 0) << traced.run.err;

  struct stat before;
  ASSERT_EQ(stat(cache.c_str(), &before), 0);
  RunResult noop = build({"--hash-cache", cache});
  ASSERT_EQ(noop.exit_status, 0) << noop.err;
  EXPECT_NE(noop.out.find("dodo: 0 run"), std::string::npos) << noop.out;
  ASSERT_EQ(stat(cache.c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, before.st_ino) << "a no-op rewrote the user's cache";
}

}  // namespace
}  // namespace dodo::test
