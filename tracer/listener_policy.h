// Which traced processes get a seccomp listener of their own.
//
// The kernel allows one listener per chain of seccomp filters, and a chain
// is inherited by every child. One listener for the whole build means one
// thread of dodo's answering every lookup: with make -j2, two compilers
// wait on each other, and the synchronous wake-up that makes a lookup cheap
// pulls both onto one CPU. So the build starts with a filter that has no
// listener, and a process gets one at its exec, stacked on its chain, when
// it runs a program that is unlikely to run children side by side: each
// compile (gcc and what it starts) then has a listener and a thread of its
// own. Programs that run jobs in parallel (make, ninja, xargs), shells given
// a command string (make's recipes, `sh -c './configure && make'`) and
// programs that exec others (env, nice) get none: a listener there would be
// shared by everything they start. Their own lookups are ptrace stops.
//
// A shell running a script file (configure, libtool) does get one, unless
// it is the root of the traced tree: a Dodofile or a build script there is
// likelier to start a parallel build. Scripts below the root run their
// commands one after another, as a rule, so sharing costs nothing,
// and it pays twice: the shell's own lookups (thousands in configure) skip
// the ptrace stop, which costs 15 to 60 µs here against 9 µs for a
// notification, and the commands it starts inherit the listener instead of
// each paying about 0.2 ms for one of their own. A script that starts a
// parallel build shares its listener with every job: slower than a
// listener per job, never wrong.
#ifndef DODO_TRACER_LISTENER_POLICY_H_
#define DODO_TRACER_LISTENER_POLICY_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"

namespace dodo::tracer {

// The program an exec of the absolute `path` would run. It is named after
// the file, with symbolic links resolved, for a binary, and after the
// interpreter for a "#!" script ("#!/usr/bin/env X" runs X). The name is
// empty when a look at the file says the exec will fail (missing, not
// executable, neither ELF nor "#!"): a listener installed then would stay
// behind in the process.
struct Program {
  std::string name;
  bool script = false;  // a "#!" file, run by the interpreter `name`
};
Program ExamineProgram(const std::string& path);

class ListenerPolicy {
 public:
  // Whether a process without a listener that is about to run `program`
  // with `argv` gets one of its own; `root`: it is the traced command's.
  bool WantsOwn(const Program& program, const std::vector<std::string>& argv,
                bool root = false) const;
  // A process running `program` had two children alive at once: later
  // processes running it get no listener, so their children can.
  void SawParallelChildren(absl::string_view program);

 private:
  absl::flat_hash_set<std::string> parallel_;
};

}  // namespace dodo::tracer

#endif  // DODO_TRACER_LISTENER_POLICY_H_
