#include "model/rebuilder.h"

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "model/test_trace_builder.h"
#include "model/trace_model.h"
#include "proto/trace.pb.h"

namespace dodo::model {
namespace {

using testutil::CommandSpec;
using testutil::MakeCommand;
using testutil::ScratchDir;
using testutil::TraceBuilder;

// A last build whose root ran `cc a.c`, with `cc b.c` kept dormant when
// `dormant`; its header says how many traces in a row inherited strings.
TraceModel LastBuild(const ScratchDir& scratch, uint32_t inherited_builds, bool dormant) {
  const std::string& tree = scratch.path();
  proto::Header header;
  header.set_strings_inherited_builds(inherited_builds);
  TraceBuilder trace(scratch.P("trace"), header);
  const uint64_t root = trace.Start(0, MakeCommand(tree, {"make"}));
  const uint64_t compile = trace.Start(root, MakeCommand(tree, {"cc", "a.c"}));
  trace.End(compile);
  trace.End(root);
  if (dormant) {
    CommandSpec kept = MakeCommand(tree, {"cc", "b.c"});
    kept.dormant = true;
    trace.End(trace.Start(root, kept));
  }
  trace.Finish();
  absl::StatusOr<TraceModel> model = TraceModel::Load(trace.path());
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *std::move(model) : TraceModel();
}

// Inheriting the last trace's strings pays only where dormant records are
// copied; and a run of inheriting traces ends, so that strings no record
// uses any longer are let go.
TEST(RebuilderTest, InheritsStringsWhileDormantRecordsAreKeptUpToALimit) {
  EXPECT_FALSE(Rebuilder::ShouldInheritStrings(nullptr));
  {
    ScratchDir scratch;
    const TraceModel model = LastBuild(scratch, 0, /*dormant=*/false);
    ASSERT_EQ(model.build_size(), model.commands().size());
    EXPECT_FALSE(Rebuilder::ShouldInheritStrings(&model));
  }
  {
    ScratchDir scratch;
    const TraceModel model = LastBuild(scratch, 0, /*dormant=*/true);
    ASSERT_LT(model.build_size(), model.commands().size());
    EXPECT_TRUE(Rebuilder::ShouldInheritStrings(&model));
  }
  {
    ScratchDir scratch;
    const TraceModel model =
        LastBuild(scratch, Rebuilder::kMaxInheritedBuilds - 1, /*dormant=*/true);
    EXPECT_TRUE(Rebuilder::ShouldInheritStrings(&model));
  }
  {
    ScratchDir scratch;
    const TraceModel model = LastBuild(scratch, Rebuilder::kMaxInheritedBuilds, /*dormant=*/true);
    EXPECT_FALSE(Rebuilder::ShouldInheritStrings(&model));
  }
}

}  // namespace
}  // namespace dodo::model
