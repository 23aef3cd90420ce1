// A process's file descriptors as the tracer knows them. close() is not
// trapped (it is too frequent), so an entry can outlive its descriptor; the
// table is checked against /proc/PID/fd at every exec, and a descriptor the
// table does not know is looked up in /proc when it is needed.
#ifndef DODO_TRACER_FD_TABLE_H_
#define DODO_TRACER_FD_TABLE_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "tracer/events.h"

namespace dodo::tracer {

class FdTable {
 public:
  void Set(FdInfo info) {
    int fd = info.fd;
    fds_[fd] = std::move(info);
  }
  void Erase(int fd) { fds_.erase(fd); }
  const FdInfo* Find(int fd) const {
    auto it = fds_.find(fd);
    return it == fds_.end() ? nullptr : &it->second;
  }
  FdInfo* FindMutable(int fd) {
    auto it = fds_.find(fd);
    return it == fds_.end() ? nullptr : &it->second;
  }
  // Replaces the table with what /proc/PID/fd shows now. `after_exec` says
  // the process has just exec'd, so no descriptor is close-on-exec, which
  // saves reading fdinfo.
  void SyncWithProc(pid_t pid, bool after_exec);
  std::vector<FdInfo> Sorted() const;
  // Calls `fn` on every descriptor's info, which it may change.
  template <typename Fn>
  void ForEach(Fn fn) {
    for (auto& [fd, info] : fds_) fn(info);
  }

 private:
  absl::flat_hash_map<int, FdInfo> fds_;
};

// Whether directory descriptor `fd` of `pid` is at the start of its
// directory (its offset, in /proc/PID/fdinfo, is 0): a getdents call there
// begins a listing, and the calls that follow until it returns 0 go on with
// the same one. The offset belongs to the open directory, so this holds
// however the descriptor was copied or its number reused. True when unknown.
bool AtStartOfDirectory(pid_t pid, int fd);

// Describes descriptor `fd` of `pid` from /proc/PID/fd and /proc/PID/fdinfo.
std::optional<FdInfo> FdInfoFromProc(pid_t pid, int fd);

// The text of the /proc/PID/fd/FD link: empty when the descriptor is closed.
std::string ProcFdTarget(pid_t pid, int fd);

// Sets `info.drained` for descriptor `info.fd` of process `pid`: a pipe read
// end on which the kernel reports a hang-up and no data.
void ProbeDrained(pid_t pid, FdInfo& info);

// A copy, in the calling process, of descriptor `fd` of process `pid`
// (pidfd_getfd, close-on-exec: the caller must be allowed to ptrace `pid`).
absl::StatusOr<int> CopyFdFromProcess(pid_t pid, int fd);

// Classifies the text of a /proc/PID/fd link ("pipe:[123]", "/a/b", ...).
FdInfo ClassifyFdTarget(int fd, const std::string& target);

}  // namespace dodo::tracer

#endif  // DODO_TRACER_FD_TABLE_H_
