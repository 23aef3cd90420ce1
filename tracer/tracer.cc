#include "tracer/tracer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <future>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tracer/tracee_memory.h"

namespace dodo::tracer {
namespace {

constexpr int kPtraceOptions = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACESECCOMP | PTRACE_O_TRACEFORK |
                               PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC |
                               PTRACE_O_EXITKILL;

// Kernel-internal return values of a syscall that will be restarted.
constexpr int64_t kErestartSys = -512;
constexpr int64_t kErestartNoHand = -514;
constexpr int64_t kErestartRestartBlock = -516;

// Whether a syscall that returned `result` runs again (and enters the
// filter again): ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND,
// ERESTART_RESTARTBLOCK.
bool WillRestart(int64_t result) {
  return result == kErestartSys || result == kErestartSys - 1 || result == kErestartNoHand ||
         result == kErestartRestartBlock;
}

constexpr uint64_t kX32SyscallBit = 0x40000000;

// Scratch memory for rewritten paths: one slot per path argument.
constexpr uint64_t kScratchSlot = 4096;
constexpr uint64_t kScratchSize = 2 * kScratchSlot;
// The `syscall` instruction's length: rewinding rip by it runs the call again.
constexpr uint64_t kSyscallInsnLength = 2;

// The register holding syscall argument `index` (x86_64 ABI order).
unsigned long long* ArgRegister(user_regs_struct& regs, int index) {
  switch (index) {
    case 0:
      return &regs.rdi;
    case 1:
      return &regs.rsi;
    case 2:
      return &regs.rdx;
    case 3:
      return &regs.r10;
    case 4:
      return &regs.r8;
    case 5:
      return &regs.r9;
  }
  return nullptr;
}

bool IsPathHandler(Handler handler) {
  return handler == Handler::kOpen || handler == Handler::kOpenat2 || handler == Handler::kPath ||
         handler == Handler::kFdOrPath;
}

volatile sig_atomic_t g_stop_signal = 0;

void OnStopSignal(int signal) {
  g_stop_signal = signal;
  // Wake the loop even if the signal landed just before it blocked in
  // waitpid(): SIGALRM interrupts the wait a second later.
  alarm(1);
}

void OnAlarm(int) {
  if (g_stop_signal != 0) alarm(1);
}

void InstallSignalHandlers() {
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: waitpid must return EINTR
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGHUP, &action, nullptr);
  action.sa_handler = OnAlarm;
  sigaction(SIGALRM, &action, nullptr);
}

void RestoreSignalHandlers() {
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  signal(SIGALRM, SIG_DFL);
}

std::string JoinPath(const std::string& base, const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  if (path.empty() || path == ".") return base;
  if (base.empty() || base.back() == '/') return base + path;
  return absl::StrCat(base, "/", path);
}

// The path an opened descriptor is known by: the joined path without empty
// or "." components. The open succeeded, so `dir/` and `dir/.` name `dir`,
// and descriptors must match the paths of the lookups that reach the same
// file (`ls src/` lists "src"). ".." stays: a symlink before it decides
// where it leads.
std::string DescriptorPath(const std::string& base, const std::string& path) {
  const std::string joined = JoinPath(base, path);
  std::string out;
  out.reserve(joined.size());
  for (absl::string_view part : absl::StrSplit(joined, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    absl::StrAppend(&out, "/", part);
  }
  if (out.empty() || joined.empty() || joined[0] != '/') return joined;
  return out;
}

std::string ReadProcLink(pid_t pid, const char* what) {
  char buffer[4096];
  std::string link = absl::StrCat("/proc/", pid, "/", what);
  ssize_t n = readlink(link.c_str(), buffer, sizeof(buffer));
  if (n < 0) return "";
  return std::string(buffer, n);
}

// How often the drain thread looks at the eBPF ring between wake-ups.
constexpr int kDrainIntervalMs = 1;

// Whether the sink may get a call's event (with its result) once the process
// runs again. Not when the sink reads what the process could change next
// without a stop (write(2) is not trapped): the contents of a file it opened
// for writing without truncating it (the version its writes build on), or
// the size and time a stat saw. Names can change only through calls that
// stop, which wait until the sink has the event.
bool ReportableOnceResumed(const SyscallEvent& ev) {
  if (ev.effect == Effect::kStat) return false;
  if (ev.effect != Effect::kOpen || (ev.result.has_value() && *ev.result < 0)) return true;
  return (ev.flags & O_ACCMODE) == O_RDONLY || (ev.flags & O_TRUNC) != 0;
}

bool Follows(Follow rule, uint64_t flags) {
  switch (rule) {
    case Follow::kYes:
      return true;
    case Follow::kNo:
      return false;
    case Follow::kAtNoFollow:
      return (flags & AT_SYMLINK_NOFOLLOW) == 0;
    case Follow::kAtFollow:
      return (flags & AT_SYMLINK_FOLLOW) != 0;
    case Follow::kOpenFlags:
      return (flags & O_NOFOLLOW) == 0;
  }
  return true;
}

}  // namespace

// What the tracer keeps per thread. Threads of one process share the
// descriptor table and cwd objects when clone asked for it.
struct Tracer::Tracee {
  pid_t tid = 0;
  pid_t tgid = 0;
  std::shared_ptr<FdTable> fds;
  std::shared_ptr<std::string> cwd;
  bool awaiting_first_stop = true;

  // The syscall waiting for its exit stop, with what its entry prepared.
  const SyscallRow* pending = nullptr;
  SyscallEvent event;
  uint64_t args[6] = {};
  // execve: what the new program gets (unreadable after the exec).
  PathArg exec_path;
  std::vector<std::string> exec_argv;
  std::vector<std::string> exec_env;
  // clone/clone3 with CLONE_UNTRACED: the flags to put back at exit.
  bool restore_flags = false;
  uint64_t saved_flags = 0;

  // Path rewriting: where the scratch mapping is (0: none yet), and the
  // argument registers to put back at the exit stop.
  uint64_t scratch = 0;
  bool scratch_failed = false;
  int8_t rewritten_arg[2] = {-1, -1};
  uint64_t original_arg[2] = {};
  // Whether the exit stop reports the event (FinishSyscall), tells the
  // redirector the result, or fixes a readlink result.
  bool report_at_exit = true;
  bool notify_redirector = false;
  bool fix_readlink = false;

