// Tests of the virtual store without tracing anything: syscall events are
// made by hand, the test does what the kernel would do with the (possibly
// redirected) paths, and then looks at the tree, .dodo/stage/, the store and
// the manifest.
#include "model/virtual_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/file_hasher.h"
#include "model/store.h"
#include "model/test_trace_builder.h"
#include "proto/manifest.pb.h"
#include "tracer/events.h"

namespace dodo::model {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testutil::Exists;
using testutil::Names;
using testutil::ReadFile;
using testutil::ScratchDir;
using testutil::WriteFile;
using tracer::Effect;
using tracer::ExecEvent;
using tracer::ExitEvent;
using tracer::FdInfo;
using tracer::FdKind;
using tracer::PathArg;
using tracer::Redirection;
using tracer::SyscallEvent;

constexpr uint64_t kCreate = O_WRONLY | O_CREAT | O_TRUNC;

// Passes nothing on; notes what it got, and runs `on_exit` when a process
// exit arrives (to look at the tree as it is at that moment).
class RecordingSink : public tracer::EventSink {
 public:
  void OnSyscall(const SyscallEvent& event) override {
    log.push_back(absl::StrCat("syscall ", event.pid, " ", event.syscall));
  }
  void OnExec(const ExecEvent& event) override { log.push_back(absl::StrCat("exec ", event.pid)); }
  void OnExecFailed(const tracer::ExecFailedEvent& event) override {
    log.push_back(absl::StrCat("exec-failed ", event.pid, " ", event.error));
  }
  void OnFork(const tracer::ForkEvent& event) override {
    log.push_back(absl::StrCat("fork ", event.parent, " ", event.child));
  }
  void OnExit(const ExitEvent& event) override {
    log.push_back(absl::StrCat("exit ", event.pid, " ", event.code));
    if (on_exit) on_exit(event);
  }
  void OnWarning(const tracer::WarningEvent& event) override {
    log.push_back(absl::StrCat("warning ", event.pid, " ", event.message));
  }

  std::vector<std::string> log;
  std::function<void(const ExitEvent&)> on_exit;
};

struct Opened {
  int fd = -1;
  int error = 0;  // errno of a failed open
  Redirection redirection;
};

class VirtualStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = scratch_.path();
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(root_ + "/.dodo");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    MakeVfs();
  }

  // (Re)creates the virtual store, as a new build would.
  // These tests are about kStaged unless they say otherwise.
  static VirtualStoreOptions Staged() {
    VirtualStoreOptions options;
    options.mode = WriteMode::kStaged;
    return options;
  }

  void MakeVfs(VirtualStoreOptions options = Staged()) {
    options.project_root = root_;
    vfs_.reset();
    absl::StatusOr<std::unique_ptr<VirtualStore>> vfs =
        VirtualStore::Create(options, store_.get(), &hasher_, &sink_);
    ASSERT_TRUE(vfs.ok()) << vfs.status();
    vfs_ = *std::move(vfs);
    vfs_->set_command_of([](pid_t pid) { return static_cast<uint64_t>(pid) * 100; });
  }

  void MakeDirectVfs() {
    VirtualStoreOptions options;
    options.mode = WriteMode::kDirect;
    MakeVfs(options);
  }

  std::string P(const std::string& relative) const { return scratch_.P(relative); }
  std::string StageDir() const { return root_ + "/.dodo/stage"; }

  static PathArg Arg(const std::string& path, bool follow) {
    PathArg arg;
    arg.path = path;
    arg.follow_final = follow;
    return arg;
  }

  static SyscallEvent Event(pid_t pid, Effect effect, const std::string& path, bool follow = true) {
    SyscallEvent event;
    event.pid = pid;
    event.tgid = pid;
    event.effect = effect;
    event.path = Arg(path, follow);
    return event;
  }

  static SyscallEvent OpenEvent(pid_t pid, const std::string& path, uint64_t flags,
                                uint64_t mode = 0644) {
    SyscallEvent event = Event(pid, Effect::kOpen, path, (flags & O_NOFOLLOW) == 0);
    event.syscall = "openat";
    event.flags = flags;
    event.mode = mode;
    return event;
  }

  // The kernel's part of an open the tracer let through: opens the
  // redirected path, or the path as passed; reports the result when asked,
  // then the event.
  Opened KernelOpen(const SyscallEvent& event) {
    Opened opened;
    opened.redirection = vfs_->Redirect(event);
    const std::string target =
        opened.redirection.path.value_or(NormalPath(event.path->base, event.path->path));
    opened.fd = open(target.c_str(), static_cast<int>(event.flags) | O_CLOEXEC,
                     static_cast<mode_t>(event.mode));
    opened.error = opened.fd >= 0 ? 0 : errno;
    const int64_t result = opened.fd >= 0 ? opened.fd : -opened.error;
    if (opened.redirection.wants_result) vfs_->AfterSyscall(event, result);
    vfs_->OnSyscall(event);
    return opened;
  }

  // Process `pid` opens `path` with `flags` and writes `content`.
  void WriteAs(pid_t pid, const std::string& path, const std::string& content,
               uint64_t flags = kCreate) {
    Opened opened = KernelOpen(OpenEvent(pid, path, flags));
    ASSERT_GE(opened.fd, 0) << path << ": " << strerror(opened.error);
    ASSERT_EQ(write(opened.fd, content.data(), content.size()),
              static_cast<ssize_t>(content.size()));
    ASSERT_EQ(close(opened.fd), 0);
  }

  // A rename, unlink or symlink: asks, runs the real syscall on the tree
  // (these are never redirected), reports the result.
  int KernelRename(pid_t pid, const std::string& from, const std::string& to) {
    SyscallEvent event = Event(pid, Effect::kRename, from, /*follow=*/false);
    event.syscall = "rename";
    event.path2 = Arg(to, /*follow=*/false);
    Redirection redirection = vfs_->Redirect(event);
    EXPECT_FALSE(redirection.path.has_value());
    EXPECT_FALSE(redirection.path2.has_value());
    const int result = rename(from.c_str(), to.c_str()) == 0 ? 0 : -errno;
    if (redirection.wants_result) vfs_->AfterSyscall(event, result);
    return result;
  }
  int KernelUnlink(pid_t pid, const std::string& path) {
    SyscallEvent event = Event(pid, Effect::kUnlink, path, /*follow=*/false);
    Redirection redirection = vfs_->Redirect(event);
    EXPECT_FALSE(redirection.path.has_value());
    const int result = unlink(path.c_str()) == 0 ? 0 : -errno;
    if (redirection.wants_result) vfs_->AfterSyscall(event, result);
    return result;
  }
  int KernelSymlink(pid_t pid, const std::string& target, const std::string& path) {
    SyscallEvent event = Event(pid, Effect::kSymlink, path, /*follow=*/false);
    event.text = target;
    Redirection redirection = vfs_->Redirect(event);
    EXPECT_FALSE(redirection.path.has_value());
    const int result = symlink(target.c_str(), path.c_str()) == 0 ? 0 : -errno;
    if (redirection.wants_result) vfs_->AfterSyscall(event, result);
    return result;
  }

  // Where a read-like syscall on `path` goes.
  std::optional<std::string> RedirectOf(Effect effect, const std::string& path,
                                        bool follow = true) {
    return vfs_->Redirect(Event(99, effect, path, follow)).path;
  }

  void Exit(pid_t pid, int code = 0) {
    vfs_->OnExit(ExitEvent{.pid = pid, .process = true, .code = code});
  }

  proto::Manifest ReadManifest() {
    proto::Manifest manifest;
    std::ifstream in(vfs_->manifest_path(), std::ios::binary);
    EXPECT_TRUE(in.good()) << "no " << vfs_->manifest_path();
    EXPECT_TRUE(manifest.ParseFromIstream(&in)) << vfs_->manifest_path();
    return manifest;
  }
  proto::Manifest FinishAndReadManifest(bool build_ok = true) {
    absl::Status status = vfs_->Finish(build_ok);
    EXPECT_TRUE(status.ok()) << status;
    return ReadManifest();
  }
  static std::vector<std::string> EntryPaths(const proto::Manifest& manifest) {
    std::vector<std::string> paths;
    for (const proto::ManifestEntry& entry : manifest.entries()) paths.push_back(entry.path());
    return paths;
  }
  // The entry for `path`, or an empty one (and a failure).
  static proto::ManifestEntry Entry(const proto::Manifest& manifest, const std::string& path) {
    const proto::ManifestEntry* entry = FindEntry(manifest, path);
    if (entry == nullptr) {
      ADD_FAILURE() << "no manifest entry for " << path;
      return proto::ManifestEntry();
    }
    return *entry;
  }
  static const proto::ManifestEntry* FindEntry(const proto::Manifest& manifest,
                                               const std::string& path) {
    for (const proto::ManifestEntry& entry : manifest.entries()) {
      if (entry.path() == path) return &entry;
    }
    return nullptr;
  }

  static std::string RawSha256(const std::string& content) {
    const Digest digest = Sha256OfString(content);
    return std::string(reinterpret_cast<const char*>(digest.data()), digest.size());
  }

  static struct stat Stat(const std::string& path) {
    struct stat st = {};
    EXPECT_EQ(lstat(path.c_str(), &st), 0) << path << ": " << strerror(errno);
    return st;
  }

  ScratchDir scratch_;  // the project
  ScratchDir outside_;  // a directory outside the project
  std::string root_;
  FileHasher hasher_;
  std::unique_ptr<Store> store_;
  RecordingSink sink_;
  std::unique_ptr<VirtualStore> vfs_;
};

