// rfc_gaps: one program per file-system pattern that a copy-on-write virtual
// store must get right (the gaps listed in RFC-0048). Each subcommand does one
// thing with plain syscalls, so a test that runs it under `dodo build` can
// blame a difference from a native run on dodo, not on a tool's habits.
//
// Usage: rfc_gaps SUBCOMMAND ARGS...
//   ftruncate FILE       open FILE O_WRONLY (no O_TRUNC, no O_CREAT),
//                        ftruncate it to 0, write "0123456789" (10 bytes)
//   append FILE TEXT     open FILE O_WRONLY, lseek to its end, write TEXT
//   readat FILE OFF LEN  lseek FILE to OFF (decimal), read LEN bytes and copy
//                        them to stdout
//   pwrite FILE          two threads pwrite 4096 'A's at 0 and 4096 'B's at
//                        4096 into FILE (created, truncated); the main thread
//                        preads all 8192 bytes back and checks them
//   install FILE MODE    create FILE 0600, write "installed\n", fchmod it to
//                        MODE (octal), fchown it to the caller's uid and gid
//   dup2 FILE            create FILE, dup2 it onto stdout and stderr, write
//                        "to stdout\n" (printf) and "to stderr\n" (stderr),
//                        then exec `/bin/echo exec-ed`; FILE ends up holding
//                        "to stdout\nto stderr\nexec-ed\n"
//   fsync FILE           create FILE, write "synced\n", fsync and fdatasync
//   counter FILE N       N times: open FILE O_RDWR|O_CREAT, flock LOCK_EX,
//                        read a decimal number (empty: 0), replace the file's
//                        content with the number + 1 and "\n", unlock, close
//   fail-half FILE       create or truncate FILE, write 50 bytes ("partial"
//                        and 43 '.'), exit 1 on purpose
//   paths FILE REPORT    create FILE and write "x" to it; with FILE still
//                        open, write three lines to REPORT: getcwd(),
//                        readlink("/proc/self/fd/<FILE's fd>"), realpath(FILE)
//   mtime FILE           print stat(FILE).st_mtime in seconds and "\n"
//   regs FILE            with raw `syscall` instructions, create FILE, write
//                        "r", open it again read-only and read it back; after
//                        each call the argument registers (rdi, rsi, rdx,
//                        r10) must hold what the program put there, and the
//                        path string must be intact (exit 3 if not)
//
// Exit status: 0 on success, 1 when a syscall fails (with a perror message,
// and for fail-half always), 2 on bad usage.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { kBlock = 4096, kFailHalfBytes = 50 };

// Prints `what` with errno's message and exits 1: every step must really
// happen for a zero exit to mean something.
static void Die(const char* what) {
  perror(what);
  exit(1);
}

static void Usage(void) {
  fprintf(stderr,
          "usage: rfc_gaps ftruncate FILE | append FILE TEXT | readat FILE OFFSET LEN |\n"
          "       pwrite FILE | install FILE MODE | dup2 FILE | fsync FILE |\n"
          "       counter FILE N | fail-half FILE | paths FILE REPORT | mtime FILE\n");
  exit(2);
}

// Parses a non-negative number in `base`, or exits 2: a typo in a test must
// not silently become 0.
static long ParseNumber(const char* text, int base) {
  char* end;
  errno = 0;
  long value = strtol(text, &end, base);
  if (errno != 0 || end == text || *end != '\0' || value < 0) {
    fprintf(stderr, "rfc_gaps: bad number: %s\n", text);
    exit(2);
  }
  return value;
}

// write() until all of `len` is out; a short write to a regular file is not
// an error by itself.
static void WriteAll(int fd, const void* data, size_t len, const char* what) {
  const char* p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      Die(what);
    }
    p += n;
    len -= (size_t)n;
  }
}

static void WriteString(int fd, const char* text, const char* what) {
  WriteAll(fd, text, strlen(text), what);
}

static void Close(int fd, const char* what) {
  if (close(fd) != 0) Die(what);
}

// An object file rewritten in place the way some linkers do it: the old,
// longer content must not survive past the new end.
static int Ftruncate(const char* file) {
  int fd = open(file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) Die(file);
  if (ftruncate(fd, 0) != 0) Die("ftruncate");
  WriteString(fd, "0123456789", "write");
  Close(fd, file);
  return 0;
}

// Appending through the file position (not O_APPEND): the new bytes must land
// after the content the file had before the build.
static int Append(const char* file, const char* text) {
  int fd = open(file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) Die(file);
  if (lseek(fd, 0, SEEK_END) < 0) Die("lseek");
  WriteString(fd, text, "write");
  Close(fd, file);
  return 0;
}

