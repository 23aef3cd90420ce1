#include "tracer/seccomp_listener.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

namespace dodo::tracer {
namespace {

// Linux 6.6 and later; Debian 12's headers predate them.
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

// Sent to a listener thread to end its wait in the receive ioctl. Its
// handler does nothing; installed without SA_RESTART, it makes the ioctl
// return EINTR.
constexpr int kWakeSignal = SIGURG;

void OnWakeSignal(int) {}

void InstallWakeHandler() {
  struct sigaction action {};
  action.sa_handler = OnWakeSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;
  sigaction(kWakeSignal, &action, nullptr);
}

}  // namespace

absl::Status SeccompListener::Start(int listener_fd, Handler handler) {
  Stop();
  listener_fd_ = listener_fd;
  handler_ = std::move(handler);
  stop_.store(false, std::memory_order_release);
  InstallWakeHandler();
  // The traced thread and dodo's listener thread hand the CPU to each other
  // instead of waking one another across CPUs. Older kernels refuse the
  // flag; notifications then work as before, only slower.
  uint64_t flags = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
  (void)ioctl(listener_fd_, SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags);

  // The new thread inherits the signal mask: block everything while it
  // starts, so that SIGINT and friends keep interrupting the caller's
  // waitpid() and never this thread's ioctl(). Only Stop()'s signal
  // reaches the thread.
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  finished_.store(false, std::memory_order_release);
  thread_ = std::thread([this] {
    sigset_t wake;
    sigemptyset(&wake);
    sigaddset(&wake, kWakeSignal);
    pthread_sigmask(SIG_UNBLOCK, &wake, nullptr);
    Serve();
    finished_.store(true, std::memory_order_release);
  });
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  return absl::OkStatus();
}

void SeccompListener::Stop() {
  if (thread_.joinable()) {
    stop_.store(true, std::memory_order_release);
    // The signal can land just before the thread enters the ioctl, where
    // it changes nothing: send it until the thread has seen the flag.
    while (!finished_.load(std::memory_order_acquire)) {
      pthread_kill(thread_.native_handle(), kWakeSignal);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    thread_.join();
  }
  if (listener_fd_ >= 0) close(std::exchange(listener_fd_, -1));
}

void SeccompListener::Serve() {
  // Waiting in the receive ioctl itself, not in poll() first, saves a
  // syscall per notification; the synchronous wake-up reaches both waits
  // on this kernel (a readlink loop: 7.8 us per call against 8.4 us).
  while (!stop_.load(std::memory_order_acquire)) {
    seccomp_notif request;
    std::memset(&request, 0, sizeof(request));  // the kernel wants it zeroed
    if (ioctl(listener_fd_, SECCOMP_IOCTL_NOTIF_RECV, &request) != 0) {
      if (errno == EINTR) continue;  // Stop()'s signal: the loop checks the flag
      if (errno != ENOENT) return;
      // The caller went away (a signal) before we got it, or no process
      // uses the filter any more: the descriptor then reports a hang-up.
      pollfd watched = {.fd = listener_fd_, .events = POLLIN, .revents = 0};
      if (poll(&watched, 1, 0) == 1 && (watched.revents & POLLHUP) != 0 &&
          (watched.revents & POLLIN) == 0) {
        return;
      }
      continue;
    }
    const ListenerAnswer answer = handler_(request);
    if (answer.install_fd >= 0) {
      // Installs the descriptor and answers with its number in one step.
      seccomp_notif_addfd addfd;
      std::memset(&addfd, 0, sizeof(addfd));
      addfd.id = request.id;
      addfd.flags = SECCOMP_ADDFD_FLAG_SEND;
      addfd.srcfd = static_cast<uint32_t>(answer.install_fd);
      addfd.newfd_flags = answer.install_cloexec ? O_CLOEXEC : 0;
      (void)ioctl(listener_fd_, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
      close(answer.install_fd);
      continue;
    }
    seccomp_notif_resp response;
    std::memset(&response, 0, sizeof(response));
    response.id = request.id;
    if (answer.go_on) {
      response.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    } else {
      response.val = answer.value;
      response.error = -answer.error;
    }
    // ENOENT again if a signal interrupted the call meanwhile: the kernel
    // restarts it, and it comes back as a new notification.
    (void)ioctl(listener_fd_, SECCOMP_IOCTL_NOTIF_SEND, &response);
  }
}

}  // namespace dodo::tracer