  // Whether a filter with a listener is in the thread's chain (given to it
  // or to an ancestor), and the name of the program it runs.
  bool has_listener = false;
  std::string program;
  // The exec stopped at runs again after the listener's injection: its
  // entry has been handled already.
  bool exec_rerun = false;
  // The trapped call it was let go on has no exit stop: its event, in
  // `event`, goes to the sink when the observer reports its result.
  bool result_from_observer = false;
};

Tracer::Tracer(EventSink* sink) : sink_(sink) {}
Tracer::~Tracer() {
  {
    absl::MutexLock lock(&mu_);
    KillAll();
  }
  for (const std::unique_ptr<SeccompListener>& listener : listeners_) listener->Stop();
  StopDrainThread();
}

void Tracer::Warn(pid_t pid, std::string syscall, std::string message) {
  WarningEvent warning;
  warning.pid = pid;
  warning.syscall = std::move(syscall);
  warning.message = std::move(message);
  sink_->OnWarning(warning);
}

absl::StatusOr<pid_t> Tracer::Launch(const std::vector<std::string>& argv,
                                     const SeccompFilter& filter) {
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();

  pid_t child = fork();
  if (child < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  if (child == 0) {
    // If dodo dies before it has seized us, do not run untraced.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    RestoreSignalHandlers();
    // Stop until the parent has seized us: nothing runs untraced, and the
    // filter (whose traps need a tracer) is installed only once one exists.
    raise(SIGSTOP);
    if (!filter.Load().ok()) {
      dprintf(2, "dodo: cannot install the seccomp filter\n");
      _exit(127);
    }
    execvp(args[0], args.data());
    dprintf(2, "dodo: %s: %s\n", args[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }

  int status = 0;
  if (waitpid(child, &status, WSTOPPED) != child || !WIFSTOPPED(status)) {
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    return absl::InternalError("the command did not stop before exec");
  }
  if (ptrace(PTRACE_SEIZE, child, nullptr, kPtraceOptions) != 0) {
    int saved = errno;
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    return absl::InternalError(absl::StrCat("PTRACE_SEIZE: ", strerror(saved)));
  }
  // The child sits in a group-stop; SIGCONT ends it. The loop sees the
  // SIGCONT delivery and the stop reports like any other tracee's.
  kill(child, SIGCONT);
  return child;
}

bool Tracer::ServeListener(int fd) {
  // Listeners whose processes are all gone have ended their threads.
  std::erase_if(listeners_, [](const std::unique_ptr<SeccompListener>& listener) {
    if (!listener->finished()) return false;
    listener->Stop();
    return true;
  });
  auto listener = std::make_unique<SeccompListener>();
  const absl::Status started = listener->Start(fd, [this](const seccomp_notif& request) {
    absl::MutexLock lock(&mu_);
    DrainObserved();
    return OnNotification(request);
  });
  if (!started.ok()) return false;
  listeners_.push_back(std::move(listener));
  return true;
}

absl::StatusOr<int> Tracer::Run(const std::vector<std::string>& argv) {
  if (argv.empty()) return absl::InvalidArgumentError("no command to run");
  // Debian builds Abseil without NDEBUG, so each Lock of mu_ (one per stop)
  // would also update the deadlock detector's global lock graph: 2% of the
  // loop's time. The tracer holds no other mutex, so it has no cycle to find.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Every lookup starts as a ptrace stop; listeners come per process, at
  // exec (listener_policy.h).
  // The observer cannot redirect a path, so a redirector keeps the lookups
  // trapped. With the observer, the listener would have nothing to serve.
  const bool try_bpf = use_bpf_ && (redirector_ == nullptr || !redirector_->RewritesPaths());
  // Compiling the filter and starting the observer take some milliseconds
  // each, most of a short run's start: the filter is compiled on a thread of
  // its own meanwhile (or was, beforehand), for the observer's success. (A
  // refusal compiles another.)
  std::future<absl::StatusOr<SeccompFilter>> expected_filter =
      prebuilt_filter_.valid() && prebuilt_options_.lookups_observed == try_bpf
          ? std::move(prebuilt_filter_)
          : SeccompFilter::BuildInBackground(FilterOptions{.lookups_observed = try_bpf});
  if (try_bpf) {
    absl::StatusOr<std::unique_ptr<BpfObserver>> observer = BpfObserver::Start();
    if (observer.ok()) {
      observer_ = *std::move(observer);
    } else {
      bpf_refusal_ = std::string(observer.status().message());
    }
  }
  const bool observed = observer_ != nullptr;
  const FilterOptions options{.lookups_observed = observed};
  absl::StatusOr<SeccompFilter> filter = expected_filter.get();
  if (observed != try_bpf) filter = SeccompFilter::Build(options);
  if (!filter.ok()) return filter.status();
  if (use_listener_ && !observed) {
    absl::StatusOr<SeccompFilter> listener_only = SeccompFilter::BuildListenerOnly(options);
    if (!listener_only.ok()) return listener_only.status();
    absl::StatusOr<std::vector<sock_filter>> program = listener_only->Program();
    if (!program.ok()) return program.status();
    listener_program_ = *std::move(program);
  }
  // Orphans (double-forked daemons) are re-parented to dodo, and stay traced.
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    return absl::InternalError(absl::StrCat("PR_SET_CHILD_SUBREAPER: ", strerror(errno)));
  }
  g_stop_signal = 0;
  InstallSignalHandlers();
  absl::StatusOr<pid_t> root = Launch(argv, *filter);
  if (!root.ok()) {
    RestoreSignalHandlers();
    return root.status();
  }
  {
    absl::MutexLock lock(&mu_);
    root_pid_ = *root;
    Tracee& t = Adopt(root_pid_, root_pid_, nullptr, false, false);
    t.awaiting_first_stop = false;  // its stop was consumed by Launch
    *t.cwd = ReadProcLink(root_pid_, "cwd");
    SyncFds(*t.fds, root_pid_, /*after_exec=*/false);
    // Still stopped: the loop resumes it.
    WatchProcess(root_pid_);
  }
  StartDrainThread();

  Loop();
  StopDrainThread();
  // Every tracee is gone: orphans from now on (the observer's closer) are
  // not ours to wait for.
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  observer_.reset();
  for (const std::unique_ptr<SeccompListener>& listener : listeners_) listener->Stop();
  listeners_.clear();
  RestoreSignalHandlers();
  alarm(0);
  if (g_stop_signal != 0) return 128 + g_stop_signal;
  return root_status_;
}

Tracer::Tracee& Tracer::Adopt(pid_t tid, pid_t tgid, const Tracee* parent, bool share_fds,
                              bool share_fs) {
  auto tracee = std::make_unique<Tracee>();
  tracee->tid = tid;
  tracee->tgid = tgid;
  if (parent == nullptr) {
    tracee->fds = std::make_shared<FdTable>();
    tracee->cwd = std::make_shared<std::string>();
  } else {
    tracee->fds = share_fds ? parent->fds : std::make_shared<FdTable>(*parent->fds);
    tracee->cwd = share_fs ? parent->cwd : std::make_shared<std::string>(*parent->cwd);
    tracee->has_listener = parent->has_listener;
    tracee->program = parent->program;
  }
  ++stats_.processes;
  Tracee& ref = *tracee;
  tracees_[tid] = std::move(tracee);
  return ref;
}

void Tracer::KillAll() {
  for (const auto& [tid, tracee] : tracees_) kill(tid, SIGKILL);
  for (const auto& [tid, status] : early_stops_) kill(tid, SIGKILL);
}

void Tracer::Resume(pid_t pid, bool want_exit_stop, int signal) {
  ptrace(want_exit_stop ? PTRACE_SYSCALL : PTRACE_CONT, pid, nullptr,
         reinterpret_cast<void*>(static_cast<intptr_t>(signal)));
}

void Tracer::Loop() {
  while (true) {
    if (g_stop_signal != 0 && !stopping_) {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      KillAll();
    }
    int status = 0;
    pid_t pid = waitpid(-1, &status, __WALL);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: every traced process is gone
    }
    absl::MutexLock lock(&mu_);
    // A stop drains the observer itself, if its event needs it (OnStop).
    if (WIFSTOPPED(status)) {
      OnStop(pid, status);
    } else if (WIFEXITED(status) || WIFSIGNALED(status)) {
      DrainObserved();
      OnGone(pid, status);
    }
  }
}

void Tracer::OnGone(pid_t pid, int status) {
  early_stops_.erase(pid);
  auto it = tracees_.find(pid);
  bool leader = it == tracees_.end() || it->second->tgid == pid;
  if (pid == root_pid_) {
    root_done_ = true;
    root_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  ExitEvent event;
  event.pid = pid;
  event.process = leader;
  event.signaled = WIFSIGNALED(status);
  event.code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
  event.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  if (leader && observer_ != nullptr) {
    // The loop drained the ring before this: what is still missing was lost.
    if (const uint32_t lost = observer_->Unwatch(pid); lost > 0) {
      stats_.observed_lost += lost;
      Warn(pid, "lookups",
           absl::StrCat(lost,
                        " lookups (stat, access, readlink, read-only open) went unrecorded: "
                        "the eBPF ring buffer was full"));
    }
  }
  if (leader) {
    auto parent = parent_of_.find(pid);
    if (parent != parent_of_.end()) {
      auto count = live_children_.find(parent->second);
      if (count != live_children_.end() && --count->second <= 0) live_children_.erase(count);
      parent_of_.erase(parent);
    }
  }
  if (it != tracees_.end()) {
    tracees_.erase(it);
    sink_->OnExit(event);
  }
}

void Tracer::OnStop(pid_t pid, int status) {
  auto it = tracees_.find(pid);
  if (it == tracees_.end()) {
    // A new child whose parent's fork event has not arrived yet: keep it
    // stopped until we know whose it is.
    if (stopping_) {
      kill(pid, SIGKILL);
    } else {
      early_stops_[pid] = status;
    }
    return;
  }
  Tracee& t = *it->second;
  const int signal = WSTOPSIG(status);
  const int event = status >> 16;

  // Exit stops, forks and execs report what happened once the process runs
  // again (ResumeThenDrain); the other stops report nothing.
  if (signal == (SIGTRAP | 0x80)) {
    ++stats_.exit_stops;
    OnSyscallExit(t);
    return;
  }
  switch (event) {
    case PTRACE_EVENT_SECCOMP:
      ++stats_.seccomp_stops;
      // The sink may act before the call runs (keep a file's old version,
      // skip an exec): it must have seen every earlier call first.
      DrainObserved();
      OnSeccompStop(t);
      return;
    case PTRACE_EVENT_FORK:
    case PTRACE_EVENT_VFORK:
    case PTRACE_EVENT_CLONE:
      ++stats_.event_stops;
      OnForkEvent(t);
      return;
    case PTRACE_EVENT_EXEC:
      ++stats_.event_stops;
      OnExecEvent(pid);
      return;
    case PTRACE_EVENT_STOP:
      ++stats_.event_stops;
      if (t.awaiting_first_stop || signal == SIGTRAP) {
        // The first stop of an automatically attached child, or a
        // PTRACE_INTERRUPT: nothing to pass on.
        t.awaiting_first_stop = false;
        Resume(pid, false);
      } else {
        // A group-stop (SIGSTOP, SIGTSTP, ...): stay stopped as the program
        // expects, but keep reporting events, until SIGCONT.
        ptrace(PTRACE_LISTEN, pid, nullptr, nullptr);
      }
      return;
    default:
      break;
  }
  // A signal on its way to the tracee: pass it through unchanged.
  ++stats_.signal_stops;
  if (t.awaiting_first_stop && signal == SIGSTOP) {
    t.awaiting_first_stop = false;
    Resume(pid, false);
    return;
  }
  Resume(pid, false, signal);
}

void Tracer::OnForkEvent(Tracee& parent) {
  unsigned long message = 0;
  ptrace(PTRACE_GETEVENTMSG, parent.tid, nullptr, &message);
  const pid_t child = static_cast<pid_t>(message);
  uint64_t flags = 0;
  // The parent is stopped inside fork/vfork/clone/clone3: its registers say how.
  user_regs_struct regs;
  if (ptrace(PTRACE_GETREGS, parent.tid, nullptr, &regs) == 0) {
    if (regs.orig_rax == SYS_clone3) {
      uint64_t from_memory = 0;
      if (ReadMemory(parent.tid, regs.rdi, &from_memory, sizeof(from_memory)).ok()) {
        flags = from_memory;
      }
    } else if (regs.orig_rax == SYS_clone) {
      flags = regs.rdi;
    } else if (regs.orig_rax == SYS_vfork) {
      flags = CLONE_VM | CLONE_VFORK;
    }
  }
  ForkEvent fork_event;
  fork_event.parent = parent.tid;
  fork_event.child = child;
  fork_event.thread = (flags & CLONE_THREAD) != 0;
  fork_event.share_fds = (flags & CLONE_FILES) != 0;
  fork_event.share_fs = (flags & CLONE_FS) != 0;
  const pid_t tgid = fork_event.thread ? parent.tgid : child;
  Tracee& t = Adopt(child, tgid, &parent, fork_event.share_fds, fork_event.share_fs);
  if (!fork_event.thread) {
    WatchProcess(child);  // before it first runs: it is still stopped
    parent_of_[child] = parent.tgid;
    if (++live_children_[parent.tgid] >= 2) listener_policy_.SawParallelChildren(parent.program);
  }
  // A copied address space has the parent's scratch mapping at the same
  // address. A shared one (threads) gets its own, so two threads never write
  // paths over each other; a vfork child may share, its parent is suspended.
  const bool shares_memory = (flags & CLONE_VM) != 0 && (flags & CLONE_VFORK) == 0;
  t.scratch = shares_memory ? 0 : parent.scratch;
  ResumeThenDrain(parent.tid, parent.pending != nullptr);
  sink_->OnFork(fork_event);

  auto early = early_stops_.find(child);
  if (early != early_stops_.end()) {
    early_stops_.erase(early);
    t.awaiting_first_stop = false;
    if (stopping_) {
      kill(child, SIGKILL);
    } else {
      Resume(child, false);
    }
  }
}

void Tracer::WatchProcess(pid_t tgid) {
  if (observer_ == nullptr) return;
  if (absl::Status watched = observer_->Watch(tgid); !watched.ok()) {
    // Its lookups run untrapped all the same: say that they are missing.
    Warn(tgid, "lookups",
         absl::StrCat("lookups (stat, access, readlink, read-only open) go unrecorded in this "
                      "process: ",
                      watched.message()));
  }
}

void Tracer::DrainObserved(uint64_t up_to) {
  if (observer_ == nullptr) return;
  observer_->Drain([this](const ObservedCall& call) { OnObserved(call); }, up_to);
}

void Tracer::ResumeThenDrain(pid_t pid, bool want_exit_stop) {
  if (observer_ == nullptr) {
    Resume(pid, want_exit_stop);
    return;
  }
  // Read while `pid` is stopped: its calls so far are all before this.
  const uint64_t written = observer_->WrittenUpTo();
  Resume(pid, want_exit_stop);
  DrainObserved(written);
}

void Tracer::OnObserved(const ObservedCall& call) {
  if (call.result_only) {
    if (!stopping_) OnObservedResult(call);
    return;
  }
  ++stats_.observed;
  const SyscallRow* row = FindSyscall(call.nr);
  auto it = tracees_.find(call.tid);
  if (it == tracees_.end()) it = tracees_.find(call.tgid);
  if (row == nullptr || it == tracees_.end() || stopping_) return;
  Tracee& t = *it->second;
  if (!call.readable) {
    // A trapped call with a path dodo cannot read is not recorded either;
    // the kernel fails it. Anything else is a gap, and is said to be one.
    if (call.result != -EFAULT && call.result != -ENAMETOOLONG) {
      Warn(t.tid, row->name, "the eBPF observer could not read the path; the call is unrecorded");
    }
    return;
  }
  SyscallEvent ev;
  StartEvent(t, *row, call.args, ev);
  PathArg path;
  SetPathArg(t, row->dirfd == kNoArg ? AT_FDCWD : static_cast<int>(call.args[row->dirfd]),
             std::string(call.path), Follows(row->follow, ev.flags), &path);
  ev.path = std::move(path);
  sink_->OnSyscall(ev);
}

void Tracer::StartDrainThread() {
  if (observer_ == nullptr) return;
  drain_stop_fd_ = eventfd(0, EFD_CLOEXEC);
  const int epoll = epoll_create1(EPOLL_CLOEXEC);
  if (drain_stop_fd_ < 0 || epoll < 0) {
    // Without the thread the ring is drained at every stop and notification
    // only; a long run of lookups alone may then overflow it (and warn).
    if (epoll >= 0) close(epoll);
    return;
  }
  // Edge-triggered: the ring reads as ready while it holds any record, but
  // its program wakes waiters only at the mark (bpf_observer.cc).
  epoll_event ring_event{};
  ring_event.events = EPOLLIN | EPOLLET;
  ring_event.data.fd = observer_->ready_fd();
  epoll_event stop_event{};
  stop_event.events = EPOLLIN;
  stop_event.data.fd = drain_stop_fd_;
  epoll_ctl(epoll, EPOLL_CTL_ADD, observer_->ready_fd(), &ring_event);
  epoll_ctl(epoll, EPOLL_CTL_ADD, drain_stop_fd_, &stop_event);
  drain_thread_ = std::thread([this, epoll] {
    while (true) {
      // Also every millisecond: a compiler's header lookups are then handed
      // on while it compiles, not at its next stop (the open of its output),
      // which waits for them. On xz's code edit that took the time spent
      // draining at seccomp stops from 37 ms to 12 ms.
      epoll_event event;
      const int n = epoll_wait(epoll, &event, 1, kDrainIntervalMs);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 || (n > 0 && event.data.fd == drain_stop_fd_)) break;
      if (!observer_->HasRecords()) continue;
      absl::MutexLock lock(&mu_);
      DrainObserved();
    }
    close(epoll);
  });
}

void Tracer::StopDrainThread() {
  if (drain_thread_.joinable()) {
    const uint64_t one = 1;
    (void)!write(drain_stop_fd_, &one, sizeof(one));
    drain_thread_.join();
  }
  if (drain_stop_fd_ >= 0) close(drain_stop_fd_);
  drain_stop_fd_ = -1;
}

void Tracer::OnExecEvent(pid_t pid) {
  unsigned long message = 0;
  ptrace(PTRACE_GETEVENTMSG, pid, nullptr, &message);
  const pid_t former = static_cast<pid_t>(message);
  // What the new program starts with, read while it cannot change: its
  // descriptors and its executable.
  auto fds = std::make_shared<FdTable>();
  SyncFds(*fds, pid, /*after_exec=*/true);
  fds->ForEach([pid](FdInfo& info) { ProbeDrained(pid, info); });
  std::string executable = ReadProcLink(pid, "exe");
  // The process's calls before the exec are handed on with its threads and
  // descriptors as they were then, so it changes only after this.
  ResumeThenDrain(pid, false);

  if (former != pid) {
    // A non-leader thread exec'd: it now has the leader's pid, and every
    // other thread of the process is gone.
    auto from = tracees_.find(former);
    if (from != tracees_.end()) {
      std::unique_ptr<Tracee> moved = std::move(from->second);
      tracees_.erase(from);
      moved->tid = pid;
      moved->tgid = pid;
      tracees_[pid] = std::move(moved);
    }
  }
  for (auto it = tracees_.begin(); it != tracees_.end();) {
    if (it->second->tgid == pid && it->first != pid) {
      tracees_.erase(it++);
    } else {
      ++it;
    }
  }
  auto it = tracees_.find(pid);
  if (it == tracees_.end()) return;
  Tracee& t = *it->second;
  // After exec the process has descriptors and a cwd of its own.
  t.fds = std::move(fds);
  t.scratch = 0;  // the new program has a new address space
  t.scratch_failed = false;
  t.cwd = std::make_shared<std::string>(*t.cwd);

  ExecEvent event;
  event.pid = pid;
  event.former_tid = former != pid ? former : 0;
  event.path = std::move(t.exec_path);
  event.executable = std::move(executable);
  t.program = event.executable.substr(event.executable.rfind('/') + 1);
  event.argv = std::move(t.exec_argv);
  event.env = std::move(t.exec_env);
  event.cwd = *t.cwd;
  event.fds = t.fds->Sorted();
  t.pending = nullptr;
  t.exec_argv.clear();
  t.exec_env.clear();
  // (Its exit stop, if one was asked for, has nothing more to say.)
  sink_->OnExec(event);
}

void Tracer::FailCall(Tracee& t, int error) {
  user_regs_struct regs;
  if (ptrace(PTRACE_GETREGS, t.tid, nullptr, &regs) == 0) {
    regs.orig_rax = static_cast<unsigned long long>(-1);  // skip the call
    regs.rax = static_cast<unsigned long long>(-error);
    ptrace(PTRACE_SETREGS, t.tid, nullptr, &regs);
  }
}

void Tracer::Refuse(Tracee& t, const char* syscall, const std::string& why) {
  ++stats_.refused;
  FailCall(t, ENOSYS);
  Warn(t.tid, syscall, absl::StrCat("refused with ENOSYS: ", why));
  Resume(t.tid, false);
}

bool Tracer::ReplaceWithExit(Tracee& t, int status) {
  user_regs_struct regs;
  if (ptrace(PTRACE_GETREGS, t.tid, nullptr, &regs) != 0) return false;
  regs.orig_rax = SYS_exit_group;
  regs.rdi = static_cast<unsigned long long>(status);
  return ptrace(PTRACE_SETREGS, t.tid, nullptr, &regs) == 0;
}

bool Tracer::ResultFromObserver(const SyscallRow& row, const SyscallEvent& ev) const {
  // The sink then gets the event after the process has run on: only for an
  // open whose file's contents so far do not matter (ReportableOnceResumed).
  // The descriptor is not noted in the table either; DescribeFd reads it
  // from /proc if it is ever needed.
  return observer_ != nullptr && row.handler == Handler::kOpen &&
         BpfObserver::ReportsTrappedResults(row.nr) && ReportableOnceResumed(ev);
}

void Tracer::OnObservedResult(const ObservedCall& call) {
  auto it = tracees_.find(call.tid);
  if (it == tracees_.end() || !it->second->result_from_observer) return;
  Tracee& t = *it->second;
  t.result_from_observer = false;
  if (WillRestart(call.result)) return;  // handled afresh when it traps again
  ++stats_.results_observed;
  t.event.result = call.result;
  sink_->OnSyscall(t.event);
}

void Tracer::OnSeccompStop(Tracee& t) {
  // The result of the call before, if the observer had one, came with the
  // drain before this stop: if not, its record was lost (and counted).
  t.result_from_observer = false;
  __ptrace_syscall_info info{};
  if (ptrace(PTRACE_GET_SYSCALL_INFO, t.tid, sizeof(info), &info) <= 0 ||
      info.op != PTRACE_SYSCALL_INFO_SECCOMP) {
    Resume(t.tid, false);
    return;
  }
  const uint64_t nr = info.seccomp.nr;
  const uint32_t data = info.seccomp.ret_data;
  if (data == kTraceDataBadArch) {
    std::string kind = (nr & kX32SyscallBit) != 0 ? "x32" : "32-bit (int 0x80)";
    Refuse(
        t, "badarch",
        absl::StrCat(kind, " system call ", nr & ~kX32SyscallBit, " cannot be followed by dodo"));
    return;
  }
  const SyscallRow* row = FindSyscall(static_cast<long>(nr));
  if (data == kTraceDataUnknown || row == nullptr) {
    Refuse(t, "unknown",
           absl::StrCat("system call ", nr, " is unknown to dodo: ", UnknownSyscallRow().why));
    return;
  }
  if (row->action == Action::kRefuse) {
    Refuse(t, row->name, row->why);
    return;
  }
  if (stopping_) {
    Resume(t.tid, false);
    return;
  }
  if (std::exchange(t.exec_rerun, false) && row->handler == Handler::kExec) {
    // The exec again, after the listener's injection: handled already.
    t.pending = row;
    std::memcpy(t.args, info.seccomp.args, sizeof(t.args));
    Resume(t.tid, true);
    return;
  }
  if (redirector_ != nullptr && redirector_->RewritesPaths() && IsPathHandler(row->handler) &&
      t.scratch == 0 && !t.scratch_failed) {
    switch (InjectScratch(t)) {
      case Injection::kDone:
        // The original syscall runs again and stops here once more.
        Resume(t.tid, false);
        return;
      case Injection::kGone:
        return;  // `t` no longer exists
      case Injection::kFailed:
        break;  // carry on without rewriting for this process
    }
  }
  t.report_at_exit = true;
  t.notify_redirector = false;
  t.fix_readlink = false;
  const bool want_exit = HandleSyscall(t, *row, info.seccomp.args);
  if (want_exit && row->handler == Handler::kExec && WantsOwnListener(t)) {
    switch (InjectListener(t)) {
      case Injection::kDone:
        t.exec_rerun = true;
        Resume(t.tid, false);
        return;
      case Injection::kGone:
        return;
      case Injection::kFailed:
        break;  // the exec goes on; the process's lookups stay ptrace stops
    }
  }
  if (want_exit) {
    t.pending = row;
    std::memcpy(t.args, info.seccomp.args, sizeof(t.args));
  }
  Resume(t.tid, want_exit);
}

FdInfo Tracer::DescribeFd(Tracee& t, int fd) {
  // The table's entry holds only while /proc still shows the same file: the
  // number may have been closed and reused by an open that made no stop.
  const std::string target = ProcFdTarget(t.tgid, fd);
  const FdInfo* known = t.fds->Find(fd);
  if (known != nullptr && !target.empty() && known->target == target) return *known;
  std::optional<FdInfo> info = target.empty() ? std::nullopt : ProcFdInfo(t.tgid, fd);
  if (!info.has_value()) {
    if (known != nullptr) t.fds->Erase(fd);
    FdInfo unknown;
    unknown.fd = fd;
    return unknown;
  }
  t.fds->Set(*info);
  return *info;
}

bool Tracer::ReadPathArg(Tracee& t, int8_t dirfd_index, int8_t path_index, bool follow,
                         const uint64_t* args, PathArg* out) {
  absl::StatusOr<std::string> path = ReadString(t.tid, args[path_index]);
  if (!path.ok()) return false;  // a bad pointer: the kernel will say EFAULT
  SetPathArg(t, dirfd_index == kNoArg ? AT_FDCWD : static_cast<int>(args[dirfd_index]),
             *std::move(path), follow, out);
  return true;
}

void Tracer::SetPathArg(Tracee& t, int dirfd, std::string path, bool follow, PathArg* out) {
  out->path = std::move(path);
  out->follow_final = follow;
  out->dirfd = dirfd;
  if (!out->path.empty() && out->path[0] == '/') {
    out->base = "/";
  } else if (out->dirfd == AT_FDCWD) {
    out->base = *t.cwd;
  } else {
    out->base = DescribeFd(t, out->dirfd).path;
  }
}

void Tracer::StartEvent(const Tracee& t, const SyscallRow& row, const uint64_t* args,
                        SyscallEvent& ev) const {
  ev = SyscallEvent();
  ev.pid = t.tid;
  ev.tgid = t.tgid;
  ev.effect = row.effect;
  ev.syscall = row.name;
  if (row.flags != kNoArg) ev.flags = args[row.flags];
  if (row.mode != kNoArg) ev.mode = args[row.mode];
  if (row.length != kNoArg) ev.length = args[row.length];
  if (row.uid != kNoArg) ev.uid = static_cast<uint32_t>(args[row.uid]);
  if (row.gid != kNoArg) ev.gid = static_cast<uint32_t>(args[row.gid]);
}

bool Tracer::ReadPathArgs(Tracee& t, const SyscallRow& row, const uint64_t* args,
                          SyscallEvent& ev) {
  if (row.handler == Handler::kOpen && row.flags == kNoArg) {
    ev.flags = O_CREAT | O_WRONLY | O_TRUNC;  // creat()
  }
  if (row.handler == Handler::kOpenat2) {
    uint64_t how_flags = 0;  // struct open_how starts with the flags
    if (!ReadMemory(t.tid, args[2], &how_flags, sizeof(how_flags)).ok()) return false;
    ev.flags = how_flags;
  }
  if (row.handler == Handler::kFdOrPath && args[row.path] == 0) {
    // utimensat(fd, NULL, ...) is futimens(fd).
    ev.fd = DescribeFd(t, static_cast<int>(args[row.dirfd]));
  } else {
    PathArg path;
    if (!ReadPathArg(t, row.dirfd, row.path, Follows(row.follow, ev.flags), args, &path)) {
      return false;
    }
    if (path.path.empty() && (ev.flags & AT_EMPTY_PATH) != 0 && row.dirfd != kNoArg) {
      ev.fd = DescribeFd(t, path.dirfd);  // works on the descriptor itself
    } else {
      ev.path = std::move(path);
    }
  }
  if (row.path2 != kNoArg) {
    PathArg path2;
    if (!ReadPathArg(t, row.dirfd2, row.path2, false, args, &path2)) return false;
    ev.path2 = std::move(path2);
  }
  if (row.text != kNoArg) {
    absl::StatusOr<std::string> text = ReadString(t.tid, args[row.text]);
    if (text.ok()) ev.text = *std::move(text);
  }
  if (row.effect == Effect::kUnlink && (ev.flags & AT_REMOVEDIR) != 0) {
    ev.effect = Effect::kRmdir;
  }
  return true;
}

bool Tracer::HandleSyscall(Tracee& t, const SyscallRow& row, const uint64_t* args) {
  SyscallEvent& ev = t.event;
  StartEvent(t, row, args, ev);

  switch (row.handler) {
    case Handler::kOpen:
    case Handler::kOpenat2:
    case Handler::kPath:
    case Handler::kFdOrPath:
    case Handler::kChdir: {
      if (!ReadPathArgs(t, row, args, ev)) return false;
      t.report_at_exit = row.exit_stop;
      // Whether the redirector or a readlink fix needs the exit stop.
      bool exit_needed = false;
      if (redirector_ != nullptr && row.handler != Handler::kChdir) {
        exit_needed = ApplyRedirection(t, row);
        if (ev.effect == Effect::kReadlink && ev.path.has_value() &&
            absl::StartsWith(ev.path->path, "/proc/")) {
          t.fix_readlink = true;
          exit_needed = true;
        }
      }
      if (!row.exit_stop) {
        sink_->OnSyscall(ev);
        return exit_needed;
      }
      if (!exit_needed && ResultFromObserver(row, ev)) {
        t.result_from_observer = true;
        return false;
      }
      return true;
    }
    case Handler::kFd:
    case Handler::kFchdir:
      ev.fd = DescribeFd(t, static_cast<int>(args[row.fd]));
      if (row.text != kNoArg) {
        absl::StatusOr<std::string> text = ReadString(t.tid, args[row.text]);
        if (text.ok()) ev.text = *std::move(text);
      }
      if (row.exit_stop) return true;
      sink_->OnSyscall(ev);
      return false;
    case Handler::kList: {
      const int fd = static_cast<int>(args[row.fd]);
      ev.fd = DescribeFd(t, fd);
      // Only the first getdents of a listing is a new observation.
      if (!AtStartOfDirectory(t.tgid, fd)) return false;
      sink_->OnSyscall(ev);
      return false;
    }
    case Handler::kOpenByHandle:
      return true;
    case Handler::kExec: {
      PathArg path;
      const uint64_t flags = row.flags == kNoArg ? 0 : args[row.flags];
      if (!ReadPathArg(t, row.dirfd, row.path, Follows(row.follow, flags), args, &path)) {
        return false;
      }
      if (path.path.empty() && (flags & AT_EMPTY_PATH) != 0) {
        path.path = DescribeFd(t, path.dirfd).path;  // fexecve
        path.base = "/";
      }
      t.exec_path = std::move(path);
      const int argv_index = row.path + 1;
      absl::StatusOr<std::vector<std::string>> argv = ReadStringArray(t.tid, args[argv_index]);
      absl::StatusOr<std::vector<std::string>> env = ReadStringArray(t.tid, args[argv_index + 1]);
      t.exec_argv = argv.ok() ? *std::move(argv) : std::vector<std::string>();
      t.exec_env = env.ok() ? *std::move(env) : std::vector<std::string>();
      if (gate_ != nullptr && argv.ok() && env.ok()) {
        ExecRequest request{
            .pid = t.tid,
            .tgid = t.tgid,
            .path = &t.exec_path,
            .argv = &t.exec_argv,
            .env = &t.exec_env,
            .cwd = *t.cwd,
            .describe_fd =
                [this, tgid = t.tgid](int fd) {
                  std::optional<FdInfo> info = ProcFdInfo(tgid, fd);
                  if (!info.has_value() || info->cloexec) return std::optional<FdInfo>();
                  ProbeDrained(tgid, *info);
                  return info;
                },
            .copy_fd = [tgid = t.tgid](int fd) { return CopyFdFromProcess(tgid, fd); }};
        std::optional<int> status = gate_->BeforeExec(request);
        if (status.has_value() && ReplaceWithExit(t, *status)) {
          ++stats_.execs_skipped;
          t.exec_argv.clear();
          t.exec_env.clear();
          return false;
        }
      }
      return true;
    }
    case Handler::kNewFd:
      return true;
    case Handler::kClone: {
      // Clear CLONE_UNTRACED so the child is traced like any other.
      user_regs_struct regs;
      if (ptrace(PTRACE_GETREGS, t.tid, nullptr, &regs) != 0) return false;
      t.saved_flags = regs.rdi;
      regs.rdi &= ~static_cast<unsigned long long>(CLONE_UNTRACED);
      ptrace(PTRACE_SETREGS, t.tid, nullptr, &regs);
      t.restore_flags = true;
      return true;
    }
    case Handler::kClone3: {
      uint64_t flags = 0;
      if (!ReadMemory(t.tid, args[0], &flags, sizeof(flags)).ok()) return false;
      if ((flags & CLONE_UNTRACED) == 0) return false;
      const uint64_t cleared = flags & ~static_cast<uint64_t>(CLONE_UNTRACED);
      if (!WriteMemory(t.tid, args[0], &cleared, sizeof(cleared)).ok()) return false;
      t.saved_flags = flags;
      t.restore_flags = true;
      return true;
    }
    case Handler::kSeccomp:
      // Under --ptrace-only the program may have its listener, and the
      // calls its filter sends there are not seen (docs/language.md §4).
      if (use_listener_) FailCall(t, EBUSY);
      return false;
    case Handler::kNone:
    case Handler::kUnknown:
      return false;
  }
  return false;
}

void Tracer::OnSyscallExit(Tracee& t) {
  __ptrace_syscall_info info{};
  if (ptrace(PTRACE_GET_SYSCALL_INFO, t.tid, sizeof(info), &info) <= 0 ||
      info.op != PTRACE_SYSCALL_INFO_EXIT || t.pending == nullptr) {
    RestoreArgs(t);
    t.pending = nullptr;
    Resume(t.tid, false);
    return;
  }
  int64_t result = info.exit.rval;
  RestoreArgs(t);
  if (t.restore_flags) {
    t.restore_flags = false;
    if (t.pending->handler == Handler::kClone) {
      user_regs_struct regs;
      if (ptrace(PTRACE_GETREGS, t.tid, nullptr, &regs) == 0) {
        regs.rdi = t.saved_flags;
        ptrace(PTRACE_SETREGS, t.tid, nullptr, &regs);
      }
    } else {
      (void)WriteMemory(t.tid, t.args[0], &t.saved_flags, sizeof(t.saved_flags));
    }
  }
  const bool restarting = WillRestart(result);
  ExitReport report = ExitReport::kNone;
  ExecFailedEvent failed;
  if (!restarting) {
    if (t.fix_readlink) FixReadlinkResult(t, result);
    if (t.notify_redirector) redirector_->AfterSyscall(t.event, result);
    if (t.report_at_exit) report = FinishSyscall(t, result, &failed);
  }
  // A restarted call enters the filter again and is handled afresh.
  t.pending = nullptr;
  t.notify_redirector = false;
  t.fix_readlink = false;
  if (report == ExitReport::kNone) {
    Resume(t.tid, false);
    return;
  }
  if (report == ExitReport::kSyscall && !ReportableOnceResumed(t.event)) {
    DrainObserved();
    sink_->OnSyscall(t.event);
    Resume(t.tid, false);
    return;
  }
  // `t` stays in tracees_ meanwhile: only this thread removes tracees.
  ResumeThenDrain(t.tid, false);
  if (report == ExitReport::kSyscall) {
    sink_->OnSyscall(t.event);
  } else {
    sink_->OnExecFailed(failed);
  }
}

Tracer::ExitReport Tracer::FinishSyscall(Tracee& t, int64_t result, ExecFailedEvent* failed) {
  const SyscallRow& row = *t.pending;
  SyscallEvent& ev = t.event;
  ev.result = result;
  switch (row.handler) {
    case Handler::kOpen:
    case Handler::kOpenat2:
      if (result >= 0 && ev.path.has_value()) {
        FdInfo info;
        info.fd = static_cast<int>(result);
        info.path = DescriptorPath(ev.path->base, ev.path->path);
        info.kind = (ev.flags & O_DIRECTORY) != 0 ? FdKind::kDirectory : FdKind::kFile;
        const int mode = static_cast<int>(ev.flags & O_ACCMODE);
        info.readable = mode == O_RDONLY || mode == O_RDWR;
        info.writable = mode == O_WRONLY || mode == O_RDWR;
        info.cloexec = (ev.flags & O_CLOEXEC) != 0;
        info.target = ProcFdTarget(t.tgid, info.fd);
        t.fds->Set(std::move(info));
      }
      return ExitReport::kSyscall;
    case Handler::kOpenByHandle:
      if (result >= 0) {
        std::optional<FdInfo> info = ProcFdInfo(t.tgid, static_cast<int>(result));
        if (info.has_value()) {
          t.fds->Set(*info);
          PathArg path;
          path.path = info->path;
          path.base = "/";
          ev.path = std::move(path);
          ev.flags = t.args[2];
          return ExitReport::kSyscall;
        }
      }
      return ExitReport::kNone;
    case Handler::kExec:
      // Only failures get here; a success went through PTRACE_EVENT_EXEC.
      t.exec_argv.clear();
      t.exec_env.clear();
      if (result >= 0) return ExitReport::kNone;
      failed->pid = t.tid;
      failed->path = std::move(t.exec_path);
      failed->error = static_cast<int>(-result);
      return ExitReport::kExecFailed;
    case Handler::kChdir:
    case Handler::kFchdir:
      if (result == 0) *t.cwd = ReadProcLink(t.tgid, "cwd");
      return ExitReport::kSyscall;
    case Handler::kNewFd:
      if (result >= 0) {
        std::optional<FdInfo> info = ProcFdInfo(t.tgid, static_cast<int>(result));
        if (info.has_value()) t.fds->Set(*info);
      }
      return ExitReport::kNone;
    case Handler::kPath:
    case Handler::kFdOrPath:
    case Handler::kFd:
      return ExitReport::kSyscall;
    default:
      return ExitReport::kNone;
  }
}

std::optional<FdInfo> Tracer::ProcFdInfo(pid_t tgid, int fd) const {
  std::optional<FdInfo> info = FdInfoFromProc(tgid, fd);
  if (info.has_value() && redirector_ != nullptr && !info->path.empty()) {
    if (std::optional<std::string> logical = redirector_->Logical(info->path)) {
      info->path = *std::move(logical);
    }
  }
  return info;
}

void Tracer::SyncFds(FdTable& fds, pid_t pid, bool after_exec) const {
  fds.SyncWithProc(pid, after_exec);
  if (redirector_ == nullptr) return;
  fds.ForEach([this](FdInfo& info) {
    if (info.path.empty()) return;
    if (std::optional<std::string> logical = redirector_->Logical(info.path)) {
      info.path = *std::move(logical);
    }
  });
}

Tracer::Injection Tracer::InjectSyscall(Tracee& t, const uint64_t (&call)[7], int64_t* result) {
  user_regs_struct saved;
  if (ptrace(PTRACE_GETREGS, t.tid, nullptr, &saved) != 0) return Injection::kFailed;
  user_regs_struct regs = saved;
  regs.orig_rax = call[0];
  for (int i = 0; i < 6; ++i) *ArgRegister(regs, i) = call[i + 1];
  if (ptrace(PTRACE_SETREGS, t.tid, nullptr, &regs) != 0 ||
      ptrace(PTRACE_SYSCALL, t.tid, nullptr, nullptr) != 0) {
    return Injection::kFailed;
  }
  // The next stop of this thread is the call's exit: signals are delivered
  // only on the way back to user space, after it. Only death can come first.
  const pid_t tid = t.tid;
  int status = 0;
  pid_t got;
  do {
    got = waitpid(tid, &status, __WALL);
  } while (got < 0 && errno == EINTR);
  if (got == tid && WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_SECCOMP) {
    // The filter traps the call (seccomp() asking for a listener is): it is
    // ours, let it run.
    ++stats_.seccomp_stops;
    if (ptrace(PTRACE_SYSCALL, tid, nullptr, nullptr) == 0) {
      do {
        got = waitpid(tid, &status, __WALL);
      } while (got < 0 && errno == EINTR);
    }
  }
  if (got != tid || !WIFSTOPPED(status)) {
    if (got == tid) OnGone(tid, status);
    return Injection::kGone;
  }
  ++stats_.exit_stops;
  user_regs_struct after;
  const bool have = ptrace(PTRACE_GETREGS, tid, nullptr, &after) == 0;
  *result = have ? static_cast<int64_t>(after.rax) : -EIO;
  // Back to the original call, one instruction earlier, so it runs again.
  saved.rip -= kSyscallInsnLength;
  saved.rax = saved.orig_rax;
  ptrace(PTRACE_SETREGS, tid, nullptr, &saved);
  return Injection::kDone;
}

Tracer::Injection Tracer::InjectScratch(Tracee& t) {
  const uint64_t call[7] = {SYS_mmap,
                            0,
                            kScratchSize,
                            PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS,
                            static_cast<uint64_t>(-1),
                            0};
  int64_t address = -1;
  const Injection injected = InjectSyscall(t, call, &address);
  if (injected == Injection::kFailed) t.scratch_failed = true;
  if (injected != Injection::kDone) return injected;
  if (address < 0 && address > -4096) {
    t.scratch_failed = true;
    Warn(t.tid, "mmap", "no scratch memory for path rewriting: paths are not redirected");
  } else {
    t.scratch = static_cast<uint64_t>(address);
    ++stats_.scratch_mapped;
  }
  return Injection::kDone;
}

bool Tracer::WantsOwnListener(const Tracee& t) const {
  if (listener_program_.empty() || listeners_refused_ || t.has_listener || stopping_) return false;
  // The path the exec will look at, as the process gave it.
  const std::string path = JoinPath(t.exec_path.base, t.exec_path.path);
  return listener_policy_.WantsOwn(ExamineProgram(path), t.exec_argv, t.tgid == root_pid_);
}

Tracer::Injection Tracer::InjectListener(Tracee& t) {
  // The program goes on the process's stack, past the red zone that the
  // code around the stopped syscall may be using; the kernel copies it in.
  constexpr uint64_t kRedZone = 128;
  user_regs_struct regs;
  if (ptrace(PTRACE_GETREGS, t.tid, nullptr, &regs) != 0) return Injection::kFailed;
  const size_t program_bytes = listener_program_.size() * sizeof(sock_filter);
  const uint64_t program_at = (regs.rsp - kRedZone - program_bytes) & ~uint64_t{15};
  const uint64_t header_at = program_at - 16;
  struct {
    uint16_t len;
    uint8_t padding[6];
    uint64_t filter;
  } header = {
      .len = static_cast<uint16_t>(listener_program_.size()), .padding = {}, .filter = program_at};
  static_assert(sizeof(header) == sizeof(sock_fprog));
  if (!WriteMemory(t.tid, program_at, listener_program_.data(), program_bytes).ok() ||
      !WriteMemory(t.tid, header_at, &header, sizeof(header)).ok()) {
    return Injection::kFailed;  // no room below the stack pointer
  }
  const uint64_t call[7] = {
      SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, header_at, 0, 0, 0};
  int64_t fd = -1;
  const Injection injected = InjectSyscall(t, call, &fd);
  if (injected != Injection::kDone) return injected;
  if (fd < 0) {
    // EBUSY: a tool around dodo has a listener in the chain already; the
    // kernel allows one. Other errors: a kernel without listeners.
    listeners_refused_ = true;
    return Injection::kDone;  // the exec runs again, without a listener
  }
  // The descriptor is close-on-exec: the exec that runs next removes it
  // from the process, and dodo keeps its copy.
  absl::StatusOr<int> copy = CopyFdFromProcess(t.tgid, static_cast<int>(fd));
  if (!copy.ok() || !ServeListener(*copy)) {
    // Nobody would answer the process's lookups.
    if (copy.ok()) close(*copy);
    Warn(t.tid, "seccomp",
         absl::StrCat("cannot serve the process's seccomp listener: ",
                      copy.ok() ? "no thread" : copy.status().message()));
    stopping_ = true;
    KillAll();
    return Injection::kDone;
  }
  t.has_listener = true;
  ++stats_.listeners;
  return Injection::kDone;
}

bool Tracer::ApplyRedirection(Tracee& t, const SyscallRow& row) {
  Redirection redirection = redirector_->Redirect(t.event);
  t.notify_redirector = redirection.wants_result;
  bool rewrote = false;
  if (redirection.path.has_value() && row.path != kNoArg) {
    rewrote |= RewriteArg(t, 0, row.path, *redirection.path);
  }
  if (redirection.path2.has_value() && row.path2 != kNoArg) {
    rewrote |= RewriteArg(t, 1, row.path2, *redirection.path2);
  }
  return rewrote || redirection.wants_result;
}

bool Tracer::RewriteArg(Tracee& t, int slot, int8_t arg_index, const std::string& path) {
  if (t.scratch == 0 || path.size() >= kScratchSlot) {
    Warn(t.tid, t.event.syscall, absl::StrCat("cannot redirect to ", path));
    return false;
  }
  const uint64_t address = t.scratch + static_cast<uint64_t>(slot) * kScratchSlot;
  if (!WriteMemory(t.tid, address, path.c_str(), path.size() + 1).ok()) return false;
  user_regs_struct regs;
  if (ptrace(PTRACE_GETREGS, t.tid, nullptr, &regs) != 0) return false;
  unsigned long long* reg = ArgRegister(regs, arg_index);
  if (reg == nullptr) return false;
  t.original_arg[slot] = *reg;
  t.rewritten_arg[slot] = arg_index;
  *reg = address;
  if (ptrace(PTRACE_SETREGS, t.tid, nullptr, &regs) != 0) {
    t.rewritten_arg[slot] = -1;
    return false;
  }
  ++stats_.paths_rewritten;
  return true;
}

void Tracer::RestoreArgs(Tracee& t) {
  if (t.rewritten_arg[0] < 0 && t.rewritten_arg[1] < 0) return;
  user_regs_struct regs;
  if (ptrace(PTRACE_GETREGS, t.tid, nullptr, &regs) == 0) {
    for (int slot = 0; slot < 2; ++slot) {
      if (t.rewritten_arg[slot] < 0) continue;
      *ArgRegister(regs, t.rewritten_arg[slot]) = t.original_arg[slot];
    }
    ptrace(PTRACE_SETREGS, t.tid, nullptr, &regs);
  }
  t.rewritten_arg[0] = t.rewritten_arg[1] = -1;
}

void Tracer::FixReadlinkResult(Tracee& t, int64_t result) {
  if (result <= 0 || result > 4096 || t.pending == nullptr) return;
  const int8_t buffer_index = static_cast<int8_t>(t.pending->path + 1);
  const uint64_t buffer = t.args[buffer_index];
  const uint64_t size = t.args[buffer_index + 1];
  std::string text(static_cast<size_t>(result), '\0');
  if (!ReadMemory(t.tid, buffer, text.data(), text.size()).ok()) return;
  std::optional<std::string> logical = redirector_->Logical(text);
  if (!logical.has_value()) return;
  const size_t length = std::min<size_t>(logical->size(), size);
  if (!WriteMemory(t.tid, buffer, logical->data(), length).ok()) return;
  user_regs_struct regs;
  if (ptrace(PTRACE_GETREGS, t.tid, nullptr, &regs) == 0) {
    regs.rax = length;
    ptrace(PTRACE_SETREGS, t.tid, nullptr, &regs);
  }
}

ListenerAnswer Tracer::OnNotification(const seccomp_notif& request) {
  ++stats_.notifications;
  const SyscallRow* row = FindSyscall(static_cast<long>(request.data.nr));
  auto it = tracees_.find(static_cast<pid_t>(request.pid));
  // A thread the loop has not adopted cannot have been resumed yet, so this
  // is only a caller killed meanwhile: nothing to record.
  if (stopping_ || row == nullptr || !row->listener || it == tracees_.end()) return {};
  Tracee& t = *it->second;
  uint64_t args[6];
  for (int i = 0; i < 6; ++i) args[i] = request.data.args[i];
  SyscallEvent ev;
  StartEvent(t, *row, args, ev);
  if (!ReadPathArgs(t, *row, args, ev)) return {};  // the kernel will say EFAULT

  // Where a ptrace stop would rewrite the path, dodo runs the call itself on
  // the redirected path; the process's registers are never touched.
  std::optional<std::string> answer_on;
  bool logical = false;
  bool wants_result = false;
  if (redirector_ != nullptr && ev.path.has_value()) {
    Redirection redirection = redirector_->Redirect(ev);
    wants_result = redirection.wants_result;
    if (redirection.path.has_value()) {
      answer_on = *std::move(redirection.path);
      ++stats_.paths_rewritten;
    }
    const std::string& given = ev.path->path;
    if (ev.effect == Effect::kReadlink && absl::StartsWith(given, "/proc/")) {
      // readlink("/proc/self/fd/N") names the process's file: ask about its
      // own /proc entry, then show the path it opened, as FixReadlinkResult
      // does at an exit stop.
      std::string own = given;
      for (const auto& [alias, real] :
           {std::pair<std::string, std::string>{"/proc/self/", absl::StrCat("/proc/", t.tgid, "/")},
            {"/proc/thread-self/", absl::StrCat("/proc/", t.tgid, "/task/", t.tid, "/")}}) {
        if (absl::StartsWith(given, alias)) own = real + given.substr(alias.size());
      }
      if (!answer_on.has_value()) answer_on = own;
      logical = true;
    }
    if (wants_result && !answer_on.has_value() && !ev.path->base.empty()) {
      answer_on = JoinPath(ev.path->base, ev.path->path);
    }
  }
  sink_->OnSyscall(ev);
  if (!answer_on.has_value()) return {};
  ++stats_.answered;
  ListenerAnswer answer = AnswerOnPath(t, *row, args, *answer_on, logical);
  if (wants_result) redirector_->AfterSyscall(ev, answer.error != 0 ? -answer.error : answer.value);
  return answer;
}

ListenerAnswer Tracer::AnswerOnPath(Tracee& t, const SyscallRow& row, const uint64_t* args,
                                    const std::string& path, bool logical) {
  const char* name = path.c_str();
  union {
    struct stat st;
    struct statx stx;
    struct statfs fs;
  } out;
  size_t out_size = 0;  // bytes of `out` the call fills in
  uint64_t out_address = 0;
  std::string link;
  long rc = -1;
  switch (row.nr) {
    case SYS_stat:
    case SYS_lstat:
      rc = syscall(SYS_newfstatat, AT_FDCWD, name, &out.st,
                   row.nr == SYS_lstat ? AT_SYMLINK_NOFOLLOW : 0);
      out_size = sizeof(out.st);
      out_address = args[1];
      break;
    case SYS_newfstatat:
      rc = syscall(SYS_newfstatat, AT_FDCWD, name, &out.st, args[3]);
      out_size = sizeof(out.st);
      out_address = args[2];
      break;
    case SYS_statx:
      rc = syscall(SYS_statx, AT_FDCWD, name, args[2], args[3], &out.stx);
      out_size = sizeof(out.stx);
      out_address = args[4];
      break;
    case SYS_statfs:
      rc = syscall(SYS_statfs, name, &out.fs);
      out_size = sizeof(out.fs);
      out_address = args[1];
      break;
    case SYS_access:
      rc = syscall(SYS_faccessat, AT_FDCWD, name, args[1]);
      break;
    case SYS_faccessat:
      rc = syscall(SYS_faccessat, AT_FDCWD, name, args[2]);
      break;
    case SYS_faccessat2:
      rc = syscall(SYS_faccessat2, AT_FDCWD, name, args[2], args[3]);
      break;
    case SYS_open:
    case SYS_openat: {
      const int flags = static_cast<int>(args[row.flags]);
      const int fd = open(name, flags | O_CLOEXEC);
      if (fd < 0) return {.go_on = false, .error = errno};
      return {.go_on = false, .install_fd = fd, .install_cloexec = (flags & O_CLOEXEC) != 0};
    }
    case SYS_readlink:
    case SYS_readlinkat: {
      const int size = static_cast<int>(args[row.path + 2]);
      if (size <= 0) return {.go_on = false, .error = EINVAL};
      link.resize(std::min(size, 2 * PATH_MAX));
      rc = syscall(SYS_readlinkat, AT_FDCWD, name, link.data(), link.size());
      if (rc < 0) break;
      link.resize(static_cast<size_t>(rc));
      if (logical) {
        if (std::optional<std::string> shown = redirector_->Logical(link)) {
          link = shown->substr(0, static_cast<size_t>(size));
        }
      }
      rc = static_cast<long>(link.size());
      out_address = args[row.path + 1];
      break;
    }
    default:
      return {};  // not a row dodo knows how to answer: let it run
  }
  if (rc < 0) return {.go_on = false, .error = errno};
  const void* data = out_size != 0 ? static_cast<const void*>(&out) : link.data();
  const size_t size = out_size != 0 ? out_size : link.size();
  if (size != 0 && !WriteMemory(t.tid, out_address, data, size).ok()) {
    return {.go_on = false, .error = EFAULT};
  }
  return {.go_on = false, .value = rc};
}

}  // namespace dodo::tracer
