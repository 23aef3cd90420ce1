#include "tracer/bpf_observer.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tracer/syscall_table.h"

namespace dodo::tracer {
namespace {

// A record: tid, tgid, syscall number, the length probe_read_user_str
// returned (with the NUL, or -errno), the call's arguments, its result, then
// the path. Records are as long as their path: most take about 150 bytes.
struct RecordHeader {
  uint32_t tid;
  uint32_t tgid;
  int32_t nr;
  int32_t path_length;
  uint64_t args[6];
  int64_t result;
};
// Room for a path of PATH_MAX bytes with its NUL and one byte more: a path
// that fills it is too long, and the kernel fails the call.
constexpr int kPathBuffer = PATH_MAX + 1;
constexpr int kRecordSize = sizeof(RecordHeader) + kPathBuffer;
// 8 MiB: about 50,000 records. The program asks for a wake-up of the drain
// thread once half of it is used.
constexpr uint32_t kRingSize = 1u << 23;
constexpr int kMaxWatched = 1 << 16;
// Threads between the entry and the exit of an observed call at once.
constexpr int kMaxInFlight = 1 << 13;

// The observed syscalls: their tracepoints, and the flags that leave a call
// to the seccomp filter instead (open flags of opens that write, create or
// list; AT_EMPTY_PATH of an fstat, which the filter allows untraced).
struct Observed {
  long nr;
  const char* tracepoint;  // sys_enter_X and sys_exit_X
  uint64_t unobserved_flags;
  // Whether a call with unobserved flags (which the filter traps) still gets
  // a record at its exit: its result, without the path.
  bool reports_trapped_results = false;
};
constexpr Observed kObserved[] = {
    {SYS_open, "open", kOpenChangesOrLists, true},
    {SYS_openat, "openat", kOpenChangesOrLists, true},
    {SYS_stat, "newstat", 0},
    {SYS_lstat, "newlstat", 0},
    {SYS_newfstatat, "newfstatat", AT_EMPTY_PATH},
    {SYS_statx, "statx", AT_EMPTY_PATH},
    {SYS_statfs, "statfs", 0},
    {SYS_access, "access", 0},
    {SYS_faccessat, "faccessat", 0},
    {SYS_faccessat2, "faccessat2", 0},
    {SYS_readlink, "readlink", 0},
    {SYS_readlinkat, "readlinkat", 0},
};

const Observed* FindObserved(long nr) {
  for (const Observed& observed : kObserved) {
    if (observed.nr == nr) return &observed;
  }
  return nullptr;
}

long Bpf(int cmd, bpf_attr* attr) { return syscall(SYS_bpf, cmd, attr, sizeof(*attr)); }

absl::Status Errno(const std::string& what) {
  const int saved = errno;
  std::string message = absl::StrCat(what, ": ", strerror(saved));
  if (saved == EPERM || saved == EACCES) return absl::PermissionDeniedError(message);
  return absl::UnavailableError(message);
}

// eBPF instructions, spelled out; linux/bpf.h has the encoding but no
// constructors for user space.
bpf_insn Insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn insn{};
  insn.code = code;
  insn.dst_reg = dst;
  insn.src_reg = src;
  insn.off = off;
  insn.imm = imm;
  return insn;
}
bpf_insn Mov(int dst, int src) { return Insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0); }
bpf_insn MovImm(int dst, int32_t imm) { return Insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm); }
bpf_insn AddImm(int dst, int32_t imm) { return Insn(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm); }
bpf_insn ShiftRight(int dst, int32_t imm) {
  return Insn(BPF_ALU64 | BPF_RSH | BPF_K, dst, 0, 0, imm);
}
bpf_insn Call(int helper) { return Insn(BPF_JMP | BPF_CALL, 0, 0, 0, helper); }
bpf_insn Exit() { return Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }
bpf_insn JumpIf(uint8_t op, int dst, int32_t imm, int16_t off) {
  return Insn(BPF_JMP | op | BPF_K, dst, 0, off, imm);
}
bpf_insn Store32(int dst, int16_t off, int src) {
  return Insn(BPF_STX | BPF_MEM | BPF_W, dst, src, off, 0);
}
bpf_insn Store64(int dst, int16_t off, int src) {
  return Insn(BPF_STX | BPF_MEM | BPF_DW, dst, src, off, 0);
}
bpf_insn Store64Imm(int dst, int16_t off, int32_t imm) {
  return Insn(BPF_ST | BPF_MEM | BPF_DW, dst, 0, off, imm);
}
bpf_insn Store32Imm(int dst, int16_t off, int32_t imm) {
  return Insn(BPF_ST | BPF_MEM | BPF_W, dst, 0, off, imm);
}
bpf_insn AndImm(int dst, int32_t imm) { return Insn(BPF_ALU64 | BPF_AND | BPF_K, dst, 0, 0, imm); }
bpf_insn Load64(int dst, int src, int16_t off) {
  return Insn(BPF_LDX | BPF_MEM | BPF_DW, dst, src, off, 0);
}
bpf_insn AtomicAdd32(int dst, int16_t off, int src) {
  return Insn(BPF_STX | BPF_ATOMIC | BPF_W, dst, src, off, BPF_ADD);
}
void LoadMap(std::vector<bpf_insn>& program, int dst, int map_fd) {
  program.push_back(Insn(BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, map_fd));
  program.push_back(Insn(0, 0, 0, 0, 0));
}
// Calls map helper `helper` (lookup, update, delete) on map `map_fd` with
// the key at r10 + `key`; r3 and r4, when the helper takes them, are set
// before. The result is in r0; r1-r5 are clobbered.
void CallOnMap(std::vector<bpf_insn>& p, int helper, int map_fd, int16_t key) {
  LoadMap(p, 1, map_fd);
  p.push_back(Mov(2, 10));
  p.push_back(AddImm(2, key));
  p.push_back(Call(helper));
}

