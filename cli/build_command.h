// `dodo build`: run the build (./Dodofile, or the command given) under the
// tracer, skipping every command whose inputs did not change since the last
// build and restoring its outputs from the store in .dodo/.
#ifndef DODO_CLI_BUILD_COMMAND_H_
#define DODO_CLI_BUILD_COMMAND_H_

#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "model/file_hasher.h"

namespace dodo::cli {

struct BuildOptions {
  std::vector<std::string> command;  // empty: ./Dodofile
  bool fresh = false;
  bool show_skipped = false;
  bool explain = false;
  bool quiet = false;
  bool stats = false;               // tracer and store figures on stderr
  bool direct = false;              // outputs written in place, failures not undone
  bool staged = false;              // outputs staged aside, accesses redirected
  bool no_bpf = false;              // trap lookups instead of reading them from eBPF
  bool keep_failed = false;         // failed outputs kept in .dodo/failed/
  bool ptrace_only = false;         // no seccomp listener: every trap is a ptrace stop
  bool no_background_plan = false;  // no detached planner after the build
  bool stamp_last_build = false;    // be that planner (internal)
  // The user's hash cache, read when commands are about to run (besides the
  // store's own, .dodo/hashes) and written after them; see dodo trace.
  std::string hash_cache = model::UserHashCachePath();
  bool no_hash_cache = false;
};

CLI::App* AddBuildCommand(CLI::App& app, BuildOptions& options);

// The root command's exit status; 2 for a usage problem (no Dodofile);
// 125 when dodo itself failed (store unwritable, tracer could not start).
int RunBuild(const BuildOptions& options);

// The command a build runs in `dir` when none is given: ./Dodofile, exec'd
// when it is executable, else read by /bin/sh. Empty if there is none.
std::vector<std::string> DodofileCommand(const std::string& dir);

}  // namespace dodo::cli

#endif  // DODO_CLI_BUILD_COMMAND_H_
