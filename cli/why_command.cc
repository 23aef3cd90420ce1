#include "cli/why_command.h"

#include <unistd.h>

#include <vector>

#include "cli/exit_now.h"
#include "model/file_hasher.h"
#include "model/notation.h"
#include "model/replay.h"
#include "model/trace_model.h"

extern char** environ;

namespace dodo::cli {

CLI::App* AddWhyCommand(CLI::App& app, WhyOptions& options) {
  CLI::App* why = app.add_subcommand(
      "why",
      "Replay the last build's trace against the tree as it is now: print each command\n"
      "the next `dodo build` would run, with the change that makes it run, one line per\n"
      "cause, and each output it would restore from the store. Runs nothing.\n\n"
      "Examples:\n"
      "  dodo why                   # the last build in this directory (.dodo/trace)\n"
      "  dodo why -q && echo up to date\n"
      "  dodo why build.trace       # any trace written by dodo trace\n\n"
      "Exit status: 0; with -q, 0 if the build is up to date and 1 if not;\n"
      "2 if the trace cannot be read.");
  why->add_option("trace", options.trace, "Trace to replay (default .dodo/trace)");
  why->add_flag("--json", options.json, "One JSON object per line");
  why->add_flag("-q,--quiet", options.quiet,
                "Print nothing; exit 1 if anything would run or be restored");
  return why;
}

int RunWhy(const WhyOptions& options, std::ostream& out, std::ostream& err) {
  char cwd_buffer[4096];
  const std::string cwd = getcwd(cwd_buffer, sizeof(cwd_buffer)) != nullptr ? cwd_buffer : "";
  const bool own_trace = options.trace.empty();
  const std::string path = own_trace ? cwd + "/.dodo/trace" : options.trace;
  if (own_trace && access(path.c_str(), F_OK) != 0) {
    err << "dodo why: " << path << ": no build recorded here yet (run dodo build first)\n";
    return 2;
  }
  absl::StatusOr<model::TraceModel> model = model::TraceModel::Load(path);
  if (!model.ok()) {
    err << "dodo why: " << model.status().message() << "\n";
    return 2;
  }
  if (model->root() == model::kNoCommand) {
    err << "dodo why: " << path << ": the trace holds no command\n";
    return 2;
  }
  if (!model->warning().empty() && !options.quiet) err << "dodo why: " << model->warning() << "\n";

  model::FileHasher hasher;
  // Digests the last runs took spare reading unchanged files again: dodo
  // build's cache for its own trace, dodo trace's for any other.
  const std::string hash_cache = own_trace ? cwd + "/.dodo/hashes" : model::UserHashCachePath();
  if (!hash_cache.empty()) hasher.LoadCache(hash_cache);
  // Paths are shown relative to where the build ran.
  const std::string root_cwd = model->Cwd(model->root());
  model::LiveTree tree(&hasher, root_cwd);
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  // The root is taken as given: why answers "if the same build ran again".
  const model::Plan plan = model::MakePlan(*model, tree, model->Argv(model->root()), root_cwd, env);

  // The loaded trace is not freed piece by piece: see ExitNow. (RunWhy is
  // the last thing dodo does.)
  if (options.quiet) ExitNow(plan.UpToDate() ? 0 : 1);
  for (size_t c = 0; c < plan.commands.size(); ++c) {
    const model::CommandVerdict& verdict = plan.commands[c];
    if (!verdict.runs) continue;
    const std::vector<std::string> argv = model->Argv(c);
    if (options.json) {
      model::JsonObject json;
      json.String("type", "rerun");
      json.Number("command", model->commands()[c].start.id());
      json.StringArray("argv", argv);
      json.Bool("dirty", verdict.dirty);
      json.StringArray("causes", verdict.causes);
      out << json.Finish() << "\n";
      continue;
    }
    for (const std::string& cause : verdict.causes) {
      out << model::ShortCommand(argv, 60) << ": " << cause << "\n";
    }
  }
  for (size_t i = 0; i < plan.restores.size(); ++i) {
    if (options.json) {
      model::JsonObject json;
      json.String("type", "restore");
      json.String("path", plan.restores[i].path);
      json.String("reason", plan.restore_reasons[i]);
      out << json.Finish() << "\n";
    } else {
      out << "restore " << tree.Display(plan.restores[i].path) << ": " << plan.restore_reasons[i]
          << "\n";
    }
  }
  if (plan.UpToDate() && !options.json) out << "up to date\n";
  out.flush();
  ExitNow(0);
}

}  // namespace dodo::cli
