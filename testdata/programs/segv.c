// segv: dies of SIGSEGV by writing through a null pointer, so tests can check
// that a signal death is reported (exit status 128+11 from `dodo trace`).
#include <stddef.h>

int main(void) {
  // Both volatiles matter: the pointer's keeps the compiler from treating
  // the store as unreachable UB (a trap instruction would raise SIGILL), the
  // target's keeps it from dropping the store as dead at -O2.
  volatile int* volatile null = NULL;
  *null = 1;
  return 0;
}
