// io_uring: probes io_uring_setup. A tracer that cannot see io_uring I/O
// should deny it with ENOSYS so programs fall back to plain syscalls.
// Prints the result and errno; exits 0 if the call failed with ENOSYS, 1
// otherwise (including success, when the ring fd is simply leaked to exit).
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425  // Same number on every architecture.
#endif

int main(void) {
  // struct io_uring_params is 120 bytes; zeroed means "no flags". Declared
  // as raw storage so the program builds without <linux/io_uring.h>.
  unsigned char params[120];
  memset(params, 0, sizeof(params));
  errno = 0;
  long result = syscall(SYS_io_uring_setup, 4, params);
  int err = errno;
  printf("io_uring_setup: result=%ld errno=%d (%s)\n", result, err, strerror(err));
  return result == -1 && err == ENOSYS ? 0 : 1;
}
