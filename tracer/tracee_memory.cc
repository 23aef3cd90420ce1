#include "tracer/tracee_memory.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
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

namespace {

// Reads the pointers of a NULL-terminated array, up to a page per call.
absl::StatusOr<std::vector<uint64_t>> ReadPointerArray(pid_t pid, uint64_t address,
                                                       size_t max_entries) {
  std::vector<uint64_t> pointers;
  uint64_t chunk[kPageSize / sizeof(uint64_t)];
  while (pointers.size() < max_entries) {
    // Stay within the page so a short array at a page end does not fail.
    const size_t want = kPageSize - (address % kPageSize);
    ssize_t n = ReadSome(pid, address, chunk, want);
    if (n < static_cast<ssize_t>(sizeof(uint64_t))) return Errno("read array", pid, address);
    const size_t count = n / sizeof(uint64_t);
    for (size_t i = 0; i < count; ++i) {
      if (chunk[i] == 0) return pointers;
      pointers.push_back(chunk[i]);
    }
    address += count * sizeof(uint64_t);
  }
  return absl::OutOfRangeError("string array too long");
}

// At most this many pages are read in one call; an array whose strings are
// spread wider is read in several batches.
constexpr size_t kMaxBatchPages = 64;

}  // namespace

absl::StatusOr<std::vector<std::string>> ReadStringArray(pid_t pid, uint64_t address,
                                                         size_t max_entries) {
  std::vector<std::string> result;
  if (address == 0) return result;  // execve accepts NULL argv/envp on Linux
  absl::StatusOr<std::vector<uint64_t>> pointers = ReadPointerArray(pid, address, max_entries);
  if (!pointers.ok()) return pointers.status();
  result.reserve(pointers->size());
  constexpr size_t kMaxString = 1 << 16;
  // The strings of an argv or an environment sit side by side in a page or
  // two. Reading every page that holds the start of one in a single call
  // costs one process_vm_readv per array instead of one per string; exec
  // stops read both arrays, thousands of times per build.
  size_t next = 0;
  std::vector<uint64_t> pages;
  std::string buffer;
  std::vector<iovec> remote;
  while (next < pointers->size()) {
    pages.clear();
    size_t end = next;
    for (; end < pointers->size(); ++end) {
      const uint64_t page = (*pointers)[end] & ~(kPageSize - 1);
      auto at = std::lower_bound(pages.begin(), pages.end(), page);
      if (at != pages.end() && *at == page) continue;
      if (pages.size() == kMaxBatchPages) break;
      pages.insert(at, page);
    }
    // Neighbouring pages become one remote range: a string may run on into
    // the next page, and the buffer then holds it contiguously.
    remote.clear();
    for (uint64_t page : pages) {
      if (!remote.empty() &&
          reinterpret_cast<uint64_t>(remote.back().iov_base) + remote.back().iov_len == page) {
        remote.back().iov_len += kPageSize;
      } else {
        remote.push_back({reinterpret_cast<void*>(page), kPageSize});
      }
    }
    buffer.resize(pages.size() * kPageSize);
    iovec local{buffer.data(), buffer.size()};
    const bool batch_read = process_vm_readv(pid, &local, 1, remote.data(), remote.size(), 0) ==
                            static_cast<ssize_t>(buffer.size());
    for (size_t i = next; i < end; ++i) {
      const uint64_t pointer = (*pointers)[i];
      if (!batch_read) {
        // Some page went away under us (or never was): string by string,
        // which names the one that fails.
        absl::StatusOr<std::string> s = ReadString(pid, pointer, kMaxString);
        if (!s.ok()) return s.status();
        result.push_back(*std::move(s));
        continue;
      }
      // The string's bytes in the buffer run to the end of its range.
      const uint64_t page = pointer & ~(kPageSize - 1);
      const size_t page_index = std::lower_bound(pages.begin(), pages.end(), page) - pages.begin();
      size_t range_end = page_index + 1;
      while (range_end < pages.size() && pages[range_end] == pages[range_end - 1] + kPageSize) {
        ++range_end;
      }
      const size_t from = page_index * kPageSize + (pointer - page);
      const size_t available = range_end * kPageSize - from;
      const char* start = buffer.data() + from;
      const void* nul = memchr(start, '\0', available);
      if (nul != nullptr) {
        const size_t length = static_cast<const char*>(nul) - start;
        if (length > kMaxString) {
          return absl::OutOfRangeError(absl::StrCat("string longer than ", kMaxString, " bytes"));
        }
        result.emplace_back(start, length);
        continue;
      }
      // It runs on past the pages read: fetch the rest on its own.
      std::string s(start, available);
      if (available >= kMaxString) {
        return absl::OutOfRangeError(absl::StrCat("string longer than ", kMaxString, " bytes"));
      }
      absl::StatusOr<std::string> rest =
          ReadString(pid, pointer + available, kMaxString - available);
      if (!rest.ok()) return rest.status();
      s += *rest;
      result.push_back(std::move(s));
    }
    next = end;
  }
  return result;
}

}  // namespace dodo::tracer
