#include "model/file_hasher.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "model/file_errors.h"

namespace dodo::model {
namespace {

// Large reads keep the syscall count low for big objects and archives.
constexpr size_t kBufferSize = size_t{1} << 20;
// A file that is still being written is re-read this many times at most.
constexpr int kMaxAttempts = 3;

using Fd = ScopedFd;

struct DirCloser {
  void operator()(DIR* dir) const { closedir(dir); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

struct EvpMdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

// OpenSSL's SHA-256 only fails when it cannot allocate; there is no way to
// carry on from that, and the callers that return a bare Digest could not
// report it anyway.
[[noreturn]] void OpenSslFailed(const char* what) {
  std::fprintf(stderr, "dodo: OpenSSL %s failed for SHA-256\n", what);
  std::abort();
}

// SHA-256, set up once per process. Reading /etc/ssl/openssl.cnf, which
// OpenSSL does at its first use unless told not to, took about half a
// millisecond of each run (a no-op build is 5 ms) and only chooses
// providers: SHA-256 gives the same digest from any of them. An algorithm
// fetched once also spares every digest OpenSSL 3's lookup by name.
const EVP_MD* Sha256Algorithm() {
  static const EVP_MD* const algorithm = [] {
    if (OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr) != 1) OpenSslFailed("init");
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (fetched == nullptr) OpenSslFailed("EVP_MD_fetch");
    return fetched;
  }();
  return algorithm;
}

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr) OpenSslFailed("EVP_MD_CTX_new");
    if (EVP_DigestInit_ex(ctx_.get(), Sha256Algorithm(), nullptr) != 1) OpenSslFailed("init");
  }
  void Update(const void* data, size_t size) {
    if (EVP_DigestUpdate(ctx_.get(), data, size) != 1) OpenSslFailed("update");
  }
  Digest Finish() {
    Digest digest;
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), digest.data(), &length) != 1 || length != digest.size()) {
      OpenSslFailed("final");
    }
    return digest;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree> ctx_;
};

int64_t Nanoseconds(const struct timespec& ts) {
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t RealtimeNs() {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return Nanoseconds(now);
}

absl::Status ErrnoError(int error, const char* what, const std::string& path) {
  return absl::ErrnoToStatus(error, absl::StrCat(what, " ", path));
}

absl::Status NotRegular(const std::string& path) {
  return absl::FailedPreconditionError(absl::StrCat(path, ": not a regular file"));
}

}  // namespace

std::string DigestHex(const Digest& d) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * d.size());
  for (uint8_t byte : d) {
    out += kHex[byte >> 4];
    out += kHex[byte & 0xf];
  }
  return out;
}

Digest Sha256OfString(std::string_view data) {
  Sha256 sha;
  sha.Update(data.data(), data.size());
  return sha.Finish();
}

std::string UserHashCachePath() {
  if (const char* xdg = getenv("XDG_CACHE_HOME"); xdg != nullptr && xdg[0] == '/') {
    return absl::StrCat(xdg, "/dodo/hashes");
  }
  if (const char* home = getenv("HOME"); home != nullptr && home[0] == '/') {
    return absl::StrCat(home, "/.cache/dodo/hashes");
  }
  return "";
}

int64_t FileHasher::RacyWindowNs() {
  // File timestamps come from the coarse clock (one tick of it is the
  // resolution clock_getres reports); its tick can lag the precise clock by
  // up to one resolution, hence two.
  static const int64_t window = [] {
    constexpr int64_t kFloorNs = 10'000'000;
    struct timespec resolution;
    if (clock_getres(CLOCK_REALTIME_COARSE, &resolution) != 0) return int64_t{100'000'000};
    return std::max(kFloorNs, 2 * Nanoseconds(resolution));
  }();
  return window;
}

absl::StatusOr<FileVersion> FileHasher::HashFile(const std::string& path) {
  return HashAndCopy(path, -1);
}

