// Builds the seccomp-BPF program from the syscall table with libseccomp.
#ifndef DODO_TRACER_SECCOMP_FILTER_H_
#define DODO_TRACER_SECCOMP_FILTER_H_

#include <seccomp.h>

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dodo::tracer {

// SECCOMP_RET_TRACE data values. Rows trace with their syscall number as the
// data; these two mark the stops that have no row.
constexpr uint16_t kTraceDataUnknown = 0xffff;  // a number no row names
constexpr uint16_t kTraceDataBadArch = 0xfffe;  // int 0x80 (i386) or x32

class SeccompFilter {
 public:
  // Translates the table: allowed rows and numbers the table does not name
  // but libseccomp knows pass, traced rows trap (with their argument
  // filters), refused rows and unknown numbers trap for the tracer to refuse,
  // and any other architecture (int 0x80, x32) traps too.
  static absl::StatusOr<SeccompFilter> Build();

  // Installs the filter in the calling process (sets PR_SET_NO_NEW_PRIVS).
  // Called in the child between fork and exec, so it must not allocate.
  absl::Status Load() const;

  // Number of BPF instructions, for tests and benchmarks.
  absl::StatusOr<size_t> ProgramSize() const;

 private:
  struct Release {
    void operator()(void* ctx) const { seccomp_release(ctx); }
  };
  explicit SeccompFilter(scmp_filter_ctx ctx) : ctx_(ctx) {}
  std::unique_ptr<void, Release> ctx_;
};

}  // namespace dodo::tracer

#endif  // DODO_TRACER_SECCOMP_FILTER_H_