// ---------------------------------------------------------------------------
// NormalPath

TEST(NormalPathTest, FoldsDotsAndSlashes) {
  EXPECT_EQ(NormalPath("/a/b", "../c/./d"), "/a/c/d");
  EXPECT_EQ(NormalPath("/a/b", "c"), "/a/b/c");
  EXPECT_EQ(NormalPath("/a/b/", "c//d/"), "/a/b/c/d");
  EXPECT_EQ(NormalPath("/a/b", ""), "/a/b");
  EXPECT_EQ(NormalPath("/a/b", "."), "/a/b");
  EXPECT_EQ(NormalPath("//a//./b", ".."), "/a");
}

TEST(NormalPathTest, DotDotStopsAtTheRoot) {
  EXPECT_EQ(NormalPath("/a", "../../.."), "/");
  EXPECT_EQ(NormalPath("/", ".."), "/");
  EXPECT_EQ(NormalPath("/", "."), "/");
}

TEST(NormalPathTest, AbsolutePathIgnoresTheBase) {
  EXPECT_EQ(NormalPath("/a/b", "/x/../y"), "/y");
  EXPECT_EQ(NormalPath("", "/abs//p/."), "/abs/p");
  EXPECT_EQ(NormalPath("relative", "/abs"), "/abs");
}

TEST(NormalPathTest, RelativePathWithoutAnAbsoluteBaseIsEmpty) {
  EXPECT_EQ(NormalPath("", "rel"), "");
  EXPECT_EQ(NormalPath("relative/base", "x"), "");
  EXPECT_EQ(NormalPath("", ""), "");
}

// ---------------------------------------------------------------------------
// Create

TEST_F(VirtualStoreTest, CreateMakesTheStageDirectory) {
  EXPECT_EQ(vfs_->stage_dir(), StageDir());
  EXPECT_EQ(vfs_->manifest_path(), root_ + "/.dodo/manifest");
  EXPECT_EQ(vfs_->failed_dir(), root_ + "/.dodo/failed");
  struct stat st = Stat(StageDir());
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_THAT(Names(StageDir()), IsEmpty());
  EXPECT_TRUE(vfs_->RewritesPaths());
}

TEST_F(VirtualStoreTest, CreateClearsLeftoversInTheStage) {
  WriteFile(StageDir() + "/1-out.o", "from a killed build");
  WriteFile(StageDir() + "/2-lib.a", "also");

  MakeVfs();

  EXPECT_THAT(Names(StageDir()), IsEmpty());
}

TEST_F(VirtualStoreTest, CreateLoadsThePreviousManifest) {
  WriteAs(10, P("first.txt"), "one");
  Exit(10);
  ASSERT_TRUE(vfs_->Finish(true).ok());

  MakeVfs();
  WriteAs(20, P("second.txt"), "two");
  Exit(20);
  proto::Manifest manifest = FinishAndReadManifest();

  EXPECT_THAT(EntryPaths(manifest), ElementsAre("first.txt", "second.txt"));
  EXPECT_EQ(Entry(manifest, "first.txt").sha256(), RawSha256("one"));
  EXPECT_EQ(Entry(manifest, "first.txt").command(), 1000u);
  EXPECT_EQ(Entry(manifest, "second.txt").command(), 2000u);
}

TEST_F(VirtualStoreTest, CreateReplacesADamagedManifest) {
  WriteFile(root_ + "/.dodo/manifest", "\xff\xff\xff not a manifest");
  MakeVfs();

  proto::Manifest manifest = FinishAndReadManifest();

  EXPECT_EQ(manifest.format_version(), 1u);
  EXPECT_EQ(manifest.project_root(), root_);
  EXPECT_THAT(manifest.entries(), IsEmpty());
}

TEST_F(VirtualStoreTest, CreateIgnoresTheManifestOfAnotherProjectRoot) {
  WriteFile(P("out.txt"), "bytes");
  proto::Manifest other;
  other.set_format_version(1);
  other.set_project_root("/some/other/project");
  proto::ManifestEntry* entry = other.add_entries();
  entry->set_path("out.txt");
  entry->set_kind(proto::ENTRY_FILE);
  std::string bytes;
  ASSERT_TRUE(other.SerializeToString(&bytes));
  WriteFile(root_ + "/.dodo/manifest", bytes);
  MakeVfs();

  proto::Manifest manifest = FinishAndReadManifest();

  EXPECT_EQ(manifest.project_root(), root_);
  EXPECT_THAT(manifest.entries(), IsEmpty());
}

// ---------------------------------------------------------------------------
// New files

