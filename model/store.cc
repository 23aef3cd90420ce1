#include "model/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/file_errors.h"

namespace dodo::model {
namespace {

absl::Status ErrnoError(int error, const char* what, const std::string& path) {
  return CannotError(error, what, path);
}

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) == 0 || errno == EEXIST) return absl::OkStatus();
  return ErrnoError(errno, "create directory", path);
}

using FdCloser = ScopedFd;

// A temporary file beside `path`, removed unless Keep() renamed it in place.
absl::StatusOr<std::pair<std::string, int>> TempBeside(const std::string& path) {
  std::string temp = path + ".dodo-XXXXXX";
  int fd = mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "create a file beside", path);
  return std::make_pair(std::move(temp), fd);
}

}  // namespace

absl::Status MakeParentDirs(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    if (absl::Status s = MakeDir(path.substr(0, slash)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& dir) {
  if (absl::Status s = MakeDir(dir); !s.ok()) return s;
  if (absl::Status s = MakeDir(dir + "/objects"); !s.ok()) return s;
  const std::string lock = dir + "/lock";
  int fd = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, "open", lock);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    close(fd);
    if (error == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat(dir, ": another dodo build is running in this tree (", lock, " is locked)"));
    }
    return ErrnoError(error, "lock", lock);
  }
  return std::unique_ptr<Store>(new Store(dir, fd));
}

Store::~Store() {
  if (lock_fd_ >= 0) close(lock_fd_);  // releases the flock
}

std::string Store::ObjectPath(const Digest& digest) const {
  const std::string hex = DigestHex(digest);
  return absl::StrCat(dir_, "/objects/", hex.substr(0, 2), "/", hex.substr(2));
}

bool Store::Has(const Digest& digest) const {
  return access(ObjectPath(digest).c_str(), F_OK) == 0;
}

absl::StatusOr<FileVersion> Store::Save(const std::string& path, FileHasher& hasher) {
  // Hash first (usually cached): a version already stored costs no copy.
  absl::StatusOr<FileVersion> known = hasher.HashFile(path);
  if (!known.ok()) return known.status();
  if (Has(known->sha256)) return known;
  absl::StatusOr<std::pair<std::string, int>> temp = TempBeside(dir_ + "/objects/incoming");
  if (!temp.ok()) return temp.status();
  FdCloser fd(temp->second);
  absl::StatusOr<FileVersion> version = hasher.HashAndCopy(path, fd.get());
  absl::Status status = version.status();
  std::string object;
  if (status.ok()) {
    object = ObjectPath(version->sha256);
    status = MakeParentDirs(object);
  }
  if (status.ok() && fchmod(fd.get(), 0444) != 0) status = ErrnoError(errno, "chmod", temp->first);
  if (status.ok() && rename(temp->first.c_str(), object.c_str()) != 0) {
    status = ErrnoError(errno, "store", object);
  }
  if (!status.ok()) {
    unlink(temp->first.c_str());
    return status;
  }
  return version;
}

