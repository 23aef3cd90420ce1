// observed_lookups DIR N: in DIR, the lookups that dodo's eBPF observer
// reports (readlink, the stat and access families, read-only opens) of a
// process, a child and a thread, between calls that always trap (an open
// that creates, unlink, dup2), in an order a test can check; then N rounds
// of a readlink and a read-only open in a row with no trapped call between.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char buffer[256];

static void* FromThread(void* unused) {
  (void)unused;
  struct stat st;
  if (readlink("thread-link", buffer, sizeof(buffer)) < 0) return (void*)1;
  if (stat("file", &st) != 0) return (void*)1;
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: observed_lookups DIR N\n");
    return 2;
  }
  struct stat st;
  struct statx stx;
  if (chdir(argv[1]) != 0) return 1;
  if (readlink("link", buffer, sizeof(buffer)) < 0) return 1;
  if (stat("missing-1", &st) == 0) return 1;
  int fd = open("file", O_RDONLY);
  if (fd < 0 || read(fd, buffer, sizeof(buffer)) < 0 || close(fd) != 0) return 1;
  fd = open("out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, "x", 1) != 1 || close(fd) != 0) return 1;
  const int dir = open(".", O_RDONLY | O_DIRECTORY);
  if (dir < 0) return 1;
  if (readlinkat(dir, "link", buffer, sizeof(buffer)) < 0) return 1;
  if (readlinkat(dir, "missing-2", buffer, sizeof(buffer)) >= 0) return 1;
  // A lookup relative to a copy of the directory descriptor.
  if (dup2(dir, 9) != 9) return 1;
  fd = openat(9, "file", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || close(fd) != 0) return 1;
  if (openat(dir, "missing-4", O_RDONLY) >= 0) return 1;
  if (lstat("link", &st) != 0 || fstatat(dir, "file", &st, AT_SYMLINK_NOFOLLOW) != 0) return 1;
  if (statx(dir, "file", 0, STATX_SIZE, &stx) != 0) return 1;
  if (access("file", R_OK) != 0 || faccessat(dir, "missing-5", F_OK, 0) == 0) return 1;
  if (unlink("out") != 0 || stat("out", &st) == 0) return 1;
  const pid_t child = fork();
  if (child == 0) {
    if (readlink("child-link", buffer, sizeof(buffer)) < 0) _exit(1);
    _exit(open("file", O_RDONLY) < 0);
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child || status != 0) return 1;
  pthread_t thread;
  void* result = NULL;
  if (pthread_create(&thread, NULL, FromThread, NULL) != 0) return 1;
  if (pthread_join(thread, &result) != 0 || result != NULL) return 1;
  const int rounds = atoi(argv[2]);
  for (int i = 0; i < rounds; ++i) {
    if (readlink("burst", buffer, sizeof(buffer)) >= 0) return 1;
    if (open("burst", O_RDONLY) >= 0) return 1;
  }
  if (stat("missing-3", &st) == 0) return 1;
  return 0;
}
