// lookups: N rounds of one stat of a missing path, one access() and one
// read-only open of a file, the calls that dodo's seccomp listener takes.
// Usage: lookups N FILE   (stats FILE.missing/ROUND, opens FILE)
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: lookups N FILE\n");
    return 2;
  }
  const int rounds = atoi(argv[1]);
  char missing[4096];
  struct stat st;
  for (int i = 0; i < rounds; ++i) {
    snprintf(missing, sizeof(missing), "%s.missing/%d", argv[2], i);
    if (stat(missing, &st) == 0) return 1;
    if (access("/", R_OK) != 0) return 1;
    const int fd = open(argv[2], O_RDONLY);
    if (fd < 0) return 1;
    close(fd);
  }
  return 0;
}