// Syscall tracepoints hand the program a record whose fields start at byte
// 8: the syscall number (4 bytes, then padding), then at byte 16 the
// arguments, 8 bytes each, at entry, or the result at exit (tracefs's format
// files for sys_enter_* and sys_exit_*).
constexpr int16_t kNrOffset = 8;
constexpr int16_t kArgOffset = 16;
constexpr int16_t kResultOffset = 16;

// Adds one to the lost count of the process whose tgid is in r1's upper half
// (r1 is pid_tgid); clobbers r0-r5.
void CountLost(std::vector<bpf_insn>& p, int watch_fd) {
  p.push_back(ShiftRight(1, 32));
  p.push_back(Store32(10, -36, 1));
  CallOnMap(p, BPF_FUNC_map_lookup_elem, watch_fd, -36);
  p.push_back(JumpIf(BPF_JEQ, 0, 0, 2));
  p.push_back(MovImm(1, 1));
  p.push_back(AtomicAdd32(0, 0, 1));
}

// The kept arguments of a call between its entry and exit: the path pointer,
// then the six arguments.
constexpr int kKeptWords = 7;

// At entry, a watched thread's arguments are kept, keyed by pid_tgid: the
// path is read at exit, when the kernel has read it and its page is sure to
// be there (at entry a string in a page not yet touched since fork or exec
// cannot be read, since the program may not fault). A call with one of the
// `observed.unobserved_flags` is the seccomp filter's: left alone, or, if
// the tracer takes its result from here, kept with no path.
// r6 context, r7 pid_tgid.
std::vector<bpf_insn> EntryProgram(int watch_fd, int pending_fd, const Observed& observed) {
  const SyscallRow& row = *FindSyscall(observed.nr);
  const int args = 1 + std::max({row.path, row.dirfd, row.flags, row.mode});
  constexpr int16_t kKept = -16 - 8 * kKeptWords;
  std::vector<bpf_insn> p;
  std::vector<size_t> to_out;  // jumps to the exit
  p.push_back(Mov(6, 1));
  p.push_back(Call(BPF_FUNC_get_current_pid_tgid));
  p.push_back(Mov(7, 0));
  p.push_back(Mov(1, 0));
  p.push_back(ShiftRight(1, 32));
  p.push_back(Store32(10, -4, 1));  // key: tgid
  CallOnMap(p, BPF_FUNC_map_lookup_elem, watch_fd, -4);
  to_out.push_back(p.size());
  p.push_back(JumpIf(BPF_JEQ, 0, 0, 0));
  // r1: the path pointer kept, or 0 for a trapped call whose result alone
  // is wanted.
  p.push_back(Load64(1, 6, static_cast<int16_t>(kArgOffset + 8 * row.path)));
  if (observed.unobserved_flags != 0) {
    p.push_back(Load64(2, 6, static_cast<int16_t>(kArgOffset + 8 * row.flags)));
    p.push_back(AndImm(2, static_cast<int32_t>(observed.unobserved_flags)));
    if (observed.reports_trapped_results) {
      p.push_back(JumpIf(BPF_JEQ, 2, 0, 1));
      p.push_back(MovImm(1, 0));
    } else {
      to_out.push_back(p.size());
      p.push_back(JumpIf(BPF_JNE, 2, 0, 0));
    }
  }
  p.push_back(Store64(10, -16, 7));  // key: pid_tgid
  p.push_back(Store64(10, kKept, 1));
  for (int i = 0; i < 6; ++i) {
    const auto slot = static_cast<int16_t>(kKept + 8 * (i + 1));
    if (i < args) {
      p.push_back(Load64(1, 6, static_cast<int16_t>(kArgOffset + 8 * i)));
      p.push_back(Store64(10, slot, 1));
    } else {
      p.push_back(Store64Imm(10, slot, 0));
    }
  }
  p.push_back(Mov(3, 10));
  p.push_back(AddImm(3, kKept));
  p.push_back(MovImm(4, BPF_ANY));
  CallOnMap(p, BPF_FUNC_map_update_elem, pending_fd, -16);
  to_out.push_back(p.size());
  p.push_back(JumpIf(BPF_JEQ, 0, 0, 0));
  p.push_back(Mov(1, 7));
  CountLost(p, watch_fd);
  const size_t out = p.size();
  p.push_back(MovImm(0, 0));
  p.push_back(Exit());
  for (size_t jump : to_out) p[jump].off = static_cast<int16_t>(out - jump - 1);
  return p;
}

