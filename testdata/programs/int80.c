// int80: makes a 32-bit system call with `int $0x80` from a 64-bit process.
// The kernel runs it through the i386 syscall table (number 20 is getpid
// there, 39 on x86-64), so a tracer or seccomp filter that only knows the
// 64-bit table would misread it; dodo is expected to refuse such calls with
// ENOSYS. Prints the raw return value; exits 0 if it was -ENOSYS (-38),
// 1 otherwise (e.g. a pid when nothing intercepted it).
#include <stdio.h>

#if !defined(__x86_64__)
#error "int80 is an x86-64 test program"
#endif

int main(void) {
  long result;
  // eax = 20 (i386 getpid), no arguments. int $0x80 clobbers only eax
  // in 64-bit mode (r8-r11 are zeroed on some kernels), so list those too.
  __asm__ volatile("int $0x80" : "=a"(result) : "a"(20L) : "r8", "r9", "r10", "r11", "memory");
  // The result is a 32-bit value in eax; sign-extend it.
  result = (int)result;
  printf("int80 getpid: %ld\n", result);
  return result == -38 ? 0 : 1;
}