TEST_F(VirtualStoreTest, NewFileIsStagedBehindAPlaceholderAndCommittedAtExit) {
  const std::string real = P("out.txt");
  const SyscallEvent event = OpenEvent(10, real, kCreate, 0600);

  Redirection redirection = vfs_->Redirect(event);

  ASSERT_TRUE(redirection.path.has_value());
  const std::string staged = *redirection.path;
  EXPECT_TRUE(absl::StartsWith(staged, StageDir() + "/")) << staged;
  EXPECT_TRUE(redirection.wants_result);
  EXPECT_FALSE(redirection.path2.has_value());
  // The placeholder: an empty regular file at the real name.
  struct stat placeholder = Stat(real);
  EXPECT_TRUE(S_ISREG(placeholder.st_mode));
  EXPECT_EQ(placeholder.st_size, 0);
  EXPECT_EQ(vfs_->Physical(real), staged);
  EXPECT_EQ(vfs_->Logical(staged), real);
  EXPECT_EQ(vfs_->Logical(staged + " (deleted)"), real + " (deleted)");
  EXPECT_EQ(vfs_->Logical(real), std::nullopt);

  // The kernel creates the staged file; the process writes and sets a mode.
  const int fd = open(staged.c_str(), kCreate | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << strerror(errno);
  vfs_->AfterSyscall(event, fd);
  vfs_->OnSyscall(event);
  ASSERT_EQ(write(fd, "hello", 5), 5);
  ASSERT_EQ(fchmod(fd, 0640), 0);
  ASSERT_EQ(close(fd), 0);
  // Nothing reached the tree yet.
  EXPECT_EQ(ReadFile(real), "");
  EXPECT_EQ(ReadFile(staged), "hello");

  // When the exit reaches the next sink, the file is already committed.
  bool checked = false;
  sink_.on_exit = [&](const ExitEvent& exit) {
    EXPECT_EQ(exit.pid, 10);
    EXPECT_EQ(ReadFile(real), "hello");
    EXPECT_FALSE(Exists(staged));
    checked = true;
  };
  Exit(10);
  EXPECT_TRUE(checked);

  EXPECT_EQ(ReadFile(real), "hello");
  EXPECT_FALSE(Exists(staged));
  EXPECT_THAT(Names(StageDir()), IsEmpty());
  EXPECT_EQ(vfs_->Physical(real), real);
  EXPECT_THAT(sink_.log, ElementsAre("syscall 10 openat", "exit 10 0"));
  EXPECT_EQ(vfs_->stats().staged, 1u);
  EXPECT_EQ(vfs_->stats().copied_up, 0u);
  EXPECT_EQ(vfs_->stats().committed, 1u);
  EXPECT_EQ(vfs_->stats().discarded, 0u);
  EXPECT_TRUE(vfs_->first_error().ok()) << vfs_->first_error();

  // The store has the version...
  const Digest digest = Sha256OfString("hello");
  EXPECT_TRUE(store_->Has(digest));
  EXPECT_EQ(ReadFile(store_->ObjectPath(digest)), "hello");

  // ... and the manifest describes it.
  proto::Manifest manifest = FinishAndReadManifest();
  EXPECT_EQ(manifest.format_version(), 1u);
  EXPECT_EQ(manifest.project_root(), root_);
  ASSERT_EQ(manifest.entries_size(), 1);
  const proto::ManifestEntry entry = Entry(manifest, "out.txt");
  const struct stat st = Stat(real);
  EXPECT_EQ(entry.path(), "out.txt");
  EXPECT_EQ(entry.kind(), proto::ENTRY_FILE);
  EXPECT_EQ(entry.sha256(), RawSha256("hello"));
  EXPECT_EQ(entry.size(), 5u);
  EXPECT_EQ(entry.mode(), 0640u);
  EXPECT_EQ(entry.uid(), st.st_uid);
  EXPECT_EQ(entry.gid(), st.st_gid);
  EXPECT_EQ(entry.mtime_ns(), st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
  EXPECT_EQ(entry.command(), 1000u);
  EXPECT_FALSE(Exists(vfs_->manifest_path() + ".new"));
}

TEST_F(VirtualStoreTest, NewFileInASubdirectoryByARelativePath) {
  ASSERT_EQ(mkdir(P("sub").c_str(), 0755), 0);
  SyscallEvent event = OpenEvent(10, "../sub/./out.o", kCreate);
  event.path->base = P("src");  // need not exist: the path is folded lexically

  Opened opened = KernelOpen(event);
  ASSERT_GE(opened.fd, 0);
  ASSERT_TRUE(opened.redirection.path.has_value());
  ASSERT_EQ(write(opened.fd, "obj", 3), 3);
  close(opened.fd);
  EXPECT_EQ(vfs_->Physical(P("sub/out.o")), *opened.redirection.path);
  Exit(10);

  EXPECT_EQ(ReadFile(P("sub/out.o")), "obj");
  EXPECT_THAT(EntryPaths(FinishAndReadManifest()), ElementsAre("sub/out.o"));
}

TEST_F(VirtualStoreTest, NewFileInAMissingDirectoryIsLeftToTheKernel) {
  Redirection redirection = vfs_->Redirect(OpenEvent(10, P("missing/out.o"), kCreate));
  EXPECT_FALSE(redirection.path.has_value());
  EXPECT_FALSE(Exists(P("missing")));
  EXPECT_EQ(vfs_->stats().staged, 0u);
}

TEST_F(VirtualStoreTest, FailedOpenRemovesThePlaceholder) {
  const std::string real = P("out.txt");
  const SyscallEvent event = OpenEvent(10, real, kCreate);
  Redirection redirection = vfs_->Redirect(event);
  ASSERT_TRUE(redirection.path.has_value());
  ASSERT_TRUE(redirection.wants_result);
  ASSERT_TRUE(Exists(real));

  vfs_->AfterSyscall(event, -EACCES);  // the kernel refused; nothing was made

  EXPECT_FALSE(Exists(real));
  EXPECT_EQ(vfs_->Physical(real), real);
  EXPECT_EQ(vfs_->Redirect(Event(10, Effect::kStat, real)).path, std::nullopt);
  Exit(10);
  EXPECT_FALSE(Exists(real));
  EXPECT_THAT(FinishAndReadManifest().entries(), IsEmpty());
}

TEST_F(VirtualStoreTest, OpenOfAMissingFileWithoutCreateIsLeftToTheKernel) {
  Redirection redirection = vfs_->Redirect(OpenEvent(10, P("missing"), O_WRONLY));
  EXPECT_FALSE(redirection.path.has_value());
  EXPECT_FALSE(Exists(P("missing")));
}

TEST_F(VirtualStoreTest, ExclusiveCreateOfAnExistingFileIsLeftToTheKernel) {
  WriteFile(P("exists"), "old");
  Redirection redirection = vfs_->Redirect(OpenEvent(10, P("exists"), O_WRONLY | O_CREAT | O_EXCL));
  EXPECT_FALSE(redirection.path.has_value());
  EXPECT_EQ(vfs_->stats().staged, 0u);
}

TEST_F(VirtualStoreTest, ThreadExitDoesNotSettleItsProcess) {
  SyscallEvent event = OpenEvent(21, P("out.txt"), kCreate);
  event.tgid = 20;  // a thread of process 20 opens
  Opened opened = KernelOpen(event);
  ASSERT_GE(opened.fd, 0);
  ASSERT_EQ(write(opened.fd, "t", 1), 1);
  close(opened.fd);

  vfs_->OnExit(ExitEvent{.pid = 21, .process = false});
  EXPECT_EQ(ReadFile(P("out.txt")), "");
  EXPECT_EQ(vfs_->stats().committed, 0u);

  Exit(20);
  EXPECT_EQ(ReadFile(P("out.txt")), "t");
}

// ---------------------------------------------------------------------------
// Failures

TEST_F(VirtualStoreTest, FailedWriterLeavesThePreviousVersion) {
  WriteFile(P("out.txt"), "previous");
  Opened opened = KernelOpen(OpenEvent(10, P("out.txt"), kCreate));
  ASSERT_GE(opened.fd, 0);
  ASSERT_TRUE(opened.redirection.path.has_value());
  const std::string staged = *opened.redirection.path;
  ASSERT_EQ(write(opened.fd, "partial", 7), 7);
  close(opened.fd);
  EXPECT_EQ(ReadFile(P("out.txt")), "previous");

  bool checked = false;
  sink_.on_exit = [&](const ExitEvent&) {
    EXPECT_EQ(ReadFile(P("out.txt")), "previous");
    EXPECT_FALSE(Exists(staged));
    checked = true;
  };
  Exit(10, 1);
  EXPECT_TRUE(checked);

  EXPECT_EQ(ReadFile(P("out.txt")), "previous");
  EXPECT_THAT(Names(StageDir()), IsEmpty());
  EXPECT_FALSE(Exists(vfs_->failed_dir()));
  EXPECT_FALSE(store_->Has(Sha256OfString("partial")));
  EXPECT_EQ(vfs_->stats().discarded, 1u);
  EXPECT_EQ(vfs_->stats().committed, 0u);
  EXPECT_THAT(FinishAndReadManifest().entries(), IsEmpty());
}

TEST_F(VirtualStoreTest, FailedWriterRemovesThePlaceholderOfANewName) {
  WriteAs(10, P("new.o"), "partial");
  ASSERT_TRUE(Exists(P("new.o")));

  Exit(10, 2);

  EXPECT_FALSE(Exists(P("new.o")));
  EXPECT_THAT(Names(StageDir()), IsEmpty());
  EXPECT_EQ(vfs_->Physical(P("new.o")), P("new.o"));
  EXPECT_THAT(FinishAndReadManifest().entries(), IsEmpty());
}

TEST_F(VirtualStoreTest, KilledWriterIsAFailure) {
  WriteFile(P("out.txt"), "previous");
  WriteAs(10, P("out.txt"), "partial");

  vfs_->OnExit(ExitEvent{.pid = 10, .process = true, .signaled = true, .signal = 9});

  EXPECT_EQ(ReadFile(P("out.txt")), "previous");
  EXPECT_EQ(vfs_->stats().discarded, 1u);
}

TEST_F(VirtualStoreTest, KeepFailedPutsTheBytesAside) {
  VirtualStoreOptions options = Staged();
  options.keep_failed = true;
  MakeVfs(options);
  ASSERT_EQ(mkdir(P("sub").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("sub/dir").c_str(), 0755), 0);
  WriteFile(P("old.txt"), "previous");
  WriteAs(10, P("sub/dir/out.o"), "partial object");
  WriteAs(10, P("old.txt"), "half");

  Exit(10, 1);

  EXPECT_FALSE(Exists(P("sub/dir/out.o")));
  EXPECT_EQ(ReadFile(P("old.txt")), "previous");
  EXPECT_EQ(ReadFile(root_ + "/.dodo/failed/sub/dir/out.o"), "partial object");
  EXPECT_EQ(ReadFile(root_ + "/.dodo/failed/old.txt"), "half");
  EXPECT_THAT(Names(StageDir()), IsEmpty());
}

// ---------------------------------------------------------------------------
// Existing files

TEST_F(VirtualStoreTest, CopyUpKeepsTheBytesModeAndTimes) {
  const std::string real = P("data.txt");
  WriteFile(real, "0123456789");
  ASSERT_EQ(chmod(real.c_str(), 0604), 0);
  const struct timespec times[2] = {{1111111111, 222222222}, {1234567890, 123456789}};
  ASSERT_EQ(utimensat(AT_FDCWD, real.c_str(), times, 0), 0);

  Opened opened = KernelOpen(OpenEvent(10, real, O_WRONLY));

  ASSERT_GE(opened.fd, 0);
  ASSERT_TRUE(opened.redirection.path.has_value());
  const std::string staged = *opened.redirection.path;
  EXPECT_TRUE(absl::StartsWith(staged, StageDir() + "/")) << staged;
  EXPECT_EQ(ReadFile(staged), "0123456789");
  const struct stat st = Stat(staged);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0604u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1234567890);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);
  EXPECT_NE(st.st_ino, Stat(real).st_ino);
  EXPECT_EQ(vfs_->stats().staged, 1u);
  EXPECT_EQ(vfs_->stats().copied_up, 1u);

  // The writer overwrites the start; the tree keeps the old bytes meanwhile.
  ASSERT_EQ(pwrite(opened.fd, "AB", 2, 0), 2);
  close(opened.fd);
  EXPECT_EQ(ReadFile(real), "0123456789");
  Exit(10);

  EXPECT_EQ(ReadFile(real), "AB23456789");
  EXPECT_EQ(Stat(real).st_mode & 07777, 0604u);
  EXPECT_EQ(Entry(FinishAndReadManifest(), "data.txt").sha256(), RawSha256("AB23456789"));
}

