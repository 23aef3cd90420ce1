#include "tests/trace_loader.h"

#include <string>

#include "gtest/gtest.h"
#include "model/notation.h"
#include "model/trace_reader.h"
#include "tests/trace_test_util.h"

namespace dodo::test {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

const TracedCommand* LoadedTrace::Command(uint64_t id) const {
  for (const TracedCommand& c : commands) {
    if (c.id == id) return &c;
  }
  return nullptr;
}

std::vector<const TracedCommand*> LoadedTrace::CommandsRunning(std::string_view name) const {
  std::vector<const TracedCommand*> result;
  for (const TracedCommand& c : commands) {
    // Debian installs tools as x86_64-linux-gnu-as and the like.
    if (EndsWith(c.executable, "/" + std::string(name)) ||
        EndsWith(c.executable, "-" + std::string(name))) {
      result.push_back(&c);
    }
  }
  return result;
}

std::vector<const TracedOp*> LoadedTrace::OpsOf(uint64_t command) const {
  return Find([command](const TracedOp& op) { return op.command == command; });
}

std::vector<const TracedOp*> LoadedTrace::Find(
    const std::function<bool(const TracedOp&)>& match) const {
  std::vector<const TracedOp*> result;
  for (const TracedOp& op : ops) {
    if (match(op)) result.push_back(&op);
  }
  return result;
}

std::string LoadedTrace::Dump() const {
  std::string out;
  for (const TracedCommand& c : commands) {
    out += "[" + std::to_string(c.id) + "] parent " + std::to_string(c.parent) + ": " +
           c.executable + "\n";
    for (const TracedOp* op : OpsOf(c.id)) out += "    " + op->notation + "\n";
  }
  for (const proto::Warning& w : warnings) out += "warning: " + w.message() + "\n";
  return out;
}

LoadedTrace LoadTrace(const std::string& path) {
  LoadedTrace trace;
  absl::StatusOr<std::unique_ptr<model::TraceReader>> reader = model::TraceReader::Open(path);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return trace;
  model::TraceReader& r = **reader;
  auto strings = [&r](uint32_t id) { return r.String(id); };
  proto::Record record;
  while (r.Next(&record)) {
    switch (record.kind_case()) {
      case proto::Record::kCommandStart: {
        const proto::CommandStart& s = record.command_start();
        TracedCommand c;
        c.id = s.id();
        c.parent = s.parent_id();
        c.pid = s.pid();
        c.executable = std::string(r.String(s.executable()));
        for (uint32_t arg : s.argv()) c.argv.emplace_back(r.String(arg));
        c.cwd = std::string(r.String(s.cwd()));
        c.restored = s.restored();
        c.dormant = s.dormant();
        c.fds.assign(s.fds().begin(), s.fds().end());
        trace.commands.push_back(std::move(c));
        break;
      }
      case proto::Record::kCommandEnd: {
        const proto::CommandEnd& e = record.command_end();
        for (TracedCommand& c : trace.commands) {
          if (c.id != e.id()) continue;
          c.ended = true;
          c.how = e.how();
          c.exit_code = e.exit_code();
          c.signal = e.signal();
          for (const proto::Output& o : e.outputs()) {
            c.outputs[std::string(r.String(o.path()))] = o.version();
          }
        }
        break;
      }
      case proto::Record::kOperation: {
        const proto::Operation& o = record.operation();
        TracedOp op;
        op.command = o.command();
        op.kind = o.kind();
        op.path = model::RefToPath(o.ref(), strings);
        if (o.has_ref2()) op.path2 = model::RefToPath(o.ref2(), strings);
        op.error = o.error();
        op.create = o.create();
        op.exclusive = o.exclusive();
        op.truncate = o.truncate();
        op.text = o.text();
        op.number = o.number();
        op.has_sha256 = !o.version().sha256().empty();
        op.sha256 = o.version().sha256();
        op.syscall = std::string(model::SyscallName(o, strings));
        op.notation = model::FormatOperation(o, strings);
        trace.ops.push_back(std::move(op));
        break;
      }
      case proto::Record::kWarning:
        trace.warnings.push_back(record.warning());
        break;
      default:
        break;
    }
  }
  trace.complete = r.complete();
  trace.reader_warning = r.warning();
  return trace;
}

TracedRun TraceCommand(const std::vector<std::string>& command, const std::string& cwd,
                       const std::vector<std::string>& flags) {
  TracedRun result;
  result.trace_path = MakeTempDir() + "/run.trace";
  std::vector<std::string> argv = {DodoPath(), "trace", "-o", result.trace_path};
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  RunResult run = RunCommand(argv, cwd);
  result.exit_status = run.exit_status;
  result.out = std::move(run.out);
  result.err = std::move(run.err);
  result.trace = LoadTrace(result.trace_path);
  return result;
}

}  // namespace dodo::test