// At exit (one program for every observed syscall): the kept arguments, the
// path and the result are put together in a per-CPU scratch record, and as
// much of it as the path needs goes to the ring. r6 context, r7 pid_tgid,
// r8 the kept arguments, then the record's size, r9 the record.
std::vector<bpf_insn> ExitProgram(int watch_fd, int pending_fd, int scratch_fd, int ring_fd) {
  std::vector<bpf_insn> p;
  p.push_back(Mov(6, 1));
  p.push_back(Call(BPF_FUNC_get_current_pid_tgid));
  p.push_back(Mov(7, 0));
  p.push_back(Store64(10, -8, 7));
  CallOnMap(p, BPF_FUNC_map_lookup_elem, pending_fd, -8);
  const size_t not_kept = p.size();
  p.push_back(JumpIf(BPF_JEQ, 0, 0, 0));
  p.push_back(Mov(8, 0));
  p.push_back(Store32Imm(10, -12, 0));
  CallOnMap(p, BPF_FUNC_map_lookup_elem, scratch_fd, -12);
  const size_t no_scratch = p.size();
  p.push_back(JumpIf(BPF_JEQ, 0, 0, 0));
  p.push_back(Mov(9, 0));
  p.push_back(Store32(9, offsetof(RecordHeader, tid), 7));
  p.push_back(Mov(1, 7));
  p.push_back(ShiftRight(1, 32));
  p.push_back(Store32(9, offsetof(RecordHeader, tgid), 1));
  p.push_back(Insn(BPF_LDX | BPF_MEM | BPF_W, 1, 6, kNrOffset, 0));
  p.push_back(Store32(9, offsetof(RecordHeader, nr), 1));
  for (int i = 0; i < 6; ++i) {
    p.push_back(Load64(1, 8, static_cast<int16_t>(8 * (i + 1))));
    p.push_back(Store64(9, static_cast<int16_t>(offsetof(RecordHeader, args) + 8 * i), 1));
  }
  p.push_back(Load64(1, 6, kResultOffset));
  p.push_back(Store64(9, offsetof(RecordHeader, result), 1));
  // No path kept: a trapped call's result, recorded with a path length of 0
  // (a path read counts its NUL, a failed read is negative).
  p.push_back(Load64(3, 8, 0));
  p.push_back(MovImm(0, 0));
  const size_t result_only = p.size();
  p.push_back(JumpIf(BPF_JEQ, 3, 0, 0));
  p.push_back(Mov(1, 9));
  p.push_back(AddImm(1, sizeof(RecordHeader)));
  p.push_back(MovImm(2, kPathBuffer));
  p.push_back(Call(BPF_FUNC_probe_read_user_str));
  p[result_only].off = static_cast<int16_t>(p.size() - result_only - 1);
  p.push_back(Store32(9, offsetof(RecordHeader, path_length), 0));
  // The record's size: the header and the path read, if any, within bounds
  // the verifier can see.
  p.push_back(JumpIf(BPF_JSGT, 0, 0, 1));
  p.push_back(MovImm(0, 0));
  p.push_back(JumpIf(BPF_JLE, 0, kPathBuffer, 1));
  p.push_back(MovImm(0, kPathBuffer));
  p.push_back(Mov(8, 0));
  p.push_back(AddImm(8, sizeof(RecordHeader)));
  // Wake the drain thread only when the ring is half full: the tracer
  // drains at every stop anyway, and a wake-up per record would cost what
  // the listener does.
  LoadMap(p, 1, ring_fd);
  p.push_back(MovImm(2, BPF_RB_AVAIL_DATA));
  p.push_back(Call(BPF_FUNC_ringbuf_query));
  p.push_back(MovImm(4, BPF_RB_NO_WAKEUP));
  p.push_back(JumpIf(BPF_JLE, 0, kRingSize / 2, 1));
  p.push_back(MovImm(4, BPF_RB_FORCE_WAKEUP));
  LoadMap(p, 1, ring_fd);
  p.push_back(Mov(2, 9));
  p.push_back(Mov(3, 8));
  p.push_back(Call(BPF_FUNC_ringbuf_output));
  const size_t written = p.size();
  p.push_back(JumpIf(BPF_JEQ, 0, 0, 0));
  // Full: count the loss against the process.
  p.push_back(Mov(1, 7));
  CountLost(p, watch_fd);
  const size_t forget = p.size();
  p[written].off = static_cast<int16_t>(forget - written - 1);
  p[no_scratch].off = static_cast<int16_t>(forget - no_scratch - 1);
  CallOnMap(p, BPF_FUNC_map_delete_elem, pending_fd, -8);
  const size_t out = p.size();
  p.push_back(MovImm(0, 0));
  p.push_back(Exit());
  p[not_kept].off = static_cast<int16_t>(out - not_kept - 1);
  return p;
}

