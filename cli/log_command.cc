#include "cli/log_command.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "model/notation.h"
#include "model/trace_reader.h"
#include "proto/trace.pb.h"

namespace dodo::cli {
namespace {

// Operations a block buffers before it is printed early: enough that
// ordinary commands print in one piece, few enough that a long-running
// command (a linker, a test runner) cannot hold the whole trace in memory.
constexpr size_t kMaxBufferedOperations = 10'000;

constexpr char kLogHelp[] = R"(Each command (one successful exec) prints as a block:
  [ID] (parent ID) pid PID: ARGV...      its heading; "restored" before pid:
                                         skipped by dodo build, its records
                                         copied; "dormant": kept from an
                                         earlier build, not part of this one
    <operation> = <result>               what it did, in order
    produced "/path" [sha256:...]        a file it wrote, as it left it
  [ID] exit 0                            how it ended
Blocks print when their command ends, so children come before parents.

Operations use dodo's notation. A path is a chain of directory lookups,
innermost first, from / (absolute), . (working directory) or FD(n) (a
directory descriptor). Symbolic links are already followed: each one read
shows as its own READLINK operation.
  GET("gcc", GET("bin", /)) = ENOENT     lookup: /bin exists, /bin/gcc not
  R(GET("a.c", .)) = OK [sha256:1f2e3d4c]
                                         read ./a.c; its contents' digest
  W(TRUNC(LINK_IF_NEEDED(NEWFILE, "a.s", GET("tmp", /)))) = OK
                                         open /tmp/a.s O_CREAT|O_TRUNC, write
  X(...) executed   STAT(...) metadata read   LIST(...) directory read
  LINK(NEWDIR, "out", .) mkdir           UNLINK("a.s", GET("tmp", /)) rm
  RENAME("a", ., "b", .)                 CHMOD(..., 0755)   TRUNC(..., 0)
A failed lookup prints only up to the GET that failed. After " = " comes
OK or the errno, then what was seen: -> "target" (READLINK),
[sha256:...] (file contents), [listing:...] (directory), [gone].

Examples:
  dodo log build.trace
  dodo log --command 3 build.trace
  dodo log --json build.trace | jq -r 'select(.kind == "READ") | .path')";

// Builds one JSON object; keys are fixed ASCII so only values are escaped.
std::string WarningLine(const proto::Warning& warning) {
  std::string line = "warning:";
  if (warning.command() != 0) absl::StrAppend(&line, " [cmd ", warning.command(), "]");
  absl::StrAppend(&line, " pid ", warning.pid());
  if (!warning.syscall().empty()) absl::StrAppend(&line, " ", warning.syscall());
  absl::StrAppend(&line, ": ", warning.message());
  return line;
}

// Prints the notation, one block per command.
class TextPrinter {
 public:
  TextPrinter(const model::TraceReader& reader, std::ostream& out) : reader_(reader), out_(out) {}

  void Handle(const proto::Record& record) {
    auto strings = [this](uint32_t id) { return reader_.String(id); };
    switch (record.kind_case()) {
      case proto::Record::kCommandStart: {
        const proto::CommandStart& start = record.command_start();
        if (auto it = live_.find(start.id()); it != live_.end()) {
          // An id reused without an end: close the old block first.
          PrintBlock(it->second);
          Print("[", start.id(), "] (no end recorded)");
          live_.erase(it);
        }
        Block& block = live_[start.id()];
        block.order = next_order_++;
        block.heading = model::FormatCommandHeader(start, strings);
        break;
      }
      case proto::Record::kOperation: {
        const proto::Operation& op = record.operation();
        Block& block = Find(op.command());
        block.lines.push_back(absl::StrCat("  ", model::FormatOperation(op, strings)));
        if (++block.operations >= kMaxBufferedOperations) PrintBlock(block);
        break;
      }
      case proto::Record::kWarning: {
        const proto::Warning& warning = record.warning();
        if (auto it = live_.find(warning.command()); it != live_.end()) {
          it->second.lines.push_back(absl::StrCat("  ", WarningLine(warning)));
        } else {
          Print(WarningLine(warning));
        }
        break;
      }
      case proto::Record::kCommandEnd: {
        const proto::CommandEnd& end = record.command_end();
        Block& block = Find(end.id());
        // What the command left in the files it wrote, before how it ended.
        for (const proto::Output& output : end.outputs()) {
          std::string version = model::FormatVersion(output.version());
          // A hard link to a file it wrote under another name.
          std::string other_name;
          if (output.same_file_as() != 0) {
            other_name = absl::StrCat(" as another name of ",
                                      model::Quote(reader_.String(output.same_file_as())));
          }
          block.lines.push_back(absl::StrCat("  produced ",
                                             model::Quote(reader_.String(output.path())),
                                             other_name, version.empty() ? "" : " ", version));
        }
        PrintBlock(block);
        Print("[", end.id(), "] ", model::FormatCommandEnd(end));
        live_.erase(end.id());
        break;
      }
      default:
        break;
    }
  }

