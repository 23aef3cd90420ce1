// The two-object example build for `make -j2` tests: main.o + util.o -> hello.
#include <stdio.h>

#include "util.h"

int main(void) {
  printf("%s\n", Greeting());
  return 0;
}