constexpr const char* kTracefsRoots[] = {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"};

// Reads a tracepoint's id from `path` with system calls only: it runs in
// the child below too. -1 when there is none.
int ReadTracepointId(const char* path) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char text[32];
  const ssize_t n = read(fd, text, sizeof(text));
  close(fd);
  int id = 0;
  ssize_t digits = 0;
  while (digits < n && text[digits] >= '0' && text[digits] <= '9' && id < 100'000'000) {
    id = id * 10 + (text[digits++] - '0');
  }
  return digits > 0 ? id : -1;
}

struct PrivateLookup {
  const std::vector<std::string>* paths;
  std::vector<int>* ids;
  int error = 0;
};

// Runs in a child that shares dodo's memory and has a mount namespace of its
// own: mounts tracefs there and reads the ids into the parent's vector.
int ReadIdsFromPrivateTracefs(void* arg) {
  auto* lookup = static_cast<PrivateLookup*>(arg);
  // Keep the mount from propagating back to the namespace it was copied from.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      mount("tracefs", kTracefsRoots[0], "tracefs", 0, nullptr) != 0) {
    lookup->error = errno;
    return 1;
  }
  for (size_t i = 0; i < lookup->paths->size(); ++i) {
    (*lookup->ids)[i] = ReadTracepointId((*lookup->paths)[i].c_str());
  }
  return 0;
}

