#include "model/file_hasher.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dodo::model {
namespace {

using ::testing::HasSubstr;

constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kAbcSha256[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

class FileHasherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    std::string pattern =
        absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/file_hasher_test.XXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << pattern;
    root_ = pattern;
  }

  void TearDown() override {
    if (!root_.empty()) {
      std::string command = absl::StrCat("rm -rf '", root_, "'");
      EXPECT_EQ(std::system(command.c_str()), 0);
    }
  }

  std::string P(const std::string& relative) const { return absl::StrCat(root_, "/", relative); }

  // Writes `content` into an existing or new file in place (same inode).
  void Write(const std::string& relative, const std::string& content) {
    int fd = open(P(relative).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << relative;
    ASSERT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    ASSERT_EQ(close(fd), 0);
  }

  // Waits until a file changed now is still enough for its digest to be
  // trusted by the cache.
  static void LetSettle() {
    usleep(static_cast<useconds_t>(FileHasher::RacyWindowNs() / 1000 + 5'000));
  }

  static struct stat Stat(const std::string& path) {
    struct stat st = {};
    EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
    return st;
  }

  std::string root_;
  FileHasher hasher_;
};

TEST(DigestTest, KnownVectors) {
  EXPECT_EQ(DigestHex(Sha256OfString("")), kEmptySha256);
  EXPECT_EQ(DigestHex(Sha256OfString("abc")), kAbcSha256);
  EXPECT_EQ(DigestHex(Sha256OfString("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(DigestTest, HexIsLowercaseAndOrdered) {
  Digest d{};
  d[0] = 0x01;
  d[1] = 0xab;
  d[31] = 0xf0;
  std::string hex = DigestHex(d);
  EXPECT_EQ(hex.size(), 64u);
  EXPECT_EQ(hex.substr(0, 4), "01ab");
  EXPECT_EQ(hex.substr(60), "00f0");
}

TEST(DigestTest, EmbeddedNulBytesCount) {
  EXPECT_NE(Sha256OfString(std::string("a\0b", 3)), Sha256OfString("a"));
  EXPECT_NE(Sha256OfString(std::string("a\0b", 3)), Sha256OfString("ab"));
}

TEST_F(FileHasherTest, FileDigestEqualsStringDigest) {
  Write("empty", "");
  Write("abc", "abc");
  absl::StatusOr<FileVersion> empty = hasher_.HashFile(P("empty"));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(DigestHex(empty->sha256), kEmptySha256);
  EXPECT_EQ(empty->size, 0u);

  absl::StatusOr<FileVersion> abc = hasher_.HashFile(P("abc"));
  ASSERT_TRUE(abc.ok()) << abc.status();
  EXPECT_EQ(DigestHex(abc->sha256), kAbcSha256);
  EXPECT_EQ(abc->size, 3u);
  struct stat st = Stat(P("abc"));
  EXPECT_EQ(abc->mode, st.st_mode);
  EXPECT_EQ(abc->mtime_ns,
            static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec);
}

TEST_F(FileHasherTest, LargeFileSpanningManyBuffers) {
  // 2.5 MiB of varied bytes (including NULs) crosses the 1 MiB read buffer.
  std::string content;
  content.reserve(5 << 19);
  for (size_t i = 0; i < (5u << 19); ++i) content += static_cast<char>((i * 7 + i / 4096) & 0xff);
  Write("big", content);
  absl::StatusOr<FileVersion> version = hasher_.HashFile(P("big"));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(version->sha256, Sha256OfString(content));
  EXPECT_EQ(version->size, content.size());
}

TEST_F(FileHasherTest, SymlinkIsFollowed) {
  Write("target", "abc");
  ASSERT_EQ(symlink("target", P("link").c_str()), 0);
  absl::StatusOr<FileVersion> version = hasher_.HashFile(P("link"));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(DigestHex(version->sha256), kAbcSha256);
}

TEST_F(FileHasherTest, UnchangedFileIsReadOnce) {
  Write("f", "hello");
  LetSettle();
  ASSERT_TRUE(hasher_.HashFile(P("f")).ok());
  EXPECT_EQ(hasher_.files_read(), 1u);
  absl::StatusOr<FileVersion> again = hasher_.HashFile(P("f"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(hasher_.files_read(), 1u);
  EXPECT_EQ(again->sha256, Sha256OfString("hello"));

  // A hard link is the same file, so both names share one cache entry
  // (link() itself changes the ctime, so the first hash after it re-reads).
  ASSERT_EQ(link(P("f").c_str(), P("g").c_str()), 0);
  LetSettle();
  absl::StatusOr<FileVersion> other_name = hasher_.HashFile(P("g"));
  ASSERT_TRUE(other_name.ok());
  EXPECT_EQ(other_name->sha256, Sha256OfString("hello"));
  EXPECT_EQ(hasher_.files_read(), 2u);
  ASSERT_TRUE(hasher_.HashFile(P("f")).ok());
  ASSERT_TRUE(hasher_.HashFile(P("g")).ok());
  EXPECT_EQ(hasher_.files_read(), 2u);
}

// A digest read within the racy window of the file's last change is not
// trusted: that file is read again at its next use, then trusted once it
// has been still for the window. (A machine slow enough to spend the whole
// window between the write and the hash makes an attempt inconclusive; the
// test then tries again with a new file.)
TEST_F(FileHasherTest, FileHashedJustAfterAChangeIsReadAgainUntilItSettles) {
  bool conclusive = false;
  for (int attempt = 0; attempt < 20 && !conclusive; ++attempt) {
    const std::string name = absl::StrCat("f", attempt);
    FileHasher hasher;
    Write(name, "fresh");
    ASSERT_TRUE(hasher.HashFile(P(name)).ok());
    struct timespec now;
    ASSERT_EQ(clock_gettime(CLOCK_REALTIME, &now), 0);
    const struct stat st = Stat(P(name));
    const int64_t ctime_ns = st.st_ctim.tv_sec * int64_t{1'000'000'000} + st.st_ctim.tv_nsec;
    const int64_t now_ns = now.tv_sec * int64_t{1'000'000'000} + now.tv_nsec;
    if (ctime_ns + FileHasher::RacyWindowNs() <= now_ns) continue;  // too slow to tell
    conclusive = true;
    absl::StatusOr<FileVersion> again = hasher.HashFile(P(name));
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->sha256, Sha256OfString("fresh"));
    EXPECT_EQ(hasher.files_read(), 2u) << "a digest taken in the racy window was trusted";
    LetSettle();
    ASSERT_TRUE(hasher.HashFile(P(name)).ok());
    ASSERT_TRUE(hasher.HashFile(P(name)).ok());
    EXPECT_EQ(hasher.files_read(), 3u) << "a settled file was not trusted after one more read";
  }
  EXPECT_TRUE(conclusive) << "every attempt spent the racy window between write and hash";
}

TEST_F(FileHasherTest, SameSizeChangeWithRestoredMtimeIsDetected) {
  Write("f", "aaaa");
  absl::StatusOr<FileVersion> first = hasher_.HashFile(P("f"));
  ASSERT_TRUE(first.ok());
  struct stat before = Stat(P("f"));

  // Let the clock move so the ctime of the rewrite differs even on file
  // systems with coarse timestamps.
  usleep(20'000);
  Write("f", "bbbb");
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, P("f").c_str(), times, 0), 0);
  struct stat after = Stat(P("f"));
  ASSERT_EQ(after.st_size, before.st_size);
  ASSERT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  ASSERT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  ASSERT_EQ(after.st_ino, before.st_ino);

  absl::StatusOr<FileVersion> second = hasher_.HashFile(P("f"));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->sha256, Sha256OfString("bbbb"));
  EXPECT_NE(second->sha256, first->sha256);
  EXPECT_EQ(hasher_.files_read(), 2u);
}

TEST_F(FileHasherTest, ReplacedFileIsRehashed) {
  Write("f", "one");
  ASSERT_TRUE(hasher_.HashFile(P("f")).ok());
  // Replace by rename, as compilers and editors do: a new inode.
  Write("f.tmp", "two");
  ASSERT_EQ(rename(P("f.tmp").c_str(), P("f").c_str()), 0);
  absl::StatusOr<FileVersion> version = hasher_.HashFile(P("f"));
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(version->sha256, Sha256OfString("two"));
  EXPECT_EQ(hasher_.files_read(), 2u);
}

TEST_F(FileHasherTest, Errors) {
  absl::StatusOr<FileVersion> missing = hasher_.HashFile(P("missing"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(P("missing")));
  EXPECT_THAT(missing.status().message(), HasSubstr("No such file or directory"));

  absl::StatusOr<FileVersion> dir = hasher_.HashFile(root_);
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(dir.status().message(), HasSubstr(root_));

  ASSERT_EQ(mkfifo(P("fifo").c_str(), 0644), 0);
  absl::StatusOr<FileVersion> fifo = hasher_.HashFile(P("fifo"));
  EXPECT_EQ(fifo.status().code(), absl::StatusCode::kFailedPrecondition);

  Write("file", "x");
  absl::StatusOr<FileVersion> not_dir = hasher_.HashFile(P("file/x"));
  EXPECT_FALSE(not_dir.ok());
  EXPECT_THAT(not_dir.status().message(), HasSubstr("Not a directory"));
  EXPECT_EQ(hasher_.files_read(), 0u);
}

TEST_F(FileHasherTest, ListingDigest) {
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  absl::StatusOr<Digest> empty = hasher_.HashListing(P("d"));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(DigestHex(*empty), kEmptySha256);

  Write("d/b", "");
  ASSERT_EQ(mkdir(P("d/a").c_str(), 0755), 0);
  absl::StatusOr<Digest> two = hasher_.HashListing(P("d"));
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(*two, Sha256OfString(std::string("a\0b\0", 4)));

  Write("d/c", "");
  absl::StatusOr<Digest> three = hasher_.HashListing(P("d"));
  ASSERT_TRUE(three.ok());
  EXPECT_NE(*three, *two);

  // Content changes do not affect a listing.
  Write("d/c", "changed");
  EXPECT_EQ(*hasher_.HashListing(P("d")), *three);
}

TEST_F(FileHasherTest, ListingIndependentOfCreationOrder) {
  ASSERT_EQ(mkdir(P("x").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("y").c_str(), 0755), 0);
  const char* names[] = {"zeta", "Alpha", "mid", "\xc3\xa9t\xc3\xa9", "10", "9"};
  for (const char* name : names) Write(absl::StrCat("x/", name), "");
  for (int i = 5; i >= 0; --i) Write(absl::StrCat("y/", names[i]), "");
  absl::StatusOr<Digest> x = hasher_.HashListing(P("x"));
  absl::StatusOr<Digest> y = hasher_.HashListing(P("y"));
  ASSERT_TRUE(x.ok());
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(*x, *y);
  // Bytewise order, bytes unsigned: '1' (0x31) < '9' < 'A' < 'm' < 'z' < 0xc3.
  std::string expected;
  for (const char* name : {"10", "9", "Alpha", "mid", "zeta", "\xc3\xa9t\xc3\xa9"}) {
    expected += name;
    expected += '\0';
  }
  EXPECT_EQ(*x, Sha256OfString(expected));
}

TEST_F(FileHasherTest, ListingErrors) {
  absl::StatusOr<Digest> missing = hasher_.HashListing(P("missing"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(P("missing")));

  Write("file", "x");
  absl::StatusOr<Digest> file = hasher_.HashListing(P("file"));
  EXPECT_FALSE(file.ok());
  EXPECT_THAT(file.status().message(), HasSubstr("Not a directory"));
}

}  // namespace
}  // namespace dodo::model
