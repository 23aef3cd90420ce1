// observed_order DIR N: in DIR, runs of N lookups that dodo's eBPF observer
// reports (stat of a name that does not exist), each run named after where
// it is: before and after a fork, after the exit stop of an open that
// creates, after a failed exec, and after an exec of this program (which
// then gets a third argument). The tracer hands those events on only once
// the process runs again; a test checks every run still lands on its side.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

// N stat calls of `name`; 0 if every one failed, as it should.
static int Lookups(const char* name, int n) {
  struct stat st;
  for (int i = 0; i < n; ++i) {
    if (stat(name, &st) == 0) return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: observed_order DIR N\n");
    return 2;
  }
  const int n = atoi(argv[2]);
  if (argc == 4) return Lookups("after-exec", n);
  if (chdir(argv[1]) != 0) return 1;
  if (Lookups("before-fork", n) != 0) return 1;
  const pid_t child = fork();
  if (child == 0) _exit(0);
  if (child < 0 || Lookups("after-fork", n) != 0) return 1;
  int status = 0;
  if (waitpid(child, &status, 0) != child || status != 0) return 1;
  const int fd = open("out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || close(fd) != 0 || Lookups("after-open", n) != 0) return 1;
  char* const missing_argv[] = {"missing-program", NULL};
  execv("missing-program", missing_argv);
  if (Lookups("after-failed-exec", n) != 0) return 1;
  char* const again[] = {argv[0], argv[1], argv[2], "exec", NULL};
  execv("/proc/self/exe", again);
  return 1;
}
