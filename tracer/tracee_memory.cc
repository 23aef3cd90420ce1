#include "tracer/tracee_memory.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace dodo::tracer {
namespace {

constexpr uint64_t kPageSize = 4096;

absl::Status Errno(const char* what, pid_t pid, uint64_t address) {
  return absl::InternalError(
      absl::StrCat(what, " of pid ", pid, " at 0x", absl::Hex(address), ": ", strerror(errno)));
}

// One process_vm_readv; returns bytes read (may be short at a page edge).
ssize_t ReadSome(pid_t pid, uint64_t address, void* out, size_t size) {
  iovec local{out, size};
  iovec remote{reinterpret_cast<void*>(address), size};
  return process_vm_readv(pid, &local, 1, &remote, 1, 0);
}

}  // namespace

absl::Status ReadMemory(pid_t pid, uint64_t address, void* out, size_t size) {
  char* dest = static_cast<char*>(out);
  while (size > 0) {
    ssize_t n = ReadSome(pid, address, dest, size);
    if (n <= 0) return Errno("read", pid, address);
    dest += n;
    address += n;
    size -= n;
  }
  return absl::OkStatus();
}

absl::Status WriteMemory(pid_t pid, uint64_t address, const void* data, size_t size) {
  iovec local{const_cast<void*>(data), size};
  iovec remote{reinterpret_cast<void*>(address), size};
  if (process_vm_writev(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(size)) {
    return absl::OkStatus();
  }
  std::string mem = absl::StrCat("/proc/", pid, "/mem");
  int fd = open(mem.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Errno("open /proc mem", pid, address);
  ssize_t n = pwrite(fd, data, size, static_cast<off_t>(address));
  int saved = errno;
  close(fd);
  errno = saved;
  if (n != static_cast<ssize_t>(size)) return Errno("write", pid, address);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadString(pid_t pid, uint64_t address, size_t max_size) {
  if (address == 0) return absl::InvalidArgumentError("NULL string pointer");
  std::string result;
  char chunk[kPageSize];
  while (result.size() < max_size) {
    // Never cross a page boundary in one read: the next page may be unmapped.
    size_t want = kPageSize - (address % kPageSize);
    ssize_t n = ReadSome(pid, address, chunk, want);
    if (n <= 0) return Errno("read string", pid, address);
    const void* nul = memchr(chunk, '\0', n);
    if (nul != nullptr) {
      result.append(chunk, static_cast<const char*>(nul) - chunk);
      return result;
    }
    result.append(chunk, n);
    address += n;
  }
  return absl::OutOfRangeError(absl::StrCat("string longer than ", max_size, " bytes"));
}

absl::StatusOr<std::vector<std::string>> ReadStringArray(pid_t pid, uint64_t address,
                                                         size_t max_entries) {
  std::vector<std::string> result;
  if (address == 0) return result;  // execve accepts NULL argv/envp on Linux
  uint64_t pointers[64];
  while (result.size() < max_entries) {
    size_t want = sizeof(pointers);
    // Stay within the page so a short array at a page end does not fail.
    size_t to_page_end = kPageSize - (address % kPageSize);
    if (want > to_page_end) want = to_page_end;
    ssize_t n = ReadSome(pid, address, pointers, want);
    if (n < static_cast<ssize_t>(sizeof(uint64_t))) return Errno("read array", pid, address);
    size_t count = n / sizeof(uint64_t);
    for (size_t i = 0; i < count; ++i) {
      if (pointers[i] == 0) return result;
      absl::StatusOr<std::string> s = ReadString(pid, pointers[i]);
      if (!s.ok()) return s.status();
      result.push_back(*std::move(s));
    }
    address += count * sizeof(uint64_t);
  }
  return absl::OutOfRangeError("string array too long");
}

}  // namespace dodo::tracer
