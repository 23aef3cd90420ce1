// `dodo trace`: run a command under the tracer and write its trace.
#ifndef DODO_CLI_TRACE_COMMAND_H_
#define DODO_CLI_TRACE_COMMAND_H_

#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "CLI/CLI.hpp"
#include "model/file_hasher.h"

namespace dodo::cli {

struct TraceOptions {
  std::string output = "dodo.trace";
  std::vector<std::string> command;
  bool stats = false;
  bool ptrace_only = false;   // no seccomp listener: every trap is a ptrace stop
  bool keep_repeats = false;  // write observations a command repeats unchanged
  bool no_bpf = false;        // trap readlink instead of reading it from eBPF
  // Where file digests are kept between runs; empty: not kept.
  std::string hash_cache = model::UserHashCachePath();
  bool no_hash_cache = false;
};

// Exit status of dodo itself failing (not the traced command), as
// timeout(1) and env(1) use it.
constexpr int kToolFailure = 125;

CLI::App* AddTraceCommand(CLI::App& app, TraceOptions& options);

// --hash-cache FILE and --no-hash-cache (dodo trace and dodo build).
void AddHashCacheOptions(CLI::App* command, std::string* path, bool* off);
// Saves `hasher`'s cache in `path` (creating its directories) if the run
// hashed anything, or `always`; nothing if `path` is empty. A failure is a
// one-line warning on `warnings` from `who` ("dodo trace"), not an error.
void SaveHashCache(const model::FileHasher& hasher, const std::string& path, std::string_view who,
                   bool always, std::ostream& warnings = std::cerr);

// Returns the command's exit status (128 + N when killed by signal N), or
// kToolFailure when dodo could not trace it.
int RunTrace(const TraceOptions& options);

}  // namespace dodo::cli

#endif  // DODO_CLI_TRACE_COMMAND_H_