// The ids of the syscall tracepoints `names` (sys_enter_X, sys_exit_X).
// Machines that boot without tracefs mounted are common (minimal VMs,
// containers); there a short-lived child mounts it in a mount namespace of
// its own, so dodo's lookup leaves the system's mounts as they were.
absl::StatusOr<std::vector<int>> TracepointIds(const std::vector<std::string>& names) {
  auto missing = [](const std::vector<int>& ids) {
    return std::find(ids.begin(), ids.end(), -1) != ids.end();
  };
  std::vector<int> ids(names.size(), -1);
  for (const char* root : kTracefsRoots) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (ids[i] < 0) {
        ids[i] = ReadTracepointId(absl::StrCat(root, "/events/syscalls/", names[i], "/id").c_str());
      }
    }
    if (!missing(ids)) return ids;
  }
  std::string mounted_here = "tracefs is mounted";
  if (std::all_of(ids.begin(), ids.end(), [](int id) { return id < 0; })) {
    std::vector<std::string> paths;
    for (const std::string& name : names) {
      paths.push_back(absl::StrCat(kTracefsRoots[0], "/events/syscalls/", name, "/id"));
    }
    PrivateLookup lookup{&paths, &ids};
    // CLONE_VM|CLONE_VFORK: the child writes into `ids` and the parent
    // waits for it, without copying dodo's page tables.
    std::vector<char> stack(64 * 1024);
    const pid_t child = clone(ReadIdsFromPrivateTracefs, stack.data() + stack.size(),
                              CLONE_VM | CLONE_VFORK | CLONE_NEWNS | SIGCHLD, &lookup);
    if (child < 0) {
      mounted_here = absl::StrCat("tracefs is not mounted, and no mount namespace to mount it in (",
                                  strerror(errno), ")");
    } else {
      int status = 0;
      while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
      }
      if (lookup.error != 0) {
        mounted_here = absl::StrCat("tracefs is not mounted, and mounting it failed (",
                                    strerror(lookup.error), ")");
      } else {
        mounted_here = "tracefs had to be mounted";
      }
    }
    if (!missing(ids)) return ids;
  }
  const size_t first_missing = std::find(ids.begin(), ids.end(), -1) - ids.begin();
  return absl::UnavailableError(absl::StrCat("no tracepoint syscalls/", names[first_missing], " (",
                                             mounted_here, ", at ", kTracefsRoots[0], ")"));
}

}  // namespace

bool BpfObserver::Observes(long nr) { return FindObserved(nr) != nullptr; }

uint64_t BpfObserver::UnobservedFlags(long nr) {
  const Observed* observed = FindObserved(nr);
  return observed == nullptr ? 0 : observed->unobserved_flags;
}

bool BpfObserver::ReportsTrappedResults(long nr) {
  const Observed* observed = FindObserved(nr);
  return observed != nullptr && observed->reports_trapped_results;
}