TEST_F(VirtualStoreTest, AppendGoesAfterTheExistingBytes) {
  WriteFile(P("log"), "line 1\n");
  WriteAs(10, P("log"), "line 2\n", O_WRONLY | O_APPEND);
  EXPECT_EQ(ReadFile(P("log")), "line 1\n");
  Exit(10);
  EXPECT_EQ(ReadFile(P("log")), "line 1\nline 2\n");
}

TEST_F(VirtualStoreTest, TruncatingOpenStagesAnEmptyFileWithTheMode) {
  const std::string real = P("tool");
  WriteFile(real, "#!/bin/sh\nold\n");
  ASSERT_EQ(chmod(real.c_str(), 0750), 0);

  Redirection redirection = vfs_->Redirect(OpenEvent(10, real, O_WRONLY | O_TRUNC));

  ASSERT_TRUE(redirection.path.has_value());
  EXPECT_FALSE(redirection.wants_result);
  const struct stat st = Stat(*redirection.path);
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(ReadFile(real), "#!/bin/sh\nold\n");
  EXPECT_EQ(vfs_->stats().copied_up, 0u);
}

TEST_F(VirtualStoreTest, ChmodByPathStagesACopyAndCommitsTheMode) {
  const std::string real = P("script");
  WriteFile(real, "echo hi\n");
  ASSERT_EQ(chmod(real.c_str(), 0644), 0);
  SyscallEvent event = Event(10, Effect::kChmod, real);
  event.mode = 0755;

  Redirection redirection = vfs_->Redirect(event);

  ASSERT_TRUE(redirection.path.has_value());
  ASSERT_EQ(chmod(redirection.path->c_str(), 0755), 0);
  EXPECT_EQ(Stat(real).st_mode & 07777, 0644u);
  Exit(10);
  EXPECT_EQ(Stat(real).st_mode & 07777, 0755u);
  EXPECT_EQ(ReadFile(real), "echo hi\n");
  EXPECT_EQ(Entry(FinishAndReadManifest(), "script").mode(), 0755u);
}

// ---------------------------------------------------------------------------
// Several writers

TEST_F(VirtualStoreTest, CommitWaitsForEveryWriter) {
  const std::string real = P("shared.txt");
  Opened first = KernelOpen(OpenEvent(10, real, O_WRONLY | O_CREAT | O_APPEND));
  Opened second = KernelOpen(OpenEvent(11, real, O_WRONLY | O_CREAT | O_APPEND));
  ASSERT_GE(first.fd, 0);
  ASSERT_GE(second.fd, 0);
  ASSERT_TRUE(first.redirection.path.has_value());
  EXPECT_EQ(second.redirection.path, first.redirection.path);
  ASSERT_EQ(write(first.fd, "a", 1), 1);
  ASSERT_EQ(write(second.fd, "b", 1), 1);
  close(first.fd);
  close(second.fd);
  EXPECT_EQ(vfs_->stats().staged, 1u);

  Exit(10);
  EXPECT_EQ(ReadFile(real), "");  // still the placeholder
  EXPECT_TRUE(Exists(*first.redirection.path));
  EXPECT_EQ(vfs_->stats().committed, 0u);

  Exit(11);
  EXPECT_EQ(ReadFile(real), "ab");
  EXPECT_FALSE(Exists(*first.redirection.path));
  EXPECT_EQ(vfs_->stats().committed, 1u);
}

TEST_F(VirtualStoreTest, OneFailedOpenerOfTwoDiscardsTheFile) {
  WriteFile(P("shared.txt"), "previous");
  WriteAs(10, P("shared.txt"), "a", O_WRONLY | O_APPEND);
  WriteAs(11, P("shared.txt"), "b", O_WRONLY | O_APPEND);

  Exit(10, 1);
  Exit(11, 0);

  EXPECT_EQ(ReadFile(P("shared.txt")), "previous");
  EXPECT_EQ(vfs_->stats().discarded, 1u);
  EXPECT_THAT(Names(StageDir()), IsEmpty());
}

ExecEvent ExecWithFd(pid_t pid, const std::string& path, bool writable = true) {
  ExecEvent exec;
  exec.pid = pid;
  exec.executable = "/bin/true";
  exec.argv = {"true"};
  FdInfo fd;
  fd.fd = 1;
  fd.kind = FdKind::kFile;
  fd.path = path;
  fd.readable = !writable;
  fd.writable = writable;
  exec.fds.push_back(fd);
  return exec;
}

TEST_F(VirtualStoreTest, InheritedDescriptorDelaysTheCommitButItsFailureDoesNot) {
  const std::string real = P("log");
  WriteAs(10, real, "from the shell\n", O_WRONLY | O_CREAT | O_APPEND);
  vfs_->OnExec(ExecWithFd(12, real));
  EXPECT_THAT(sink_.log, ElementsAre("syscall 10 openat", "exec 12"));

  Exit(10);  // the shell that opened it
  EXPECT_EQ(ReadFile(real), "");
  EXPECT_EQ(vfs_->stats().committed, 0u);

  bool checked = false;
  sink_.on_exit = [&](const ExitEvent&) {
    EXPECT_EQ(ReadFile(real), "from the shell\n");
    checked = true;
  };
  Exit(12, 1);  // the program writing to the inherited descriptor fails
  EXPECT_TRUE(checked);
  EXPECT_EQ(ReadFile(real), "from the shell\n");
  EXPECT_EQ(vfs_->stats().committed, 1u);
  EXPECT_EQ(vfs_->stats().discarded, 0u);
}

TEST_F(VirtualStoreTest, OpenersFailureDiscardsEvenIfTheInheritorSucceeds) {
  const std::string real = P("log");
  WriteAs(10, real, "text", O_WRONLY | O_CREAT | O_APPEND);
  vfs_->OnExec(ExecWithFd(12, real));

  Exit(10, 1);
  EXPECT_TRUE(Exists(real));  // 12 still writes
  EXPECT_EQ(vfs_->stats().discarded, 0u);
  Exit(12, 0);

  EXPECT_FALSE(Exists(real));
  EXPECT_EQ(vfs_->stats().discarded, 1u);
  EXPECT_THAT(Names(StageDir()), IsEmpty());
}

TEST_F(VirtualStoreTest, ReadOnlyInheritedDescriptorDoesNotDelayTheCommit) {
  const std::string real = P("log");
  WriteAs(10, real, "text");
  vfs_->OnExec(ExecWithFd(12, real, /*writable=*/false));

  Exit(10);

  EXPECT_EQ(ReadFile(real), "text");
}

// ---------------------------------------------------------------------------
// Rename and unlink