absl::StatusOr<FileVersion> FileHasher::HashAndCopy(const std::string& path, int copy_fd) {
  AwaitCache();
  auto validators_of = [](const struct stat& st) {
    return Validators{static_cast<uint64_t>(st.st_size), Nanoseconds(st.st_mtim),
                      Nanoseconds(st.st_ctim)};
  };

  // One stat answers the common case (unchanged file) without opening it.
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return ErrnoError(errno, "stat", path);
  if (!S_ISREG(st.st_mode)) return NotRegular(path);
  if (auto it = cache_.find(std::make_pair(st.st_dev, st.st_ino));
      copy_fd < 0 && it != cache_.end() && it->second.validators == validators_of(st) &&
      it->second.Trusted()) {
    it->second.used = true;
    return it->second.version;
  }

  if (buffer_.empty()) buffer_.resize(kBufferSize);
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    // Taken before the read: a change after it gets a ctime no older than
    // this, less one coarse tick (see Trusted()).
    const int64_t read_at_ns = RealtimeNs();
    // O_NONBLOCK: if the path was replaced by a FIFO since the stat, opening
    // it must not hang the tracer (it has no effect on regular files).
    Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd.valid()) return ErrnoError(errno, "open", path);
    // Validators come from the descriptor, which is the file actually read.
    struct stat before;
    if (fstat(fd.get(), &before) != 0) return ErrnoError(errno, "fstat", path);
    if (!S_ISREG(before.st_mode)) return NotRegular(path);

    if (copy_fd >= 0 && (ftruncate(copy_fd, 0) != 0 || lseek(copy_fd, 0, SEEK_SET) != 0)) {
      return ErrnoError(errno, "truncate the copy of", path);
    }
    Sha256 sha;
    uint64_t total = 0;
    for (;;) {
      ssize_t n = read(fd.get(), buffer_.data(), buffer_.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError(errno, "read", path);
      }
      if (n == 0) break;
      sha.Update(buffer_.data(), static_cast<size_t>(n));
      total += static_cast<uint64_t>(n);
      for (ssize_t done = 0; copy_fd >= 0 && done < n;) {
        ssize_t w = write(copy_fd, buffer_.data() + done, static_cast<size_t>(n - done));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return ErrnoError(errno, "copy", path);
        done += w;
      }
    }
    ++files_read_;

    // A writer active during the read would make the digest a mix of two
    // versions: only a read bracketed by identical stats is trusted.
    struct stat after;
    if (fstat(fd.get(), &after) != 0) return ErrnoError(errno, "fstat", path);
    Validators validators = validators_of(before);
    if (validators != validators_of(after) || total != validators.size) continue;

    FileVersion version{sha.Finish(), total, static_cast<uint32_t>(before.st_mode),
                        validators.mtime_ns};
    cache_.insert_or_assign(std::make_pair(before.st_dev, before.st_ino),
                            CachedVersion{validators, version, read_at_ns, 0, true});
    cache_changed_ = true;
    return version;
  }
  return absl::AbortedError(
      absl::StrCat(path, ": file kept changing while being hashed (", kMaxAttempts, " attempts)"));
}