absl::StatusOr<std::unique_ptr<BpfObserver>> BpfObserver::Start() {
  std::unique_ptr<BpfObserver> observer(new BpfObserver());  // private constructor
  bpf_attr attr{};
  attr.map_type = BPF_MAP_TYPE_HASH;
  attr.key_size = sizeof(uint32_t);
  attr.value_size = sizeof(uint32_t);
  attr.max_entries = kMaxWatched;
  attr.map_flags = BPF_F_NO_PREALLOC;
  observer->watch_fd_ = static_cast<int>(Bpf(BPF_MAP_CREATE, &attr));
  if (observer->watch_fd_ < 0) return Errno("bpf(BPF_MAP_CREATE)");
  attr = {};
  attr.map_type = BPF_MAP_TYPE_RINGBUF;
  attr.max_entries = kRingSize;
  observer->ring_fd_ = static_cast<int>(Bpf(BPF_MAP_CREATE, &attr));
  if (observer->ring_fd_ < 0) return Errno("bpf(BPF_MAP_CREATE, ringbuf)");
  attr = {};
  attr.map_type = BPF_MAP_TYPE_HASH;
  attr.key_size = sizeof(uint64_t);
  attr.value_size = kKeptWords * sizeof(uint64_t);
  attr.max_entries = kMaxInFlight;
  observer->pending_fd_ = static_cast<int>(Bpf(BPF_MAP_CREATE, &attr));
  if (observer->pending_fd_ < 0) return Errno("bpf(BPF_MAP_CREATE)");
  attr = {};
  attr.map_type = BPF_MAP_TYPE_PERCPU_ARRAY;
  attr.key_size = sizeof(uint32_t);
  attr.value_size = kRecordSize;
  attr.max_entries = 1;
  observer->scratch_fd_ = static_cast<int>(Bpf(BPF_MAP_CREATE, &attr));
  if (observer->scratch_fd_ < 0) return Errno("bpf(BPF_MAP_CREATE, percpu array)");

  observer->page_size_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* consumer = mmap(nullptr, observer->page_size_, PROT_READ | PROT_WRITE, MAP_SHARED,
                        observer->ring_fd_, 0);
  if (consumer == MAP_FAILED) return Errno("mmap of the ring buffer");
  observer->consumer_page_ = consumer;
  // The data follows the producer page, mapped twice so that a record
  // wrapping around the end reads as one piece.
  void* producer = mmap(nullptr, observer->page_size_ + 2 * size_t{kRingSize}, PROT_READ,
                        MAP_SHARED, observer->ring_fd_, static_cast<off_t>(observer->page_size_));
  if (producer == MAP_FAILED) return Errno("mmap of the ring buffer");
  observer->producer_pages_ = producer;

  if (absl::Status attached = observer->Attach(); !attached.ok()) return attached;
  if (absl::Status tested = observer->SelfTest(); !tested.ok()) return tested;
  return observer;
}

absl::StatusOr<int> LoadTracepointProgram(const std::vector<bpf_insn>& program) {
  bpf_attr attr{};
  attr.prog_type = BPF_PROG_TYPE_TRACEPOINT;
  attr.insns = reinterpret_cast<uint64_t>(program.data());
  attr.insn_cnt = static_cast<uint32_t>(program.size());
  // probe_read_user_str is for GPL-compatible programs.
  attr.license = reinterpret_cast<uint64_t>("Dual MIT/GPL");
  // No log first: with one, the verifier took three times as long over
  // these programs (4 ms against 1.3 ms a run, here), which every run
  // paid. A refusal loads again with one, to say why.
  int fd = static_cast<int>(Bpf(BPF_PROG_LOAD, &attr));
  if (fd >= 0) return fd;
  // The verifier refuses with EACCES (a bad access, an unset register) or
  // EINVAL; missing privileges give EPERM.
  auto refused = [] { return errno == EACCES || errno == EINVAL; };
  if (!refused()) return Errno("bpf(BPF_PROG_LOAD)");
  std::vector<char> log(1 << 16);
  attr.log_buf = reinterpret_cast<uint64_t>(log.data());
  attr.log_size = static_cast<uint32_t>(log.size());
  attr.log_level = 1;
  fd = static_cast<int>(Bpf(BPF_PROG_LOAD, &attr));
  if (fd >= 0) return fd;  // refused without a log, taken with one
  absl::Status status = Errno("bpf(BPF_PROG_LOAD)");
  if (!refused() || log[0] == '\0') return status;
  // The verifier's last line says why, unless the kernel follows it with
  // its counts ("processed 1 insns (limit 1000000) ...").
  std::vector<std::string> lines = absl::StrSplit(log.data(), '\n', absl::SkipEmpty());
  while (lines.size() > 1 && lines.back().starts_with("processed ")) lines.pop_back();
  return absl::InternalError(
      absl::StrCat("the eBPF verifier refused the program: ",
                   lines.empty() ? std::string("(no reason given)") : lines.back()));
}

absl::StatusOr<int> BpfObserver::Load(const std::vector<bpf_insn>& program) {
  absl::StatusOr<int> fd = LoadTracepointProgram(program);
  if (fd.ok()) program_fds_.push_back(*fd);
  return fd;
}

