// Observes the lookups of traced processes without stopping them: the stat,
// access and readlink families and read-only opens. eBPF programs on the
// syscalls' tracepoints copy the path and arguments of every such call made
// by a watched process into a ring buffer, which the tracer drains before it
// handles any other event.
//
// Why: lookups are most of a build's file syscalls. A compiler looks for
// each header in every directory of its include path (xz's make: 330,000
// opens, 277,000 of them failing), and glibc's realpath() calls readlink on
// every prefix of the path it resolves. Through a seccomp listener each
// costs a round trip to dodo (about 9 us on the 2-CPU VM of the README's
// Performance section); through the tracepoint it costs 0.3 us, and dodo
// reads the records in batches.
//
// Why this keeps the order of events: a process's record is in the ring
// buffer before its call returns, so before any later syscall of it traps.
// The tracer drains the ring before it hands on the event of a stop or a
// notification (up to where the ring was written while the process was
// still stopped, when it resumes the process first), so every record is
// handed on before anything the process (or any other) did after it. The
// path is resolved by the sink at that point, against the file system as
// the trapped calls left it, exactly as for a trapped lookup: every call
// that changes a name (creat, rename, unlink, an open that creates or
// truncates, ...) still traps. What the observer cannot do is change a call:
// a path redirector that rewrites paths (dodo build --staged) needs every
// lookup trapped, so the tracer uses this observer only without one.
//
// Needs CAP_BPF and CAP_PERFMON (root, in practice), the syscall
// tracepoints (CONFIG_FTRACE_SYSCALLS) and tracefs (mounted for the lookup
// in a mount namespace of dodo's own where the system has not mounted it);
// Start() says which is missing, and the tracer then traps the lookups as before. Start() also
// checks that the pids the kernel reports are the tracer's (a pid namespace
// would break that) with a readlink of its own.
#ifndef DODO_TRACER_BPF_OBSERVER_H_
#define DODO_TRACER_BPF_OBSERVER_H_

#include <linux/bpf.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dodo::tracer {

// One observed call, valid during the Drain callback only.
struct ObservedCall {
  pid_t tid = 0;
  pid_t tgid = 0;
  long nr = 0;            // one of the observed syscalls
  uint64_t args[6] = {};  // the call's arguments (the pointers mean nothing now)
  int64_t result = 0;     // what the call returned (-errno on failure)
  // The path as the process passed it; `readable` is false when it could
  // not be read: a bad pointer or a path too long, if the call failed with
  // EFAULT or ENAMETOOLONG, else a page gone meanwhile (never seen).
  std::string_view path;
  bool readable = true;
  // A call the seccomp filter trapped (an open that writes, creates or
  // lists), whose result alone is recorded: no path.
  bool result_only = false;
};

// Loads a tracepoint program; its descriptor (the caller's to close), or
// why the kernel would not: for a program the verifier refuses, the last
// line of the verifier's log.
absl::StatusOr<int> LoadTracepointProgram(const std::vector<bpf_insn>& program);

class BpfObserver {
 public:
  // The syscalls it observes, at least in part.
  static bool Observes(long nr);
  // The flags (of open and openat, and AT_EMPTY_PATH of fstatat and statx)
  // whose calls it leaves alone: those must trap, or are fstat calls that
  // need no record. 0 for the syscalls observed whole.
  static uint64_t UnobservedFlags(long nr);
  // Whether a call of `nr` that the filter traps (its flags unobserved)
  // still gets a record with its result (ObservedCall::result_only).
  static bool ReportsTrappedResults(long nr);

  // Loads the programs and attaches them; an error (with its cause) when
  // this process may not, or the kernel cannot.
  static absl::StatusOr<std::unique_ptr<BpfObserver>> Start();
  ~BpfObserver();
  BpfObserver(const BpfObserver&) = delete;
  BpfObserver& operator=(const BpfObserver&) = delete;

  // Starts or stops observing the threads of process `tgid`. Unwatch returns
  // how many of its calls were lost because the ring buffer was full (after
  // a Drain, so that nothing still waiting is counted).
  absl::Status Watch(pid_t tgid);
  uint32_t Unwatch(pid_t tgid);

  // Whether the ring holds records not drained yet (a hint when read
  // without the lock that serializes Drain).
  bool HasRecords() const;
  // Where the next record will be written in the ring: every record of a
  // call that returned before this was read lies before it.
  uint64_t WrittenUpTo() const;
  // Hands the records in the ring buffer, oldest first, to `on_call`, up to
  // position `up_to` (a WrittenUpTo() value) or to the end; returns how many.
  // Not thread-safe: callers serialize.
  size_t Drain(absl::FunctionRef<void(const ObservedCall&)> on_call, uint64_t up_to = UINT64_MAX);

  // Readable (poll) when the ring is half full: a thread that waits on it
  // keeps it from filling up while no other event makes the tracer drain.
  int ready_fd() const { return ring_fd_; }

 private:
  BpfObserver() = default;
  absl::StatusOr<int> Load(const std::vector<bpf_insn>& program);
  absl::Status AttachTo(int tracepoint_id, int program_fd);
  absl::Status Attach();
  absl::Status SelfTest();

  int watch_fd_ = -1;    // hash map: tgid -> 1 + calls lost
  int pending_fd_ = -1;  // hash map: pid_tgid -> path pointer, arguments
  int scratch_fd_ = -1;  // per-CPU array: one record being put together
  int ring_fd_ = -1;
  std::vector<int> program_fds_;
  std::vector<int> event_fds_;
  void* consumer_page_ = nullptr;   // read-write: the consumer position
  void* producer_pages_ = nullptr;  // read-only: producer position, then data twice
  size_t page_size_ = 0;
};

}  // namespace dodo::tracer

#endif  // DODO_TRACER_BPF_OBSERVER_H_
