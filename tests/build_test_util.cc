#include "tests/build_test_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "gtest/gtest.h"

namespace dodo::test {
namespace {

namespace fs = std::filesystem;

std::string_view Basename(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string ProgramName(const TracedCommand& command) {
  return std::string(Basename(command.argv.empty() ? command.executable : command.argv[0]));
}

// "gcc -c a.c" or "gcc -o prog": which file a gcc compiles or links is what
// tells its runs apart, whatever the order of its other arguments.
std::string GccLabel(const TracedCommand& gcc) {
  const std::vector<std::string>& argv = gcc.argv;
  if (std::find(argv.begin(), argv.end(), "-c") != argv.end()) {
    for (const std::string& arg : argv) {
      if (EndsWith(arg, ".c")) return "gcc -c " + arg;
    }
  }
  for (size_t i = 1; i + 1 < argv.size(); ++i) {
    if (argv[i] == "-o") return "gcc -o " + argv[i + 1];
  }
  return "gcc";
}

std::string Joined(const std::vector<std::string>& words) {
  std::string text;
  for (const std::string& word : words) text += (text.empty() ? "" : " ") + word;
  return text;
}

std::string Describe(const std::multiset<std::string>& labels) {
  std::string text = "{";
  for (const std::string& label : labels) text += (text.size() == 1 ? "" : ", ") + label;
  return text + "}";
}

// Everything a failure message needs to tell what a build did.
std::string Explain(const BuildRun& build) {
  return "dodo exit status " + std::to_string(build.run.exit_status) + "\nstdout:\n" +
         build.run.out + "\nstderr:\n" + build.run.err + "\ncommands:\n" +
         DescribeCommands(build.trace) + "trace:\n" + build.trace.Dump();
}

const TracedCommand* Root(const LoadedTrace& trace) {
  for (const TracedCommand& command : trace.commands) {
    if (command.parent == 0) return &command;
  }
  return nullptr;
}

}  // namespace

Project Project::Copy(std::string_view scenario) {
  const fs::path source = RunfilePath("testdata/scenarios/" + std::string(scenario));
  Project project(MakeTempDir());
  std::error_code error;
  // Runfiles are symlinks to the sources: copy what they point to, with its
  // mode, so that the Dodofile stays executable.
  for (auto it = fs::recursive_directory_iterator(
           source, fs::directory_options::follow_directory_symlink, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    const fs::path target = fs::path(project.dir()) / it->path().lexically_relative(source);
    if (it->is_directory()) {
      fs::create_directories(target, error);
    } else {
      fs::copy_file(it->path(), target, error);
      if (!error) fs::permissions(target, fs::status(it->path()).permissions(), error);
    }
    if (error) break;
  }
  EXPECT_FALSE(error) << "copying " << source << ": " << error.message();
  // Git or an archive may have dropped the executable bit.
  if (fs::exists(project.Path("Dodofile"))) {
    fs::permissions(project.Path("Dodofile"),
                    fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                    fs::perm_options::add);
  }
  return project;
}

std::string Project::Path(std::string_view relative) const {
  return dir_ + "/" + std::string(relative);
}

BuildRun Project::Build(const std::vector<std::string>& args, const Env& env) const {
  std::vector<std::string> argv;
  if (!env.empty()) {
    argv.push_back("/usr/bin/env");
    argv.insert(argv.end(), env.begin(), env.end());
  }
  argv.push_back(DodoPath());
  argv.push_back("build");
  argv.insert(argv.end(), args.begin(), args.end());
  BuildRun build;
  const std::string trace = Path(".dodo/trace");
  struct stat before;
  const bool had_trace = stat(trace.c_str(), &before) == 0;
  build.run = RunCommand(argv, dir_);
  struct stat after;
  if (stat(trace.c_str(), &after) != 0) {
    ADD_FAILURE() << "`dodo build` left no " << trace << "\n" << Explain(build);
    return build;
  }
  build.trace = LoadTrace(trace);
  build.trace_kept = had_trace && after.st_ino == before.st_ino &&
                     after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
                     after.st_mtim.tv_nsec == before.st_mtim.tv_nsec;
  if (build.trace_kept) {
    // A build that found everything up to date keeps the last trace, whose
    // commands ran in an earlier build: in this one, none did.
    EXPECT_NE(build.run.out.find("dodo: 0 run, "), std::string::npos)
        << "the trace was kept, yet commands ran\n"
        << Explain(build);
    for (TracedCommand& command : build.trace.commands) command.restored = true;
  }
  return build;
}

int Project::WhyQuiet() const {
  RunResult why = RunCommand({DodoPath(), "why", "-q"}, dir_);
  EXPECT_EQ(why.out + why.err, "") << "`dodo why -q` must print nothing";
  return why.exit_status;
}

std::string Project::RunProgram(std::string_view relative) const {
  RunResult run = RunCommand({Path(relative)}, dir_);
  EXPECT_EQ(run.exit_status, 0) << relative << ": " << run.err;
  return run.out;
}

std::optional<std::string> Project::Read(std::string_view relative) const {
  return ReadFile(Path(relative));
}

namespace {

// File times come from a clock that ticks every few milliseconds (a
// jiffy). A build restores what it skips with the time of now, as make
// expects; an edit made in the same tick would get the very same mtime, and
// make would take the target as up to date, with dodo or without. A person
// edits later than that; a test waits out the tick before it edits.
void WaitForTheNextFileTime() { usleep(20'000); }

}  // namespace

void Project::Write(std::string_view relative, std::string_view content) const {
  WaitForTheNextFileTime();
  std::ofstream out(Path(relative), std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  EXPECT_TRUE(out.good()) << "cannot write " << Path(relative);
}

void Project::Append(std::string_view relative, std::string_view content) const {
  WaitForTheNextFileTime();
  std::ofstream out(Path(relative), std::ios::binary | std::ios::app);
  out << content;
  out.close();
  EXPECT_TRUE(out.good()) << "cannot append to " << Path(relative);
}

void Project::Replace(std::string_view relative, std::string_view from, std::string_view to) const {
  std::optional<std::string> content = Read(relative);
  size_t at = content ? content->find(from) : std::string::npos;
  if (at == std::string::npos) {
    ADD_FAILURE() << "no \"" << from << "\" to replace in " << Path(relative);
    return;
  }
  content->replace(at, from.size(), to);
  Write(relative, *content);
}

void Project::Remove(std::string_view relative, bool must_exist) const {
  if (unlink(Path(relative).c_str()) != 0 && (must_exist || errno != ENOENT)) {
    ADD_FAILURE() << "cannot remove " << Path(relative) << ": " << strerror(errno);
  }
}

void Project::Rename(std::string_view from, std::string_view to) const {
  if (rename(Path(from).c_str(), Path(to).c_str()) != 0) {
    ADD_FAILURE() << "cannot rename " << Path(from) << ": " << strerror(errno);
  }
}

void Project::Symlink(std::string_view relative, std::string_view target) const {
  Remove(relative, /*must_exist=*/false);
  if (symlink(std::string(target).c_str(), Path(relative).c_str()) != 0) {
    ADD_FAILURE() << "cannot create symlink " << Path(relative) << ": " << strerror(errno);
  }
}

void Project::Touch(std::string_view relative) const {
  struct stat st;
  if (stat(Path(relative).c_str(), &st) != 0) {
    ADD_FAILURE() << "cannot stat " << Path(relative) << ": " << strerror(errno);
    return;
  }
  // Explicit times rather than "now": the change must be visible even on a
  // file system with coarse timestamps.
  timespec times[2] = {st.st_atim, st.st_mtim};
  times[0].tv_sec += 10;
  times[1].tv_sec += 10;
  if (utimensat(AT_FDCWD, Path(relative).c_str(), times, 0) != 0) {
    ADD_FAILURE() << "cannot touch " << Path(relative) << ": " << strerror(errno);
  }
}

std::string CommandLabel(const LoadedTrace& trace, const TracedCommand& command) {
  if (command.parent == 0) return "root";
  const std::string name = ProgramName(command);
  if (name == "gcc") return GccLabel(command);
  // gcc names its temporary files at random, so its tools are told apart by
  // the gcc that ran them.
  for (const TracedCommand* up = trace.Command(command.parent); up != nullptr;
       up = trace.Command(up->parent)) {
    if (ProgramName(*up) == "gcc") return GccLabel(*up) + " > " + name;
    if (up->parent == 0) break;
  }
  return name;
}

std::multiset<std::string> RanLabels(const LoadedTrace& trace) {
  std::multiset<std::string> labels;
  for (const TracedCommand& command : trace.commands) {
    if (!command.restored && !command.dormant) labels.insert(CommandLabel(trace, command));
  }
  return labels;
}

std::multiset<std::string> AllLabels(const LoadedTrace& trace) {
  std::multiset<std::string> labels;
  for (const TracedCommand& command : trace.commands) {
    if (!command.dormant) labels.insert(CommandLabel(trace, command));
  }
  return labels;
}

std::multiset<std::string> DormantLabels(const LoadedTrace& trace) {
  std::multiset<std::string> labels;
  for (const TracedCommand& command : trace.commands) {
    if (command.dormant) labels.insert(CommandLabel(trace, command));
  }
  return labels;
}

std::string DescribeCommands(const LoadedTrace& trace) {
  std::string text;
  for (const TracedCommand& command : trace.commands) {
    std::string argv = Joined(command.argv);
    if (argv.size() > 100) argv = argv.substr(0, 100) + "...";
    text += "  [" + std::to_string(command.id) + "] parent " + std::to_string(command.parent) +
            (command.dormant    ? " dormant  "
             : command.restored ? " restored "
                                : " ran      ") +
            CommandLabel(trace, command) + "  (" + argv + ")\n";
  }
  return text;
}

std::vector<std::string> Compile(std::string_view source) {
  const std::string gcc = "gcc -c " + std::string(source);
  return {gcc, gcc + " > cc1", gcc + " > as"};
}

std::vector<std::string> CompileToSameAssembly(std::string_view source) {
  const std::string gcc = "gcc -c " + std::string(source);
  return {gcc, gcc + " > cc1"};
}

std::vector<std::string> Link(std::string_view output) {
  const std::string gcc = "gcc -o " + std::string(output);
  return {gcc, gcc + " > collect2", gcc + " > ld"};
}

std::multiset<std::string> Labels(std::initializer_list<std::vector<std::string>> groups) {
  std::multiset<std::string> labels;
  for (const std::vector<std::string>& group : groups) labels.insert(group.begin(), group.end());
  return labels;
}

void ExpectSameFiles(const Project& actual, const Project& expected,
                     const std::vector<std::string>& paths) {
  for (const std::string& path : paths) {
    std::optional<std::string> got = actual.Read(path);
    std::optional<std::string> want = expected.Read(path);
    if (!want.has_value()) {
      EXPECT_FALSE(got.has_value()) << path << " exists, but not after a clean build";
    } else if (!got.has_value()) {
      ADD_FAILURE() << path << " is missing, but a clean build makes it";
    } else {
      // Not EXPECT_EQ on the contents: binaries make unreadable messages.
      EXPECT_TRUE(*got == *want) << path << " differs from the clean build's (" << got->size()
                                 << " bytes, clean " << want->size() << " bytes)";
    }
  }
}

ScenarioResult RunScenario(const Scenario& scenario) {
  ScenarioResult result;
  auto make_copy = [&scenario]() {
    Project project = Project::Copy(scenario.project);
    if (scenario.prepare) scenario.prepare(project);
    return project;
  };

  result.incremental = make_copy();
  const Project& project = result.incremental;
  result.first = project.Build(scenario.build_args, scenario.env);
  if (scenario.first_build_fails) {
    EXPECT_NE(result.first.run.exit_status, 0) << Explain(result.first);
    // dodo exits with the root command's status.
    const TracedCommand* root = Root(result.first.trace);
    if (root != nullptr) {
      EXPECT_EQ(result.first.run.exit_status, root->exit_code);
    }
  } else {
    EXPECT_EQ(result.first.run.exit_status, 0) << Explain(result.first);
  }
  // With no .dodo/ yet, there is nothing to restore.
  EXPECT_FALSE(result.first.trace.commands.empty()) << Explain(result.first);
  EXPECT_EQ(RanLabels(result.first.trace), AllLabels(result.first.trace))
      << "a first build runs every command\n"
      << Explain(result.first);

  if (scenario.edit) scenario.edit(project);
  if (scenario.why_after_edit.has_value()) {
    EXPECT_EQ(project.WhyQuiet(), *scenario.why_after_edit) << "`dodo why -q` after the edit";
  }

  result.second = project.Build(scenario.build_args, scenario.edited_env);
  EXPECT_EQ(result.second.run.exit_status, 0) << Explain(result.second);
  const std::multiset<std::string> reran = RanLabels(result.second.trace);
  EXPECT_EQ(reran, scenario.expected_rerun)
      << "reran:    " << Describe(reran) << "\nexpected: " << Describe(scenario.expected_rerun)
      << "\n"
      << Explain(result.second);

  result.clean = make_copy();
  if (scenario.edit) scenario.edit(result.clean);
  result.clean_build = result.clean.Build(scenario.build_args, scenario.edited_env);
  EXPECT_EQ(result.clean_build.run.exit_status, 0) << Explain(result.clean_build);
  ExpectSameFiles(project, result.clean, scenario.outputs);
  // Restored commands keep their records, so the incremental trace still
  // describes the whole build.
  if (scenario.lists_whole_build) {
    EXPECT_EQ(AllLabels(result.second.trace), AllLabels(result.clean_build.trace))
        << "incremental build:\n"
        << DescribeCommands(result.second.trace) << "clean build:\n"
        << DescribeCommands(result.clean_build.trace);
  }

  // Nothing is left to do after a successful build.
  if (scenario.why_after_edit.has_value()) {
    EXPECT_EQ(project.WhyQuiet(), 0) << "`dodo why -q` after the rebuild";
  }
  struct stat trace_before;
  const bool had_trace = stat(project.Path(".dodo/trace").c_str(), &trace_before) == 0;
  BuildRun again = project.Build(scenario.build_args, scenario.edited_env);
  EXPECT_EQ(again.run.exit_status, 0) << Explain(again);
  EXPECT_NE(again.run.out.find("dodo: 0 run, "), std::string::npos)
      << "a build right after a build must run nothing\n"
      << Explain(again);
  struct stat trace_after;
  if (had_trace && stat(project.Path(".dodo/trace").c_str(), &trace_after) == 0 &&
      trace_after.st_ino == trace_before.st_ino) {
    // Answered from the stamp the background planner left: the plan itself
    // must agree that nothing is left to do (when `dodo why` gets the
    // build's environment, see why_after_edit).
    if (scenario.why_after_edit.has_value()) {
      EXPECT_EQ(project.WhyQuiet(), 0) << "`dodo why -q` after a no-op answered from the stamp";
    }
  } else {
    EXPECT_EQ(RanLabels(again.trace), std::multiset<std::string>())
        << "a build right after a build must run nothing\n"
        << Explain(again);
  }
  return result;
}

}  // namespace dodo::test
