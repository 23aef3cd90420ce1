// `dodo trace`: run a command under the tracer and write its trace.
#ifndef DODO_CLI_TRACE_COMMAND_H_
#define DODO_CLI_TRACE_COMMAND_H_

#include <string>
#include <vector>

#include "CLI/CLI.hpp"

namespace dodo::cli {

struct TraceOptions {
  std::string output = "dodo.trace";
  std::vector<std::string> command;
  bool stats = false;
  bool ptrace_only = false;   // no seccomp listener: every trap is a ptrace stop
  bool keep_repeats = false;  // write observations a command repeats unchanged
  bool no_bpf = false;        // trap readlink instead of reading it from eBPF
};

// Exit status of dodo itself failing (not the traced command), as
// timeout(1) and env(1) use it.
constexpr int kToolFailure = 125;

CLI::App* AddTraceCommand(CLI::App& app, TraceOptions& options);

// Returns the command's exit status (128 + N when killed by signal N), or
// kToolFailure when dodo could not trace it.
int RunTrace(const TraceOptions& options);

}  // namespace dodo::cli

#endif  // DODO_CLI_TRACE_COMMAND_H_