absl::Status Store::Restore(const Digest& digest, uint32_t mode, const std::string& path) const {
  const std::string object = ObjectPath(digest);
  FdCloser in(open(object.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return ErrnoError(errno, "read stored object", object);
  if (absl::Status s = MakeParentDirs(path); !s.ok()) return s;
  absl::StatusOr<std::pair<std::string, int>> temp = TempBeside(path);
  if (!temp.ok()) return temp.status();
  FdCloser out(temp->second);
  absl::Status status;
  struct stat st;
  if (fstat(in.get(), &st) != 0) status = ErrnoError(errno, "stat", object);
  for (off_t left = status.ok() ? st.st_size : 0; left > 0;) {
    ssize_t n =
        copy_file_range(in.get(), nullptr, out.get(), nullptr, static_cast<size_t>(left), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      status = ErrnoError(n < 0 ? errno : EIO, "copy to", path);
      break;
    }
    left -= n;
  }
  if (status.ok() && fchmod(out.get(), mode & 07777) != 0) {
    status = ErrnoError(errno, "chmod", temp->first);
  }
  if (status.ok() && rename(temp->first.c_str(), path.c_str()) != 0) {
    status = ErrnoError(errno, "replace", path);
  }
  if (!status.ok()) unlink(temp->first.c_str());
  return status;
}

absl::Status Store::WriteTail(const Digest& digest, uint64_t offset, int fd,
                              const std::string& shown) const {
  const std::string object = ObjectPath(digest);
  FdCloser in(open(object.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return ErrnoError(errno, "read stored object", object);
  char buffer[1 << 16];
  for (off_t at = static_cast<off_t>(offset);;) {
    const ssize_t got = pread(in.get(), buffer, sizeof(buffer), at);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return ErrnoError(errno, "read stored object", object);
    if (got == 0) return absl::OkStatus();
    at += got;
    for (ssize_t done = 0; done < got;) {
      const ssize_t put = write(fd, buffer + done, static_cast<size_t>(got - done));
      if (put < 0 && errno == EINTR) continue;
      if (put <= 0) return ErrnoError(put < 0 ? errno : EIO, "write to", shown);
      done += put;
    }
  }
}

namespace {

std::optional<uint8_t> HexValue(char c) {
  if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<uint8_t>(c - 'a' + 10);
  return std::nullopt;
}

// The digest an object path "ab/cdef..." names: the inverse of ObjectPath.
std::optional<Digest> DigestOfObject(const std::string& prefix, const std::string& rest) {
  Digest digest;
  if (prefix.size() != 2 || rest.size() != 2 * digest.size() - 2) return std::nullopt;
  const std::string hex = prefix + rest;
  for (size_t i = 0; i < digest.size(); ++i) {
    std::optional<uint8_t> high = HexValue(hex[2 * i]);
    std::optional<uint8_t> low = HexValue(hex[2 * i + 1]);
    if (!high.has_value() || !low.has_value()) return std::nullopt;
    digest[i] = static_cast<uint8_t>(*high << 4 | *low);
  }
  return digest;
}

}  // namespace

absl::Status Store::ListObjects(std::vector<Object>& objects,
                                std::vector<std::string>& leftovers) const {
  const std::string root = dir_ + "/objects";
  absl::StatusOr<std::vector<std::string>> prefixes = ListNames(root);
  if (!prefixes.ok()) return prefixes.status();
  for (const std::string& prefix : *prefixes) {
    const std::string sub = absl::StrCat(root, "/", prefix);
    struct stat st;
    if (lstat(sub.c_str(), &st) != 0) return ErrnoError(errno, "stat", sub);
    if (!S_ISDIR(st.st_mode)) {
      leftovers.push_back(sub);
      continue;
    }
    absl::StatusOr<std::vector<std::string>> names = ListNames(sub);
    if (!names.ok()) return names.status();
    for (const std::string& name : *names) {
      const std::string path = absl::StrCat(sub, "/", name);
      std::optional<Digest> digest = DigestOfObject(prefix, name);
      if (lstat(path.c_str(), &st) != 0) return ErrnoError(errno, "stat", path);
      if (digest.has_value() && S_ISREG(st.st_mode)) {
        objects.push_back({.digest = *digest, .size = static_cast<uint64_t>(st.st_size)});
      } else {
        leftovers.push_back(path);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Store::RemoveObject(const Digest& digest) const {
  const std::string object = ObjectPath(digest);
  if (unlink(object.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError(errno, "remove", object);
  }
  // Fails while other objects share the directory, as it should.
  (void)rmdir(object.substr(0, object.rfind('/')).c_str());
  return absl::OkStatus();
}

absl::Status Store::CommitTrace() const {
  const std::string next = next_trace_path();
  {
    FdCloser fd(open(next.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0 || fsync(fd.get()) != 0) return ErrnoError(errno, "sync", next);
  }
  if (rename(next.c_str(), trace_path().c_str()) != 0)
    return ErrnoError(errno, "replace", trace_path());
  FdCloser dir(open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() >= 0) fsync(dir.get());
  return absl::OkStatus();
}

}  // namespace dodo::model
