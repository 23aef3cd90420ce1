// `dodo why`: replay the last build's trace against the tree and say which
// commands the next build would run, and why. Runs nothing.
#ifndef DODO_CLI_WHY_COMMAND_H_
#define DODO_CLI_WHY_COMMAND_H_

#include <ostream>
#include <string>

#include "CLI/CLI.hpp"

namespace dodo::cli {

struct WhyOptions {
  std::string trace;  // empty: .dodo/trace
  bool json = false;
  bool quiet = false;
};

CLI::App* AddWhyCommand(CLI::App& app, WhyOptions& options);

// Returns 2 when the trace cannot be read. Otherwise it prints its answer and
// ends dodo (ExitNow) with 0 (with -q: the build is up to date), or 1 with -q
// when something must rerun or be restored.
int RunWhy(const WhyOptions& options, std::ostream& out, std::ostream& err);

}  // namespace dodo::cli

#endif  // DODO_CLI_WHY_COMMAND_H_
