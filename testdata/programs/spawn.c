// spawn: starts a program with posix_spawn (glibc implements it with
// clone(CLONE_VM|CLONE_VFORK)), waits for it and exits with its status.
// Usage: spawn PROGRAM [ARGS...]   (a signal death exits 128+signal)
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

extern char** environ;

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: spawn PROGRAM [ARGS...]\n");
    return 2;
  }
  pid_t pid;
  int err = posix_spawn(&pid, argv[1], NULL, NULL, argv + 1, environ);
  if (err != 0) {
    fprintf(stderr, "spawn: posix_spawn %s: %s\n", argv[1], strerror(err));
    return 127;
  }
  int status;
  if (waitpid(pid, &status, 0) != pid) {
    perror("spawn: waitpid");
    return 1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}