  // Prints the blocks of commands that never ended, in the order they began.
  void Finish() {
    std::vector<std::pair<uint64_t, uint64_t>> order;  // (order, id)
    order.reserve(live_.size());
    for (const auto& [id, block] : live_) order.emplace_back(block.order, id);
    std::sort(order.begin(), order.end());
    for (const auto& [unused, id] : order) {
      PrintBlock(live_[id]);
      Print("[", id, "] (no end recorded)");
    }
    live_.clear();
  }

 private:
  struct Block {
    uint64_t order = 0;   // when the command was first seen
    std::string heading;  // FormatCommandHeader's line
    std::vector<std::string> lines;
    size_t operations = 0;  // operations among `lines`
    bool printed = false;   // part of it already printed
  };

  Block& Find(uint64_t id) {
    auto [it, inserted] = live_.try_emplace(id);
    if (inserted) {
      it->second.order = next_order_++;
      it->second.heading = absl::StrCat("[", id, "] (no start recorded)");
    }
    return it->second;
  }

  void PrintBlock(Block& block) {
    Print(block.heading, block.printed ? " (continued)" : "");
    for (const std::string& line : block.lines) out_ << line << '\n';
    block.lines.clear();
    block.operations = 0;
    block.printed = true;
  }

  template <typename... Parts>
  void Print(const Parts&... parts) {
    out_ << absl::StrCat(parts...) << '\n';
  }

