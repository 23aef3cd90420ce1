#include "tracer/listener_policy.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"

namespace dodo::tracer {
namespace {

// Programs known to run children side by side or to become another program
// that may: job runners, shells, and wrappers that exec their argument.
constexpr absl::string_view kNoOwnListener[] = {
    "make",  "gmake",   "remake", "ninja",   "samu",   "xargs",    "parallel", "busybox", "env",
    "nice",  "nohup",   "time",   "timeout", "stdbuf", "setsid",   "taskset",  "ionice",  "chrt",
    "flock", "unshare", "chroot", "sudo",    "su",     "fakeroot", "perl",     "python3",
};

// Shells: a listener only when they run a script file.
constexpr absl::string_view kShells[] = {"sh", "dash", "bash", "zsh", "ksh", "mksh"};

bool IsShell(absl::string_view program) {
  for (absl::string_view name : kShells) {
    if (program == name) return true;
  }
  // Versioned names: bash5.2, ...
  return program.substr(0, program.find_first_of("0123456789.-")) == "bash";
}

// Whether a shell started with `argv` reads its commands from a file named
// among its arguments, rather than from a string (-c) or its input (-s, or
// no file at all).
bool RunsScriptFile(const std::vector<std::string>& argv) {
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg == "--") return i + 1 < argv.size();
    if (arg.empty() || (arg[0] != '-' && arg[0] != '+')) return true;
    // Options that take the next argument as their value.
    if (arg == "-o" || arg == "+o" || arg == "-O" || arg == "+O" || arg == "--rcfile" ||
        arg == "--init-file") {
      ++i;
      continue;
    }
    if (arg[1] != '-' && arg.find_first_of("cs", 1) != std::string::npos) return false;
  }
  return false;
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The file's name after every symbolic link on the way, "" when missing.
std::string ResolvedName(const std::string& path) {
  char* resolved = realpath(path.c_str(), nullptr);
  if (resolved == nullptr) return "";
  std::string name = BaseName(resolved);
  free(resolved);
  return name;
}

}  // namespace

Program ExamineProgram(const std::string& path) {
  if (path.empty() || path[0] != '/' || access(path.c_str(), X_OK) != 0) return {};
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::array<char, 256> head;
  const ssize_t got = read(fd, head.data(), head.size());
  close(fd);
  if (got >= 4 && std::memcmp(head.data(), "\177ELF", 4) == 0) return {ResolvedName(path)};
  if (got < 2 || head[0] != '#' || head[1] != '!') return {};
  absl::string_view line(head.data() + 2, static_cast<size_t>(got) - 2);
  line = line.substr(0, line.find('\n'));
  std::vector<absl::string_view> words =
      absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (words.empty()) return {};
  const std::string interpreter(words[0]);
  if (BaseName(interpreter) == "env" && words.size() > 1 && words[1][0] != '-') {
    return {BaseName(std::string(words[1])), true};
  }
  std::string name = ResolvedName(interpreter);
  if (name.empty()) return {};
  return {std::move(name), true};
}

bool ListenerPolicy::WantsOwn(const Program& executable, const std::vector<std::string>& argv,
                              bool root) const {
  const absl::string_view program = executable.name;
  if (program.empty()) return false;
  if (IsShell(program)) return !root && (executable.script || RunsScriptFile(argv));
  for (absl::string_view name : kNoOwnListener) {
    if (program == name) return false;
  }
  // Versioned names: python3.11, perl5.36, ...
  const absl::string_view stem = program.substr(0, program.find_first_of("0123456789.-"));
  for (absl::string_view name : {"python", "perl", "make"}) {
    if (stem == name) return false;
  }
  return !parallel_.contains(program);
}

void ListenerPolicy::SawParallelChildren(absl::string_view program) {
  if (!program.empty()) parallel_.insert(std::string(program));
}

}  // namespace dodo::tracer