// A reader that seeks, as ar and linkers do inside archives.
static int ReadAt(const char* file, const char* offset_text, const char* len_text) {
  off_t offset = (off_t)ParseNumber(offset_text, 10);
  size_t len = (size_t)ParseNumber(len_text, 10);
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) Die(file);
  if (lseek(fd, offset, SEEK_SET) != offset) Die("lseek");
  char* buf = malloc(len > 0 ? len : 1);
  if (buf == NULL) Die("malloc");
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, buf + got, len - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      Die("read");
    }
    if (n == 0) break;  // End of file: copy what there was.
    got += (size_t)n;
  }
  WriteAll(STDOUT_FILENO, buf, got, "write stdout");
  free(buf);
  Close(fd, file);
  return 0;
}

static int g_pwrite_fd;

// Each thread owns one block; pwrite needs no shared file position.
static void* PwriteBlock(void* arg) {
  long index = (long)arg;
  char block[kBlock];
  memset(block, 'A' + (int)index, sizeof(block));
  ssize_t n = pwrite(g_pwrite_fd, block, sizeof(block), (off_t)index * kBlock);
  return n == kBlock ? NULL : (void*)1;
}

static int Pwrite(const char* file) {
  g_pwrite_fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (g_pwrite_fd < 0) Die(file);
  pthread_t threads[2];
  for (long i = 0; i < 2; ++i) {
    if (pthread_create(&threads[i], NULL, PwriteBlock, (void*)i) != 0) {
      fprintf(stderr, "rfc_gaps: pthread_create failed\n");
      return 1;
    }
  }
  int failed = 0;
  for (int i = 0; i < 2; ++i) {
    void* result;
    if (pthread_join(threads[i], &result) != 0 || result != NULL) failed = 1;
  }
  static char back[2 * kBlock];
  if (pread(g_pwrite_fd, back, sizeof(back), 0) != (ssize_t)sizeof(back)) failed = 1;
  for (int i = 0; i < 2 * kBlock && !failed; ++i) {
    if (back[i] != 'A' + i / kBlock) failed = 1;
  }
  Close(g_pwrite_fd, file);
  if (failed) fprintf(stderr, "rfc_gaps: pwrite: read back something else\n");
  return failed;
}

// install(1)'s pattern: the mode (and owner) are set through the descriptor
// after the content, so a mode-only change must reach the committed file.
static int Install(const char* file, const char* mode_text) {
  mode_t mode = (mode_t)ParseNumber(mode_text, 8);
  int fd = open(file, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) Die(file);
  WriteString(fd, "installed\n", "write");
  if (fchmod(fd, mode) != 0) Die("fchmod");
  if (fchown(fd, getuid(), getgid()) != 0) Die("fchown");
  Close(fd, file);
  return 0;
}

// A shell's `cmd > FILE 2>&1`: the descriptor outlives this program through
// exec, and whatever the new program writes must land in the same file.
static int Dup2(const char* file) {
  int fd = open(file, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) Die(file);
  if (dup2(fd, STDOUT_FILENO) < 0) Die("dup2 stdout");
  if (dup2(fd, STDERR_FILENO) < 0) Die("dup2 stderr");
  if (fd != STDOUT_FILENO && fd != STDERR_FILENO) Close(fd, file);
  printf("to stdout\n");
  if (fflush(stdout) != 0) Die("fflush");
  fprintf(stderr, "to stderr\n");
  execl("/bin/echo", "echo", "exec-ed", (char*)NULL);
  Die("/bin/echo");
  return 1;
}

// Tools that fsync their outputs must not get an error from a redirected file.
static int Fsync(const char* file) {
  int fd = open(file, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Die(file);
  WriteString(fd, "synced\n", "write");
  if (fsync(fd) != 0) Die("fsync");
  if (fdatasync(fd) != 0) Die("fdatasync");
  Close(fd, file);
  return 0;
}

// A lock file shared by parallel processes: every process must see the
// others' increments, which only holds if they all open the same file.
static int Counter(const char* file, const char* count_text) {
  long count = ParseNumber(count_text, 10);
  for (long i = 0; i < count; ++i) {
    int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) Die(file);
    if (flock(fd, LOCK_EX) != 0) Die("flock LOCK_EX");
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n < 0) Die("pread");
    buf[n] = '\0';
    long value = n == 0 ? 0 : strtol(buf, NULL, 10);
    int len = snprintf(buf, sizeof(buf), "%ld\n", value + 1);
    if (ftruncate(fd, 0) != 0) Die("ftruncate");
    if (pwrite(fd, buf, (size_t)len, 0) != len) Die("pwrite");
    if (flock(fd, LOCK_UN) != 0) Die("flock LOCK_UN");
    Close(fd, file);
  }
  return 0;
}

