// segv: dies of SIGSEGV by writing through a null pointer, so tests can check
// that a signal death is reported (exit status 128+11 from `dodo trace`).
#include <stddef.h>

int main(void) {
  // volatile keeps the compiler from treating the store as unreachable UB
  // and replacing it with a trap instruction (which would raise SIGILL).
  int* volatile null = NULL;
  *null = 1;
  return 0;
}
