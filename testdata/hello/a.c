// The one-file example build: ./Dodofile compiles this into ./prog.
#include <stdio.h>

int main(void) {
  puts("hello");
  return 0;
}
