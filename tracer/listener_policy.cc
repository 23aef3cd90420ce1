#include "tracer/listener_policy.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <vector>

#include "absl/strings/str_split.h"

namespace dodo::tracer {
namespace {

// Programs known to run children side by side or to become another program
// that may: job runners, shells, and wrappers that exec their argument.
constexpr absl::string_view kNoOwnListener[] = {
    "make",  "gmake",   "remake",  "ninja",  "samu",   "xargs",    "parallel", "sh",
    "dash",  "bash",    "zsh",     "ksh",    "mksh",   "busybox",  "env",      "nice",
    "nohup", "time",    "timeout", "stdbuf", "setsid", "taskset",  "ionice",   "chrt",
    "flock", "unshare", "chroot",  "sudo",   "su",     "fakeroot", "perl",     "python3",
};

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

std::string ProgramOf(const std::string& path) {
  if (path.empty() || path[0] != '/' || access(path.c_str(), X_OK) != 0) return "";
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::array<char, 256> head;
  const ssize_t got = read(fd, head.data(), head.size());
  close(fd);
  if (got >= 4 && std::memcmp(head.data(), "\177ELF", 4) == 0) return ResolvedName(path);
  if (got < 2 || head[0] != '#' || head[1] != '!') return "";
  absl::string_view line(head.data() + 2, static_cast<size_t>(got) - 2);
  line = line.substr(0, line.find('\n'));
  std::vector<absl::string_view> words =
      absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (words.empty()) return "";
  const std::string interpreter(words[0]);
  if (BaseName(interpreter) == "env" && words.size() > 1 && words[1][0] != '-') {
    return BaseName(std::string(words[1]));
  }
  return ResolvedName(interpreter);
}

bool ListenerPolicy::WantsOwn(absl::string_view program) const {
  if (program.empty()) return false;
  for (absl::string_view name : kNoOwnListener) {
    if (program == name) return false;
  }
  // Versioned names: bash5.2, python3.11, ...
  const absl::string_view stem = program.substr(0, program.find_first_of("0123456789.-"));
  for (absl::string_view name : {"bash", "python", "perl", "make"}) {
    if (stem == name) return false;
  }
  return !parallel_.contains(program);
}

void ListenerPolicy::SawParallelChildren(absl::string_view program) {
  if (!program.empty()) parallel_.insert(std::string(program));
}

}  // namespace dodo::tracer
