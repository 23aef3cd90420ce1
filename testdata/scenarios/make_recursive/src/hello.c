// The first of the two programs that make_parallel's Makefile links.
#include "util.h"

int main(void) {
  Say("hello", "make");
  return 0;
}
