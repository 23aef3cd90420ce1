// Loads a whole trace into plain structs so integration tests can assert on
// sets of commands and operations (never on a byte-for-byte dump).
#ifndef DODO_TESTS_TRACE_LOADER_H_
#define DODO_TESTS_TRACE_LOADER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "proto/trace.pb.h"

namespace dodo::test {

struct TracedCommand {
  uint64_t id = 0;
  uint64_t parent = 0;
  int pid = 0;
  std::string executable;
  std::vector<std::string> argv;
  std::string cwd;
  std::vector<proto::InheritedFd> fds;
  bool restored = false;  // `dodo build` skipped it (copied from the last build)
  bool dormant = false;   // kept from an earlier build, no part of this one
  bool ended = false;
  proto::CommandEnd::How how = proto::CommandEnd::HOW_UNKNOWN;
  int exit_code = 0;
  int signal = 0;
  std::map<std::string, proto::Version> outputs;  // path -> version at the end
};

struct TracedOp {
  uint64_t command = 0;
  proto::OpKind kind = proto::OP_UNKNOWN;
  std::string path;   // absolute path of ref (or "" for pipes)
  std::string path2;  // absolute path of ref2
  int error = 0;
  proto::LinkSource create = proto::LINK_NONE;
  bool exclusive = false;
  bool truncate = false;
  std::string text;
  uint64_t number = 0;
  bool has_sha256 = false;
  std::string sha256;  // the version's digest, raw bytes ("" if none)
  std::string syscall;
  std::string notation;  // as `dodo log` prints it
};

struct LoadedTrace {
  std::vector<TracedCommand> commands;
  std::vector<TracedOp> ops;
  std::vector<proto::Warning> warnings;
  bool complete = false;
  std::string reader_warning;

  const TracedCommand* Command(uint64_t id) const;
  // Commands whose executable file is named `name` (e.g. "cc1"), or
  // ends with "-" + name (Debian's x86_64-linux-gnu-as).
  std::vector<const TracedCommand*> CommandsRunning(std::string_view name) const;
  std::vector<const TracedOp*> OpsOf(uint64_t command) const;
  std::vector<const TracedOp*> Find(const std::function<bool(const TracedOp&)>& match) const;
  // A readable dump for failure messages.
  std::string Dump() const;
};

struct TracedRun {
  int exit_status = -1;  // dodo's
  std::string out;
  std::string err;
  std::string trace_path;
  LoadedTrace trace;
};

// Runs `dodo trace -o <new temp dir>/run.trace -- command...` in `cwd` and
// loads the trace it wrote.
// `flags` go between "trace" and "--".
TracedRun TraceCommand(const std::vector<std::string>& command, const std::string& cwd,
                       const std::vector<std::string>& flags = {});

// Loads `path`; on a read error the test fails through gtest and the result
// is empty.
LoadedTrace LoadTrace(const std::string& path);

bool EndsWith(std::string_view s, std::string_view suffix);

}  // namespace dodo::test

#endif  // DODO_TESTS_TRACE_LOADER_H_
