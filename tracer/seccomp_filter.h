// Builds the seccomp-BPF program from the syscall table with libseccomp.
#ifndef DODO_TRACER_SECCOMP_FILTER_H_
#define DODO_TRACER_SECCOMP_FILTER_H_

#include <linux/filter.h>
#include <seccomp.h>

#include <cstdint>
#include <future>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dodo::tracer {

// SECCOMP_RET_TRACE data values. Rows trace with their syscall number as the
// data; these two mark the stops that have no row.
constexpr uint16_t kTraceDataUnknown = 0xffff;  // a number no row names
constexpr uint16_t kTraceDataBadArch = 0xfffe;  // int 0x80 (i386) or x32

// What the tracer learns without trapping.
struct FilterOptions {
  // The calls a BpfObserver reports are allowed (the stat, access and
  // readlink families and read-only opens): it reports them instead.
  bool lookups_observed = false;
};

class SeccompFilter {
 public:
  // Translates the table: allowed rows and numbers the table does not name
  // but libseccomp knows pass, traced rows trap (with their argument
  // filters), refused rows and unknown numbers trap for the tracer to refuse,
  // and any other architecture (int 0x80, x32) traps too.
  // `options` allow more calls (see FilterOptions).
  static absl::StatusOr<SeccompFilter> Build(FilterOptions options = {});
  // The same on a thread of its own (here, at get(), if none can be had):
  // libseccomp takes about 10 ms over it, which a caller with other work
  // first need not wait for.
  static std::future<absl::StatusOr<SeccompFilter>> BuildInBackground(FilterOptions options);
  // The filter stacked on one process so that its lookups reach a listener
  // of its own: the listener rows (with their argument filters) notify, and
  // everything else is allowed, which leaves it to the filter underneath.
  // The kernel picks the newest filter among those returning the same
  // action, so the lookups go to this listener.
  static absl::StatusOr<SeccompFilter> BuildListenerOnly(FilterOptions options = {});

  // Installs the filter in the calling process (sets PR_SET_NO_NEW_PRIVS).
  // Called in the child between fork and exec: it makes two system calls
  // with the program Build compiled, and allocates nothing unless it fails.
  absl::Status Load() const;

  // Number of BPF instructions, for tests and benchmarks.
  absl::StatusOr<size_t> ProgramSize() const;
  // The BPF program itself, for a process to load on the tracer's behalf.
  absl::StatusOr<std::vector<sock_filter>> Program() const;

 private:
  struct Release {
    void operator()(void* ctx) const { seccomp_release(ctx); }
  };
  static absl::StatusOr<SeccompFilter> Build(bool listener_only, FilterOptions options);
  explicit SeccompFilter(scmp_filter_ctx ctx) : ctx_(ctx) {}
  // Compiles the rules into program_.
  absl::Status Compile();
  std::unique_ptr<void, Release> ctx_;
  // Compiled once by Build. libseccomp's own seccomp_load compiles the
  // rules again at every call: in the child, after fork, among pages it
  // shares copy-on-write, that took 8 ms of every run's start (1.7 ms in
  // the tracer).
  std::vector<sock_filter> program_;
};

}  // namespace dodo::tracer

#endif  // DODO_TRACER_SECCOMP_FILTER_H_
