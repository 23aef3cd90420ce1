// threads: four pthreads each create and write their own file, so a tracer
// test can check that syscalls from every thread are attributed to the one
// process. Usage: threads DIR  -> DIR/thread-0.txt .. DIR/thread-3.txt
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { kThreads = 4 };

static const char* g_dir;

static void* Worker(void* arg) {
  int index = (int)(long)arg;
  char path[4096];
  snprintf(path, sizeof(path), "%s/thread-%d.txt", g_dir, index);
  int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return (void*)1;
  char text[32];
  int len = snprintf(text, sizeof(text), "thread %d\n", index);
  int ok = write(fd, text, len) == len;
  ok = close(fd) == 0 && ok;
  return ok ? NULL : (void*)1;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: threads DIR\n");
    return 2;
  }
  g_dir = argv[1];
  pthread_t threads[kThreads];
  for (long i = 0; i < kThreads; ++i) {
    if (pthread_create(&threads[i], NULL, Worker, (void*)i) != 0) return 1;
  }
  int failed = 0;
  for (int i = 0; i < kThreads; ++i) {
    void* result;
    if (pthread_join(threads[i], &result) != 0 || result != NULL) failed = 1;
  }
  if (failed) fprintf(stderr, "threads: a worker failed\n");
  return failed;
}
