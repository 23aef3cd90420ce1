// The second of the two programs that make_parallel's Makefile links.
#include "util.h"

int main(void) {
  Say("bye", "make");
  return 0;
}