absl::Status BpfObserver::AttachTo(int tracepoint_id, int program_fd) {
  perf_event_attr event{};
  event.type = PERF_TYPE_TRACEPOINT;
  event.size = sizeof(event);
  event.config = static_cast<uint64_t>(tracepoint_id);
  event.sample_period = 1;
  // A tracepoint's program runs on every CPU whichever CPU its event is
  // opened on.
  const int fd =
      static_cast<int>(syscall(SYS_perf_event_open, &event, -1, 0, -1, PERF_FLAG_FD_CLOEXEC));
  if (fd < 0) return Errno("perf_event_open of a syscall tracepoint");
  event_fds_.push_back(fd);
  if (ioctl(fd, PERF_EVENT_IOC_SET_BPF, program_fd) != 0) return Errno("PERF_EVENT_IOC_SET_BPF");
  if (ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) != 0) return Errno("PERF_EVENT_IOC_ENABLE");
  return absl::OkStatus();
}

absl::Status BpfObserver::Attach() {
  absl::StatusOr<int> exit_program =
      Load(ExitProgram(watch_fd_, pending_fd_, scratch_fd_, ring_fd_));
  if (!exit_program.ok()) return exit_program.status();
  std::vector<std::string> tracepoints;
  for (const Observed& observed : kObserved) {
    tracepoints.push_back(absl::StrCat("sys_exit_", observed.tracepoint));
    tracepoints.push_back(absl::StrCat("sys_enter_", observed.tracepoint));
  }
  absl::StatusOr<std::vector<int>> ids = TracepointIds(tracepoints);
  if (!ids.ok()) return ids.status();
  size_t next_id = 0;
  for (const Observed& observed : kObserved) {
    absl::StatusOr<int> entry_program = Load(EntryProgram(watch_fd_, pending_fd_, observed));
    if (!entry_program.ok()) return entry_program.status();
    // The exit program first: an entry seen without it would leave its
    // arguments behind.
    if (absl::Status status = AttachTo((*ids)[next_id++], *exit_program); !status.ok()) {
      return status;
    }
    if (absl::Status status = AttachTo((*ids)[next_id++], *entry_program); !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

absl::Status BpfObserver::SelfTest() {
  const pid_t self = getpid();
  if (absl::Status watched = Watch(self); !watched.ok()) return watched;
  const std::string probe = absl::StrCat("/proc/self/dodo-bpf-self-test-", self);
  char buffer[1];
  (void)!readlinkat(AT_FDCWD, probe.c_str(), buffer, sizeof(buffer));
  const pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  bool seen = false;
  Drain([&](const ObservedCall& call) {
    seen = seen || (call.tid == tid && call.tgid == self && call.nr == SYS_readlinkat &&
                    call.path == probe);
  });
  Unwatch(self);
  if (!seen) {
    return absl::UnavailableError(
        "the readlink tracepoint did not report dodo's own call (another pid namespace?)");
  }
  return absl::OkStatus();
}

BpfObserver::~BpfObserver() {
  // Detaching a program from a syscall tracepoint waits for RCU grace
  // periods: 70-85 ms per event on the VM of the README's figures, about 2 s for
  // the 24, which every dodo trace would add to its run. The last close
  // pays it, so a grandchild that holds nothing else keeps the events until
  // this process has closed its copies (the pipe's end), then closes them
  // after dodo has gone. It is orphaned at once: no one waits for it.
  // fork() in a process with threads: the children call only
  // async-signal-safe functions.
  int done[2] = {-1, -1};
  if (!event_fds_.empty() && pipe2(done, O_CLOEXEC) == 0) {
    std::vector<int> kept = event_fds_;
    kept.push_back(done[0]);
    std::sort(kept.begin(), kept.end());
    const pid_t closer = fork();
    if (closer == 0) {
      if (fork() != 0) _exit(0);
      unsigned first = 0;
      for (int fd : kept) {
        if (static_cast<unsigned>(fd) > first) close_range(first, static_cast<unsigned>(fd) - 1, 0);
        first = static_cast<unsigned>(fd) + 1;
      }
      close_range(first, ~0u, 0);
      char byte;
      while (read(done[0], &byte, 1) < 0 && errno == EINTR) {
      }
      for (int fd : event_fds_) close(fd);
      _exit(0);
    }
    close(done[0]);
    if (closer > 0) waitpid(closer, nullptr, 0);
  }
  for (int fd : event_fds_) close(fd);
  if (done[1] >= 0) close(done[1]);  // now the closer may go on
  for (int fd : program_fds_) close(fd);
  if (pending_fd_ >= 0) close(pending_fd_);
  if (scratch_fd_ >= 0) close(scratch_fd_);
  if (producer_pages_ != nullptr) munmap(producer_pages_, page_size_ + 2 * size_t{kRingSize});
  if (consumer_page_ != nullptr) munmap(consumer_page_, page_size_);
  if (ring_fd_ >= 0) close(ring_fd_);
  if (watch_fd_ >= 0) close(watch_fd_);
}

absl::Status BpfObserver::Watch(pid_t tgid) {
  uint32_t key = static_cast<uint32_t>(tgid);
  uint32_t value = 1;
  bpf_attr attr{};
  attr.map_fd = static_cast<uint32_t>(watch_fd_);
  attr.key = reinterpret_cast<uint64_t>(&key);
  attr.value = reinterpret_cast<uint64_t>(&value);
  attr.flags = BPF_ANY;
  if (Bpf(BPF_MAP_UPDATE_ELEM, &attr) != 0) return Errno("bpf(BPF_MAP_UPDATE_ELEM)");
  return absl::OkStatus();
}

uint32_t BpfObserver::Unwatch(pid_t tgid) {
  uint32_t key = static_cast<uint32_t>(tgid);
  uint32_t value = 1;
  bpf_attr attr{};
  attr.map_fd = static_cast<uint32_t>(watch_fd_);
  attr.key = reinterpret_cast<uint64_t>(&key);
  attr.value = reinterpret_cast<uint64_t>(&value);
  if (Bpf(BPF_MAP_LOOKUP_ELEM, &attr) != 0) return 0;
  attr.value = 0;
  Bpf(BPF_MAP_DELETE_ELEM, &attr);
  return value - 1;
}

bool BpfObserver::HasRecords() const {
  return static_cast<std::atomic<uint64_t>*>(consumer_page_)->load(std::memory_order_acquire) !=
         WrittenUpTo();
}

uint64_t BpfObserver::WrittenUpTo() const {
  return static_cast<std::atomic<uint64_t>*>(producer_pages_)->load(std::memory_order_acquire);
}

size_t BpfObserver::Drain(absl::FunctionRef<void(const ObservedCall&)> on_call, uint64_t up_to) {
  auto* consumer = static_cast<std::atomic<uint64_t>*>(consumer_page_);
  const char* data = static_cast<const char*>(producer_pages_) + page_size_;
  uint64_t position = consumer->load(std::memory_order_acquire);
  const uint64_t end = std::min(WrittenUpTo(), up_to);
  size_t count = 0;
  while (position < end) {
    const char* record = data + (position & (kRingSize - 1));
    const uint32_t length =
        reinterpret_cast<const std::atomic<uint32_t>*>(record)->load(std::memory_order_acquire);
    if ((length & BPF_RINGBUF_BUSY_BIT) != 0) break;  // still being written
    const uint32_t size = length & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
    if ((length & BPF_RINGBUF_DISCARD_BIT) == 0 && size >= sizeof(RecordHeader)) {
      RecordHeader header;
      memcpy(&header, record + BPF_RINGBUF_HDR_SZ, sizeof(header));
      ObservedCall call;
      call.tid = static_cast<pid_t>(header.tid);
      call.tgid = static_cast<pid_t>(header.tgid);
      call.nr = header.nr;
      std::copy(std::begin(header.args), std::end(header.args), call.args);
      call.result = header.result;
      call.result_only = header.path_length == 0;
      call.readable = header.path_length > 0 && header.path_length <= PATH_MAX;
      if (call.readable) {
        call.path = std::string_view(record + BPF_RINGBUF_HDR_SZ + sizeof(header),
                                     static_cast<size_t>(header.path_length - 1));
      }
      on_call(call);
      ++count;
    }
    position += (size + BPF_RINGBUF_HDR_SZ + 7) & ~uint64_t{7};
    consumer->store(position, std::memory_order_release);
  }
  return count;
}

}  // namespace dodo::tracer