TEST_F(VirtualStoreTest, RenamedStagedFileCommitsUnderTheNewName) {
  Opened opened = KernelOpen(OpenEvent(10, P("tmp.o"), kCreate));
  ASSERT_GE(opened.fd, 0);
  const std::string staged = *opened.redirection.path;
  ASSERT_EQ(write(opened.fd, "object", 6), 6);
  close(opened.fd);

  ASSERT_EQ(KernelRename(10, P("tmp.o"), P("out.o")), 0);

  EXPECT_FALSE(Exists(P("tmp.o")));
  EXPECT_EQ(vfs_->Physical(P("out.o")), staged);
  EXPECT_EQ(vfs_->Physical(P("tmp.o")), P("tmp.o"));
  EXPECT_EQ(vfs_->Logical(staged), P("out.o"));
  EXPECT_EQ(RedirectOf(Effect::kStat, P("out.o")), staged);
  EXPECT_EQ(RedirectOf(Effect::kStat, P("tmp.o")), std::nullopt);
  EXPECT_EQ(ReadFile(P("out.o")), "");

  Exit(10);

  EXPECT_EQ(ReadFile(P("out.o")), "object");
  EXPECT_FALSE(Exists(P("tmp.o")));
  EXPECT_THAT(Names(StageDir()), IsEmpty());
  EXPECT_THAT(EntryPaths(FinishAndReadManifest()), ElementsAre("out.o"));
}

TEST_F(VirtualStoreTest, RenameOverAStagedNameDropsThatVersion) {
  WriteAs(10, P("a"), "version a");
  WriteAs(10, P("b"), "version b");

  ASSERT_EQ(KernelRename(10, P("a"), P("b")), 0);
  EXPECT_THAT(Names(StageDir()), ::testing::SizeIs(1));
  Exit(10);

  EXPECT_FALSE(Exists(P("a")));
  EXPECT_EQ(ReadFile(P("b")), "version a");
  EXPECT_THAT(Names(StageDir()), IsEmpty());
  EXPECT_THAT(EntryPaths(FinishAndReadManifest()), ElementsAre("b"));
}

TEST_F(VirtualStoreTest, RenameOutOfTheProjectPutsTheBytesThereAtOnce) {
  WriteAs(10, P("tmp.o"), "leaving");

  ASSERT_EQ(KernelRename(10, P("tmp.o"), outside_.P("tmp.o")), 0);

  EXPECT_EQ(ReadFile(outside_.P("tmp.o")), "leaving");
  EXPECT_FALSE(Exists(P("tmp.o")));
  EXPECT_EQ(vfs_->Physical(P("tmp.o")), P("tmp.o"));
  EXPECT_THAT(Names(StageDir()), IsEmpty());
  Exit(10);
  EXPECT_FALSE(Exists(P("tmp.o")));
  EXPECT_THAT(FinishAndReadManifest().entries(), IsEmpty());
}

TEST_F(VirtualStoreTest, RenameOfACommittedFileMovesItsManifestEntry) {
  WriteAs(10, P("a"), "bytes");
  Exit(10);

  ASSERT_EQ(KernelRename(11, P("a"), P("b")), 0);
  Exit(11);

  proto::Manifest manifest = FinishAndReadManifest();
  EXPECT_THAT(EntryPaths(manifest), ElementsAre("b"));
  EXPECT_EQ(Entry(manifest, "b").sha256(), RawSha256("bytes"));
  EXPECT_EQ(Entry(manifest, "b").command(), 1000u);
}

TEST_F(VirtualStoreTest, UnlinkOfAStagedPathDropsIt) {
  Opened opened = KernelOpen(OpenEvent(10, P("out.o"), kCreate));
  ASSERT_GE(opened.fd, 0);
  const std::string staged = *opened.redirection.path;
  ASSERT_EQ(write(opened.fd, "gone", 4), 4);
  close(opened.fd);

  ASSERT_EQ(KernelUnlink(10, P("out.o")), 0);

  EXPECT_FALSE(Exists(staged));
  EXPECT_EQ(vfs_->Physical(P("out.o")), P("out.o"));
  EXPECT_EQ(RedirectOf(Effect::kStat, P("out.o")), std::nullopt);
  Exit(10);
  EXPECT_FALSE(Exists(P("out.o")));
  EXPECT_EQ(vfs_->stats().committed, 0u);
  EXPECT_THAT(FinishAndReadManifest().entries(), IsEmpty());
}

TEST_F(VirtualStoreTest, UnlinkOfACommittedFileDropsItsManifestEntry) {
  WriteAs(10, P("a"), "a");
  WriteAs(10, P("b"), "b");
  Exit(10);

  ASSERT_EQ(KernelUnlink(11, P("a")), 0);
  Exit(11);

  EXPECT_THAT(EntryPaths(FinishAndReadManifest()), ElementsAre("b"));
}

TEST_F(VirtualStoreTest, NameRecreatedAfterUnlinkIsStagedAfresh) {
  WriteAs(10, P("out"), "first");
  ASSERT_EQ(KernelUnlink(10, P("out")), 0);
  WriteAs(10, P("out"), "second");
  Exit(10);
  EXPECT_EQ(ReadFile(P("out")), "second");
  EXPECT_THAT(Names(StageDir()), IsEmpty());
}

// ---------------------------------------------------------------------------
// Reads and what is never redirected

TEST_F(VirtualStoreTest, ReadsOfAStagedPathAreRedirected) {
  WriteFile(P("plain.txt"), "not staged");
  Opened opened = KernelOpen(OpenEvent(10, P("out.txt"), kCreate));
  ASSERT_GE(opened.fd, 0);
  close(opened.fd);
  const std::string staged = *opened.redirection.path;

  EXPECT_EQ(RedirectOf(Effect::kStat, P("out.txt")), staged);
  EXPECT_EQ(RedirectOf(Effect::kStat, P("out.txt"), /*follow=*/false), staged);
  EXPECT_EQ(RedirectOf(Effect::kAccess, P("out.txt")), staged);
  EXPECT_EQ(RedirectOf(Effect::kXattrRead, P("out.txt")), staged);
  EXPECT_EQ(vfs_->Redirect(OpenEvent(11, P("out.txt"), O_RDONLY)).path, staged);
  SyscallEvent relative = Event(11, Effect::kStat, "./sub/../out.txt");
  relative.path->base = root_;
  EXPECT_EQ(vfs_->Redirect(relative).path, staged);

  // Unstaged paths are left alone, and reading stages nothing.
  EXPECT_EQ(RedirectOf(Effect::kStat, P("plain.txt")), std::nullopt);
  Redirection read = vfs_->Redirect(OpenEvent(11, P("plain.txt"), O_RDONLY));
  EXPECT_FALSE(read.path.has_value());
  EXPECT_FALSE(read.wants_result);
  EXPECT_EQ(RedirectOf(Effect::kStat, P("missing")), std::nullopt);
  EXPECT_EQ(vfs_->stats().staged, 1u);
  EXPECT_EQ(vfs_->Physical(P("plain.txt")), P("plain.txt"));

  // Directory operations never are.
  EXPECT_EQ(RedirectOf(Effect::kList, P("out.txt")), std::nullopt);
  EXPECT_EQ(RedirectOf(Effect::kMkdir, P("out.txt")), std::nullopt);
}

TEST_F(VirtualStoreTest, PathsOutsideTheProjectAreNeverRedirected) {
  Redirection write = vfs_->Redirect(OpenEvent(10, outside_.P("out.txt"), kCreate));
  EXPECT_FALSE(write.path.has_value());
  EXPECT_FALSE(write.wants_result);
  EXPECT_FALSE(Exists(outside_.P("out.txt")));
  // A sibling whose name starts like the project's.
  EXPECT_FALSE(vfs_->Redirect(OpenEvent(10, root_ + "x/out.txt", kCreate)).path.has_value());
  EXPECT_FALSE(vfs_->Redirect(OpenEvent(10, root_ + "/../elsewhere", kCreate)).path.has_value());
  // The project root itself.
  EXPECT_FALSE(vfs_->Redirect(OpenEvent(10, root_, O_RDONLY | O_DIRECTORY)).path.has_value());
  WriteFile(outside_.P("existing"), "x");
  SyscallEvent chmod_event = Event(10, Effect::kChmod, outside_.P("existing"));
  EXPECT_FALSE(vfs_->Redirect(chmod_event).path.has_value());
  EXPECT_EQ(vfs_->stats().staged, 0u);
}

TEST_F(VirtualStoreTest, PathsInTheStoreAreNeverRedirected) {
  Opened opened = KernelOpen(OpenEvent(10, P("out.txt"), kCreate));
  ASSERT_GE(opened.fd, 0);
  close(opened.fd);
  const std::string staged = *opened.redirection.path;

  EXPECT_FALSE(vfs_->Redirect(OpenEvent(10, P(".dodo/trace.new"), kCreate)).path.has_value());
  EXPECT_FALSE(Exists(P(".dodo/trace.new")));
  EXPECT_FALSE(vfs_->Redirect(OpenEvent(10, P(".dodo"), O_RDONLY)).path.has_value());
  EXPECT_EQ(RedirectOf(Effect::kStat, staged), std::nullopt);
  EXPECT_FALSE(vfs_->Redirect(OpenEvent(10, staged, O_WRONLY)).path.has_value());
  EXPECT_EQ(vfs_->stats().staged, 1u);

  // A name that only starts like the store's is an ordinary file.
  EXPECT_TRUE(vfs_->Redirect(OpenEvent(10, P(".dodo-notes"), kCreate)).path.has_value());
  EXPECT_EQ(vfs_->stats().staged, 2u);
}

