#include "tracer/seccomp_listener.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dodo::tracer {
namespace {

// Linux 6.6 and later; Debian 12's headers predate them.
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

absl::Status ErrnoStatus(int error, const char* what) {
  return absl::ErrnoToStatus(error, absl::StrCat("seccomp listener: ", what));
}

}  // namespace

absl::Status SeccompListener::Start(int listener_fd, Handler handler) {
  Stop();
  listener_fd_ = listener_fd;
  handler_ = std::move(handler);
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    const int error = errno;
    Stop();
    return ErrnoStatus(error, "eventfd");
  }
  // The traced thread and dodo's listener thread hand the CPU to each other
  // instead of waking one another across CPUs. Older kernels refuse the
  // flag; notifications then work as before, only slower.
  uint64_t flags = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
  (void)ioctl(listener_fd_, SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags);

  // The new thread inherits the signal mask: block everything while it
  // starts, so that SIGINT and friends keep interrupting the caller's
  // waitpid() and never this thread's poll().
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  thread_ = std::thread([this] { Serve(); });
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  return absl::OkStatus();
}

void SeccompListener::Stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (wake_fd_ >= 0) close(std::exchange(wake_fd_, -1));
  if (listener_fd_ >= 0) close(std::exchange(listener_fd_, -1));
}

void SeccompListener::Serve() {
  pollfd watched[2] = {{.fd = listener_fd_, .events = POLLIN, .revents = 0},
                       {.fd = wake_fd_, .events = POLLIN, .revents = 0}};
  while (true) {
    // Waiting in poll() rather than in the receive ioctl matters: the
    // synchronous wake-up is delivered to poll's wait queue.
    if (poll(watched, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (watched[1].revents != 0) return;
    const short events = watched[0].revents;
    if ((events & POLLIN) == 0) {
      if ((events & (POLLHUP | POLLERR | POLLNVAL)) != 0) return;  // no process left
      continue;
    }
    seccomp_notif request;
    std::memset(&request, 0, sizeof(request));  // the kernel wants it zeroed
    if (ioctl(listener_fd_, SECCOMP_IOCTL_NOTIF_RECV, &request) != 0) {
      continue;  // ENOENT: the caller went away (a signal) before we got it
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
