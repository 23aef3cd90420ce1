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
  // and any other architecture (int 0x80, x32) traps too. With
  // `with_listener`, rows marked `listener` go to the seccomp listener
  // (SECCOMP_RET_USER_NOTIF) instead, and Load() creates it.
  static absl::StatusOr<SeccompFilter> Build(bool with_listener = false);

  // Installs the filter in the calling process (sets PR_SET_NO_NEW_PRIVS).
  // Called in the child between fork and exec, so it must not allocate.
  absl::Status Load() const;

  // After Load() of a filter built with a listener: the listener's
  // descriptor in the calling process (close-on-exec), or -1.
  int ListenerFd() const;
  bool with_listener() const { return with_listener_; }

  // Number of BPF instructions, for tests and benchmarks.
  absl::StatusOr<size_t> ProgramSize() const;

 private:
  struct Release {
    void operator()(void* ctx) const { seccomp_release(ctx); }
  };
  SeccompFilter(scmp_filter_ctx ctx, bool with_listener)
      : ctx_(ctx), with_listener_(with_listener) {}
  std::unique_ptr<void, Release> ctx_;
  bool with_listener_ = false;
};

}  // namespace dodo::tracer

#endif  // DODO_TRACER_SECCOMP_FILTER_H_
