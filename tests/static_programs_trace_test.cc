// Acceptance: statically linked programs (no LD_PRELOAD possible) are traced
// like dynamic ones: a C program built with and without -static, busybox's
// applets, and a Go program.
#include <string>

#include "gtest/gtest.h"
#include "tests/trace_loader.h"
#include "tests/trace_test_util.h"

namespace dodo::test {
namespace {

bool HasOp(const LoadedTrace& trace, proto::OpKind kind, const std::string& path, int error = 0) {
  return !trace
              .Find([&](const TracedOp& op) {
                return op.kind == kind && op.path == path && op.error == error;
              })
              .empty();
}

class FileOpsTest : public ::testing::TestWithParam<const char*> {};

TEST_P(FileOpsTest, EveryFileOperationIsRecorded) {
  const std::string dir = MakeTempDir();
  TracedRun run = TraceCommand({ProgramPath(GetParam()), dir}, dir);
  ASSERT_EQ(run.exit_status, 0) << run.err;
  const LoadedTrace& t = run.trace;
  const std::string dump = t.Dump();
  std::vector<const TracedOp*> created = t.Find([&](const TracedOp& op) {
    return op.kind == proto::WRITE && op.path == dir + "/out.txt" && op.create == proto::NEWFILE &&
           op.truncate;
  });
  EXPECT_EQ(created.size(), 1u) << dump;
  EXPECT_TRUE(HasOp(t, proto::READ, dir + "/in.txt")) << dump;
  std::vector<const TracedOp*> renames = t.Find([&](const TracedOp& op) {
    return op.kind == proto::RENAME && op.path == dir + "/out.txt" &&
           op.path2 == dir + "/renamed.txt";
  });
  EXPECT_EQ(renames.size(), 1u) << dump;
  std::vector<const TracedOp*> hard_links = t.Find([&](const TracedOp& op) {
    return op.kind == proto::LINK && op.create == proto::EXISTING && op.path == dir + "/hard.txt" &&
           op.path2 == dir + "/renamed.txt";
  });
  EXPECT_EQ(hard_links.size(), 1u) << dump;
  std::vector<const TracedOp*> symlinks = t.Find([&](const TracedOp& op) {
    return op.kind == proto::LINK && op.create == proto::SYMLINK && op.path == dir + "/link" &&
           op.text == "renamed.txt";
  });
  EXPECT_EQ(symlinks.size(), 1u) << dump;
  std::vector<const TracedOp*> readlinks = t.Find([&](const TracedOp& op) {
    return op.kind == proto::READLINK && op.path == dir + "/link" && op.text == "renamed.txt";
  });
  EXPECT_EQ(readlinks.size(), 1u) << dump;
  std::vector<const TracedOp*> mkdirs = t.Find([&](const TracedOp& op) {
    return op.kind == proto::LINK && op.create == proto::NEWDIR && op.path == dir + "/sub";
  });
  EXPECT_EQ(mkdirs.size(), 1u) << dump;
  EXPECT_TRUE(HasOp(t, proto::RMDIR, dir + "/sub")) << dump;
  EXPECT_TRUE(HasOp(t, proto::UNLINK, dir + "/hard.txt")) << dump;
  std::vector<const TracedOp*> chmods = t.Find([&](const TracedOp& op) {
    return op.kind == proto::CHMOD && op.path == dir + "/renamed.txt" && op.number == 0755;
  });
  EXPECT_EQ(chmods.size(), 1u) << dump;
  std::vector<const TracedOp*> truncs = t.Find([&](const TracedOp& op) {
    return op.kind == proto::TRUNC && op.path == dir + "/renamed.txt" && op.number == 5;
  });
  EXPECT_EQ(truncs.size(), 1u) << dump;
  EXPECT_TRUE(HasOp(t, proto::UTIMES, dir + "/renamed.txt")) << dump;
  EXPECT_TRUE(HasOp(t, proto::STAT, dir + "/missing.txt", ENOENT)) << dump;
  std::vector<const TracedOp*> listings =
      t.Find([&](const TracedOp& op) { return op.kind == proto::LIST && op.path == dir; });
  EXPECT_EQ(listings.size(), 1u) << dump;  // getdents64 runs twice, one observation
}

INSTANTIATE_TEST_SUITE_P(DynamicAndStatic, FileOpsTest,
                         ::testing::Values("file_ops", "file_ops_static"));

TEST(BusyboxTest, AppletsCopyMoveLinkTouchTarAr) {
  const std::string dir = MakeTempDir();
  const std::string script =
      "set -e; echo data > src.txt; busybox cp src.txt copy.txt; busybox mv copy.txt moved.txt;"
      "busybox ln -s moved.txt alias; busybox touch stamp; busybox tar cf pack.tar moved.txt stamp;"
      "/usr/bin/ar rc lib.a src.txt; mkdir x; cd x; busybox ar x ../lib.a";
  TracedRun run = TraceCommand({"/bin/busybox", "sh", "-c", script}, dir);
  ASSERT_EQ(run.exit_status, 0) << run.err;
  const LoadedTrace& t = run.trace;
  const std::string dump = t.Dump();
  // Each applet runs in its own exec of the static busybox binary.
  EXPECT_GE(t.CommandsRunning("busybox").size(), 7u) << dump;
  EXPECT_TRUE(HasOp(t, proto::READ, dir + "/src.txt")) << dump;
  EXPECT_FALSE(t.Find([&](const TracedOp& op) {
                  return op.kind == proto::WRITE && op.path == dir + "/copy.txt" &&
                         op.create == proto::NEWFILE;
                }).empty())
      << dump;
  EXPECT_FALSE(t.Find([&](const TracedOp& op) {
                  return op.kind == proto::RENAME && op.path == dir + "/copy.txt" &&
                         op.path2 == dir + "/moved.txt";
                }).empty())
      << dump;
  EXPECT_FALSE(t.Find([&](const TracedOp& op) {
                  return op.kind == proto::LINK && op.create == proto::SYMLINK &&
                         op.path == dir + "/alias" && op.text == "moved.txt";
                }).empty())
      << dump;
  EXPECT_FALSE(t.Find([&](const TracedOp& op) {
                  return op.path == dir + "/stamp" && op.create == proto::NEWFILE;
                }).empty())
      << dump;
  EXPECT_TRUE(HasOp(t, proto::WRITE, dir + "/pack.tar")) << dump;
  EXPECT_TRUE(HasOp(t, proto::READ, dir + "/moved.txt")) << dump;
  // busybox's ar only extracts: it reads the archive binutils made and
  // writes the member.
  EXPECT_TRUE(HasOp(t, proto::READ, dir + "/lib.a")) << dump;
  EXPECT_TRUE(HasOp(t, proto::WRITE, dir + "/x/src.txt")) << dump;
}

TEST(GoProgramTest, StaticGoBinaryIsTraced) {
  const std::string dir = MakeTempDir();
  TracedRun run = TraceCommand({ProgramPath("gofiles"), dir}, dir);
  ASSERT_EQ(run.exit_status, 0) << run.err;
  const LoadedTrace& t = run.trace;
  const std::string dump = t.Dump();
  // Go makes raw syscalls (no libc): every one must still be seen.
  std::vector<const TracedOp*> writes = t.Find([&](const TracedOp& op) {
    return op.kind == proto::WRITE && op.create == proto::NEWFILE &&
           op.path.rfind(dir + "/", 0) == 0;
  });
  EXPECT_FALSE(writes.empty()) << dump;
  EXPECT_FALSE(t.Find([](const TracedOp& op) { return op.kind == proto::RENAME; }).empty()) << dump;
  EXPECT_FALSE(t.Find([](const TracedOp& op) {
                  return op.kind == proto::LINK && op.create == proto::SYMLINK;
                }).empty())
      << dump;
  EXPECT_FALSE(t.Find([](const TracedOp& op) { return op.kind == proto::LIST; }).empty()) << dump;
}

}  // namespace
}  // namespace dodo::test
