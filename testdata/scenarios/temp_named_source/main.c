#include <stdio.h>

int main(void) {
  puts("compiled from a temporary");
  return 0;
}
