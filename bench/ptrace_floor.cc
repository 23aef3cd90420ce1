// ptrace_floor COMMAND...: runs COMMAND with every process of it followed by
// ptrace (the fork, vfork, clone and exec events) and nothing else: no
// syscall stops, no seccomp filter, nothing read from the tracees. Its cost
// over the plain command is the least any ptrace tracer pays per process;
// what dodo costs beyond it is dodo's own work (bench/README.md, variant
// `floor`). Exits with the command's status (128+N for signal N).
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: ptrace_floor COMMAND [ARG...]\n");
    return 2;
  }
  const pid_t root = fork();
  if (root < 0) {
    std::perror("ptrace_floor: fork");
    return 125;
  }
  if (root == 0) {
    // Wait to be seized, so that nothing runs untraced.
    raise(SIGSTOP);
    execvp(argv[1], argv + 1);
    std::fprintf(stderr, "ptrace_floor: %s: %s\n", argv[1], std::strerror(errno));
    _exit(127);
  }
  int status = 0;
  if (waitpid(root, &status, WSTOPPED) != root) return 125;
  const long options = PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |
                       PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL;
  if (ptrace(PTRACE_SEIZE, root, nullptr, options) != 0) {
    std::perror("ptrace_floor: PTRACE_SEIZE");
    kill(root, SIGKILL);
    return 125;
  }
  kill(root, SIGCONT);
  int exit_status = 125;
  while (true) {
    const pid_t pid = waitpid(-1, &status, __WALL);
    if (pid < 0) break;  // ECHILD: every tracee is gone
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      if (pid == root) {
        exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      continue;
    }
    const int signal = WSTOPSIG(status);
    const int event = status >> 16;
    if (event == PTRACE_EVENT_STOP) {
      // A group-stop stays one (PTRACE_LISTEN); a new child's first stop
      // (SIGTRAP) goes on.
      const bool group_stop =
          signal == SIGSTOP || signal == SIGTSTP || signal == SIGTTIN || signal == SIGTTOU;
      ptrace(group_stop ? PTRACE_LISTEN : PTRACE_CONT, pid, nullptr, nullptr);
    } else if (event != 0) {
      ptrace(PTRACE_CONT, pid, nullptr, nullptr);  // fork, vfork, clone or exec
    } else {
      // A signal on its way to the tracee: deliver it.
      ptrace(PTRACE_CONT, pid, nullptr, reinterpret_cast<void*>(static_cast<long>(signal)));
    }
  }
  return exit_status;
}
