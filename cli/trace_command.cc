#include "cli/trace_command.h"

#include <errno.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "model/file_hasher.h"
#include "model/path_resolver.h"
#include "model/recorder.h"
#include "model/trace_writer.h"
#include "tracer/tracer.h"

namespace dodo::cli {

CLI::App* AddTraceCommand(CLI::App& app, TraceOptions& options) {
  CLI::App* trace = app.add_subcommand(
      "trace",
      "Run a command under the tracer and record every file system access of it and of\n"
      "every process it starts, as operations in a dependency trace.\n\n"
      "Example:\n"
      "  dodo trace -o build.trace -- make -j2\n"
      "  dodo log build.trace\n\n"
      "Exit status: the command's own (128+N if signal N killed it); 125 if dodo\n"
      "itself failed (the trace could not be written, the tracer could not start).\n"
      "Ctrl-C (SIGINT) or SIGTERM to dodo kills the whole traced process tree.");
  trace->add_option("-o,--output", options.output, "Trace file to write")->capture_default_str();
  trace->add_flag("--stats", options.stats,
                  "Print tracer counts (stops, commands, operations) to stderr at the end");
  trace->add_flag("--ptrace-only", options.ptrace_only,
                  "Stop at every traced syscall with ptrace, not using the seccomp listener\n"
                  "for lookups and read-only opens (slower; lets a program install a seccomp\n"
                  "listener of its own, refused otherwise, whose calls then go unrecorded)");
  trace->add_flag("--no-bpf", options.no_bpf,
                  "Trap the lookups (stat, access, readlink, read-only opens) instead of\n"
                  "reading them from eBPF programs on the syscalls' tracepoints (used when\n"
                  "dodo may load them: root, or CAP_BPF and CAP_PERFMON)");
  trace->add_flag("--keep-repeats", options.keep_repeats,
                  "Also record each observation a command repeats with the same result while\n"
                  "nothing has changed since (left out by default: they add no dependency;\n"
                  "cc1 repeats two thirds of its lookups)");
  AddHashCacheOptions(trace, &options.hash_cache, &options.no_hash_cache);
  trace->add_option("command", options.command, "The command to run, after --")
      ->required()
      ->expected(-1);
  return trace;
}

void AddHashCacheOptions(CLI::App* command, std::string* path, bool* off) {
  command
      ->add_option("--hash-cache", *path,
                   "File that keeps the digests of the files a run hashed, shared by the\n"
                   "user's traces and builds: a later run reads only the files changed since\n"
                   "(by inode, size, mtime and ctime; a digest taken less than two clock\n"
                   "ticks after the file changed is not kept)")
      ->capture_default_str();
  command->add_flag("--no-hash-cache", *off, "Neither read nor write that file");
}

namespace {

// mkdir -p of the directory that holds `file`, private to the user as the
// XDG base directory rules ask of the cache directory.
absl::Status MakeParentDirectories(const std::string& file) {
  for (size_t slash = file.find('/', 1); slash != std::string::npos;
       slash = file.find('/', slash + 1)) {
    const std::string dir = file.substr(0, slash);
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", dir));
    }
  }
  return absl::OkStatus();
}

}  // namespace

void SaveHashCache(const model::FileHasher& hasher, const std::string& path, std::string_view who,
                   bool always, std::ostream& warnings) {
  if (path.empty() || !(always || hasher.cache_changed())) return;
  absl::Status saved = MakeParentDirectories(path);
  if (saved.ok()) saved = hasher.SaveCache(path);
  // Only a lost speed-up for the next run: what this run made is complete.
  if (!saved.ok()) {
    warnings << who << ": warning: hash cache " << path << " not saved: " << saved.message()
             << " (--no-hash-cache turns it off)\n";
  }
}

namespace {

double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace

int RunTrace(const TraceOptions& options) {
  proto::Header header;
  header.set_tool_version(DODO_VERSION);
  for (const std::string& arg : options.command) header.add_root_argv(arg);
  char cwd[4096];
  if (getcwd(cwd, sizeof(cwd)) != nullptr) header.set_working_directory(cwd);
  header.set_start_time_ns(absl::ToUnixNanos(absl::Now()));
  char host[256];
  if (gethostname(host, sizeof(host)) == 0) header.set_hostname(host);

  absl::StatusOr<std::unique_ptr<model::TraceWriter>> writer =
      model::TraceWriter::Create(options.output, header);
  if (!writer.ok()) {
    std::cerr << "dodo trace: " << writer.status().message() << "\n";
    return kToolFailure;
  }
  model::PathResolver resolver;
  model::FileHasher hasher;
  const std::string hash_cache = options.no_hash_cache ? "" : options.hash_cache;
  // Read while the tracer starts: the first hash is the command's own.
  if (!hash_cache.empty()) hasher.LoadCacheInBackground(hash_cache);
  model::Recorder recorder(writer->get(), &resolver, &hasher);
  recorder.set_keep_repeats(options.keep_repeats);
  tracer::Tracer tracer(&recorder);
  tracer.set_use_listener(!options.ptrace_only);
  tracer.set_use_bpf(!options.no_bpf);
  absl::StatusOr<int> status = tracer.Run(options.command);
  absl::Status recorded = recorder.Finish();
  absl::Status finished = (*writer)->Finish(status.ok() ? *status : kToolFailure);
  if (!status.ok()) {
    std::cerr << "dodo trace: cannot trace '" << options.command[0]
              << "': " << status.status().message() << "\n";
    return kToolFailure;
  }
  if (!recorded.ok() || !finished.ok()) {
    std::cerr << "dodo trace: " << options.output << ": "
              << (recorded.ok() ? finished : recorded).message() << "\n";
    return kToolFailure;
  }
  SaveHashCache(hasher, hash_cache, "dodo trace", /*always=*/false);
  if (options.stats) {
    const tracer::TracerStats& t = tracer.stats();
    const model::RecorderStats& r = recorder.stats();
    std::cerr << "dodo trace: " << r.commands << " commands, " << r.operations << " operations ("
              << r.repeats_dropped << " repeats left out), " << r.warnings << " warnings; "
              << t.processes << " processes, " << t.seccomp_stops << " seccomp stops, "
              << t.exit_stops << " exit stops (" << t.results_observed
              << " results of opens from eBPF instead), " << t.event_stops << " event stops, "
              << t.notifications << " listener notifications (" << t.listeners << " listeners), "
              << t.observed << " lookups from eBPF (" << t.observed_lost << " lost"
              << (tracer.bpf_refusal().empty() ? "" : "; off: " + tracer.bpf_refusal())
              << "); resolver " << resolver.cache_hits() << " hits / " << resolver.cache_misses()
              << " misses; " << hasher.files_read() << " files hashed; dodo's own CPU "
              << SelfCpuSeconds() << " s\n";
  }
  return *status;
}

}  // namespace dodo::cli
