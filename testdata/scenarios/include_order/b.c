// Prints Value(), so running prog shows which header a.c was compiled with.
#include <stdio.h>

int Value(void);

int main(void) {
  printf("%d\n", Value());
  return 0;
}
