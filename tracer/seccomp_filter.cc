#include "tracer/seccomp_filter.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "tracer/syscall_table.h"

namespace dodo::tracer {
namespace {

// Numbers up to this bound that neither the table nor libseccomp knows trap
// as unknown; above it the kernel has nothing yet.
constexpr int kHighestNumberChecked = 1023;

absl::Status Check(int rc, const char* what, int nr) {
  if (rc == 0) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("seccomp: ", what, " for syscall ", nr, ": ", strerror(-rc)));
}

// open/openat flags that make an open more than a read of an existing file.
// O_NOFOLLOW stays with ptrace too: its ELOOP is the kernel's to report.
constexpr scmp_datum_t kOpenChangesOrLists =
    O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_DIRECTORY | O_NOFOLLOW;

// A read-only open goes to the listener; any flag of kOpenChangesOrLists
// (O_TMPFILE includes O_DIRECTORY) sends it to a ptrace stop, whose exit
// stop learns the new descriptor.
absl::Status AddSplitOpenRow(scmp_filter_ctx ctx, const SyscallRow& row) {
  const unsigned flags = static_cast<unsigned>(row.flags);
  absl::Status status =
      Check(seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, row.nr, 1,
                             SCMP_CMP(flags, SCMP_CMP_MASKED_EQ, kOpenChangesOrLists, 0)),
            "read-only open rule", row.nr);
  for (scmp_datum_t bit : {O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_DIRECTORY, O_NOFOLLOW}) {
    if (!status.ok()) return status;
    status = Check(seccomp_rule_add(ctx, SCMP_ACT_TRACE(static_cast<uint16_t>(row.nr)), row.nr, 1,
                                    SCMP_CMP(flags, SCMP_CMP_MASKED_EQ, bit, bit)),
                   "open rule", row.nr);
  }
  return status;
}

absl::Status AddTracedRow(scmp_filter_ctx ctx, const SyscallRow& row, bool with_listener) {
  if (with_listener && row.listener && row.handler == Handler::kOpen) {
    return AddSplitOpenRow(ctx, row);
  }
  // `trace` names the action of the row's rule, whichever it is.
  const uint32_t trace = with_listener && row.listener
                             ? SCMP_ACT_NOTIFY
                             : SCMP_ACT_TRACE(static_cast<uint16_t>(row.nr));
  switch (row.filter) {
    case Filter::kNone:
      return Check(seccomp_rule_add(ctx, trace, row.nr, 0), "trace rule", row.nr);
    case Filter::kNotEmptyPath:
      // The default action allows the fstat() case (AT_EMPTY_PATH set).
      return Check(seccomp_rule_add(ctx, trace, row.nr, 1,
                                    SCMP_CMP(static_cast<unsigned>(row.flags), SCMP_CMP_MASKED_EQ,
                                             AT_EMPTY_PATH, 0)),
                   "path rule", row.nr);
    case Filter::kFcntlDup:
      for (int cmd : {F_DUPFD, F_DUPFD_CLOEXEC, F_SETFD}) {
        absl::Status status =
            Check(seccomp_rule_add(ctx, trace, row.nr, 1,
                                   SCMP_A1(SCMP_CMP_EQ, static_cast<scmp_datum_t>(cmd))),
                  "fcntl rule", row.nr);
        if (!status.ok()) return status;
      }
      return absl::OkStatus();
    case Filter::kCloneUntraced:
      return Check(seccomp_rule_add(ctx, trace, row.nr, 1,
                                    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_UNTRACED, CLONE_UNTRACED)),
                   "clone rule", row.nr);
  }
  return absl::InternalError("seccomp: unknown filter kind");
}

}  // namespace

absl::StatusOr<SeccompFilter> SeccompFilter::Build(bool with_listener) {
  // Allow by default, so that a syscall whose argument filter does not match
  // runs untouched; numbers nobody knows are trapped explicitly below.
  scmp_filter_ctx raw = seccomp_init(SCMP_ACT_ALLOW);
  if (raw == nullptr) return absl::InternalError("seccomp_init failed");
  SeccompFilter filter(raw, with_listener);
  absl::Status status =
      Check(seccomp_attr_set(raw, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_TRACE(kTraceDataBadArch)),
            "bad-arch action", -1);
  if (!status.ok()) return status;
  // A binary search tree of syscall numbers instead of a linear list.
  status = Check(seccomp_attr_set(raw, SCMP_FLTATR_CTL_OPTIMIZE, 2), "optimize", -1);
  if (!status.ok()) return status;

  for (int nr = 0; nr <= kHighestNumberChecked; ++nr) {
    const SyscallRow* row = FindSyscall(nr);
    if (row == nullptr) {
      char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
      const bool known = name != nullptr;
      free(name);
      if (known) continue;  // a syscall with no file system effect
      status = Check(seccomp_rule_add(raw, SCMP_ACT_TRACE(kTraceDataUnknown), nr, 0),
                     "unknown-number rule", nr);
    } else if (row->action == Action::kAllow) {
      continue;
    } else if (row->action == Action::kRefuse) {
      status = Check(seccomp_rule_add(raw, SCMP_ACT_TRACE(static_cast<uint16_t>(nr)), nr, 0),
                     "refuse rule", nr);
    } else {
      status = AddTracedRow(raw, *row, with_listener);
    }
    if (!status.ok()) return status;
  }
  return filter;
}

absl::Status SeccompFilter::Load() const {
  int rc = seccomp_load(ctx_.get());
  if (rc != 0) return absl::InternalError(absl::StrCat("seccomp_load: ", strerror(-rc)));
  return absl::OkStatus();
}

int SeccompFilter::ListenerFd() const {
  if (!with_listener_) return -1;
  const int fd = seccomp_notify_fd(ctx_.get());
  return fd >= 0 ? fd : -1;
}

absl::StatusOr<size_t> SeccompFilter::ProgramSize() const {
  int fd = memfd_create("dodo-bpf", MFD_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("memfd_create: ", strerror(errno)));
  int rc = seccomp_export_bpf(ctx_.get(), fd);
  off_t size = lseek(fd, 0, SEEK_CUR);
  close(fd);
  if (rc != 0) return absl::InternalError(absl::StrCat("seccomp_export_bpf: ", strerror(-rc)));
  return static_cast<size_t>(size) / 8;  // struct sock_filter is 8 bytes
}

}  // namespace dodo::tracer
