// The seccomp listener: the other way a trapped syscall reaches dodo. A
// filter rule with SECCOMP_RET_USER_NOTIF blocks the calling thread in the
// kernel and queues a notification on the listener descriptor; a thread of
// dodo's receives it, decides, and answers: let the call go on, or give it a
// result. No ptrace stop is involved, so a lookup costs two context switches
// and no wait_task_inactive, and with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP both
// switches stay on the caller's CPU.
//
// One thread serves one listener descriptor. Sharing a descriptor among
// threads was measured (two processes each calling readlink 100,000 times,
// 2 vCPUs) and lost, because each way of doing it undoes the synchronous
// wake-up:
// - all threads in poll(): every notification wakes every idle thread;
//   26 us per call against 22-24 us with one thread;
// - one epoll set per thread with EPOLLEXCLUSIVE: one thread is woken, but
//   epoll wakes it on its own CPU, not the caller's; two processes gained
//   (13 us), a single one lost (16 us against 10 us);
// - one thread polling at a time, handing over after each receive: the
//   hand-over is a cross-CPU wake; 18 us for two, 22 us for one.
// What works is one descriptor per process tree that runs on its own, each
// with its thread (listener_policy.h): 9.8-10.6 us per call for two
// processes side by side, against 19 us for two on one shared descriptor.
#ifndef DODO_TRACER_SECCOMP_LISTENER_H_
#define DODO_TRACER_SECCOMP_LISTENER_H_

#include <linux/seccomp.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>

#include "absl/status/statusor.h"

namespace dodo::tracer {

// What the handler fills in for one notification. By default the call goes
// on untouched (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
struct ListenerAnswer {
  bool go_on = true;
  int64_t value = 0;  // the call's result when !go_on and error == 0
  int error = 0;      // an errno to fail the call with when !go_on
  // An open answered by dodo: this descriptor of dodo's is installed in the
  // process as the call's result (SECCOMP_IOCTL_NOTIF_ADDFD), then closed.
  int install_fd = -1;
  bool install_cloexec = false;
};

class SeccompListener {
 public:
  using Handler = std::function<ListenerAnswer(const seccomp_notif&)>;

  SeccompListener() = default;
  ~SeccompListener() { Stop(); }
  SeccompListener(const SeccompListener&) = delete;
  SeccompListener& operator=(const SeccompListener&) = delete;

  // Takes ownership of `listener_fd` and answers its notifications with
  // `handler`, on a thread of its own that blocks every signal (they stay
  // with the thread that called Start).
  absl::Status Start(int listener_fd, Handler handler);
  // Ends the thread (a signal, SIGURG, interrupts its wait) and closes the
  // descriptor. Calls still blocked then get
  // ENOSYS from the kernel; call it once the traced processes are gone.
  void Stop();
  bool running() const { return thread_.joinable(); }
  // Whether the thread has ended because no process uses the filter now.
  bool finished() const { return finished_.load(std::memory_order_acquire); }

 private:
  void Serve();

  int listener_fd_ = -1;
  std::atomic<bool> stop_{false};  // set by Stop()
  Handler handler_;
  std::thread thread_;
  std::atomic<bool> finished_{false};
};

}  // namespace dodo::tracer

#endif  // DODO_TRACER_SECCOMP_LISTENER_H_
