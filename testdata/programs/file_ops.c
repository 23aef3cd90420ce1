// file_ops: exercises the common file-system syscalls in one directory so a
// tracer test can check each one was recorded. Usage: file_ops DIR
//
// Every step aborts with a message and exit status 1 if it fails, so a zero
// exit means every operation below really happened. Afterwards DIR holds
// in.txt, renamed.txt (0755, truncated to 5 bytes), hard.txt (a hard link to
// renamed.txt, later unlinked) and link -> renamed.txt.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void Check(int ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "file_ops: %s: %s\n", what, strerror(errno));
    exit(1);
  }
}

// Writes all of `text` to a new or truncated file.
static void WriteFile(int dir_fd, const char* name, const char* text) {
  int fd = openat(dir_fd, name, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  Check(fd >= 0, name);
  size_t len = strlen(text);
  Check(write(fd, text, len) == (ssize_t)len, "write");
  Check(close(fd) == 0, "close");
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: file_ops DIR\n");
    return 2;
  }
  // Work relative to a directory fd: the *at() calls are what modern libcs
  // emit anyway, and the tracer must resolve them against the fd.
  int dir_fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  Check(dir_fd >= 0, argv[1]);

  WriteFile(dir_fd, "out.txt", "hello from file_ops\n");

  // in.txt is created here so the program needs no fixture: write, then read.
  WriteFile(dir_fd, "in.txt", "input data\n");
  char buf[64];
  int in_fd = openat(dir_fd, "in.txt", O_RDONLY | O_CLOEXEC);
  Check(in_fd >= 0, "open in.txt");
  ssize_t n = read(in_fd, buf, sizeof(buf));
  Check(n == 11 && memcmp(buf, "input data\n", 11) == 0, "read in.txt");
  Check(close(in_fd) == 0, "close in.txt");

  Check(renameat(dir_fd, "out.txt", dir_fd, "renamed.txt") == 0, "rename");
  Check(linkat(dir_fd, "renamed.txt", dir_fd, "hard.txt", 0) == 0, "link");
  Check(symlinkat("renamed.txt", dir_fd, "link") == 0, "symlink");
  char target[64];
  n = readlinkat(dir_fd, "link", target, sizeof(target) - 1);
  Check(n == 11 && memcmp(target, "renamed.txt", 11) == 0, "readlink");

  Check(mkdirat(dir_fd, "sub", 0755) == 0, "mkdir");
  Check(unlinkat(dir_fd, "sub", AT_REMOVEDIR) == 0, "rmdir");
  Check(unlinkat(dir_fd, "hard.txt", 0) == 0, "unlink");

  Check(fchmodat(dir_fd, "renamed.txt", 0755, 0) == 0, "chmod");
  // truncate() takes a path only; build it so the syscall is path-based.
  char path[4096];
  snprintf(path, sizeof(path), "%s/renamed.txt", argv[1]);
  Check(truncate(path, 5) == 0, "truncate");
  struct timespec times[2] = {{1000000000, 0}, {1000000000, 0}};
  Check(utimensat(dir_fd, "renamed.txt", times, 0) == 0, "utimensat");

  // A failed lookup is a dependency too (the file's absence was observed).
  struct stat st;
  Check(fstatat(dir_fd, "missing.txt", &st, 0) == -1 && errno == ENOENT, "stat missing.txt");

  // List the directory with the raw syscall so it is getdents64 on every libc.
  int list_fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  Check(list_fd >= 0, "open .");
  char dents[4096];
  int entries = 0;
  long got;
  while ((got = syscall(SYS_getdents64, list_fd, dents, sizeof(dents))) > 0) {
    for (long off = 0; off < got;) {
      struct dirent64* d = (struct dirent64*)(dents + off);
      ++entries;
      off += d->d_reclen;
    }
  }
  Check(got == 0, "getdents64");
  // ".", "..", in.txt, renamed.txt, link (plus anything the caller put there).
  Check(entries >= 5, "directory listing too short");
  Check(close(list_fd) == 0, "close .");
  Check(close(dir_fd) == 0, "close dir");
  return 0;
}
