#include "tracer/seccomp_filter.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tracer/bpf_observer.h"
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

// Only a read-only open goes to the listener; any flag of
// kOpenChangesOrLists (O_TMPFILE includes O_DIRECTORY) leaves it to the
// plain filter's ptrace stop, whose exit stop learns the new descriptor.
absl::Status AddReadOnlyOpenRule(scmp_filter_ctx ctx, const SyscallRow& row) {
  const unsigned flags = static_cast<unsigned>(row.flags);
  return Check(seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, row.nr, 1,
                                SCMP_CMP(flags, SCMP_CMP_MASKED_EQ, kOpenChangesOrLists, 0)),
               "read-only open rule", row.nr);
}

// Traps the open calls with any of `flags` set, one rule per flag (the
// kernel ORs a syscall's rules).
absl::Status AddOpenWithAnyFlagRule(scmp_filter_ctx ctx, const SyscallRow& row, uint64_t flags) {
  const unsigned arg = static_cast<unsigned>(row.flags);
  for (uint64_t flag = 1; flag != 0 && flag <= flags; flag <<= 1) {
    if ((flags & flag) == 0) continue;
    absl::Status status =
        Check(seccomp_rule_add(ctx, SCMP_ACT_TRACE(static_cast<uint16_t>(row.nr)), row.nr, 1,
                               SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, flag, flag)),
              "open flag rule", row.nr);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status AddTracedRow(scmp_filter_ctx ctx, const SyscallRow& row, bool listener_only) {
  if (listener_only && !row.listener) return absl::OkStatus();
  if (listener_only && row.handler == Handler::kOpen) return AddReadOnlyOpenRule(ctx, row);
  // `trace` names the action of the row's rule, whichever it is.
  const uint32_t trace =
      listener_only ? SCMP_ACT_NOTIFY : SCMP_ACT_TRACE(static_cast<uint16_t>(row.nr));
  switch (row.filter) {
    case Filter::kNone:
      return Check(seccomp_rule_add(ctx, trace, row.nr, 0), "trace rule", row.nr);
    case Filter::kNotEmptyPath:
      // The default action allows the fstat() case (AT_EMPTY_PATH set).
      return Check(seccomp_rule_add(ctx, trace, row.nr, 1,
                                    SCMP_CMP(static_cast<unsigned>(row.flags), SCMP_CMP_MASKED_EQ,
                                             AT_EMPTY_PATH, 0)),
                   "path rule", row.nr);
    case Filter::kNewListener:
      return Check(
          seccomp_rule_add(ctx, trace, row.nr, 2, SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER),
                           SCMP_A1(SCMP_CMP_MASKED_EQ, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                                   SECCOMP_FILTER_FLAG_NEW_LISTENER)),
          "seccomp rule", row.nr);
    case Filter::kCloneUntraced:
      return Check(seccomp_rule_add(ctx, trace, row.nr, 1,
                                    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_UNTRACED, CLONE_UNTRACED)),
                   "clone rule", row.nr);
  }
  return absl::InternalError("seccomp: unknown filter kind");
}

}  // namespace

absl::StatusOr<SeccompFilter> SeccompFilter::Build(FilterOptions options) {
  return Build(/*listener_only=*/false, options);
}

std::future<absl::StatusOr<SeccompFilter>> SeccompFilter::BuildInBackground(FilterOptions options) {
  auto build = [options] { return Build(options); };
  try {
    return std::async(std::launch::async, build);
  } catch (const std::system_error&) {
    return std::async(std::launch::deferred, build);  // no thread to be had
  }
}

absl::StatusOr<SeccompFilter> SeccompFilter::BuildListenerOnly(FilterOptions options) {
  return Build(/*listener_only=*/true, options);
}

