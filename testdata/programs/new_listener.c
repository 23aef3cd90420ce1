// new_listener: installs a seccomp filter with a listener of its own (one
// that allows everything). Exits 0 if the kernel or the tracer refused it
// with EBUSY, 1 if it was installed, 2 on any other error.
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
  struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  struct sock_fprog program = {.len = 1, .filter = &allow};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 2;
  const long fd =
      syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &program);
  if (fd >= 0) return 1;
  if (errno == EBUSY) return 0;
  fprintf(stderr, "new_listener: seccomp: %s\n", strerror(errno));
  return 2;
}
