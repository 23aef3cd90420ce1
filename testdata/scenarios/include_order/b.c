// Prints Value(), so running prog shows which header a.c was compiled with,
// after the word that "opt/greeting.h" defines: inc1/ has no opt/ until a
// test adds one, so inc2/opt/greeting.h is used.
#include <stdio.h>

#include "opt/greeting.h"

int Value(void);

int main(void) {
  printf("%s %d\n", GREETING, Value());
  return 0;
}
