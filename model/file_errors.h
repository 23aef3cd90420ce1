// Small helpers for the model's file system code: a descriptor that closes
// itself, and the error a failed syscall on a path becomes.
#ifndef DODO_MODEL_FILE_ERRORS_H_
#define DODO_MODEL_FILE_ERRORS_H_

#include <unistd.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dodo::model {

// Owns a file descriptor (-1: none) and closes it on every way out.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// "PATH: cannot WHAT: <errno text>", with the errno's status code.
inline absl::Status CannotError(int error, const std::string& what, const std::string& path) {
  return absl::ErrnoToStatus(error, absl::StrCat(path, ": cannot ", what));
}

}  // namespace dodo::model

#endif  // DODO_MODEL_FILE_ERRORS_H_