TEST_F(VirtualStoreTest, ReadThroughASymlinkGoesToTheStagedFile) {
  Opened opened = KernelOpen(OpenEvent(10, P("out.txt"), kCreate));
  ASSERT_GE(opened.fd, 0);
  close(opened.fd);
  const std::string staged = *opened.redirection.path;
  ASSERT_EQ(symlink("out.txt", P("link").c_str()), 0);
  ASSERT_EQ(symlink(P("link").c_str(), P("chain").c_str()), 0);

  EXPECT_EQ(RedirectOf(Effect::kStat, P("link")), staged);
  EXPECT_EQ(RedirectOf(Effect::kStat, P("chain")), staged);
  EXPECT_EQ(vfs_->Redirect(OpenEvent(11, P("chain"), O_RDONLY)).path, staged);
  // lstat and readlink of the link itself are about the link.
  EXPECT_EQ(RedirectOf(Effect::kStat, P("link"), /*follow=*/false), std::nullopt);
  EXPECT_EQ(RedirectOf(Effect::kReadlink, P("link"), /*follow=*/false), std::nullopt);
}

TEST_F(VirtualStoreTest, PathsThroughASymlinkedDirectoryAreStagedUnderTheRealOne) {
  ASSERT_EQ(mkdir(P("real").c_str(), 0755), 0);
  ASSERT_EQ(symlink("real", P("alias").c_str()), 0);

  WriteAs(10, P("alias/out.o"), "through the alias");
  EXPECT_NE(vfs_->Physical(P("real/out.o")), P("real/out.o"));
  EXPECT_EQ(RedirectOf(Effect::kStat, P("alias/out.o")), vfs_->Physical(P("real/out.o")));
  Exit(10);

  EXPECT_EQ(ReadFile(P("real/out.o")), "through the alias");
  EXPECT_THAT(EntryPaths(FinishAndReadManifest()), ElementsAre("real/out.o"));
}

