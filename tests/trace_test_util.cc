#include "tests/trace_test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

extern char** environ;

namespace dodo::test {
namespace {

std::string GetEnv(const char* name) {
  const char* value = getenv(name);
  return value != nullptr ? value : "";
}

[[noreturn]] void Die(const std::string& what) {
  fprintf(stderr, "trace_test_util: %s: %s\n", what.c_str(), strerror(errno));
  abort();
}

// The runfiles root: the directory that holds one subdirectory per workspace.
std::string RunfilesRoot() {
  if (std::string dir = GetEnv("TEST_SRCDIR"); !dir.empty()) return dir;
  if (std::string dir = GetEnv("RUNFILES_DIR"); !dir.empty()) return dir;
  // Run directly (not by bazel test/run): Bazel puts the tree next to the
  // binary.
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n < 0) Die("readlink /proc/self/exe");
  return std::string(exe, n) + ".runfiles";
}

// Closes a file descriptor if it is open and marks it closed.
void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

std::string RunfilePath(std::string_view workspace_relative) {
  std::string workspace = GetEnv("TEST_WORKSPACE");
  if (workspace.empty()) workspace = "dodo";  // The name in //WORKSPACE.
  return RunfilesRoot() + "/" + workspace + "/" + std::string(workspace_relative);
}

std::string DodoPath() { return RunfilePath("cli/dodo"); }

std::string ProgramPath(std::string_view name) {
  return RunfilePath("testdata/programs/" + std::string(name));
}

RunResult RunCommand(const std::vector<std::string>& argv, const std::string& cwd) {
  RunResult result;
  if (argv.empty()) {
    result.exit_status = 127;
    result.err = "RunCommand: empty argv";
    return result;
  }
  // O_CLOEXEC so that children spawned concurrently by other threads do not
  // inherit our pipe ends and keep them open.
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) Die("pipe2");
  if (pipe2(err_pipe, O_CLOEXEC) != 0) Die("pipe2");

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  // dup2 clears O_CLOEXEC on the new descriptor, and the originals are
  // closed by exec.
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());

  std::vector<char*> c_argv;
  for (const std::string& arg : argv) c_argv.push_back(const_cast<char*>(arg.c_str()));
  c_argv.push_back(nullptr);

  pid_t pid;
  // glibc's posix_spawn reports a failed chdir or exec as its return value.
  int spawn_error = posix_spawnp(&pid, c_argv[0], &actions, nullptr, c_argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  CloseFd(out_pipe[1]);
  CloseFd(err_pipe[1]);
  if (spawn_error != 0) {
    CloseFd(out_pipe[0]);
    CloseFd(err_pipe[0]);
    result.exit_status = 127;
    result.err = "RunCommand: cannot start " + argv[0] + ": " + strerror(spawn_error);
    return result;
  }

  // Read both pipes until both are closed; reading one to the end first
  // could deadlock with a child blocked writing to the other.
  struct Stream {
    int fd;
    std::string* text;
  } streams[2] = {{out_pipe[0], &result.out}, {err_pipe[0], &result.err}};
  while (streams[0].fd >= 0 || streams[1].fd >= 0) {
    pollfd fds[2];
    for (int i = 0; i < 2; ++i) fds[i] = {streams[i].fd, POLLIN, 0};  // fd -1 is ignored.
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Die("poll");
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      char buffer[65536];
      ssize_t n = read(streams[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        streams[i].text->append(buffer, n);
      } else if (n == 0 || errno != EINTR) {
        CloseFd(streams[i].fd);
      }
    }
  }

  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) Die("waitpid");
  }
  result.exit_status = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  return result;
}

std::string MakeTempDir() {
  std::string base = GetEnv("TEST_TMPDIR");
  if (base.empty()) base = "/tmp";
  std::string templ = base + "/dodo-test-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) Die("mkdtemp " + templ);
  // TEST_TMPDIR may be relative or go through symlinks; traces record
  // resolved paths, so hand out the canonical one.
  char* real = realpath(templ.c_str(), nullptr);
  if (real == nullptr) Die("realpath " + templ);
  std::string dir = real;
  free(real);
  return dir;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return content.str();
}

}  // namespace dodo::test
