// The ptrace supervisor: starts a command under a seccomp filter, follows
// every process and thread it creates, and reports file system events to an
// EventSink. It knows syscalls, registers, tracee memory and process trees,
// nothing about builds.
#ifndef DODO_TRACER_TRACER_H_
#define DODO_TRACER_TRACER_H_

#include <sys/types.h>

#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "tracer/bpf_observer.h"
#include "tracer/events.h"
#include "tracer/fd_table.h"
#include "tracer/listener_policy.h"
#include "tracer/seccomp_filter.h"
#include "tracer/seccomp_listener.h"
#include "tracer/syscall_table.h"

namespace dodo::tracer {

struct TracerStats {
  uint64_t seccomp_stops = 0;
  uint64_t notifications = 0;     // lookups taken from the seccomp listeners
  uint64_t listeners = 0;         // processes given a listener of their own
  uint64_t answered = 0;          // ... of which dodo ran itself (redirected paths)
  uint64_t observed = 0;          // lookups reported by the eBPF observer
  uint64_t observed_lost = 0;     // ... lost to a full ring buffer (each warned about)
  uint64_t results_observed = 0;  // results of trapped opens read from eBPF, not an exit stop
  uint64_t exit_stops = 0;
  uint64_t event_stops = 0;     // fork, exec, group-stop, ...
  uint64_t signal_stops = 0;    // signals passed through
  uint64_t processes = 0;       // processes and threads followed
  uint64_t refused = 0;         // syscalls failed with ENOSYS
  uint64_t execs_skipped = 0;   // execs the gate replaced with an exit
  uint64_t scratch_mapped = 0;  // scratch mappings injected for path rewriting
  uint64_t paths_rewritten = 0;
};

class Tracer {
 public:
  explicit Tracer(EventSink* sink);
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  // Runs `argv` (searched in PATH) in `cwd` under the tracer until every
  // traced process, daemons included, has exited. Returns the root process's
  // status as a shell reports it: its exit code, or 128 + the signal that
  // killed it. SIGINT/SIGTERM/SIGHUP to dodo kill the whole traced tree; the
  // result is then 128 + that signal. If dodo itself dies, PTRACE_O_EXITKILL
  // takes every tracee with it.
  absl::StatusOr<int> Run(const std::vector<std::string>& argv);

  const TracerStats& stats() const { return stats_; }

  // Consulted at every exec's entry (must outlive the tracer).
  void set_exec_gate(ExecGate* gate) { gate_ = gate; }
  // Consulted at every path syscall's entry (must outlive the tracer).
  void set_path_redirector(PathRedirector* redirector) { redirector_ = redirector; }
  // Whether the stat, access and readlink families and read-only opens of
  // processes that get a listener of their own (listener_policy.h) go
  // through it (the default), or every call is a ptrace stop. Both report
  // the same events; the listener is faster. Unused while the eBPF observer
  // reports those calls.
  void set_use_listener(bool use) { use_listener_ = use; }
  // Whether the lookups (the stat, access and readlink families and
  // read-only opens) are left untrapped and reported by the eBPF observer
  // (bpf_observer.h) when it can start and no path redirector is set (the
  // default), or trapped.
  void set_use_bpf(bool use) { use_bpf_ = use; }
  // A filter being built beforehand (SeccompFilter::BuildInBackground with
  // `options`), which Run() takes instead of building one before it starts
  // the command, if those are the options it needs: the lookups observed
  // exactly when the observer starts.
  void set_filter(FilterOptions options, std::future<absl::StatusOr<SeccompFilter>> filter) {
    prebuilt_options_ = options;
    prebuilt_filter_ = std::move(filter);
  }
  // Why the eBPF observer did not start, after Run; empty when it ran or
  // was not asked for.
  const std::string& bpf_refusal() const { return bpf_refusal_; }

 private:
  struct Tracee;

  absl::StatusOr<pid_t> Launch(const std::vector<std::string>& argv, const SeccompFilter& filter);
  void Loop();
  void OnStop(pid_t pid, int status);
  void OnGone(pid_t pid, int status);
  void OnSeccompStop(Tracee& t);
  void OnSyscallExit(Tracee& t);
  void OnForkEvent(Tracee& parent);
  // Hands on the calls the eBPF observer holds, up to ring position `up_to`
  // (with mu_ held); done before any other event is handed on, which keeps
  // each process's events in order.
  void DrainObserved(uint64_t up_to = UINT64_MAX);
  // Resumes `pid`, then hands on the calls the observer held when it was
  // still stopped: a stop whose event only reports what happened does not
  // keep the process waiting while dodo records its lookups. The caller
  // hands the stop's own event to the sink after this, so every event of
  // the process stays in order (its calls after the resume are left in the
  // ring for later).
  void ResumeThenDrain(pid_t pid, bool want_exit_stop);
  void OnObserved(const ObservedCall& call);
  // A trapped open let go without an exit stop: its result, from the
  // observer, completes the event the seccomp stop kept.
  void OnObservedResult(const ObservedCall& call);
  bool ResultFromObserver(const SyscallRow& row, const SyscallEvent& ev) const;
  void WatchProcess(pid_t tgid);
  // Drains the observer every millisecond, and whenever its ring buffer
  // fills up to the wake-up mark, until StopDrainThread.
  void StartDrainThread();
  void StopDrainThread();
  void OnExecEvent(pid_t pid);
  Tracee& Adopt(pid_t tid, pid_t tgid, const Tracee* parent, bool share_fds, bool share_fs);
  void KillAll();
  void Resume(pid_t pid, bool want_exit_stop, int signal = 0);