TEST_F(VirtualStoreTest, WriteThroughADanglingSymlinkCreatesItsTarget) {
  ASSERT_EQ(symlink("target.txt", P("link").c_str()), 0);

  WriteAs(10, P("link"), "via link");
  EXPECT_NE(vfs_->Physical(P("target.txt")), P("target.txt"));
  Exit(10);

  EXPECT_EQ(ReadFile(P("target.txt")), "via link");
  struct stat st = Stat(P("link"));
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

TEST_F(VirtualStoreTest, SymlinkIsEnteredInTheManifest) {
  ASSERT_EQ(KernelSymlink(10, "../target", P("link")), 0);
  Exit(10);

  proto::Manifest manifest = FinishAndReadManifest();
  EXPECT_THAT(EntryPaths(manifest), ElementsAre("link"));
  const proto::ManifestEntry entry = Entry(manifest, "link");
  EXPECT_EQ(entry.kind(), proto::ENTRY_SYMLINK);
  EXPECT_EQ(entry.symlink_target(), "../target");
  EXPECT_EQ(entry.command(), 1000u);
}

TEST_F(VirtualStoreTest, SymlinkOfAFailedProcessIsRemoved) {
  ASSERT_EQ(KernelSymlink(10, "target", P("link")), 0);
  Exit(10, 1);

  EXPECT_FALSE(Exists(P("link")));
  EXPECT_EQ(vfs_->stats().symlinks_removed, 1u);
  EXPECT_THAT(FinishAndReadManifest().entries(), IsEmpty());
}

// ---------------------------------------------------------------------------
// Direct mode

TEST_F(VirtualStoreTest, DirectModeWritesInPlaceAndStillCommits) {
  MakeDirectVfs();
  EXPECT_FALSE(vfs_->RewritesPaths());
  WriteFile(P("existing"), "old");

  Opened opened = KernelOpen(OpenEvent(10, P("out.txt"), kCreate));
  ASSERT_GE(opened.fd, 0);
  EXPECT_FALSE(opened.redirection.path.has_value());
  ASSERT_EQ(write(opened.fd, "direct", 6), 6);
  close(opened.fd);
  Opened append = KernelOpen(OpenEvent(10, P("existing"), O_WRONLY | O_APPEND));
  ASSERT_GE(append.fd, 0);
  EXPECT_FALSE(append.redirection.path.has_value());
  ASSERT_EQ(write(append.fd, "+new", 4), 4);
  close(append.fd);

  // Written in place: the tree has the bytes at once, and nothing is mapped.
  EXPECT_EQ(ReadFile(P("out.txt")), "direct");
  EXPECT_EQ(ReadFile(P("existing")), "old+new");
  EXPECT_EQ(vfs_->Physical(P("out.txt")), P("out.txt"));
  EXPECT_EQ(vfs_->Logical(P("out.txt")), std::nullopt);
  EXPECT_EQ(RedirectOf(Effect::kStat, P("out.txt")), std::nullopt);
  EXPECT_FALSE(vfs_->Redirect(OpenEvent(11, P("out.txt"), O_RDONLY)).path.has_value());
  SyscallEvent chmod_event = Event(11, Effect::kChmod, P("existing"));
  EXPECT_FALSE(vfs_->Redirect(chmod_event).path.has_value());
  EXPECT_THAT(Names(StageDir()), IsEmpty());
  EXPECT_EQ(vfs_->stats().copied_up, 0u);

  Exit(10);

  proto::Manifest manifest = FinishAndReadManifest();
  EXPECT_THAT(EntryPaths(manifest), ElementsAre("existing", "out.txt"));
  EXPECT_EQ(Entry(manifest, "out.txt").sha256(), RawSha256("direct"));
  EXPECT_EQ(Entry(manifest, "out.txt").size(), 6u);
  EXPECT_EQ(Entry(manifest, "existing").sha256(), RawSha256("old+new"));
  EXPECT_TRUE(store_->Has(Sha256OfString("direct")));
  EXPECT_TRUE(store_->Has(Sha256OfString("old+new")));
  EXPECT_THAT(Names(StageDir()), IsEmpty());
}

TEST_F(VirtualStoreTest, DirectModeFailedWriterKeepsWhatItWroteOutOfTheManifest) {
  MakeDirectVfs();
  WriteAs(10, P("out.txt"), "partial");
  Exit(10, 1);

  EXPECT_EQ(ReadFile(P("out.txt")), "partial");  // nothing to take back
  EXPECT_EQ(vfs_->stats().discarded, 1u);
  EXPECT_THAT(FinishAndReadManifest().entries(), IsEmpty());
}

TEST_F(VirtualStoreTest, DirectModeRenameFollowsTheName) {
  MakeDirectVfs();
  WriteAs(10, P("tmp"), "renamed");
  ASSERT_EQ(KernelRename(10, P("tmp"), P("final")), 0);
  Exit(10);
  EXPECT_THAT(EntryPaths(FinishAndReadManifest()), ElementsAre("final"));
}

// ---------------------------------------------------------------------------
// In-place mode (dodo build's default): the tree is written, the old
// versions are kept aside until the writers settle.

class InPlaceTest : public VirtualStoreTest {
 protected:
  void SetUp() override {
    VirtualStoreTest::SetUp();
    MakeVfs(VirtualStoreOptions{});
  }
  // Files in .dodo/stage/ other than the journal.
  std::vector<std::string> KeptAside() {
    std::vector<std::string> names;
    for (const std::string& name : Names(StageDir())) {
      if (name != "journal") names.push_back(name);
    }
    return names;
  }
  void SetMtime(const std::string& path, time_t seconds) {
    const struct timespec times[2] = {{seconds, 0}, {seconds, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  }
};

TEST_F(InPlaceTest, WritesTheTreeAtOnceAndCommitsTheNewVersions) {
  EXPECT_FALSE(vfs_->RewritesPaths());
  WriteFile(P("log"), "old");

  Opened opened = KernelOpen(OpenEvent(10, P("out.txt"), kCreate));
  ASSERT_GE(opened.fd, 0);
  EXPECT_FALSE(opened.redirection.path.has_value());
  ASSERT_EQ(write(opened.fd, "new", 3), 3);
  close(opened.fd);
  WriteAs(10, P("log"), "+more", O_WRONLY | O_APPEND);

  EXPECT_EQ(ReadFile(P("out.txt")), "new");
  EXPECT_EQ(ReadFile(P("log")), "old+more");
  EXPECT_EQ(RedirectOf(Effect::kStat, P("out.txt")), std::nullopt);
  EXPECT_EQ(vfs_->Physical(P("out.txt")), P("out.txt"));
  EXPECT_EQ(KeptAside().size(), 1u) << "the old log";

  Exit(10);

  EXPECT_THAT(KeptAside(), IsEmpty());
  proto::Manifest manifest = FinishAndReadManifest();
  EXPECT_THAT(EntryPaths(manifest), ElementsAre("log", "out.txt"));
  EXPECT_EQ(Entry(manifest, "log").sha256(), RawSha256("old+more"));
  EXPECT_TRUE(store_->Has(Sha256OfString("new")));
  EXPECT_THAT(Names(StageDir()), IsEmpty()) << "the journal outlived the build";
}

TEST_F(InPlaceTest, FailedWriterGetsTheOldVersionsBackWithModeAndTimes) {
  WriteFile(P("obj.o"), "good object");
  ASSERT_EQ(chmod(P("obj.o").c_str(), 0604), 0);
  SetMtime(P("obj.o"), 1000000000);
  WriteFile(P("log"), "old");
  ASSERT_EQ(mkdir(P("sub").c_str(), 0755), 0);

  WriteAs(10, P("obj.o"), "half");
  WriteAs(10, P("log"), "+more", O_WRONLY | O_APPEND);
  WriteAs(10, P("sub/new.o"), "partial");
  EXPECT_EQ(ReadFile(P("obj.o")), "half");

  Exit(10, 1);

  EXPECT_EQ(ReadFile(P("obj.o")), "good object");
  const struct stat st = Stat(P("obj.o"));
  EXPECT_EQ(st.st_mode & 07777, 0604u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1000000000);
  EXPECT_EQ(ReadFile(P("log")), "old");
  EXPECT_FALSE(Exists(P("sub/new.o")));
  EXPECT_EQ(vfs_->stats().restored, 2u);
  EXPECT_EQ(vfs_->stats().discarded, 3u);
  EXPECT_THAT(KeptAside(), IsEmpty());
  EXPECT_THAT(FinishAndReadManifest().entries(), IsEmpty());
}

TEST_F(InPlaceTest, FailureKeepsTheManifestEntryOfTheVersionPutBack) {
  WriteAs(10, P("obj.o"), "good object");
  Exit(10);
  ASSERT_TRUE(vfs_->Finish(true).ok());
  MakeVfs(VirtualStoreOptions{});

  WriteAs(20, P("obj.o"), "half");
  Exit(20, 1);

  EXPECT_EQ(ReadFile(P("obj.o")), "good object");
  proto::Manifest manifest = FinishAndReadManifest();
  EXPECT_EQ(Entry(manifest, "obj.o").sha256(), RawSha256("good object"));
}

TEST_F(InPlaceTest, TruncatingOpenMovesTheOldFileInsteadOfCopyingIt) {
  WriteFile(P("big.o"), std::string(100000, 'x'));
  ASSERT_EQ(chmod(P("big.o").c_str(), 0751), 0);
  const ino_t old_inode = Stat(P("big.o")).st_ino;

  Opened opened = KernelOpen(OpenEvent(10, P("big.o"), O_WRONLY | O_TRUNC));
  ASSERT_GE(opened.fd, 0) << strerror(opened.error);
  close(opened.fd);

  EXPECT_EQ(vfs_->stats().copied_up, 0u);
  const struct stat now = Stat(P("big.o"));
  EXPECT_EQ(now.st_size, 0);
  EXPECT_EQ(now.st_mode & 07777, 0751u);
  const std::vector<std::string> aside = KeptAside();
  ASSERT_EQ(aside.size(), 1u);
  const struct stat kept = Stat(StageDir() + "/" + aside[0]);
  EXPECT_EQ(kept.st_ino, old_inode);
  EXPECT_EQ(kept.st_size, 100000);
}

TEST_F(InPlaceTest, AppendChangesTheVeryFileThatWasThere) {
  WriteFile(P("log"), "old");
  const ino_t inode = Stat(P("log")).st_ino;
  WriteAs(10, P("log"), "+more", O_WRONLY | O_APPEND);
  EXPECT_EQ(Stat(P("log")).st_ino, inode);
  EXPECT_EQ(vfs_->stats().copied_up, 1u);
  Exit(10);
  EXPECT_EQ(Stat(P("log")).st_ino, inode);
  EXPECT_EQ(ReadFile(P("log")), "old+more");
}

TEST_F(InPlaceTest, FailedOpenPutsTheOldFileBackAtOnce) {
  WriteFile(P("obj.o"), "good object");
  SyscallEvent event = OpenEvent(10, P("obj.o"), O_WRONLY | O_TRUNC);
  Redirection redirection = vfs_->Redirect(event);
  ASSERT_TRUE(redirection.wants_result);
  EXPECT_EQ(ReadFile(P("obj.o")), "");  // moved aside
  vfs_->AfterSyscall(event, -EACCES);

  EXPECT_EQ(ReadFile(P("obj.o")), "good object");
  EXPECT_THAT(KeptAside(), IsEmpty());
  Exit(10);  // exits 0: there is nothing to commit
  EXPECT_EQ(vfs_->stats().committed, 0u);
  EXPECT_EQ(ReadFile(P("obj.o")), "good object");
}

TEST_F(InPlaceTest, NewFileRenamedIsRemovedUnderItsNewNameOnFailure) {
  WriteAs(10, P("out.tmp"), "partial");
  ASSERT_EQ(KernelRename(10, P("out.tmp"), P("out")), 0);
  Exit(10, 1);
  EXPECT_FALSE(Exists(P("out")));
  EXPECT_FALSE(Exists(P("out.tmp")));
}

TEST_F(InPlaceTest, NewFileRenamedOverOneWrittenInTheBuildPutsThatOneBackOnFailure) {
  WriteFile(P("out"), "good");
  WriteAs(10, P("out"), "first try");
  WriteAs(10, P("out.tmp"), "second try");
  ASSERT_EQ(KernelRename(10, P("out.tmp"), P("out")), 0);
  Exit(10, 1);
  EXPECT_EQ(ReadFile(P("out")), "good");
  EXPECT_FALSE(Exists(P("out.tmp")));
  EXPECT_THAT(KeptAside(), IsEmpty());
}

TEST_F(InPlaceTest, KeepFailedPutsTheFailedBytesAsideAndTheOldOnesBack) {
  VirtualStoreOptions options;
  options.keep_failed = true;
  MakeVfs(options);
  WriteFile(P("old.txt"), "previous");
  WriteAs(10, P("old.txt"), "half");
  WriteAs(10, P("new.txt"), "partial");
  Exit(10, 1);
  EXPECT_EQ(ReadFile(P("old.txt")), "previous");
  EXPECT_FALSE(Exists(P("new.txt")));
  EXPECT_EQ(ReadFile(root_ + "/.dodo/failed/old.txt"), "half");
  EXPECT_EQ(ReadFile(root_ + "/.dodo/failed/new.txt"), "partial");
}

TEST_F(InPlaceTest, FailedBuildUndoesWhatIsStillBeingWritten) {
  WriteFile(P("old.txt"), "previous");
  WriteAs(10, P("old.txt"), "half");
  WriteAs(10, P("new.txt"), "partial");
  FinishAndReadManifest(/*build_ok=*/false);
  EXPECT_EQ(ReadFile(P("old.txt")), "previous");
  EXPECT_FALSE(Exists(P("new.txt")));
  EXPECT_THAT(Names(StageDir()), IsEmpty());
}

// dodo killed while commands wrote: the next build starts by undoing what
// the journal says was not settled, and keeps what was.
TEST_F(InPlaceTest, NextBuildUndoesWhatAKilledBuildLeftHalfWritten) {
  WriteFile(P("obj.o"), "good object");
  WriteFile(P("log"), "old");
  WriteFile(P("done.o"), "old done");
  WriteAs(10, P("obj.o"), "half");
  WriteAs(10, P("log"), "+more", O_WRONLY | O_APPEND);
  WriteAs(10, P("new.o"), "partial");
  WriteAs(11, P("done.o"), "new done");
  Exit(11);
  vfs_.reset();  // killed: no Finish

  MakeVfs(VirtualStoreOptions{});

  EXPECT_EQ(ReadFile(P("obj.o")), "good object");
  EXPECT_EQ(ReadFile(P("log")), "old");
  EXPECT_FALSE(Exists(P("new.o")));
  EXPECT_EQ(ReadFile(P("done.o")), "new done");
  EXPECT_EQ(vfs_->stats().restored, 2u);
  EXPECT_THAT(Names(StageDir()), IsEmpty());
}

TEST_F(InPlaceTest, AJournalNeverTouchesFilesOutsideTheProject) {
  const std::string outside = outside_.P("precious");
  WriteFile(outside, "keep me");
  WriteFile(StageDir() + "/7-x", "not mine to move");
  WriteFile(StageDir() + "/journal",
            absl::StrCat("1\tD\t", outside, "\n2\tR\t", StageDir(), "/7-x\t", outside, "\n3\tR\t",
                         outside, "\t", P("in.txt"), "\n4\tD\t", P("torn\\")));
  WriteFile(P("torn\\"), "a torn line is not obeyed");

  MakeVfs(VirtualStoreOptions{});

  EXPECT_EQ(ReadFile(outside), "keep me");
  EXPECT_FALSE(Exists(P("in.txt")));
  EXPECT_TRUE(Exists(P("torn\\")));
  EXPECT_EQ(vfs_->stats().restored, 0u);
}

// ---------------------------------------------------------------------------
// Finish

TEST_F(VirtualStoreTest, FinishWithAFailedBuildDiscardsWhatIsStillStaged) {
  WriteFile(P("old.txt"), "previous");
  WriteAs(10, P("new.txt"), "new");
  WriteAs(10, P("old.txt"), "changed");

  proto::Manifest manifest = FinishAndReadManifest(/*build_ok=*/false);

  EXPECT_FALSE(Exists(P("new.txt")));
  EXPECT_EQ(ReadFile(P("old.txt")), "previous");
  EXPECT_THAT(Names(StageDir()), IsEmpty());
  EXPECT_THAT(manifest.entries(), IsEmpty());
  EXPECT_EQ(vfs_->stats().discarded, 2u);
  // A late exit finds nothing left to settle.
  Exit(10);
  EXPECT_EQ(ReadFile(P("old.txt")), "previous");
}

TEST_F(VirtualStoreTest, FinishWithASuccessfulBuildCommitsWhatIsStillStaged) {
  WriteFile(P("old.txt"), "previous");
  WriteAs(10, P("new.txt"), "new");
  WriteAs(10, P("old.txt"), "changed");

  proto::Manifest manifest = FinishAndReadManifest(/*build_ok=*/true);

  EXPECT_EQ(ReadFile(P("new.txt")), "new");
  EXPECT_EQ(ReadFile(P("old.txt")), "changed");
  EXPECT_THAT(Names(StageDir()), IsEmpty());
  EXPECT_THAT(EntryPaths(manifest), ElementsAre("new.txt", "old.txt"));
  EXPECT_EQ(vfs_->stats().committed, 2u);
  EXPECT_TRUE(store_->Has(Sha256OfString("changed")));
}

TEST_F(VirtualStoreTest, FinishDoesNotCommitAFileWhoseOpenerFailed) {
  WriteAs(10, P("log"), "text", O_WRONLY | O_CREAT | O_APPEND);
  vfs_->OnExec(ExecWithFd(12, P("log")));
  Exit(10, 1);  // 12 never reports an exit

  proto::Manifest manifest = FinishAndReadManifest(/*build_ok=*/true);

  EXPECT_FALSE(Exists(P("log")));
  EXPECT_THAT(manifest.entries(), IsEmpty());
}

TEST_F(VirtualStoreTest, ManifestLeavesOutPathsGoneFromTheTree) {
  WriteAs(10, P("a"), "a");
  WriteAs(10, P("b"), "b");
  Exit(10);
  ASSERT_EQ(unlink(P("a").c_str()), 0);  // by someone untraced

  EXPECT_THAT(EntryPaths(FinishAndReadManifest()), ElementsAre("b"));
}

// ---------------------------------------------------------------------------
// Events go on to the next sink

TEST_F(VirtualStoreTest, EveryEventIsPassedOn) {
  SyscallEvent stat_event = Event(1, Effect::kStat, "/etc/passwd");
  stat_event.syscall = "stat";
  vfs_->OnSyscall(stat_event);
  vfs_->OnFork(tracer::ForkEvent{.parent = 1, .child = 2});
  tracer::ExecFailedEvent failed;
  failed.pid = 2;
  failed.error = ENOENT;
  vfs_->OnExecFailed(failed);
  vfs_->OnExec(ExecWithFd(2, "/dev/null"));
  vfs_->OnWarning(tracer::WarningEvent{.pid = 2, .syscall = "x", .message = "odd"});
  vfs_->OnExit(ExitEvent{.pid = 3, .process = false, .code = 0});
  Exit(2, 4);

  EXPECT_THAT(sink_.log,
              ElementsAre("syscall 1 stat", "fork 1 2", absl::StrCat("exec-failed 2 ", ENOENT),
                          "exec 2", "warning 2 odd", "exit 3 0", "exit 2 4"));
}

// ---------------------------------------------------------------------------
// Cases that were once wrong.

// After `rm d; mkdir d`, where d was a symlink to a directory, a file written
// in the new d/ lands there, not in the directory the old link pointed at:
// unlink drops the cached canonical directories.
TEST_F(VirtualStoreTest, DirectorySymlinkReplacedByADirectory) {
  ASSERT_EQ(mkdir(P("old_target").c_str(), 0755), 0);
  ASSERT_EQ(symlink("old_target", P("d").c_str()), 0);
  WriteAs(10, P("d/first.txt"), "first");  // resolves d while it is a link
  Exit(10);
  ASSERT_EQ(ReadFile(P("old_target/first.txt")), "first");

  ASSERT_EQ(KernelUnlink(11, P("d")), 0);
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);  // mkdir is not redirected
  WriteAs(11, P("d/second.txt"), "second");
  Exit(11);

  EXPECT_EQ(ReadFile(P("d/second.txt")), "second");
  EXPECT_FALSE(Exists(P("old_target/second.txt")));
}

// A symlink made through a directory symlink that leads out of the project
// is not an output: nothing goes into the manifest for it. (The canonical
// path, outside the project and shorter than its root, once made Relative()
// throw std::out_of_range in the middle of a build.)
TEST_F(VirtualStoreTest, SymlinkMadeThroughALinkLeadingOutOfTheProject) {
  char pattern[] = "/tmp/vs.XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr) << "cannot make a directory in /tmp";
  char real[PATH_MAX];
  ASSERT_NE(realpath(pattern, real), nullptr);
  const std::string short_outside = real;
  ASSERT_LT(short_outside.size() + 2, root_.size() + 1);  // so Relative() would throw
  ASSERT_EQ(symlink(short_outside.c_str(), P("ext").c_str()), 0);

  int result = -1;
  EXPECT_NO_THROW(result = KernelSymlink(10, "x", P("ext/l")));
  EXPECT_EQ(result, 0);
  Exit(10);
  proto::Manifest manifest;
  EXPECT_NO_THROW(manifest = FinishAndReadManifest());
  EXPECT_THAT(manifest.entries(), IsEmpty());

  unlink((short_outside + "/l").c_str());
  rmdir(short_outside.c_str());
}

// rename(a, a) succeeds and does nothing (POSIX): the staged bytes are not
// taken for a replaced version.
TEST_F(VirtualStoreTest, RenameOfAStagedFileOntoItselfKeepsIt) {
  WriteAs(10, P("a"), "keep me");

  ASSERT_EQ(KernelRename(10, P("a"), P("a")), 0);
  Exit(10);

  EXPECT_EQ(ReadFile(P("a")), "keep me");
  EXPECT_THAT(EntryPaths(FinishAndReadManifest()), ElementsAre("a"));
}

// A name of NAME_MAX (255) bytes, which the kernel accepts in the tree, fits
// in the stage too (the staged name keeps only part of it).
TEST_F(VirtualStoreTest, LongestFileNameCanBeWritten) {
  const std::string name(255, 'n');
  const std::string real = P(name);

  Opened opened = KernelOpen(OpenEvent(10, real, kCreate));

  ASSERT_GE(opened.fd, 0) << "redirected to " << opened.redirection.path.value_or("(nothing)")
                          << ": " << strerror(opened.error);
  ASSERT_EQ(write(opened.fd, "long", 4), 4);
  close(opened.fd);
  Exit(10);
  EXPECT_EQ(ReadFile(real), "long");
}

}  // namespace
}  // namespace dodo::model