absl::StatusOr<SeccompFilter> SeccompFilter::Build(bool listener_only, FilterOptions options) {
  // Allow by default, so that a syscall whose argument filter does not match
  // runs untouched; numbers nobody knows are trapped explicitly below.
  scmp_filter_ctx raw = seccomp_init(SCMP_ACT_ALLOW);
  if (raw == nullptr) return absl::InternalError("seccomp_init failed");
  SeccompFilter filter(raw);
  absl::Status status =
      Check(seccomp_attr_set(raw, SCMP_FLTATR_ACT_BADARCH,
                             listener_only ? SCMP_ACT_ALLOW : SCMP_ACT_TRACE(kTraceDataBadArch)),
            "bad-arch action", -1);
  if (!status.ok()) return status;
  // A binary search tree of syscall numbers instead of a linear list.
  status = Check(seccomp_attr_set(raw, SCMP_FLTATR_CTL_OPTIMIZE, 2), "optimize", -1);
  if (!status.ok()) return status;

  for (int nr = 0; nr <= kHighestNumberChecked; ++nr) {
    const SyscallRow* row = FindSyscall(nr);
    if (listener_only && (row == nullptr || row->action != Action::kTrace)) continue;
    if (row == nullptr) {
      char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
      const bool known = name != nullptr;
      free(name);
      if (known) continue;  // a syscall with no file system effect
      status = Check(seccomp_rule_add(raw, SCMP_ACT_TRACE(kTraceDataUnknown), nr, 0),
                     "unknown-number rule", nr);
    } else if (row->action == Action::kAllow) {
      continue;
    } else if (options.lookups_observed && BpfObserver::Observes(nr)) {
      // The eBPF observer reports it without stopping the caller, except
      // the opens that write, create or list: those trap with ptrace.
      if (!listener_only && row->handler == Handler::kOpen) {
        status = AddOpenWithAnyFlagRule(raw, *row, BpfObserver::UnobservedFlags(nr));
      }
    } else if (row->action == Action::kRefuse) {
      status = Check(seccomp_rule_add(raw, SCMP_ACT_TRACE(static_cast<uint16_t>(nr)), nr, 0),
                     "refuse rule", nr);
    } else {
      status = AddTracedRow(raw, *row, listener_only);
    }
    if (!status.ok()) return status;
  }
  if (status = filter.Compile(); !status.ok()) return status;
  return filter;
}

absl::Status SeccompFilter::Compile() {
  // libseccomp 2.5 exports only to a descriptor.
  const int fd = memfd_create("dodo-bpf", MFD_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("memfd_create: ", strerror(errno)));
  const int rc = seccomp_export_bpf(ctx_.get(), fd);
  const off_t size = lseek(fd, 0, SEEK_CUR);
  if (rc != 0 || size < 0 || size % sizeof(sock_filter) != 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("seccomp_export_bpf: ", strerror(rc != 0 ? -rc : EIO)));
  }
  program_.resize(static_cast<size_t>(size) / sizeof(sock_filter));
  const ssize_t got = pread(fd, program_.data(), static_cast<size_t>(size), 0);
  close(fd);
  if (got != size) return absl::InternalError("seccomp_export_bpf: short read");
  if (program_.empty() || program_.size() > BPF_MAXINSNS) {
    return absl::InternalError(absl::StrCat("seccomp filter of ", program_.size(),
                                            " instructions (the kernel takes 1 to ", BPF_MAXINSNS,
                                            ")"));
  }
  return absl::OkStatus();
}

absl::Status SeccompFilter::Load() const {
  sock_fprog program{.len = static_cast<unsigned short>(program_.size()),
                     .filter = const_cast<sock_filter*>(program_.data())};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return absl::ErrnoToStatus(errno, "prctl(PR_SET_NO_NEW_PRIVS)");
  }
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) != 0) {
    return absl::ErrnoToStatus(errno, "seccomp(SECCOMP_SET_MODE_FILTER)");
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> SeccompFilter::ProgramSize() const { return program_.size(); }

absl::StatusOr<std::vector<sock_filter>> SeccompFilter::Program() const { return program_; }

}  // namespace dodo::tracer
