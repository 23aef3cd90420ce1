#include "tracer/fd_table.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dodo::tracer {
namespace {

// A pipe of this process, described the way the tracer describes a tracee's.
class PipeTest : public testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(pipe2(ends_, O_CLOEXEC), 0); }
  void TearDown() override {
    for (int fd : ends_) {
      if (fd >= 0) close(fd);
    }
  }
  FdInfo Probe(int which) {
    std::optional<FdInfo> info = FdInfoFromProc(getpid(), ends_[which]);
    EXPECT_TRUE(info.has_value());
    if (!info.has_value()) return FdInfo();
    ProbeDrained(getpid(), *info);
    return *info;
  }
  void CloseWriteEnd() {
    close(ends_[1]);
    ends_[1] = -1;
  }
  int ends_[2] = {-1, -1};
};

TEST_F(PipeTest, ReadEndWithAWriterIsNotDrained) {
  const FdInfo info = Probe(0);
  EXPECT_EQ(info.kind, FdKind::kPipe);
  EXPECT_TRUE(info.readable);
  EXPECT_FALSE(info.drained);
}

TEST_F(PipeTest, EmptyReadEndWithoutWritersIsDrained) {
  CloseWriteEnd();
  EXPECT_TRUE(Probe(0).drained);
}

TEST_F(PipeTest, BytesLeftInThePipeAreNotDrained) {
  ASSERT_EQ(write(ends_[1], "x", 1), 1);
  CloseWriteEnd();
  EXPECT_FALSE(Probe(0).drained);
  char byte = 0;
  ASSERT_EQ(read(ends_[0], &byte, 1), 1);
  EXPECT_TRUE(Probe(0).drained);  // read to the end: only EOF is left
}

TEST_F(PipeTest, WriteEndIsNeverDrained) {
  close(ends_[0]);
  ends_[0] = -1;
  EXPECT_FALSE(Probe(1).drained);
}

TEST(AtStartOfDirectoryTest, OnlyUntilTheFirstReadAndAgainAfterARewind) {
  const int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir, 0);
  EXPECT_TRUE(AtStartOfDirectory(getpid(), dir));
  char buffer[4096];
  ASSERT_GT(syscall(SYS_getdents64, dir, buffer, sizeof(buffer)), 0);
  EXPECT_FALSE(AtStartOfDirectory(getpid(), dir));
  // A copy shares the open directory, and with it the offset.
  const int copy = dup(dir);
  EXPECT_FALSE(AtStartOfDirectory(getpid(), copy));
  ASSERT_EQ(lseek(dir, 0, SEEK_SET), 0);
  EXPECT_TRUE(AtStartOfDirectory(getpid(), copy));
  close(copy);
  close(dir);
  // The same number reopened on the same directory, unseen by the tracer
  // (a read-only open makes no stop), starts a new listing.
  ASSERT_EQ(open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC), dir);
  EXPECT_TRUE(AtStartOfDirectory(getpid(), dir));
  close(dir);
}

TEST(ProbeDrainedTest, FilesAreNeverDrained) {
  const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  FdInfo info = FdInfoFromProc(getpid(), fd).value_or(FdInfo());
  info.drained = true;
  ProbeDrained(getpid(), info);
  EXPECT_FALSE(info.drained);
  close(fd);
}

TEST(FdTableTest, ProcTargetNamesWhatTheDescriptorIsNow) {
  const std::string path = testing::TempDir() + "/fd-target.txt";
  const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  std::optional<FdInfo> info = FdInfoFromProc(getpid(), fd);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->target, ProcFdTarget(getpid(), fd));
  EXPECT_TRUE(info->target.ends_with("/fd-target.txt")) << info->target;
  close(fd);
  EXPECT_EQ(ProcFdTarget(getpid(), fd), "");
}

TEST(FdTableTest, SyncAfterExecReadsTheAccessModeFromTheLink) {
  // The exec-time sync reads the access mode from the permission bits of
  // /proc/PID/fd/N rather than from fdinfo: both must agree.
  const std::string path = testing::TempDir() + "/fd-modes.txt";
  const int write_only = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  const int read_only = open(path.c_str(), O_RDONLY);
  const int both = open(path.c_str(), O_RDWR);
  int ends[2];
  ASSERT_EQ(pipe(ends), 0);
  ASSERT_GE(write_only, 0);
  ASSERT_GE(read_only, 0);
  ASSERT_GE(both, 0);
  struct Want {
    int fd;
    bool readable;
    bool writable;
  };
  const Want wants[] = {{write_only, false, true},
                        {read_only, true, false},
                        {both, true, true},
                        {ends[0], true, false},
                        {ends[1], false, true}};
  for (bool after_exec : {true, false}) {
    FdTable table;
    table.SyncWithProc(getpid(), after_exec);
    std::vector<FdInfo> fds = table.Sorted();
    for (const Want& want : wants) {
      auto found = std::find_if(fds.begin(), fds.end(),
                                [&](const FdInfo& info) { return info.fd == want.fd; });
      ASSERT_NE(found, fds.end()) << "fd " << want.fd;
      EXPECT_EQ(found->readable, want.readable) << "fd " << want.fd << " after_exec " << after_exec;
      EXPECT_EQ(found->writable, want.writable) << "fd " << want.fd << " after_exec " << after_exec;
      EXPECT_FALSE(found->cloexec);
      EXPECT_EQ(found->target, ProcFdTarget(getpid(), want.fd));
    }
    auto file =
        std::find_if(fds.begin(), fds.end(), [&](const FdInfo& info) { return info.fd == both; });
    EXPECT_TRUE(file->path.ends_with("/fd-modes.txt")) << file->path;
    auto pipe_end = std::find_if(fds.begin(), fds.end(),
                                 [&](const FdInfo& info) { return info.fd == ends[0]; });
    EXPECT_EQ(pipe_end->kind, FdKind::kPipe);
  }
  for (int fd : {write_only, read_only, both, ends[0], ends[1]}) close(fd);
}

}  // namespace
}  // namespace dodo::tracer