  const model::TraceReader& reader_;
  std::ostream& out_;
  std::map<uint64_t, Block> live_;
  uint64_t next_order_ = 0;
};

// Streams JSON lines in trace order.
void PrintJson(const model::TraceReader& reader, const proto::Record& record, std::ostream& out) {
  auto strings = [&reader](uint32_t id) { return reader.String(id); };
  switch (record.kind_case()) {
    case proto::Record::kCommandStart: {
      const proto::CommandStart& start = record.command_start();
      std::string argv = "[";
      for (uint32_t word : start.argv()) {
        if (argv.size() > 1) argv += ',';
        argv += model::JsonQuote(reader.String(word));
      }
      argv += ']';
      model::JsonObject json;
      json.String("type", "command")
          .Number("id", start.id())
          .Number("parent", start.parent_id())
          .Number("pid", start.pid())
          .String("executable", reader.String(start.executable()))
          .Raw("argv", argv)
          .String("cwd", reader.String(start.cwd()))
          .Number("start_time_ns", start.start_time_ns());
      if (start.restored()) json.Bool("restored", true);
      if (start.dormant()) {
        json.Bool("dormant", true).Number("dormant_builds", start.dormant_builds());
      }
      // What each inherited descriptor was: the exec gate compares them,
      // so `dodo build --explain`'s "descriptor 1 was ..." can be checked.
      if (!start.fds().empty()) {
        std::string fds = "[";
        for (const proto::InheritedFd& fd : start.fds()) {
          if (fds.size() > 1) fds += ',';
          model::JsonObject item;
          item.Number("fd", fd.fd()).String("kind", proto::FdKind_Name(fd.kind()));
          if (fd.path() != 0) item.String("path", reader.String(fd.path()));
          if (fd.kind() == proto::FD_PIPE) item.Number("pipe", fd.pipe_id());
          if (!fd.description().empty()) item.String("description", fd.description());
          if (fd.readable()) item.Bool("readable", true);
          if (fd.writable()) item.Bool("writable", true);
          if (fd.has_size()) item.Number("size", fd.size());
          if (fd.drained()) item.Bool("drained", true);
          if (fd.external()) item.Bool("external", true);
          fds += item.Finish();
        }
        fds += ']';
        json.Raw("fds", fds);
      }
      out << json.Finish() << '\n';
      break;
    }
    case proto::Record::kOperation:
      out << model::OperationToJson(record.operation(), strings) << '\n';
      break;
    case proto::Record::kWarning: {
      const proto::Warning& warning = record.warning();
      out << model::JsonObject()
                 .String("type", "warning")
                 .Number("command", warning.command())
                 .Number("pid", warning.pid())
                 .String("syscall", warning.syscall())
                 .String("message", warning.message())
                 .Finish()
          << '\n';
      break;
    }
    case proto::Record::kCommandEnd: {
      const proto::CommandEnd& end = record.command_end();
      model::JsonObject json;
      json.String("type", "command_end")
          .Number("id", end.id())
          .String("how", proto::CommandEnd::How_Name(end.how()));
      if (end.how() == proto::CommandEnd::EXITED) json.Number("exit_code", end.exit_code());
      if (end.how() == proto::CommandEnd::KILLED)
        json.String("signal", model::SignalName(end.signal()));
      json.Number("end_time_ns", end.end_time_ns()).String("text", model::FormatCommandEnd(end));
      if (!end.outputs().empty()) {
        std::string outputs = "[";
        for (const proto::Output& output : end.outputs()) {
          if (outputs.size() > 1) outputs += ',';
          const proto::Version& version = output.version();
          model::JsonObject item;
          item.String("path", reader.String(output.path()));
          if (output.same_file_as() != 0) {
            item.String("same_file_as", reader.String(output.same_file_as()));
          }
          if (!version.sha256().empty()) {
            item.String("sha256", absl::BytesToHexString(version.sha256()));
            item.Number("size", version.size());
          }
          if (version.mode() != 0) item.Number("mode", version.mode());
          if (version.mtime_ns() != 0) item.Number("mtime_ns", version.mtime_ns());
          if (version.absent()) item.Raw("absent", "true");
          outputs += item.Finish();
        }
        outputs += ']';
        json.Raw("outputs", outputs);
      }
      out << json.Finish() << '\n';
      break;
    }
    default:
      break;
  }
}

// The command a record belongs to.
uint64_t CommandOf(const proto::Record& record) {
  switch (record.kind_case()) {
    case proto::Record::kCommandStart:
      return record.command_start().id();
    case proto::Record::kCommandEnd:
      return record.command_end().id();
    case proto::Record::kOperation:
      return record.operation().command();
    case proto::Record::kWarning:
      return record.warning().command();
    default:
      return 0;
  }
}

}  // namespace

int RunLog(const LogOptions& options, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::unique_ptr<model::TraceReader>> opened =
      model::TraceReader::Open(options.trace_path);
  if (!opened.ok()) {
    err << "dodo log: " << opened.status().message() << '\n';
    return 2;
  }
  model::TraceReader& reader = **opened;

  TextPrinter text(reader, out);
  bool command_seen = false;
  proto::Record record;
  while (reader.Next(&record)) {
    if (options.command.has_value()) {
      if (CommandOf(record) != *options.command) continue;
      command_seen = true;
    }
    if (options.json) {
      PrintJson(reader, record, out);
    } else {
      text.Handle(record);
    }
  }
  text.Finish();
  out.flush();

  if (!reader.warning().empty()) err << "dodo log: warning: " << reader.warning() << '\n';
  if (options.command.has_value() && !command_seen) {
    err << "dodo log: " << options.trace_path << ": no command " << *options.command
        << " in the trace\n";
    return 1;
  }
  return 0;
}

void AddLogCommand(CLI::App& app, LogOptions& options) {
  CLI::App* log = app.add_subcommand("log", "Print a trace's operations in dodo's notation");
  log->add_option("TRACE", options.trace_path, "The trace file dodo wrote")->required();
  log->add_flag("--json", options.json,
                "One JSON object per line, in trace order (\"type\": \"operation\", "
                "\"command\", \"command_end\" or \"warning\")");
  log->add_option_function<uint64_t>(
         "--command", [&options](const uint64_t& id) { options.command = id; },
         "Only the command with this id (the N of its [N] heading)")
      ->type_name("ID");
  log->footer(kLogHelp);
}

}  // namespace dodo::cli
