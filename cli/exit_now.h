#ifndef DODO_CLI_EXIT_NOW_H_
#define DODO_CLI_EXIT_NOW_H_

#include <unistd.h>

#include <cstdio>
#include <iostream>

namespace dodo::cli {

// Ends dodo once everything it prints is out, without destroying what it
// loaded. A loaded trace is hundreds of thousands of small objects (xz's:
// half a million protobuf messages); freeing them one by one and unmapping
// their pages took 5-7% of a no-op, and the kernel takes the memory, the
// descriptors and the locks back at once anyway. Only for the end of a
// command: nothing that still has to be written may be buffered elsewhere.
[[noreturn]] inline void ExitNow(int status) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  _exit(status);
}

}  // namespace dodo::cli

#endif  // DODO_CLI_EXIT_NOW_H_
