#include "cli/build_command.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string_view>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cli/exit_now.h"
#include "cli/trace_command.h"
#include "model/file_hasher.h"
#include "model/path_resolver.h"
#include "model/rebuilder.h"
#include "model/recorder.h"
#include "model/replay.h"
#include "model/store.h"
#include "model/trace_model.h"
#include "model/trace_reader.h"
#include "model/trace_writer.h"
#include "model/up_to_date.h"
#include "model/virtual_store.h"
#include "tracer/seccomp_filter.h"
#include "tracer/tracer.h"

extern char** environ;

namespace dodo::cli {
namespace {
constexpr std::string_view kStampFlag = "--stamp-last-build";
}  // namespace

CLI::App* AddBuildCommand(CLI::App& app, BuildOptions& options) {
  CLI::App* build = app.add_subcommand(
      "build",
      "Build the project in the current directory: run ./Dodofile (or the command\n"
      "given after --) under the tracer. Every command whose inputs are the same as\n"
      "in the last build is skipped and its outputs come from the store (.dodo/);\n"
      "the others run. The result is the tree a clean build would give.\n\n"
      "Examples:\n"
      "  dodo build                 # runs ./Dodofile; with none, the last build's command\n"
      "  dodo build -- make -j2     # any command can be the root of the build\n"
      "  dodo why                   # what the next build would run, and why\n\n"
      "Prints each command it runs, then a summary line. Exit status: the root\n"
      "command's (128+N if signal N killed it); 2 if there is no Dodofile, no\n"
      "command and no last build to repeat; 125 if dodo itself failed (store not writable, tracer "
      "not started).\n\n"
      "Outputs go through the virtual store. A command writes the files in the\n"
      "tree; before it first changes one, dodo keeps the file's version in\n"
      ".dodo/stage/. Once every process that wrote the file has exited with status\n"
      "0, the new version is kept in .dodo/objects/ and listed in .dodo/manifest;\n"
      "if one failed, the old version is put back. A failed command leaves the tree\n"
      "as it was. If dodo itself is killed, the next dodo build first puts back\n"
      "what the killed one was writing. --staged isolates more, at a cost.");
  build->add_flag("--fresh", options.fresh,
                  "Ignore the last build: run every command (the store is kept)");
  build->add_flag("--show-skipped", options.show_skipped, "Also list the commands skipped");
  build->add_flag("--explain", options.explain,
                  "After each command run, say why it could not be skipped");
  build->add_flag("-q,--quiet", options.quiet, "Print only the summary line");
  build->add_flag("--stats", options.stats,
                  "Also print, on stderr, what the tracer and the store did (stops, lookups\n"
                  "read from eBPF, files written, committed and put back) and how long each\n"
                  "phase took (stamp check, trace load, plan, run, finish)");
  CLI::Option* direct =
      build->add_flag("--direct", options.direct,
                      "Keep no old versions: a failed command's partial outputs stay in\n"
                      "the tree (they are still stored and listed)");
  build
      ->add_flag("--staged", options.staged,
                 "Write each output to a copy in .dodo/stage/, renamed over the file\n"
                 "only when its writers succeed, and redirect every access to it\n"
                 "meanwhile: no other process sees a half-written file. Slower: every\n"
                 "lookup (stat, open, access) of the build stops in dodo")
      ->excludes(direct);
  build->add_flag("--no-bpf", options.no_bpf,
                  "Trap the lookups (stat, access, readlink, read-only opens) instead of\n"
                  "reading them from eBPF programs on the syscalls' tracepoints (used when\n"
                  "dodo may load them and the build is not --staged)");
  build->add_flag("--keep-failed", options.keep_failed,
                  "Keep what failed commands wrote in .dodo/failed/PATH, for debugging");
  build->add_flag("--ptrace-only", options.ptrace_only,
                  "Stop at every traced syscall with ptrace, not using the seccomp listener\n"
                  "for lookups and read-only opens (slower; lets a program install a seccomp\n"
                  "listener of its own, refused otherwise, whose calls then go unrecorded)");
  build->add_flag("--no-background-plan", options.no_background_plan,
                  "After a build that ran commands, do not start the detached dodo that\n"
                  "plans the next build at once and writes .dodo/uptodate (which lets the\n"
                  "next no-op build answer from stat calls alone)");
  AddHashCacheOptions(build, &options.hash_cache, &options.no_hash_cache);
  // Internal: what that detached dodo runs. Hidden from --help.
  build->add_flag(std::string(kStampFlag), options.stamp_last_build)->group("");
  build->add_option("command", options.command, "The root command, after -- (default ./Dodofile)")
      ->expected(-1);
  return build;
}

std::vector<std::string> DodofileCommand(const std::string& dir) {
  const std::string path = dir + "/Dodofile";
  if (access(path.c_str(), F_OK) != 0) return {};
  if (access(path.c_str(), X_OK) == 0) return {"./Dodofile"};
  return {"/bin/sh", "./Dodofile"};
}

namespace {

std::string CurrentDirectory() {
  char cwd[4096];
  return getcwd(cwd, sizeof(cwd)) != nullptr ? std::string(cwd) : std::string();
}

// The root command of the last build in `dir` when it was not the
// Dodofile, read from the trace's header alone; empty if there is none.
std::vector<std::string> LastBuildCommand(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<model::TraceReader>> reader =
      model::TraceReader::Open(dir + "/.dodo/trace");
  if (!reader.ok()) return {};
  const proto::Header& header = (*reader)->header();
  if (header.working_directory() != dir) return {};
  std::vector<std::string> argv(header.root_argv().begin(), header.root_argv().end());
  for (const std::string& arg : argv) {
    if (arg == "./Dodofile") return {};  // gone since: nothing to rerun
  }
  return argv;
}

std::vector<std::string> CurrentEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  return env;
}

// Where a build's time went, phase by phase, for --stats: a rebuild that is
// slower than make should say whether dodo planned, traced or stored.
class PhaseClock {
 public:
  explicit PhaseClock(absl::Time start) : last_(start) {}
  // The time since the last mark is `phase`'s.
  void Mark(std::string_view phase) {
    const absl::Time now = absl::Now();
    phases_.emplace_back(phase, now - last_);
    last_ = now;
  }
  std::string Report() const {
    std::string out;
    for (const auto& [phase, took] : phases_) {
      absl::StrAppend(&out, out.empty() ? "" : ", ", phase, " ",
                      absl::StrFormat("%.3fs", absl::ToDoubleSeconds(took)));
    }
    return out;
  }

