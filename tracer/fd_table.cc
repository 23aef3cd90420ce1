#include "tracer/fd_table.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dodo::tracer {

FdInfo ClassifyFdTarget(int fd, const std::string& target) {
  FdInfo info;
  info.fd = fd;
  uint64_t id = 0;
  if (absl::StartsWith(target, "pipe:[") && absl::EndsWith(target, "]") &&
      absl::SimpleAtoi(target.substr(6, target.size() - 7), &id)) {
    info.kind = FdKind::kPipe;
    info.pipe_id = id;
    info.description = target;
  } else if (absl::StartsWith(target, "socket:")) {
    info.kind = FdKind::kSocket;
    info.description = target;
  } else if (absl::StartsWith(target, "/dev/pts/") || absl::StartsWith(target, "/dev/tty") ||
             target == "/dev/null" || target == "/dev/console") {
    info.kind = FdKind::kTty;
    info.path = target;
    info.description = target;
  } else if (absl::StartsWith(target, "/")) {
    struct stat st;
    const bool exists = stat(target.c_str(), &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) {
      info.kind = FdKind::kDirectory;
    } else if (exists && !S_ISREG(st.st_mode)) {
      info.kind = FdKind::kTty;  // character or block device
      info.description = target;
    } else {
      info.kind = FdKind::kFile;
    }
    info.path = target;
  } else {
    info.kind = FdKind::kOther;  // anon_inode:[eventfd], memfd, ...
    info.description = target;
  }
  return info;
}

std::string ProcFdTarget(pid_t pid, int fd) {
  const std::string link = absl::StrCat("/proc/", pid, "/fd/", fd);
  char buffer[4096];
  const ssize_t n = readlink(link.c_str(), buffer, sizeof(buffer));
  return n <= 0 ? std::string() : std::string(buffer, static_cast<size_t>(n));
}

namespace {

// The text of /proc/PID/fdinfo/FD, "" if it cannot be read.
std::string ReadFdInfo(pid_t pid, int fd) {
  const std::string path = absl::StrCat("/proc/", pid, "/fdinfo/", fd);
  const int file = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file < 0) return "";
  char buffer[4096];
  const ssize_t got = read(file, buffer, sizeof(buffer));
  close(file);
  return got > 0 ? std::string(buffer, static_cast<size_t>(got)) : "";
}

}  // namespace

std::optional<FdInfo> FdInfoFromProc(pid_t pid, int fd) {
  std::string target = ProcFdTarget(pid, fd);
  if (target.empty()) return std::nullopt;
  FdInfo info = ClassifyFdTarget(fd, target);
  info.target = std::move(target);
  // Access mode and close-on-exec from fdinfo's "flags:" line (octal).
  const std::string fdinfo = ReadFdInfo(pid, fd);
  if (const char* flags = strstr(fdinfo.c_str(), "flags:"); flags != nullptr) {
    long value = strtol(flags + 6, nullptr, 8);
    int mode = static_cast<int>(value & O_ACCMODE);
    info.readable = mode == O_RDONLY || mode == O_RDWR;
    info.writable = mode == O_WRONLY || mode == O_RDWR;
    info.cloexec = (value & O_CLOEXEC) != 0;
  }
  return info;
}

bool AtStartOfDirectory(pid_t pid, int fd) {
  const std::string fdinfo = ReadFdInfo(pid, fd);
  const char* pos = strstr(fdinfo.c_str(), "pos:");
  return pos == nullptr || strtoull(pos + 4, nullptr, 10) == 0;
}

void ProbeDrained(pid_t pid, FdInfo& info) {
  info.drained = false;
  if (info.kind != FdKind::kPipe || !info.readable || info.writable) return;
  // A duplicate of the process's own descriptor, not a fresh open of
  // /proc/PID/fd/N: a pipe reports the hang-up only to files opened before
  // the last writer left.
  absl::StatusOr<int> copy = CopyFdFromProcess(pid, info.fd);
  if (!copy.ok()) return;
  pollfd probe = {.fd = *copy, .events = POLLIN, .revents = 0};
  info.drained =
      poll(&probe, 1, 0) == 1 && (probe.revents & POLLHUP) != 0 && (probe.revents & POLLIN) == 0;
  close(*copy);
}

absl::StatusOr<int> CopyFdFromProcess(pid_t pid, int fd) {
  const int process = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (process < 0) return absl::ErrnoToStatus(errno, absl::StrCat("pidfd_open ", pid));
  const int copy = static_cast<int>(syscall(SYS_pidfd_getfd, process, fd, 0));
  const int error = errno;
  close(process);
  if (copy < 0) return absl::ErrnoToStatus(error, absl::StrCat("pidfd_getfd ", pid, " ", fd));
  return copy;
}

namespace {

// After an exec no descriptor is close-on-exec, and the access mode shows in
// the permission bits of the /proc/PID/fd/N link itself (r for read, w for
// write): one readlinkat and one fstatat, relative to the open directory,
// instead of resolving two /proc paths and reading fdinfo.
std::optional<FdInfo> FdInfoAfterExec(int dir_fd, int fd, const char* name) {
  char buffer[4096];
  const ssize_t n = readlinkat(dir_fd, name, buffer, sizeof(buffer));
  if (n <= 0) return std::nullopt;
  std::string target(buffer, static_cast<size_t>(n));
  FdInfo info = ClassifyFdTarget(fd, target);
  info.target = std::move(target);
  struct stat link;
  if (fstatat(dir_fd, name, &link, AT_SYMLINK_NOFOLLOW) != 0) return std::nullopt;
  info.readable = (link.st_mode & S_IRUSR) != 0;
  info.writable = (link.st_mode & S_IWUSR) != 0;
  info.cloexec = false;
  // The program has not run yet: a skip that replays what it appends to
  // this file starts at this size. (Read after the program resumed, it
  // could already count what the program wrote.)
  struct stat file;
  if (info.kind == FdKind::kFile && info.writable && fstatat(dir_fd, name, &file, 0) == 0 &&
      S_ISREG(file.st_mode)) {
    info.size = static_cast<uint64_t>(file.st_size);
  }
  return info;
}

}  // namespace

void FdTable::SyncWithProc(pid_t pid, bool after_exec) {
  std::string dir_path = absl::StrCat("/proc/", pid, "/fd");
  DIR* dir = opendir(dir_path.c_str());
  if (dir == nullptr) return;
  absl::flat_hash_map<int, FdInfo> fresh;
  while (dirent* entry = readdir(dir)) {
    int fd = 0;
    if (!absl::SimpleAtoi(entry->d_name, &fd)) continue;
    std::optional<FdInfo> info =
        after_exec ? FdInfoAfterExec(dirfd(dir), fd, entry->d_name) : FdInfoFromProc(pid, fd);
    if (!info.has_value()) continue;
    fresh[fd] = *std::move(info);
  }
  closedir(dir);
  fds_ = std::move(fresh);
}

std::vector<FdInfo> FdTable::Sorted() const {
  std::vector<FdInfo> result;
  result.reserve(fds_.size());
  for (const auto& [fd, info] : fds_) result.push_back(info);
  std::sort(result.begin(), result.end(),
            [](const FdInfo& a, const FdInfo& b) { return a.fd < b.fd; });
  return result;
}

}  // namespace dodo::tracer
