// readlinks DIR N: in DIR, the readlink calls of a process, a child and a
// thread, in an order a test can check against the lookups between them,
// then N readlinks in a row with no other trapped call.
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
  if (readlink("thread-link", buffer, sizeof(buffer)) < 0) return (void*)1;
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: readlinks DIR N\n");
    return 2;
  }
  struct stat st;
  if (chdir(argv[1]) != 0) return 1;
  if (readlink("link", buffer, sizeof(buffer)) < 0) return 1;
  if (stat("missing-1", &st) == 0) return 1;
  const int dir = open(".", O_RDONLY | O_DIRECTORY);
  if (dir < 0) return 1;
  if (readlinkat(dir, "link", buffer, sizeof(buffer)) < 0) return 1;
  if (readlinkat(dir, "missing-2", buffer, sizeof(buffer)) >= 0) return 1;
  const pid_t child = fork();
  if (child == 0) _exit(readlink("child-link", buffer, sizeof(buffer)) < 0);
  int status = 0;
  if (waitpid(child, &status, 0) != child || status != 0) return 1;
  pthread_t thread;
  void* result = NULL;
  if (pthread_create(&thread, NULL, FromThread, NULL) != 0) return 1;
  if (pthread_join(thread, &result) != 0 || result != NULL) return 1;
  const int rounds = atoi(argv[2]);
  for (int i = 0; i < rounds; ++i) {
    if (readlink("burst", buffer, sizeof(buffer)) >= 0) return 1;
  }
  if (stat("missing-3", &st) == 0) return 1;
  return 0;
}
