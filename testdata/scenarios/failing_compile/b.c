// The half no scenario edits: its compile must never rerun.
#include <stdio.h>

int Answer(void);

int main(void) {
  printf("%d\n", Answer());
  return 0;
}
