#include "model/up_to_date.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "model/file_hasher.h"
#include "model/test_trace_builder.h"

namespace dodo::model {
namespace {

using testutil::ScratchDir;
using testutil::WriteFile;

// A tree with a source file, a symlink to it and a name that does not
// exist, looked up the way a plan looks them up; and a stand-in trace file.
class UpToDateTest : public testing::Test {
 protected:
  UpToDateTest() : tree_(&hasher_, dir_.path()) {}

  void SetUp() override {
    WriteFile(dir_.P("a.c"), "int a;\n");
    ASSERT_EQ(symlink("a.c", dir_.P("link.c").c_str()), 0);
    WriteFile(dir_.P(".dodo/trace"), "trace");
    WriteFile(dir_.P("inc/x.h"), "");
    // File systems keep times in coarse ticks: let the tick of the writes
    // above pass, so that the tests' changes get times of their own.
    SleepPastTick();
  }

  static void SleepPastTick() { absl::SleepFor(absl::Milliseconds(30)); }

  void LookUpAll() {
    tree_.Forget();
    for (const char* name : {"a.c", "link.c", "missing.h", "inc", ".dodo/trace"}) {
      tree_.Lookup(dir_.P(name));
    }
  }

  // A stamp of the lookups, as if the plan had started at `since_ns`.
  std::optional<UpToDateStamp> Stamp(int64_t since_ns) {
    LookUpAll();
    return UpToDateStamp::FromPlan(tree_, dir_.P(".dodo/"), root_, 7, 0, since_ns);
  }

  // Writes a stamp made a second into the future (so that nothing is too
  // recent) and returns whether it holds now for `root`.
  bool WriteThenCheck(const RootCall& root) {
    std::optional<UpToDateStamp> stamp = Stamp(absl::ToUnixNanos(absl::Now() + absl::Seconds(1)));
    EXPECT_TRUE(stamp.has_value());
    if (!stamp.has_value()) return false;
    EXPECT_TRUE(stamp->Write(StampPath(), TracePath()).ok());
    return Holds(root);
  }
  bool Holds(const RootCall& root) {
    return CheckUpToDateStamp(StampPath(), TracePath(), root).has_value();
  }

  std::string StampPath() const { return dir_.P(".dodo/uptodate"); }
  std::string TracePath() const { return dir_.P(".dodo/trace"); }

  ScratchDir dir_;
  FileHasher hasher_;
  LiveTree tree_;
  RootCall root_{.argv = {"make", "-j2"}, .cwd = "/src", .env = {"PATH=/bin", "OLDPWD=/a"}};
};

TEST_F(UpToDateTest, HoldsWhileNothingChanges) {
  ASSERT_TRUE(WriteThenCheck(root_));
  std::optional<UpToDateHit> hit = CheckUpToDateStamp(StampPath(), TracePath(), root_);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->commands, 7u);
  EXPECT_EQ(hit->exit_status, 0);
}

TEST_F(UpToDateTest, SameSizeRewriteWithTheOldMtimeIsSeen) {
  ASSERT_TRUE(WriteThenCheck(root_));
  struct stat before;
  ASSERT_EQ(stat(dir_.P("a.c").c_str(), &before), 0);
  WriteFile(dir_.P("a.c"), "int b;\n");  // same size
  const timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, dir_.P("a.c").c_str(), times, 0), 0);
  EXPECT_FALSE(Holds(root_));  // the ctime moved
}

TEST_F(UpToDateTest, NewFileAtAMissingNameIsSeen) {
  ASSERT_TRUE(WriteThenCheck(root_));
  WriteFile(dir_.P("missing.h"), "");
  EXPECT_FALSE(Holds(root_));
}

// Only a listing observes a directory's entries: a directory looked up (as
// /tmp is, by every gcc) may gain and lose names.
TEST_F(UpToDateTest, NewNameInADirectoryOnlyLookedUpChangesNothing) {
  ASSERT_TRUE(WriteThenCheck(root_));
  WriteFile(dir_.P("inc/y.h"), "");
  EXPECT_TRUE(Holds(root_));
  ASSERT_EQ(rename(dir_.P("inc").c_str(), dir_.P("inc2").c_str()), 0);
  EXPECT_FALSE(Holds(root_));  // but not be removed
}

TEST_F(UpToDateTest, RetargetedSymlinkIsSeen) {
  WriteFile(dir_.P("b.c"), "int a;\n");
  SleepPastTick();
  ASSERT_TRUE(WriteThenCheck(root_));
  ASSERT_EQ(unlink(dir_.P("link.c").c_str()), 0);
  ASSERT_EQ(symlink("b.c", dir_.P("link.c").c_str()), 0);
  EXPECT_FALSE(Holds(root_));
}

TEST_F(UpToDateTest, AnotherTraceIsSeen) {
  ASSERT_TRUE(WriteThenCheck(root_));
  WriteFile(dir_.P(".dodo/trace.new"), "trace");
  ASSERT_EQ(rename(dir_.P(".dodo/trace.new").c_str(), TracePath().c_str()), 0);
  EXPECT_FALSE(Holds(root_));
}

TEST_F(UpToDateTest, RootCommandAndEnvironmentCount) {
  ASSERT_TRUE(WriteThenCheck(root_));
  RootCall other = root_;
  other.argv = {"make"};
  EXPECT_FALSE(Holds(other));
  other = root_;
  other.cwd = "/elsewhere";
  EXPECT_FALSE(Holds(other));
  other = root_;
  other.env = {"PATH=/usr/bin", "OLDPWD=/a"};
  EXPECT_FALSE(Holds(other));
  other = root_;
  other.env = {"PATH=/bin", "OLDPWD=/b"};  // the plan ignores OLDPWD too
  EXPECT_TRUE(Holds(other));
}

TEST_F(UpToDateTest, TooRecentAChangeGivesNoStamp) {
  // The plan started before a.c's last change could be told apart by time.
  EXPECT_FALSE(Stamp(absl::ToUnixNanos(absl::Now())).has_value());
}

TEST_F(UpToDateTest, MissingOrCorruptStampDoesNotHold) {
  EXPECT_FALSE(Holds(root_));
  WriteFile(StampPath(), "not a stamp");
  EXPECT_FALSE(Holds(root_));
}

}  // namespace
}  // namespace dodo::model
