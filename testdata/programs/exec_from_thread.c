// exec_from_thread: a non-leader thread calls execv while the main thread
// sleeps. The kernel then kills the other threads and the exec'ing thread
// takes over the leader's pid, which a ptrace tracer sees as
// PTRACE_EVENT_EXEC reported for the leader pid with the old tid in the
// event message. Usage: exec_from_thread PROGRAM [ARGS...]
// The process image becomes PROGRAM, so the exit status is PROGRAM's.
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char** g_argv;

static void* Execer(void* arg) {
  (void)arg;
  execv(g_argv[0], g_argv);
  perror("exec_from_thread: execv");
  _exit(127);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: exec_from_thread PROGRAM [ARGS...]\n");
    return 2;
  }
  g_argv = argv + 1;
  pthread_t thread;
  if (pthread_create(&thread, NULL, Execer, NULL) != 0) return 1;
  // The exec destroys this thread; sleep rather than join, so the leader is
  // blocked in a syscall (not in a futex wait on the thread) when it dies.
  for (;;) sleep(10);
}
