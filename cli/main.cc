// dodo: records what a build reads and writes. This file only wires the
// subcommands together; each lives in its own file.
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "cli/build_command.h"
#include "cli/gc_command.h"
#include "cli/log_command.h"
#include "cli/trace_command.h"
#include "cli/why_command.h"

int main(int argc, char** argv) {
  CLI::App app(
      "dodo records every file system access of a build as a dependency trace.\n"
      "Run `dodo <command> --help` for the details of each command.",
      "dodo");
  app.set_version_flag("--version", DODO_VERSION);
  app.require_subcommand(1);

  dodo::cli::TraceOptions trace_options;
  CLI::App* trace = dodo::cli::AddTraceCommand(app, trace_options);
  dodo::cli::BuildOptions build_options;
  CLI::App* build = dodo::cli::AddBuildCommand(app, build_options);
  dodo::cli::WhyOptions why_options;
  CLI::App* why = dodo::cli::AddWhyCommand(app, why_options);
  dodo::cli::GcOptions gc_options;
  CLI::App* gc = dodo::cli::AddGcCommand(app, gc_options);
  dodo::cli::LogOptions log_options;
  dodo::cli::AddLogCommand(app, log_options);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 reports a mistyped command ("dodo biuld") as a missing one: name
    // the word that is not a command, and the ones that are.
    if (argc > 1 && argv[1][0] != '-' && app.get_subcommands().empty()) {
      std::string commands;
      for (const CLI::App* command : app.get_subcommands({})) {
        commands += (commands.empty() ? "" : ", ") + command->get_name();
      }
      std::cerr << "dodo: '" << argv[1] << "' is not a dodo command (they are: " << commands
                << "; see dodo --help)\n";
      return 2;
    }
    // Usage errors exit 2, like other Unix tools; --help exits 0.
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (trace->parsed()) return dodo::cli::RunTrace(trace_options);
  if (build->parsed()) return dodo::cli::RunBuild(build_options);
  if (why->parsed()) return dodo::cli::RunWhy(why_options, std::cout, std::cerr);
  if (gc->parsed()) return dodo::cli::RunGc(gc_options, std::cout, std::cerr);
  return dodo::cli::RunLog(log_options, std::cout, std::cerr);
}