  // Syscall handlers; each returns true when it needs the exit stop.
  bool HandleSyscall(Tracee& t, const SyscallRow& row, const uint64_t* args);
  // The event's fields that come from registers, then its path arguments
  // (false: a bad pointer, the kernel will fail the call).
  void StartEvent(const Tracee& t, const SyscallRow& row, const uint64_t* args,
                  SyscallEvent& ev) const;
  bool ReadPathArgs(Tracee& t, const SyscallRow& row, const uint64_t* args, SyscallEvent& ev);
  // A lookup from a seccomp listener (runs on that listener's thread, with
  // mu_ held).
  ListenerAnswer OnNotification(const seccomp_notif& request);
  // Runs a listener row's call on `path` for the process and writes its
  // output into the process's memory; `logical` maps a readlink result.
  ListenerAnswer AnswerOnPath(Tracee& t, const SyscallRow& row, const uint64_t* args,
                              const std::string& path, bool logical);
  // At the exit stop of the call `t` is in: brings `t`'s descriptors and
  // working directory up to date, and says what to hand to the sink once `t`
  // runs again (failed execs in `failed`).
  enum class ExitReport { kNone, kSyscall, kExecFailed };
  ExitReport FinishSyscall(Tracee& t, int64_t result, ExecFailedEvent* failed);
  void Refuse(Tracee& t, const char* syscall, const std::string& why);
  // Skips the syscall `t` is stopped at; it returns -error.
  void FailCall(Tracee& t, int error);
  // Turns the syscall `t` is stopped at into exit_group(status).
  bool ReplaceWithExit(Tracee& t, int status);
  bool ReadPathArg(Tracee& t, int8_t dirfd_index, int8_t path_index, bool follow,
                   const uint64_t* args, PathArg* out);
  void SetPathArg(Tracee& t, int dirfd, std::string path, bool follow, PathArg* out);
  FdInfo DescribeFd(Tracee& t, int fd);
  std::optional<FdInfo> ProcFdInfo(pid_t tgid, int fd) const;
  void SyncFds(FdTable& fds, pid_t pid, bool after_exec) const;

  // Path rewriting. Scratch memory is an anonymous mapping the tracer makes
  // the process create (by turning the stopped syscall into mmap and then
  // running the original one again); the signal frames that a stack-based
  // scratch area would share space with cannot touch it.
  enum class Injection { kDone, kFailed, kGone };
  Injection InjectScratch(Tracee& t);
  // Runs `call` (number, then arguments) in `t`, stopped at a syscall's
  // entry, in place of that syscall, and sets it up to run again: the next
  // stop of `t` is its entry once more. `result` gets the call's result.
  Injection InjectSyscall(Tracee& t, const uint64_t (&call)[7], int64_t* result);
  // At the entry of an exec that will go on: whether `t` should get a
  // listener of its own (see listener_policy.h), and installing it by
  // making the process load the listener-only filter.
  bool WantsOwnListener(const Tracee& t) const;
  Injection InjectListener(Tracee& t);
  // Serves `fd` on a thread of its own; false when no thread could start.
  bool ServeListener(int fd);
  // Asks the redirector about t's current event; returns true when the exit
  // stop is needed (registers to put back, a result to report).
  bool ApplyRedirection(Tracee& t, const SyscallRow& row);
  bool RewriteArg(Tracee& t, int slot, int8_t arg_index, const std::string& path);
  void RestoreArgs(Tracee& t);
  // readlink("/proc/self/fd/N") of a redirected file: show the path the
  // process opened, not where it really is.
  void FixReadlinkResult(Tracee& t, int64_t result);
  void Warn(pid_t pid, std::string syscall, std::string message);

  EventSink* sink_;
  ExecGate* gate_ = nullptr;
  PathRedirector* redirector_ = nullptr;
  bool use_listener_ = true;
  bool use_bpf_ = true;
  std::string bpf_refusal_;
  std::unique_ptr<BpfObserver> observer_;
  FilterOptions prebuilt_options_;
  std::future<absl::StatusOr<SeccompFilter>> prebuilt_filter_;
  std::thread drain_thread_;
  int drain_stop_fd_ = -1;  // an eventfd that ends the drain thread
  // Held by the ptrace loop while it handles a stop and by a listener
  // thread while it handles a notification: they read and change tracees_
  // and call the sink and the redirector. absl::Mutex spins before it
  // sleeps: two listener threads on two CPUs seldom wait long for each
  // other, and a sleep costs a cross-CPU wake-up (a readlink loop in two
  // processes: 9.7 us per call against 11 us with std::mutex).
  absl::Mutex mu_;
  // One per process given a listener, with everything it started; a
  // listener whose processes are all gone is reaped at the next injection.
  std::vector<std::unique_ptr<SeccompListener>> listeners_;
  // The listener-only filter's program; empty when lookups stay with ptrace.
  std::vector<sock_filter> listener_program_;
  // The kernel refused a listener (an outer tool already has one): every
  // lookup stays a ptrace stop.
  bool listeners_refused_ = false;
  ListenerPolicy listener_policy_;
  // Processes (by tgid) and how many child processes each has alive, for
  // learning which programs run children side by side.
  absl::flat_hash_map<pid_t, pid_t> parent_of_;
  absl::flat_hash_map<pid_t, int> live_children_;
  TracerStats stats_;
  pid_t root_pid_ = -1;
  int root_status_ = 0;
  bool root_done_ = false;
  bool stopping_ = false;
  absl::flat_hash_map<pid_t, std::unique_ptr<Tracee>> tracees_;
  // Stops of new children that arrived before their parent's fork event.
  absl::flat_hash_map<pid_t, int> early_stops_;
};

}  // namespace dodo::tracer

#endif  // DODO_TRACER_TRACER_H_
