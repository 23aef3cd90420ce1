// Benchmarks of the exec-time check of dodo build's gate (Rebuilder::WhyRun)
// for a make whose group holds the whole build while one source, the last
// in trace order, changed: walking every observation of the group
// (CheckCommands) against looking at the plan's suspects first
// (SuspectCause). Both start from a forgotten tree, as the gate does. Read
// the two times of one invocation side by side.
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "model/file_hasher.h"
#include "model/replay.h"
#include "model/test_trace_builder.h"
#include "model/trace_model.h"

namespace dodo::model {
namespace {

using testutil::MakeCommand;
using testutil::ScratchDir;
using testutil::TraceBuilder;
using testutil::WriteFile;

constexpr int kCompiles = 200;
constexpr int kHeaders = 40;

// A make that runs kCompiles compiles, each reading every header and its
// own source and writing an object, then a link that reads every object.
// The last compile's source has changed since.
class Build {
 public:
  Build() : tree_(scratch_.P("tree")), trace_(scratch_.P("trace")) {
    for (int h = 0; h < kHeaders; ++h) WriteFile(T(absl::StrCat("inc/h", h, ".h")), "header");
    const uint64_t make = trace_.Start(0, MakeCommand(tree_, {"make"}));
    for (int c = 0; c < kCompiles; ++c) {
      const std::string source = T(absl::StrCat("s", c, ".c"));
      const std::string object = T(absl::StrCat("s", c, ".o"));
      WriteFile(source, "source");
      const uint64_t cc = trace_.Start(make, MakeCommand(tree_, {"cc", "-c", source}));
      trace_.Read(cc, source);
      for (int h = 0; h < kHeaders; ++h) trace_.Read(cc, T(absl::StrCat("inc/h", h, ".h")));
      trace_.Write(cc, object);
      WriteFile(object, "object");
      trace_.End(cc);
    }
    const uint64_t ld = trace_.Start(make, MakeCommand(tree_, {"ld"}));
    for (int c = 0; c < kCompiles; ++c) trace_.Read(ld, T(absl::StrCat("s", c, ".o")));
    trace_.Write(ld, T("prog"));
    WriteFile(T("prog"), "program");
    trace_.End(ld);
    trace_.End(make);
    trace_.Finish();
    absl::StatusOr<TraceModel> model = TraceModel::Load(trace_.path());
    if (!model.ok()) std::abort();
    model_ = *std::move(model);
    WriteFile(T(absl::StrCat("s", kCompiles - 1, ".c")), "source, edited");
    for (size_t c = 0; c < model_.build_size(); ++c) group_.push_back(c);
    LiveTree live(&hasher_, tree_);
    plan_ = MakePlan(model_, live, {"make"}, tree_, {});
  }

  std::string T(const std::string& relative) const { return tree_ + "/" + relative; }

  ScratchDir scratch_;
  const std::string tree_;
  TraceBuilder trace_;
  TraceModel model_;
  FileHasher hasher_;
  Plan plan_;
  std::vector<size_t> group_;  // the make and everything below it
};

void BM_GateWalksTheWholeGroup(benchmark::State& state) {
  Build build;
  LiveTree live(&build.hasher_, build.tree_);
  for (auto _ : state) {
    live.Forget();
    std::vector<std::string> causes = CheckCommands(build.model_, build.group_, live, 1);
    if (causes.empty()) state.SkipWithError("the changed source was not found");
    benchmark::DoNotOptimize(causes);
  }
}
BENCHMARK(BM_GateWalksTheWholeGroup);

void BM_GateLooksAtTheSuspectsFirst(benchmark::State& state) {
  Build build;
  LiveTree live(&build.hasher_, build.tree_);
  const absl::flat_hash_set<size_t> members(build.group_.begin(), build.group_.end());
  for (auto _ : state) {
    live.Forget();
    std::string cause = SuspectCause(build.model_, build.plan_, build.group_, members, live);
    if (cause.empty()) state.SkipWithError("the changed source was not found");
    benchmark::DoNotOptimize(cause);
  }
}
BENCHMARK(BM_GateLooksAtTheSuspectsFirst);

}  // namespace
}  // namespace dodo::model

// Its own main: the trace builder's library brings gtest's.
int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