 private:
  absl::Time last_;
  std::vector<std::pair<std::string, absl::Duration>> phases_;
};

void Summary(const model::RebuildStats& stats, absl::Time start) {
  std::printf("dodo: %llu run, %llu skipped, %llu restored from the store, in %.2fs\n",
              static_cast<unsigned long long>(stats.run),
              static_cast<unsigned long long>(stats.skipped),
              static_cast<unsigned long long>(stats.files_restored),
              absl::ToDoubleSeconds(absl::Now() - start));
  std::fflush(stdout);
}

// The hash cache only saves time later: a cache that cannot be written is
// no error. One that gained nothing is left as it is.
void SaveHashes(const model::FileHasher& hasher, const model::Store& store,
                std::ostream& warnings = std::cerr) {
  if (!hasher.cache_changed()) return;
  // The project's own entries: those of the user's cache its build did not
  // use would only make every later run's load longer.
  if (absl::Status saved =
          hasher.SaveCache(store.hashes_path(), model::FileHasher::kMaxCacheEntries,
                           /*only_this_run=*/true);
      !saved.ok()) {
    warnings << "dodo build: warning: " << saved.message() << "\n";
  }
}

// Runs `work` on a thread of its own (here, if no thread can be had).
std::future<void> InBackground(std::function<void()> work) {
  try {
    return std::async(std::launch::async, std::move(work));
  } catch (const std::system_error&) {
    work();
    return {};
  }
}

// The first no-op after a build that ran commands would load and replay the
// whole trace: 0.15 s for lua's, fifteen times make's no-op. A dodo of its
// own does that now, detached (its own session, /dev/null for output, no
// other descriptor, lower priority), and leaves the stamp that answers the
// next no-op with stat calls alone. Nobody waits for it; if it cannot run,
// the next no-op plans as before.
void PlanInBackground(const std::vector<std::string>& argv) {
  std::vector<std::string> args = {"dodo", "build", std::string(kStampFlag), "--"};
  args.insert(args.end(), argv.begin(), argv.end());
  std::vector<char*> c_args;
  for (std::string& arg : args) c_args.push_back(arg.data());
  c_args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  for (int fd = 0; fd <= 2; ++fd) {
    posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
  }
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  (void)posix_spawn(&pid, "/proc/self/exe", &actions, &attr, c_args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
}

// The detached planner's side (see PlanInBackground).
int StampLastBuild(const std::vector<std::string>& root_argv) {
  setpriority(PRIO_PROCESS, 0, 10);  // yields to whatever the user runs next
  // The build's last outputs are a moment old: the stamp takes no path
  // changed within a timestamp tick of its lookups, so let that pass.
  absl::SleepFor(absl::Milliseconds(150));
  const std::string cwd = CurrentDirectory();
  const model::RootCall root{.argv = root_argv, .cwd = cwd, .env = CurrentEnvironment()};
  absl::StatusOr<bool> written = model::StampLastBuild(cwd + "/.dodo", root);
  return written.ok() && *written ? 0 : 1;
}

}  // namespace

int RunBuild(const BuildOptions& options) {
  if (options.stamp_last_build) {
    std::vector<std::string> argv = options.command;
    if (argv.empty()) argv = DodofileCommand(CurrentDirectory());
    return StampLastBuild(argv);
  }
  const absl::Time start = absl::Now();
  PhaseClock clock(start);
  const std::string cwd = CurrentDirectory();
  std::vector<std::string> argv = options.command;
  if (argv.empty()) {
    argv = DodofileCommand(cwd);
  }
  if (argv.empty()) {
    // `dodo build -- make -j2` once, plain `dodo build` from then on, as
    // `dodo why` replays the last build's command.
    argv = LastBuildCommand(cwd);
    if (!argv.empty() && !options.quiet) {
      std::cerr << "dodo build: no Dodofile; running the last build's command: "
                << absl::StrJoin(argv, " ") << "\n";
    }
  }
  if (argv.empty()) {
    std::cerr << "dodo build: " << cwd
              << "/Dodofile: no such file (write one, or name the command: dodo build -- make)\n";
    return 2;
  }

  absl::StatusOr<std::unique_ptr<model::Store>> store = model::Store::Open(cwd + "/.dodo");
  if (!store.ok()) {
    std::cerr << "dodo build: " << store.status().message() << "\n";
    return kToolFailure;
  }
  const model::RootCall root{.argv = argv, .cwd = cwd, .env = CurrentEnvironment()};
  if (!options.fresh && !options.show_skipped) {
    // Nothing the last up-to-date plan looked at has changed: neither has
    // its answer, and there is no need to load the trace.
    if (std::optional<model::UpToDateHit> hit =
            model::CheckUpToDateStamp((*store)->stamp_path(), (*store)->trace_path(), root)) {
      Summary({.skipped = hit->commands}, start);
      clock.Mark("stamp");
      if (options.stats) std::cerr << "dodo build: time: " << clock.Report() << "\n";
      return hit->exit_status;
    }
  }
  // From here on the stamp would describe a trace this build replaces.
  unlink((*store)->stamp_path().c_str());
  clock.Mark("stamp");

  model::FileHasher hasher;
  // Read while the trace loads: the plan's first hash waits for it.
  hasher.LoadCacheInBackground((*store)->hashes_path());
  model::LiveTree tree(&hasher, cwd);

  std::optional<model::TraceModel> previous;
  if (!options.fresh && access((*store)->trace_path().c_str(), F_OK) == 0) {
    // The dormant records' operations, most of a trace after a small edit,
    // are read while the build runs (below).
    absl::StatusOr<model::TraceModel> loaded =
        model::TraceModel::Load((*store)->trace_path(), {.defer_dormant = true});
    if (loaded.ok()) {
      previous = *std::move(loaded);
    } else {
      // The old trace only saves work; without it everything runs.
      std::cerr << "dodo build: " << loaded.status().message() << "; running every command\n";
    }
  }
  clock.Mark("load");
  // The tracer's seccomp filter, compiled while the plan is made (on one
  // CPU): the command starts about 5 ms sooner. Not while the trace loads,
  // which takes both CPUs of a small machine. (The observer, which would
  // save as much again, is not started here: an exit with it open waits
  // for its programs to be detached, and a planned no-op exits here.)
  const tracer::FilterOptions filter_options{.lookups_observed =
                                                 !options.no_bpf && !options.staged};
  std::future<absl::StatusOr<tracer::SeccompFilter>> filter =
      tracer::SeccompFilter::BuildInBackground(filter_options);

  // Planned before anything is staged, so the tree is the one on disk.
  model::Plan plan;
  std::optional<model::UpToDateStamp> stamp;
  if (previous.has_value()) {
    const int64_t plan_start = absl::ToUnixNanos(absl::Now());
    plan = model::MakePlan(*previous, tree, argv, cwd, root.env);
    if (plan.UpToDate()) {
      const int exit_status = previous->commands()[previous->root()].end.exit_code();
      stamp = model::UpToDateStamp::FromPlan(tree, (*store)->dir() + "/", root,
                                             previous->build_size(), exit_status, plan_start);
      if (!options.show_skipped) {
        // Nothing to run, restore or relist: a new trace would say what the
        // last one says, so it stays, and neither the trace nor the manifest
        // is written (or synced) again. --show-skipped takes the long way,
        // which lists each command as it copies it.
        SaveHashes(hasher, **store);
        if (stamp.has_value() && exit_status == 0) {
          (void)stamp->Write((*store)->stamp_path(), (*store)->trace_path());
        }
        Summary({.skipped = previous->build_size()}, start);
        clock.Mark("plan");
        if (options.stats) std::cerr << "dodo build: time: " << clock.Report() << "\n";
        ExitNow(exit_status);
      }
    }
  }
  clock.Mark("plan");
  if (previous.has_value()) previous->IndexDormantInBackground();

  proto::Header header;
  header.set_tool_version(DODO_VERSION);
  for (const std::string& arg : argv) header.add_root_argv(arg);
  header.set_working_directory(cwd);
  header.set_start_time_ns(absl::ToUnixNanos(start));
  const bool inherit_strings =
      model::Rebuilder::ShouldInheritStrings(previous ? &*previous : nullptr);
  if (inherit_strings) {
    header.set_strings_inherited_builds(previous->header().strings_inherited_builds() + 1);
  }
  absl::StatusOr<std::unique_ptr<model::TraceWriter>> writer =
      model::TraceWriter::Create((*store)->next_trace_path(), header);
  if (!writer.ok()) {
    std::cerr << "dodo build: " << writer.status().message() << "\n";
    return kToolFailure;
  }
  model::PathResolver resolver;
  model::Recorder recorder(writer->get(), &resolver, &hasher);
  model::RebuildOptions rebuild_options{.project_root = cwd,
                                        .progress = options.quiet ? nullptr : stdout,
                                        .show_skipped = options.show_skipped,
                                        .explain = options.explain};
  model::Rebuilder rebuilder(&recorder, previous ? &*previous : nullptr, store->get(), &tree,
                             rebuild_options);
  recorder.set_output_keeper(&rebuilder);
  if (inherit_strings) {
    if (absl::Status inherited = rebuilder.InheritStrings(); !inherited.ok()) {
      std::cerr << "dodo build: " << inherited.message() << "\n";
      return kToolFailure;
    }
  }
  absl::StatusOr<std::unique_ptr<model::VirtualStore>> vfs =
      model::VirtualStore::Create({.project_root = cwd,
                                   .mode = options.staged   ? model::WriteMode::kStaged
                                           : options.direct ? model::WriteMode::kDirect
                                                            : model::WriteMode::kInPlace,
                                   .keep_failed = options.keep_failed},
                                  store->get(), &hasher, &rebuilder);
  if (!vfs.ok()) {
    std::cerr << "dodo build: " << vfs.status().message() << "\n";
    return kToolFailure;
  }
  (*vfs)->set_command_of([&recorder](pid_t pid) { return recorder.CommandOf(pid); });
  rebuilder.set_remove_path([&vfs](const std::string& path) { return (*vfs)->Remove(path); });
  recorder.set_path_mapper(vfs->get());
  tree.set_path_mapper(vfs->get());
  resolver.set_path_mapper(vfs->get());

  clock.Mark("setup");
  int status = 0;
  bool ran = true;
  if (previous.has_value()) {
    rebuilder.set_plan(&plan);
    if (!plan.root_changed && !plan.commands[previous->root()].runs) {
      absl::StatusOr<int> skipped = rebuilder.SkipEverything(plan);
      if (skipped.ok()) {
        status = *skipped;
        ran = false;
      }
    }
  }
  tracer::TracerStats tracer_stats;
  std::string bpf_refusal;
  const std::string user_hash_cache = options.no_hash_cache ? "" : options.hash_cache;
  if (ran) {
    // Loaded only now, so that a no-op pays nothing for it, and while the
    // tracer starts. The store's own entries, loaded first, are kept where
    // both know a file.
    if (!user_hash_cache.empty()) hasher.LoadCacheInBackground(user_hash_cache, /*shared=*/true);
    tracer::Tracer tracer(vfs->get());
    tracer.set_exec_gate(&rebuilder);
    tracer.set_path_redirector(vfs->get());
    tracer.set_use_listener(!options.ptrace_only);
    tracer.set_use_bpf(!options.no_bpf);
    tracer.set_filter(filter_options, std::move(filter));
    absl::StatusOr<int> result = tracer.Run(argv);
    if (!result.ok()) {
      std::cerr << "dodo build: cannot run '" << argv[0] << "': " << result.status().message()
                << "\n";
      return kToolFailure;
    }
    status = *result;
    tracer_stats = tracer.stats();
    bpf_refusal = tracer.bpf_refusal();
  }
  clock.Mark(ran ? "run" : "restore");
  absl::Status committed = (*vfs)->Finish(status == 0);
  absl::Status recorded = recorder.Finish();
  if (ran) rebuilder.KeepDormant();
  // Nothing is hashed from here on. The two hash caches (3 MB for a user
  // who built xz) are written at the same time, and while the trace is
  // finished and committed; their warnings are printed after.
  std::ostringstream store_cache_warnings;
  std::ostringstream user_cache_warnings;
  std::future<void> store_cache_saved =
      InBackground([&] { SaveHashes(hasher, **store, store_cache_warnings); });
  // Saved even if nothing was hashed: the digests came from .dodo/hashes,
  // which the user's cache may not hold yet.
  std::future<void> user_cache_saved = InBackground([&] {
    if (ran) {
      SaveHashCache(hasher, user_hash_cache, "dodo build", /*always=*/true, user_cache_warnings);
    }
  });
  if (recorded.ok()) recorded = committed;
  absl::Status finished = (*writer)->Finish(status);
  if (recorded.ok() && finished.ok()) finished = (*store)->CommitTrace();
  if (!recorded.ok() || !finished.ok()) {
    std::cerr << "dodo build: " << (recorded.ok() ? finished : recorded).message() << "\n";
    return kToolFailure;
  }
  if (!recorder.first_keep_error().ok()) {
    std::cerr << "dodo build: warning: an output was not stored: "
              << recorder.first_keep_error().message() << "\n";
  }
  if (!(*vfs)->first_error().ok()) {
    std::cerr << "dodo build: warning: " << (*vfs)->first_error().message() << "\n";
  }
  if (!rebuilder.first_error().ok()) {
    std::cerr << "dodo build: warning: " << rebuilder.first_error().message()
              << " (the command ran instead)\n";
  }
  if (store_cache_saved.valid()) store_cache_saved.get();
  if (user_cache_saved.valid()) user_cache_saved.get();
  std::cerr << store_cache_warnings.str() << user_cache_warnings.str();
  if (stamp.has_value() && !ran && status == 0) {
    // Only saves time later: a stamp that cannot be written is no error.
    (void)stamp->Write((*store)->stamp_path(), (*store)->trace_path());
  }
  clock.Mark("finish");
  if (ran && status == 0 && !options.no_background_plan) {
    PlanInBackground(argv);
  }
  Summary(rebuilder.stats(), start);
  if (options.stats) {
    const model::VirtualStoreStats& v = (*vfs)->stats();
    std::cerr << "dodo build: " << tracer_stats.processes << " processes, "
              << tracer_stats.seccomp_stops << " seccomp stops, " << tracer_stats.exit_stops
              << " exit stops (" << tracer_stats.results_observed
              << " results of opens from eBPF instead), " << tracer_stats.notifications
              << " listener notifications, " << tracer_stats.observed << " lookups from eBPF ("
              << tracer_stats.observed_lost << " lost"
              << (bpf_refusal.empty() ? "" : "; off: " + bpf_refusal) << "), "
              << tracer_stats.paths_rewritten << " paths rewritten; store: " << v.staged
              << " files written (" << v.copied_up << " copied first), " << v.committed
              << " committed, " << v.discarded << " failed (" << v.restored
              << " old versions put back)\n";
    std::cerr << "dodo build: time: " << clock.Report() << "\n";
  }
  if (status != 0 && !options.quiet) {
    std::cerr << "dodo build: '" << model::ShortCommand(argv, 60) << "' exited with status "
              << status << "\n";
  }
  // The trace is committed and the store's lock goes with the process: the
  // last build's model, the hash tables and the new trace's string table
  // need not be freed piece by piece (see ExitNow).
  ExitNow(status);
}

}  // namespace dodo::cli