// A compiler that dies halfway through its output: what it wrote must not
// replace the last good version.
static int FailHalf(const char* file) {
  int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Die(file);
  char partial[kFailHalfBytes];
  memset(partial, '.', sizeof(partial));
  memcpy(partial, "partial", strlen("partial"));
  WriteAll(fd, partial, sizeof(partial), "write");
  Close(fd, file);
  fprintf(stderr, "rfc_gaps: fail-half: failing on purpose\n");
  return 1;
}

// The three ways a program learns where its files are; none may show where a
// redirected file really lives.
static int Paths(const char* file, const char* report) {
  int fd = open(file, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Die(file);
  WriteString(fd, "x", "write");

  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof(cwd)) == NULL) Die("getcwd");
  char proc_path[64];
  snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d", fd);
  char linked[PATH_MAX];
  ssize_t n = readlink(proc_path, linked, sizeof(linked) - 1);
  if (n < 0) Die(proc_path);
  linked[n] = '\0';
  char resolved[PATH_MAX];
  if (realpath(file, resolved) == NULL) Die("realpath");

  int out = open(report, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) Die(report);
  const char* lines[] = {cwd, linked, resolved};
  for (int i = 0; i < 3; ++i) {
    WriteString(out, lines[i], "write report");
    WriteString(out, "\n", "write report");
  }
  Close(out, report);
  Close(fd, file);
  return 0;
}

static int Mtime(const char* file) {
  struct stat st;
  if (stat(file, &st) != 0) Die(file);
  printf("%lld\n", (long long)st.st_mtime);
  return fflush(stdout) == 0 ? 0 : 1;
}

// openat(AT_FDCWD, path, flags, mode) with every argument register checked
// after the call: a tracer that rewrites the path must put rsi back.
static long CheckedOpenat(const char* path, long flags, long mode) {
  long dirfd = AT_FDCWD;
  const char* path_reg = path;
  long flags_reg = flags;
  register long mode_reg __asm__("r10") = mode;
  long result;
  __asm__ volatile("syscall"
                   : "=a"(result), "+D"(dirfd), "+S"(path_reg), "+d"(flags_reg), "+r"(mode_reg)
                   : "a"((long)SYS_openat)
                   : "rcx", "r11", "memory");
  if (dirfd != AT_FDCWD || path_reg != path || flags_reg != flags || mode_reg != mode) {
    fprintf(stderr, "rfc_gaps regs: openat changed an argument register\n");
    exit(3);
  }
  return result;
}

static int Regs(const char* file) {
  char copy[PATH_MAX];
  snprintf(copy, sizeof(copy), "%s", file);
  long fd = CheckedOpenat(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    errno = (int)-fd;
    Die(file);
  }
  if (write((int)fd, "r", 1) != 1) Die(file);
  close((int)fd);
  fd = CheckedOpenat(copy, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) {
    errno = (int)-fd;
    Die(file);
  }
  char byte = 0;
  if (read((int)fd, &byte, 1) != 1 || byte != 'r') {
    fprintf(stderr, "rfc_gaps regs: %s does not hold what was written\n", file);
    return 1;
  }
  close((int)fd);
  if (strcmp(copy, file) != 0) {
    fprintf(stderr, "rfc_gaps regs: the path string was overwritten\n");
    return 3;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) Usage();
  const char* command = argv[1];
  int args = argc - 2;
  char** arg = argv + 2;
  if (strcmp(command, "ftruncate") == 0 && args == 1) return Ftruncate(arg[0]);
  if (strcmp(command, "append") == 0 && args == 2) return Append(arg[0], arg[1]);
  if (strcmp(command, "readat") == 0 && args == 3) return ReadAt(arg[0], arg[1], arg[2]);
  if (strcmp(command, "pwrite") == 0 && args == 1) return Pwrite(arg[0]);
  if (strcmp(command, "install") == 0 && args == 2) return Install(arg[0], arg[1]);
  if (strcmp(command, "dup2") == 0 && args == 1) return Dup2(arg[0]);
  if (strcmp(command, "fsync") == 0 && args == 1) return Fsync(arg[0]);
  if (strcmp(command, "counter") == 0 && args == 2) return Counter(arg[0], arg[1]);
  if (strcmp(command, "fail-half") == 0 && args == 1) return FailHalf(arg[0]);
  if (strcmp(command, "paths") == 0 && args == 2) return Paths(arg[0], arg[1]);
  if (strcmp(command, "mtime") == 0 && args == 1) return Mtime(arg[0]);
  if (strcmp(command, "regs") == 0 && args == 1) return Regs(arg[0]);
  Usage();
  return 2;
}
