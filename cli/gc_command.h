// `dodo gc`: remove from the store (.dodo/) the objects that the last build
// no longer names, and what killed builds left behind.
#ifndef DODO_CLI_GC_COMMAND_H_
#define DODO_CLI_GC_COMMAND_H_

#include <ostream>

#include "CLI/CLI.hpp"

namespace dodo::cli {

struct GcOptions {
  bool dry_run = false;
  bool quiet = false;
};

CLI::App* AddGcCommand(CLI::App& app, GcOptions& options);

// 0 when done (also when there is no store), 1 when the store could not be
// collected: locked by a build, its trace unreadable, a file not removable.
int RunGc(const GcOptions& options, std::ostream& out, std::ostream& err);

}  // namespace dodo::cli

#endif  // DODO_CLI_GC_COMMAND_H_
