// SHA-256 digests of files and directory listings, the content versions a
// trace records. Hashing is the costly part of recording, so file digests
// are cached by the file's identity and stat validators: an unchanged file is
// read once per FileHasher.
#ifndef DODO_MODEL_FILE_HASHER_H_
#define DODO_MODEL_FILE_HASHER_H_

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <future>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace dodo::model {

using Digest = std::array<uint8_t, 32>;

// Lowercase hexadecimal, 64 characters.
std::string DigestHex(const Digest& d);
Digest Sha256OfString(std::string_view data);

struct FileVersion {
  Digest sha256;
  uint64_t size;     // bytes hashed
  uint32_t mode;     // st_mode: file type and permission bits
  int64_t mtime_ns;  // modification time, ns since the Unix epoch
};

// The entry names of a directory (without "." and ".."), sorted bytewise.
absl::StatusOr<std::vector<std::string>> ListNames(const std::string& dir);
// SHA-256 of sorted names, each followed by '\0': a listing's digest.
Digest HashNames(const std::vector<std::string>& names);

// Where dodo trace keeps its hash cache, shared by all the user's traces:
// $XDG_CACHE_HOME/dodo/hashes, else $HOME/.cache/dodo/hashes; "" if neither
// variable holds an absolute path.
std::string UserHashCachePath();

class FileHasher {
 public:
  FileHasher() = default;
  FileHasher(const FileHasher&) = delete;
  FileHasher& operator=(const FileHasher&) = delete;

  // Hashes the regular file at `path` (symlinks are followed). Cached by
  // (dev, ino, size, mtime_ns, ctime_ns): a file whose stat is unchanged is
  // not read again; any difference re-hashes. ctime is part of the key
  // because a writer can restore mtime (utimensat) but never ctime.
  // A cached digest is trusted only if the file's ctime was at least
  // RacyWindow() older than the moment its read began: file systems stamp
  // changes from a clock that ticks in jiffies, so a rewrite of the same
  // size within the tick of the previous change can leave every validator
  // as it was. A file hashed that soon after a change is read again next
  // time (git's index has the same "racily clean" rule).
  // Errors name the path and the errno text: NotFound for a missing file,
  // FailedPrecondition for a non-regular one, Aborted when the file kept
  // changing while it was read, other codes from the errno otherwise.
  absl::StatusOr<FileVersion> HashFile(const std::string& path);

  // Like HashFile, and writes the bytes it hashed to `copy_fd` (from offset
  // 0, truncated first) when copy_fd >= 0: the copy is exactly the version
  // returned. Always reads the file.
  absl::StatusOr<FileVersion> HashAndCopy(const std::string& path, int copy_fd);

  // The cache outlives a run in a file (dodo build keeps it in .dodo/,
  // dodo trace in the user's cache directory), so an unchanged file is not
  // read again by the next run either. Loading ignores a missing or damaged
  // file; saving replaces it atomically (concurrent savers each write a
  // temporary file of their own; the last rename wins). Saving leaves out
  // digests not trusted yet, entries no run has used for kUnusedDays and,
  // past `max_entries`, the entries used least recently.
  // With `only_this_run`, the entries loaded from a shared cache (below)
  // that this run did not use are left out too.
  absl::Status SaveCache(const std::string& path, size_t max_entries = kMaxCacheEntries,
                         bool only_this_run = false) const;
  // A `shared` cache is the user's, which every project's runs fill: a
  // project's own cache (.dodo/hashes) keeps only what its runs used of it
  // (see SaveCache). An entry loaded before is kept.
  void LoadCache(const std::string& path, bool shared = false);
  // LoadCache on a thread of its own, for a caller with other work to do
  // before its first hash (the tracer's start: a user's cache of 3 MB takes
  // 8-10 ms to load). Every call that needs the cache waits for it.
  void LoadCacheInBackground(const std::string& path, bool shared = false);
  // Whether a file was hashed since LoadCache, so that the cache on disk is
  // behind (a run that found every file in the cache need not save it).
  bool cache_changed() const {
    AwaitCache();
    return cache_changed_;
  }

  // SHA-256 of the sorted entry names of a directory (excluding "." and
  // ".."), each name followed by '\0'. Names sort bytewise. Not cached.
  absl::StatusOr<Digest> HashListing(const std::string& dir);

  // How many times file contents were actually read (for tests).
  size_t files_read() const { return files_read_; }

  // How long after its last change a file's cached digest starts to be
  // trusted: two ticks of the kernel's coarse clock, at least 10 ms.
  static int64_t RacyWindowNs();
  // A cache entry that no run has used for this long is dropped on save, so
  // that a cache shared by all builds does not keep deleted files forever.
  static constexpr int kUnusedDays = 30;
  // 3 MiB of cache file, about 5 ms to load: some hundred system files and
  // the sources and outputs of the last builds fit many times over.
  static constexpr size_t kMaxCacheEntries = 32768;

 private:
  // Waits for a LoadCacheInBackground under way, if any. Safe from
  // several threads at once (SaveCache is const: two caches may be saved
  // at the same time).
  void AwaitCache() const {
    if (loading_.valid()) loading_.get();
  }
  // LoadCache's work, on whichever thread.
  void ReadCacheFile(const std::string& path, bool shared);
  struct Validators {
    uint64_t size;
    int64_t mtime_ns;
    int64_t ctime_ns;
    bool operator==(const Validators&) const = default;
  };
  struct CachedVersion {
    Validators validators;
    FileVersion version;
    int64_t read_at_ns;   // CLOCK_REALTIME when the read that gave `version` began
    int64_t used_at_s;    // last run that used it (as saved), seconds since the epoch
    bool used = false;    // used by this run: saved with this run's time
    bool shared = false;  // loaded from a shared cache, not hashed here
    // Whether the file had been still for RacyWindowNs() when it was read.
    bool Trusted() const { return validators.ctime_ns + RacyWindowNs() <= read_at_ns; }
  };

  // Keyed by (st_dev, st_ino): one entry per file, replaced when it changes,
  // so the cache does not grow with every edit of the same file.
  absl::flat_hash_map<std::pair<dev_t, ino_t>, CachedVersion> cache_;
  std::vector<uint8_t> buffer_;  // read buffer, allocated on first use
  size_t files_read_ = 0;
  // A LoadCacheInBackground under way: until it is waited for, it alone
  // touches cache_.
  std::shared_future<void> loading_;
  bool cache_changed_ = false;
};

}  // namespace dodo::model

#endif  // DODO_MODEL_FILE_HASHER_H_
