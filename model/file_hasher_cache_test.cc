// FileHasher's cache file: what one build hashed is not read again by the
// next one, unless the file changed.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/file_hasher.h"
#include "model/test_trace_builder.h"

namespace dodo::model {
namespace {

using ::testing::ElementsAre;
using testutil::Names;
using testutil::ReadFile;
using testutil::ScratchDir;
using testutil::WriteFile;

class FileHasherCacheTest : public ::testing::Test {
 protected:
  std::string CachePath() const { return scratch_.P("cache/hashes"); }

  // Waits until a file changed now is still enough for its digest to be
  // trusted, and kept, by the cache.
  static void LetSettle() {
    usleep(static_cast<useconds_t>(FileHasher::RacyWindowNs() / 1000 + 5'000));
  }

  // Hashes `path` in a hasher of its own, once the file has settled, and
  // saves that hasher's cache.
  void HashAndSave(const std::string& path) {
    LetSettle();
    FileHasher hasher;
    ASSERT_TRUE(hasher.HashFile(path).ok());
    ASSERT_TRUE(hasher.SaveCache(CachePath()).ok());
  }

  // Loads the cache into a fresh hasher, hashes `path` with it and checks
  // the digest is the one of `expected`; returns how many files it read.
  size_t ReadsWithLoadedCache(const std::string& path, const std::string& expected) {
    FileHasher hasher;
    hasher.LoadCache(CachePath());
    absl::StatusOr<FileVersion> version = hasher.HashFile(path);
    EXPECT_TRUE(version.ok()) << version.status();
    if (version.ok()) {
      EXPECT_EQ(version->sha256, Sha256OfString(expected));
      EXPECT_EQ(version->size, expected.size());
    }
    return hasher.files_read();
  }

  void SetUp() override { WriteFile(scratch_.P("cache/.keep"), ""); }

  ScratchDir scratch_;
};

TEST_F(FileHasherCacheTest, UnchangedFileIsNotReadAgainAfterLoadingTheCache) {
  WriteFile(scratch_.P("f"), "hello");
  HashAndSave(scratch_.P("f"));
  EXPECT_EQ(ReadsWithLoadedCache(scratch_.P("f"), "hello"), 0u);
}

// dodo build saves the cache only when it is behind: a run that found every
// file in the loaded cache has nothing to add; hashing a new or changed file
// has.
TEST_F(FileHasherCacheTest, CacheChangesOnlyWhenAFileIsHashed) {
  WriteFile(scratch_.P("f"), "hello");
  WriteFile(scratch_.P("g"), "other");
  HashAndSave(scratch_.P("f"));
  FileHasher hasher;
  hasher.LoadCache(CachePath());
  EXPECT_FALSE(hasher.cache_changed());
  ASSERT_TRUE(hasher.HashFile(scratch_.P("f")).ok());
  EXPECT_FALSE(hasher.cache_changed()) << "a cache hit changed the cache";
  ASSERT_TRUE(hasher.HashFile(scratch_.P("g")).ok());
  EXPECT_TRUE(hasher.cache_changed());

  FileHasher again;
  again.LoadCache(CachePath());
  WriteFile(scratch_.P("f"), "hello, longer");
  ASSERT_TRUE(again.HashFile(scratch_.P("f")).ok());
  EXPECT_TRUE(again.cache_changed()) << "a changed file did not change the cache";
}

// dodo trace and dodo build load the user's cache while the tracer starts:
// the first hash waits for it, and saving keeps all it loaded.
TEST_F(FileHasherCacheTest, CacheLoadedInBackgroundServesTheFirstHash) {
  constexpr int kFiles = 2000;  // enough for the load to take a while
  {
    FileHasher hasher;
    for (int i = 0; i < kFiles; ++i) WriteFile(scratch_.P("f" + std::to_string(i)), "x");
    LetSettle();
    for (int i = 0; i < kFiles; ++i) {
      ASSERT_TRUE(hasher.HashFile(scratch_.P("f" + std::to_string(i))).ok());
    }
    ASSERT_TRUE(hasher.SaveCache(CachePath()).ok());
  }
  const std::string saved = ReadFile(CachePath());
  FileHasher hasher;
  hasher.LoadCacheInBackground(CachePath());
  ASSERT_TRUE(hasher.HashFile(scratch_.P("f" + std::to_string(kFiles - 1))).ok());
  EXPECT_EQ(hasher.files_read(), 0u) << "the first hash did not wait for the cache";
  EXPECT_FALSE(hasher.cache_changed());
  ASSERT_TRUE(hasher.SaveCache(scratch_.P("cache/again")).ok());
  EXPECT_EQ(ReadFile(scratch_.P("cache/again")).size(), saved.size());
}

// dodo build keeps in .dodo/hashes what the project's runs hashed or
// used, not the whole user's cache it loaded besides.
TEST_F(FileHasherCacheTest, OnlyThisRunLeavesOutTheSharedEntriesItDidNotUse) {
  for (const char* name : {"own", "used", "unused"}) WriteFile(scratch_.P(name), name);
  LetSettle();
  const std::string own_cache = scratch_.P("cache/own");
  const std::string shared_cache = scratch_.P("cache/shared");
  {
    FileHasher hasher;
    ASSERT_TRUE(hasher.HashFile(scratch_.P("own")).ok());
    ASSERT_TRUE(hasher.SaveCache(own_cache).ok());
  }
  {
    FileHasher hasher;
    ASSERT_TRUE(hasher.HashFile(scratch_.P("used")).ok());
    ASSERT_TRUE(hasher.HashFile(scratch_.P("unused")).ok());
    ASSERT_TRUE(hasher.SaveCache(shared_cache).ok());
  }
  FileHasher run;
  run.LoadCache(own_cache);
  run.LoadCache(shared_cache, /*shared=*/true);
  ASSERT_TRUE(run.HashFile(scratch_.P("used")).ok());
  ASSERT_EQ(run.files_read(), 0u);
  ASSERT_TRUE(run.SaveCache(scratch_.P("cache/project"), FileHasher::kMaxCacheEntries,
                            /*only_this_run=*/true)
                  .ok());
  ASSERT_TRUE(run.SaveCache(scratch_.P("cache/everything")).ok());

  auto reads = [&](const std::string& cache, const char* name) {
    FileHasher later;
    later.LoadCache(cache);
    EXPECT_TRUE(later.HashFile(scratch_.P(name)).ok());
    return later.files_read();
  };
  EXPECT_EQ(reads(scratch_.P("cache/project"), "own"), 0u);
  EXPECT_EQ(reads(scratch_.P("cache/project"), "used"), 0u);
  EXPECT_EQ(reads(scratch_.P("cache/project"), "unused"), 1u);
  EXPECT_EQ(reads(scratch_.P("cache/everything"), "unused"), 0u);
}

TEST_F(FileHasherCacheTest, LoadedVersionKeepsModeAndMtime) {
  WriteFile(scratch_.P("f"), "hello", 0750);
  LetSettle();
  FileHasher first;
  absl::StatusOr<FileVersion> hashed = first.HashFile(scratch_.P("f"));
  ASSERT_TRUE(hashed.ok());
  ASSERT_TRUE(first.SaveCache(CachePath()).ok());

  FileHasher second;
  second.LoadCache(CachePath());
  absl::StatusOr<FileVersion> loaded = second.HashFile(scratch_.P("f"));
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(second.files_read(), 0u);
  EXPECT_EQ(loaded->sha256, hashed->sha256);
  EXPECT_EQ(loaded->size, hashed->size);
  EXPECT_EQ(loaded->mode, hashed->mode);
  EXPECT_EQ(loaded->mtime_ns, hashed->mtime_ns);
}

TEST_F(FileHasherCacheTest, SaveCacheLeavesNoTemporaryFile) {
  WriteFile(scratch_.P("f"), "hello");
  HashAndSave(scratch_.P("f"));
  HashAndSave(scratch_.P("f"));  // replaces the first one
  EXPECT_THAT(Names(scratch_.P("cache")), ElementsAre(".keep", "hashes"));
}

TEST_F(FileHasherCacheTest, FileRewrittenWithSameSizeAndRestoredMtimeIsReadAgain) {
  const std::string f = scratch_.P("f");
  WriteFile(f, "aaaa");
  HashAndSave(f);
  struct stat before;
  ASSERT_EQ(stat(f.c_str(), &before), 0);

  // Let the clock move so the rewrite's ctime differs even on file systems
  // with coarse timestamps.
  usleep(20'000);
  WriteFile(f, "bbbb");
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, f.c_str(), times, 0), 0);
  struct stat after;
  ASSERT_EQ(stat(f.c_str(), &after), 0);
  ASSERT_EQ(after.st_ino, before.st_ino);
  ASSERT_EQ(after.st_size, before.st_size);
  ASSERT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  ASSERT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  ASSERT_TRUE(after.st_ctim.tv_sec != before.st_ctim.tv_sec ||
              after.st_ctim.tv_nsec != before.st_ctim.tv_nsec);

  EXPECT_EQ(ReadsWithLoadedCache(f, "bbbb"), 1u);
}

TEST_F(FileHasherCacheTest, FileChangedInSizeIsReadAgain) {
  WriteFile(scratch_.P("f"), "short");
  HashAndSave(scratch_.P("f"));
  WriteFile(scratch_.P("f"), "much longer now");
  EXPECT_EQ(ReadsWithLoadedCache(scratch_.P("f"), "much longer now"), 1u);
}

TEST_F(FileHasherCacheTest, MissingCacheFileIsIgnored) {
  WriteFile(scratch_.P("f"), "hello");
  EXPECT_EQ(ReadsWithLoadedCache(scratch_.P("f"), "hello"), 1u);
}

// Each damaged cache is ignored: no crash, digests still right (the file is
// read, since nothing from the damaged cache is trusted).
TEST_F(FileHasherCacheTest, CacheCutShortIsIgnored) {
  WriteFile(scratch_.P("f"), "hello");
  HashAndSave(scratch_.P("f"));
  const std::string saved = ReadFile(CachePath());
  ASSERT_GT(saved.size(), 16u);
  WriteFile(CachePath(), saved.substr(0, saved.size() - 7));
  EXPECT_EQ(ReadsWithLoadedCache(scratch_.P("f"), "hello"), 1u);
}

TEST_F(FileHasherCacheTest, CacheCutInsideItsHeaderIsIgnored) {
  WriteFile(scratch_.P("f"), "hello");
  HashAndSave(scratch_.P("f"));
  WriteFile(CachePath(), ReadFile(CachePath()).substr(0, 5));
  EXPECT_EQ(ReadsWithLoadedCache(scratch_.P("f"), "hello"), 1u);
}

TEST_F(FileHasherCacheTest, CacheWithForeignMagicIsIgnored) {
  WriteFile(scratch_.P("f"), "hello");
  HashAndSave(scratch_.P("f"));
  std::string saved = ReadFile(CachePath());
  saved[0] ^= 0x20;
  WriteFile(CachePath(), saved);
  EXPECT_EQ(ReadsWithLoadedCache(scratch_.P("f"), "hello"), 1u);
}

// A flipped byte inside an entry's digest keeps the file's length right:
// only the closing checksum can tell, and then the wrong digest is not used.
TEST_F(FileHasherCacheTest, CacheWithACorruptedDigestIsIgnored) {
  WriteFile(scratch_.P("f"), "hello");
  HashAndSave(scratch_.P("f"));
  std::string saved = ReadFile(CachePath());
  ASSERT_GT(saved.size(), 16u + 32u + 8u);
  saved[saved.size() - 32 - 8] ^= 0x01;  // the last byte-ish of the entry's digest
  WriteFile(CachePath(), saved);
  EXPECT_EQ(ReadsWithLoadedCache(scratch_.P("f"), "hello"), 1u);
}

TEST_F(FileHasherCacheTest, GarbageCacheIsIgnored) {
  WriteFile(scratch_.P("f"), "hello");
  std::string garbage;
  for (int i = 0; i < 4096; ++i) garbage.push_back(static_cast<char>((i * 131 + 7) & 0xff));
  WriteFile(CachePath(), garbage);
  EXPECT_EQ(ReadsWithLoadedCache(scratch_.P("f"), "hello"), 1u);
}

TEST_F(FileHasherCacheTest, EmptyCacheIsIgnored) {
  WriteFile(scratch_.P("f"), "hello");
  WriteFile(CachePath(), "");
  EXPECT_EQ(ReadsWithLoadedCache(scratch_.P("f"), "hello"), 1u);
}

TEST_F(FileHasherCacheTest, CacheThatIsADirectoryIsIgnored) {
  WriteFile(scratch_.P("f"), "hello");
  WriteFile(CachePath() + "/inside", "");
  EXPECT_EQ(ReadsWithLoadedCache(scratch_.P("f"), "hello"), 1u);
}

TEST_F(FileHasherCacheTest, SaveCacheIntoAMissingDirectoryFailsNamingIt) {
  FileHasher hasher;
  const std::string path = scratch_.P("no/such/dir/hashes");
  absl::Status status = hasher.SaveCache(path);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr(scratch_.P("no/such/dir")));
}

// A digest taken within the racy window of the file's last change is left
// out of the saved cache: the next run reads the file. (An attempt that spent
// the whole window before saving is inconclusive and tried again.)
TEST_F(FileHasherCacheTest, DigestOfAFileChangedJustBeforeIsNotSaved) {
  bool conclusive = false;
  for (int attempt = 0; attempt < 20 && !conclusive; ++attempt) {
    const std::string f = scratch_.P(absl::StrCat("f", attempt));
    FileHasher hasher;
    WriteFile(f, "fresh");
    ASSERT_TRUE(hasher.HashFile(f).ok());
    ASSERT_TRUE(hasher.SaveCache(CachePath()).ok());
    struct stat st;
    ASSERT_EQ(stat(f.c_str(), &st), 0);
    struct timespec now;
    ASSERT_EQ(clock_gettime(CLOCK_REALTIME, &now), 0);
    const int64_t ctime_ns = st.st_ctim.tv_sec * int64_t{1'000'000'000} + st.st_ctim.tv_nsec;
    const int64_t now_ns = now.tv_sec * int64_t{1'000'000'000} + now.tv_nsec;
    if (ctime_ns + FileHasher::RacyWindowNs() <= now_ns) continue;  // too slow to tell
    conclusive = true;
    EXPECT_EQ(ReadsWithLoadedCache(f, "fresh"), 1u) << "a racily clean digest was saved";
  }
  EXPECT_TRUE(conclusive) << "every attempt spent the racy window between write and save";
}

// The cache's entries carry the time a run last used them. Rewrites the
// first entry's used time in a saved cache (and the closing checksum).
void SetFirstEntryUsedAt(const std::string& cache, int64_t used_at_s) {
  constexpr size_t kMagic = 16, kUsedAtOffset = 6 * 8, kEntry = 96;
  std::string data = ReadFile(cache);
  ASSERT_EQ((data.size() - kMagic - 32) % kEntry, 0u);
  std::memcpy(data.data() + kMagic + kUsedAtOffset, &used_at_s, sizeof(used_at_s));
  const Digest check =
      Sha256OfString(std::string_view(data).substr(kMagic, data.size() - kMagic - 32));
  data.replace(data.size() - 32, 32, reinterpret_cast<const char*>(check.data()), 32);
  WriteFile(cache, data);
}

TEST_F(FileHasherCacheTest, EntriesNoRunUsedForAMonthAreDroppedOnSave) {
  const int64_t long_ago = time(nullptr) - (FileHasher::kUnusedDays + 1) * int64_t{24 * 3600};
  for (bool used_again : {false, true}) {
    SCOPED_TRACE(used_again ? "used by the saving run" : "not used by the saving run");
    WriteFile(scratch_.P("old"), "old");
    WriteFile(scratch_.P("new"), "new");
    HashAndSave(scratch_.P("old"));
    SetFirstEntryUsedAt(CachePath(), long_ago);
    {
      FileHasher hasher;
      hasher.LoadCache(CachePath());
      if (used_again) {
        ASSERT_TRUE(hasher.HashFile(scratch_.P("old")).ok());
      }
      ASSERT_TRUE(hasher.HashFile(scratch_.P("new")).ok());  // something to save
      ASSERT_TRUE(hasher.SaveCache(CachePath()).ok());
    }
    EXPECT_EQ(ReadsWithLoadedCache(scratch_.P("old"), "old"), used_again ? 0u : 1u);
    EXPECT_EQ(ReadsWithLoadedCache(scratch_.P("new"), "new"), 0u);
  }
}

// Past its size limit, the cache keeps the entries used last.
TEST_F(FileHasherCacheTest, OverTheLimitTheEntriesUsedLeastRecentlyAreDropped) {
  const int64_t long_ago = time(nullptr) - 3 * 24 * 3600;  // within kUnusedDays
  WriteFile(scratch_.P("old"), "old");
  WriteFile(scratch_.P("new1"), "new1");
  WriteFile(scratch_.P("new2"), "new2");
  HashAndSave(scratch_.P("old"));
  SetFirstEntryUsedAt(CachePath(), long_ago);
  {
    FileHasher hasher;
    hasher.LoadCache(CachePath());
    ASSERT_TRUE(hasher.HashFile(scratch_.P("new1")).ok());
    ASSERT_TRUE(hasher.HashFile(scratch_.P("new2")).ok());
    ASSERT_TRUE(hasher.SaveCache(CachePath(), /*max_entries=*/2).ok());
  }
  EXPECT_EQ(ReadsWithLoadedCache(scratch_.P("old"), "old"), 1u);
  EXPECT_EQ(ReadsWithLoadedCache(scratch_.P("new1"), "new1"), 0u);
  EXPECT_EQ(ReadsWithLoadedCache(scratch_.P("new2"), "new2"), 0u);
}

// Two runs saving at once each write their own temporary file: both saves
// succeed, the cache is whole, and no temporary file stays behind.
TEST_F(FileHasherCacheTest, ConcurrentSavesLeaveOneWholeCache) {
  WriteFile(scratch_.P("f"), "hello");
  LetSettle();
  FileHasher hasher;
  ASSERT_TRUE(hasher.HashFile(scratch_.P("f")).ok());
  std::vector<std::thread> savers;
  std::atomic<int> failures = 0;
  for (int i = 0; i < 8; ++i) {
    savers.emplace_back([&] {
      for (int j = 0; j < 20; ++j) {
        if (!hasher.SaveCache(CachePath()).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : savers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_THAT(Names(scratch_.P("cache")), ElementsAre(".keep", "hashes"));
  EXPECT_EQ(ReadsWithLoadedCache(scratch_.P("f"), "hello"), 0u);
}

}  // namespace
}  // namespace dodo::model
