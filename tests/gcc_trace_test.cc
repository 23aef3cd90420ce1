// Acceptance: tracing `gcc -o prog a.c` records what the design notes walk
// through: the driver's PATH search with its ENOENT lookups, the executions
// of cc1, as, collect2 and ld, the read of a.c, the temporary .s and .o
// written and unlinked, and the write of prog.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/trace_loader.h"
#include "tests/trace_test_util.h"

namespace dodo::test {
namespace {

class GccTraceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir());
    std::optional<std::string> source = ReadFile(RunfilePath("testdata/hello/a.c"));
    ASSERT_TRUE(source.has_value());
    FILE* f = fopen((*dir_ + "/a.c").c_str(), "w");
    fputs(source->c_str(), f);
    fclose(f);
    run_ = new TracedRun(TraceCommand({"gcc", "-o", "prog", "a.c"}, *dir_));
  }
  static void TearDownTestSuite() {
    delete run_;
    delete dir_;
  }
  const LoadedTrace& trace() { return run_->trace; }
  const TracedCommand* Only(std::string_view name) {
    std::vector<const TracedCommand*> found = trace().CommandsRunning(name);
    EXPECT_EQ(found.size(), 1u) << name << "\n" << trace().Dump();
    return found.empty() ? nullptr : found[0];
  }
  bool Has(uint64_t command, proto::OpKind kind, std::string_view path_suffix, int error = 0) {
    return !trace()
                .Find([&](const TracedOp& op) {
                  return op.command == command && op.kind == kind && op.error == error &&
                         EndsWith(op.path, path_suffix);
                })
                .empty();
  }
  static std::string* dir_;
  static TracedRun* run_;
};
std::string* GccTraceTest::dir_ = nullptr;
TracedRun* GccTraceTest::run_ = nullptr;

TEST_F(GccTraceTest, BuildSucceedsAndTraceIsComplete) {
  EXPECT_EQ(run_->exit_status, 0) << run_->err;
  EXPECT_TRUE(trace().complete) << trace().reader_warning;
  EXPECT_TRUE(ReadFile(*dir_ + "/prog").has_value());
}

TEST_F(GccTraceTest, EveryToolIsACommandUnderTheDriver) {
  const TracedCommand* gcc = Only("gcc-12");
  const TracedCommand* cc1 = Only("cc1");
  const TracedCommand* as = Only("as");
  const TracedCommand* collect2 = Only("collect2");
  const TracedCommand* ld = Only("ld.bfd");
  ASSERT_TRUE(gcc && cc1 && as && collect2 && ld);
  EXPECT_EQ(gcc->parent, 0u);
  EXPECT_EQ(cc1->parent, gcc->id);
  EXPECT_EQ(as->parent, gcc->id);
  EXPECT_EQ(collect2->parent, gcc->id);
  EXPECT_EQ(ld->parent, collect2->id);
  EXPECT_EQ(gcc->how, proto::CommandEnd::EXITED);
  EXPECT_EQ(gcc->exit_code, 0);
}

TEST_F(GccTraceTest, DriverExecutesEachToolAndHashesIt) {
  const TracedCommand* gcc = Only("gcc-12");
  ASSERT_NE(gcc, nullptr);
  // /usr/bin/as is a symlink to x86_64-linux-gnu-as: the X names the file
  // the link led to.
  for (std::string_view tool : {"/cc1", "-as", "/collect2"}) {
    std::vector<const TracedOp*> execs = trace().Find([&](const TracedOp& op) {
      return op.command == gcc->id && op.kind == proto::EXEC && op.error == 0 &&
             EndsWith(op.path, tool);
    });
    ASSERT_FALSE(execs.empty()) << tool << "\n" << trace().Dump();
    EXPECT_TRUE(execs[0]->has_sha256) << execs[0]->notation;
  }
}

TEST_F(GccTraceTest, PathSearchRecordsFailedLookups) {
  // The driver looks for `as` in its own directories before PATH; each miss
  // is an ENOENT observation.
  const TracedCommand* gcc = Only("gcc-12");
  ASSERT_NE(gcc, nullptr);
  std::vector<const TracedOp*> misses =
      trace().Find([&](const TracedOp& op) { return op.command == gcc->id && op.error == ENOENT; });
  EXPECT_GE(misses.size(), 3u) << trace().Dump();
  // /bin is a symlink into /usr on this system: following it is recorded.
  EXPECT_FALSE(trace()
                   .Find([](const TracedOp& op) {
                     return op.kind == proto::READLINK && op.path == "/bin" && op.text == "usr/bin";
                   })
                   .empty())
      << trace().Dump();
}

TEST_F(GccTraceTest, Cc1ReadsSourceAndWritesAssembly) {
  const TracedCommand* cc1 = Only("cc1");
  ASSERT_NE(cc1, nullptr);
  EXPECT_TRUE(Has(cc1->id, proto::READ, *dir_ + "/a.c")) << trace().Dump();
  std::vector<const TracedOp*> writes = trace().Find([&](const TracedOp& op) {
    return op.command == cc1->id && op.kind == proto::WRITE && EndsWith(op.path, ".s");
  });
  ASSERT_EQ(writes.size(), 1u) << trace().Dump();
  EXPECT_EQ(writes[0]->create, proto::NEWFILE);
  EXPECT_TRUE(writes[0]->truncate);
  EXPECT_THAT(writes[0]->notation, ::testing::StartsWith("W(TRUNC(LINK_IF_NEEDED(NEWFILE, "));
}

TEST_F(GccTraceTest, AssemblerAndLinkerChainThroughTemporaries) {
  const TracedCommand* cc1 = Only("cc1");
  const TracedCommand* as = Only("as");
  const TracedCommand* ld = Only("ld.bfd");
  const TracedCommand* gcc = Only("gcc-12");
  ASSERT_TRUE(cc1 && as && ld && gcc);
  std::string assembly, object;
  for (const TracedOp* op : trace().OpsOf(cc1->id)) {
    if (op->kind == proto::WRITE) assembly = op->path;
  }
  for (const TracedOp* op : trace().OpsOf(as->id)) {
    if (op->kind == proto::WRITE) object = op->path;
  }
  ASSERT_FALSE(assembly.empty());
  ASSERT_FALSE(object.empty());
  EXPECT_TRUE(Has(as->id, proto::READ, assembly)) << trace().Dump();
  EXPECT_TRUE(Has(ld->id, proto::READ, object)) << trace().Dump();
  EXPECT_TRUE(Has(ld->id, proto::WRITE, *dir_ + "/prog")) << trace().Dump();
  // The driver removes both temporaries when done.
  EXPECT_TRUE(Has(gcc->id, proto::UNLINK, assembly)) << trace().Dump();
  EXPECT_TRUE(Has(gcc->id, proto::UNLINK, object)) << trace().Dump();
  // The object's final version is recorded when `as` ends.
  ASSERT_TRUE(as->outputs.contains(object));
  EXPECT_EQ(as->outputs.at(object).sha256().size(), 32u);
}

}  // namespace
}  // namespace dodo::test
