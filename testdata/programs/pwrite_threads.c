// pwrite_threads: two threads pwrite disjoint halves of one file at explicit
// offsets (no shared file position), then the main thread preads the whole
// file back and verifies it. Usage: pwrite_threads FILE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { kHalf = 4096 };

static int g_fd;

static void* Writer(void* arg) {
  int index = (int)(long)arg;
  char block[kHalf];
  memset(block, 'A' + index, sizeof(block));
  ssize_t n = pwrite(g_fd, block, sizeof(block), (off_t)index * kHalf);
  return n == kHalf ? NULL : (void*)1;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: pwrite_threads FILE\n");
    return 2;
  }
  g_fd = open(argv[1], O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0644);
  if (g_fd < 0) {
    perror(argv[1]);
    return 1;
  }
  pthread_t threads[2];
  for (long i = 0; i < 2; ++i) {
    if (pthread_create(&threads[i], NULL, Writer, (void*)i) != 0) return 1;
  }
  int failed = 0;
  for (int i = 0; i < 2; ++i) {
    void* result;
    if (pthread_join(threads[i], &result) != 0 || result != NULL) failed = 1;
  }
  static char back[2 * kHalf];
  if (pread(g_fd, back, sizeof(back), 0) != (ssize_t)sizeof(back)) failed = 1;
  for (int i = 0; i < 2 * kHalf && !failed; ++i) {
    if (back[i] != 'A' + i / kHalf) failed = 1;
  }
  close(g_fd);
  if (failed) fprintf(stderr, "pwrite_threads: verification failed\n");
  return failed;
}
