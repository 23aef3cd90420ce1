// `dodo log`: prints a trace for people (dodo's operation notation, grouped
// by command) or for scripts (one JSON object per line).
#ifndef DODO_CLI_LOG_COMMAND_H_
#define DODO_CLI_LOG_COMMAND_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

namespace CLI {
class App;
}  // namespace CLI

namespace dodo::cli {

struct LogOptions {
  std::string trace_path;
  bool json = false;                // JSON lines instead of the notation
  std::optional<uint64_t> command;  // only this command's records
};

// Prints the trace at `options.trace_path` on `out`; problems go to `err`.
// Returns the exit status:
//   0  printed (also for a trace cut short or without trailer: everything in
//      it is printed, then a warning on `err`);
//   1  --command names no command of the trace;
//   2  the file cannot be read or is not a dodo trace (one line on `err`:
//      "dodo log: <path>: <cause>").
//
// Text mode prints one block per command: its heading, its operations and
// warnings indented by two spaces, then "[ID] <how it ended>". Operations of
// parallel commands interleave in the trace, so each live command's lines
// are buffered and its block printed when it ends (children before their
// parents); a block that reaches 10,000 operations is printed early and
// resumed under a "(continued)" heading, which bounds memory by the number
// of live commands. Commands still live at the end of the trace are printed
// last, ending with "(no end recorded)".
//
// JSON mode streams in trace order without buffering: objects with "type"
// "operation" (see model::OperationToJson), "command", "command_end" and
// "warning".
int RunLog(const LogOptions& options, std::ostream& out, std::ostream& err);

// Declares the `log` subcommand on `app`, storing its arguments in
// `options` (which must outlive the parse): positional TRACE, --json,
// --command ID.
void AddLogCommand(CLI::App& app, LogOptions& options);

}  // namespace dodo::cli

#endif  // DODO_CLI_LOG_COMMAND_H_
