// daemon: the classic double fork. The original process exits 0 at once; its
// child calls setsid and forks again and exits; the grandchild (re-parented
// away from everything the tracer started) sleeps 300 ms after its parent is
// gone and then writes FILE. The grandchild points its stdio at /dev/null
// first, as daemons do, so it does not hold the caller's pipes open. Tests how
// a tracer handles descendants that outlive the traced command.
// Usage: daemon FILE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: daemon FILE\n");
    return 2;
  }
  pid_t child = fork();
  if (child < 0) return 1;
  if (child > 0) return 0;  // Original process: done immediately.

  if (setsid() < 0) _exit(1);
  pid_t middle = getpid();
  pid_t grandchild = fork();
  if (grandchild < 0) _exit(1);
  if (grandchild > 0) _exit(0);  // Middle process: exits, orphaning the grandchild.

  // Grandchild. Like a real daemon, let go of the caller's stdio, so that
  // whoever reads our output (a test harness) sees EOF when the original
  // process exits rather than when we do.
  int null_fd = open("/dev/null", O_RDWR);
  if (null_fd < 0) _exit(1);
  for (int fd = 0; fd <= 2; ++fd) dup2(null_fd, fd);
  if (null_fd > 2) close(null_fd);

  // Wait until the middle process is really gone (we have been
  // re-parented to init or a subreaper), bounded to 1 s, then the fixed delay.
  for (int i = 0; i < 1000 && getppid() == middle; ++i) usleep(1000);
  struct timespec delay = {0, 300 * 1000 * 1000};
  nanosleep(&delay, NULL);
  int fd = open(argv[1], O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) _exit(1);
  const char text[] = "daemon was here\n";
  if (write(fd, text, sizeof(text) - 1) != (ssize_t)(sizeof(text) - 1)) _exit(1);
  close(fd);
  _exit(0);
}