// The cache file: a magic line, then one fixed-size entry per file, then
// the SHA-256 of the entries.
namespace {
constexpr char kCacheMagic[16] = "dodo-hashes-v3\n";
struct CacheEntry {
  uint64_t dev, ino, size;
  int64_t mtime_ns, ctime_ns, read_at_ns, used_at_s;
  uint32_t mode, padding;
  uint8_t sha256[32];
};
static_assert(sizeof(CacheEntry) == 96, "the cache file's layout");

// Writes `data` to a new file beside `path` and renames it over `path`.
absl::Status ReplaceFile(const std::string& path, std::string_view data) {
  std::string temp = path + ".XXXXXX";
  Fd fd(mkostemp(temp.data(), O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(errno, "create", temp);
  auto fail = [&](const char* what) {
    absl::Status status = ErrnoError(errno, what, temp);
    unlink(temp.c_str());
    return status;
  };
  if (fchmod(fd.get(), 0644) != 0) return fail("chmod");
  for (size_t done = 0; done < data.size();) {
    ssize_t w = write(fd.get(), data.data() + done, data.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return fail("write");
    done += static_cast<size_t>(w);
  }
  if (close(fd.release()) != 0) return fail("close");
  if (rename(temp.c_str(), path.c_str()) != 0) return fail("rename");
  return absl::OkStatus();
}
}  // namespace

absl::Status FileHasher::SaveCache(const std::string& path, size_t max_entries,
                                   bool only_this_run) const {
  AwaitCache();
  const int64_t now_s = RealtimeNs() / 1'000'000'000;
  const int64_t oldest_used_s = now_s - int64_t{kUnusedDays} * 24 * 3600;
  std::vector<CacheEntry> entries;
  entries.reserve(cache_.size());
  for (const auto& [key, cached] : cache_) {
    // An entry not trusted now would not be trusted when loaded either.
    if (!cached.Trusted()) continue;
    if (only_this_run && cached.shared && !cached.used) continue;
    const int64_t used_at_s = cached.used ? now_s : cached.used_at_s;
    if (used_at_s < oldest_used_s) continue;
    CacheEntry& e = entries.emplace_back();
    e.dev = key.first;
    e.ino = key.second;
    e.size = cached.validators.size;
    e.mtime_ns = cached.validators.mtime_ns;
    e.ctime_ns = cached.validators.ctime_ns;
    e.read_at_ns = cached.read_at_ns;
    e.used_at_s = used_at_s;
    e.mode = cached.version.mode;
    std::copy(cached.version.sha256.begin(), cached.version.sha256.end(), e.sha256);
  }
  // Over the limit, the entries used last stay: loading the cache is part of
  // every run, and old entries are mostly files deleted since.
  if (entries.size() > max_entries) {
    std::nth_element(
        entries.begin(), entries.begin() + static_cast<ptrdiff_t>(max_entries), entries.end(),
        [](const CacheEntry& a, const CacheEntry& b) { return a.used_at_s > b.used_at_s; });
    entries.resize(max_entries);
  }
  std::string data(kCacheMagic, sizeof(kCacheMagic));
  data.append(reinterpret_cast<const char*>(entries.data()), entries.size() * sizeof(CacheEntry));
  // A digest of the entries closes the file: damage inside an entry is
  // detected, not trusted.
  const Digest check = Sha256OfString(std::string_view(data).substr(sizeof(kCacheMagic)));
  data.append(reinterpret_cast<const char*>(check.data()), check.size());
  return ReplaceFile(path, data);
}

void FileHasher::LoadCacheInBackground(const std::string& path, bool shared) {
  AwaitCache();
  try {
    loading_ = std::async(std::launch::async, [this, path, shared] {
                 ReadCacheFile(path, shared);
               }).share();
  } catch (const std::system_error&) {
    ReadCacheFile(path, shared);  // no thread to be had: load it now
  }
}

void FileHasher::LoadCache(const std::string& path, bool shared) {
  AwaitCache();
  ReadCacheFile(path, shared);
}

void FileHasher::ReadCacheFile(const std::string& path, bool shared) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return;
  struct stat st;
  if (fstat(fd.get(), &st) != 0 || st.st_size < static_cast<off_t>(sizeof(kCacheMagic))) return;
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < data.size()) {
    ssize_t n = read(fd.get(), data.data() + got, data.size() - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  // A damaged or foreign cache is only a lost speed-up: ignore it.
  const size_t check_size = sizeof(Digest);
  if (got != data.size() || data.size() < sizeof(kCacheMagic) + check_size ||
      data.compare(0, sizeof(kCacheMagic), kCacheMagic, sizeof(kCacheMagic)) != 0 ||
      (data.size() - sizeof(kCacheMagic) - check_size) % sizeof(CacheEntry) != 0) {
    return;
  }
  const size_t end = data.size() - check_size;
  const Digest check =
      Sha256OfString(std::string_view(data).substr(sizeof(kCacheMagic), end - sizeof(kCacheMagic)));
  if (std::memcmp(check.data(), data.data() + end, check_size) != 0) return;
  cache_.reserve(cache_.size() + (end - sizeof(kCacheMagic)) / sizeof(CacheEntry));
  for (size_t at = sizeof(kCacheMagic); at < end; at += sizeof(CacheEntry)) {
    CacheEntry e;
    std::memcpy(&e, data.data() + at, sizeof(e));
    CachedVersion cached;
    cached.validators = Validators{e.size, e.mtime_ns, e.ctime_ns};
    std::copy(e.sha256, e.sha256 + 32, cached.version.sha256.begin());
    cached.version.size = e.size;
    cached.version.mode = e.mode;
    cached.version.mtime_ns = e.mtime_ns;
    cached.read_at_ns = e.read_at_ns;
    cached.used_at_s = e.used_at_s;
    cached.shared = shared;
    cache_.try_emplace(std::make_pair(static_cast<dev_t>(e.dev), static_cast<ino_t>(e.ino)),
                       cached);
  }
}

absl::StatusOr<std::vector<std::string>> ListNames(const std::string& dir) {
  Fd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(errno, "open", dir);
  DirPtr stream(fdopendir(fd.get()));
  if (stream == nullptr) return ErrnoError(errno, "fdopendir", dir);
  fd.release();  // now owned by `stream`

  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const struct dirent* entry = readdir(stream.get());
    if (entry == nullptr) {
      if (errno != 0) return ErrnoError(errno, "readdir", dir);
      break;
    }
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
  // std::string compares like memcmp (unsigned bytes): the order is the
  // same whatever the locale or the order the file system returns.
  std::sort(names.begin(), names.end());
  return names;
}

Digest HashNames(const std::vector<std::string>& names) {
  Sha256 sha;
  for (const std::string& name : names) sha.Update(name.c_str(), name.size() + 1);  // with '\0'
  return sha.Finish();
}

absl::StatusOr<Digest> FileHasher::HashListing(const std::string& dir) {
  absl::StatusOr<std::vector<std::string>> names = ListNames(dir);
  if (!names.ok()) return names.status();
  return HashNames(*names);
}

}  // namespace dodo::model
