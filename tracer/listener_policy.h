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
// own. Programs that run jobs in parallel (make, ninja, xargs), shells and
// programs that exec others (env, nice) get none: a listener there would be
// shared by everything they start. Their own lookups are ptrace stops.
#ifndef DODO_TRACER_LISTENER_POLICY_H_
#define DODO_TRACER_LISTENER_POLICY_H_

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"

namespace dodo::tracer {

// The name of the program an exec of the absolute `path` would run: the
// file's name with symbolic links resolved for a binary, the interpreter's
// for a "#!" script ("#!/usr/bin/env X" runs X). Empty when a look at the
// file says the exec will fail (missing, not executable, neither ELF nor
// "#!"): a listener installed then would stay behind in the process.
std::string ProgramOf(const std::string& path);

class ListenerPolicy {
 public:
  // Whether a process without a listener that is about to run `program`
  // gets one of its own.
  bool WantsOwn(absl::string_view program) const;
  // A process running `program` had two children alive at once: later
  // processes running it get no listener, so their children can.
  void SawParallelChildren(absl::string_view program);

 private:
  absl::flat_hash_set<std::string> parallel_;
};

}  // namespace dodo::tracer

#endif  // DODO_TRACER_LISTENER_POLICY_H_
