// Reading and writing a stopped tracee's memory.
#ifndef DODO_TRACER_TRACEE_MEMORY_H_
#define DODO_TRACER_TRACEE_MEMORY_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dodo::tracer {

// Copies `size` bytes at `address` in process `pid` into `out`.
absl::Status ReadMemory(pid_t pid, uint64_t address, void* out, size_t size);

// Writes `size` bytes to `address`. Falls back to /proc/PID/mem, which can
// write read-only mappings that process_vm_writev cannot.
absl::Status WriteMemory(pid_t pid, uint64_t address, const void* data, size_t size);

// Reads a NUL-terminated string, one page-bounded chunk at a time (a string
// may end just before an unmapped page). Fails beyond `max_size` bytes.
absl::StatusOr<std::string> ReadString(pid_t pid, uint64_t address, size_t max_size = 1 << 16);

// Reads a NULL-terminated array of string pointers (argv, envp). The pages
// holding the strings are read in batches, not one call per string.
absl::StatusOr<std::vector<std::string>> ReadStringArray(pid_t pid, uint64_t address,
                                                         size_t max_entries = 1 << 16);

}  // namespace dodo::tracer

#endif  // DODO_TRACER_TRACEE_MEMORY_H_
