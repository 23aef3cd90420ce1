#include "model/trace_model.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "gtest/gtest.h"
#include "model/test_trace_builder.h"
#include "model/trace_reader.h"
#include "model/trace_writer.h"

namespace dodo::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testutil::CommandSpec;
using testutil::MakeCommand;
using testutil::ReadFile;
using testutil::ScratchDir;
using testutil::TraceBuilder;
using testutil::WriteFile;

class TraceModelTest : public ::testing::Test {
 protected:
  TraceModelTest() : tree_(scratch_.P("tree")), trace_(scratch_.P("trace")) {}
  void SetUp() override { ASSERT_EQ(mkdir(tree_.c_str(), 0755), 0); }

  std::string T(const std::string& relative) const { return tree_ + "/" + relative; }
  CommandSpec Command(std::vector<std::string> argv) {
    return MakeCommand(tree_, std::move(argv), {"PATH=/bin", "X=1"});
  }

  TraceModel Load(LoadOptions options = {}) {
    trace_.Finish();
    absl::StatusOr<TraceModel> model = TraceModel::Load(trace_.path(), options);
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? *std::move(model) : TraceModel();
  }

  void ExpectDormantOperationsReadBackWhole(const TraceModel& model,
                                            const std::vector<proto::Operation>& written,
                                            const std::vector<size_t>& unparsed, uint64_t dormant,
                                            size_t write, size_t pipe, size_t build_read);

  ScratchDir scratch_;
  const std::string tree_;
  TraceBuilder trace_;
};

TEST_F(TraceModelTest, CommandsKnowTheirParentAndChildrenInStartOrder) {
  const uint64_t root = trace_.Start(0, Command({"make"}));
  const uint64_t cc = trace_.Start(root, Command({"cc", "a.c"}));
  const uint64_t as = trace_.Start(cc, Command({"as", "a.s"}));
  trace_.End(as);
  trace_.End(cc);
  const uint64_t ld = trace_.Start(root, Command({"ld", "a.o"}));
  trace_.End(ld);
  trace_.End(root);

  TraceModel model = Load();

  ASSERT_EQ(model.commands().size(), 4u);
  EXPECT_TRUE(model.complete());
  EXPECT_EQ(model.root(), 0u);
  EXPECT_EQ(model.IndexOf(root), 0u);
  EXPECT_EQ(model.IndexOf(cc), 1u);
  EXPECT_EQ(model.IndexOf(as), 2u);
  EXPECT_EQ(model.IndexOf(ld), 3u);
  EXPECT_EQ(model.IndexOf(99), kNoCommand);

  EXPECT_EQ(model.commands()[0].parent, kNoCommand);
  EXPECT_THAT(model.commands()[0].children, ElementsAre(1u, 3u));
  EXPECT_EQ(model.commands()[1].parent, 0u);
  EXPECT_THAT(model.commands()[1].children, ElementsAre(2u));
  EXPECT_EQ(model.commands()[2].parent, 1u);
  EXPECT_THAT(model.commands()[2].children, IsEmpty());
  EXPECT_EQ(model.commands()[3].parent, 0u);
  for (const TracedCommand& command : model.commands()) {
    EXPECT_TRUE(command.ended);
    EXPECT_TRUE(command.Succeeded());
  }

  EXPECT_THAT(model.Subtree(0), ElementsAre(0u, 1u, 3u, 2u));
  EXPECT_THAT(model.Subtree(1), ElementsAre(1u, 2u));
  EXPECT_TRUE(model.IsAncestor(0, 2));
  EXPECT_TRUE(model.IsAncestor(2, 2));
  EXPECT_FALSE(model.IsAncestor(3, 2));
}

TEST_F(TraceModelTest, ArgvEnvAndCwdAreTheInternedStrings) {
  const uint64_t root = trace_.Start(0, Command({"make", "-j2", "all"}));
  trace_.End(root);

  TraceModel model = Load();

  ASSERT_EQ(model.commands().size(), 1u);
  EXPECT_THAT(model.Argv(0), ElementsAre("make", "-j2", "all"));
  EXPECT_THAT(model.Env(0), ElementsAre("PATH=/bin", "X=1"));
  EXPECT_EQ(model.Cwd(0), tree_);
  EXPECT_EQ(model.String(model.commands()[0].start.executable()), T("bin/make"));
  EXPECT_EQ(model.String(0), "");
  EXPECT_EQ(model.String(100000), "");
}

TEST_F(TraceModelTest, OpsOfEachCommandAreInTraceOrder) {
  WriteFile(T("x"), "x");
  WriteFile(T("y"), "y");
  const uint64_t root = trace_.Start(0, Command({"make"}));  // op 0
  const uint64_t a = trace_.Start(root, Command({"a"}));     // op 1
  const uint64_t b = trace_.Start(root, Command({"b"}));     // op 2
  trace_.Read(a, T("x"));                                    // op 3
  trace_.Read(b, T("y"));                                    // op 4
  trace_.Write(a, T("z"));                                   // op 5
  trace_.Stat(b, T("x"));                                    // op 6
  trace_.Get(root, T("y"));                                  // op 7
  trace_.End(b);
  trace_.End(a);
  trace_.End(root);

  TraceModel model = Load();

  ASSERT_EQ(model.ops().size(), 8u);
  EXPECT_THAT(model.commands()[0].ops, ElementsAre(0u, 1u, 2u, 7u));
  EXPECT_THAT(model.commands()[1].ops, ElementsAre(3u, 5u));
  EXPECT_THAT(model.commands()[2].ops, ElementsAre(4u, 6u));
  EXPECT_EQ(model.ops()[3].kind(), proto::READ);
  EXPECT_EQ(model.Path(model.ops()[3].ref()), T("x"));
  EXPECT_EQ(model.ops()[6].kind(), proto::STAT);
}

TEST_F(TraceModelTest, ExecOpIsTheParentsExecRightAfterTheChildsStart) {
  const uint64_t root = trace_.Start(0, Command({"make"}));
  const uint64_t child = trace_.StartWithoutExec(root, Command({"cc"}));
  const size_t exec = trace_.Exec(root, T("bin/cc"));
  trace_.End(child);
  trace_.End(root);

  TraceModel model = Load();

  ASSERT_EQ(model.commands().size(), 2u);
  ASSERT_TRUE(model.commands()[1].exec_op.has_value());
  EXPECT_EQ(*model.commands()[1].exec_op, exec);
  const proto::Operation& op = model.ops()[exec];
  EXPECT_EQ(op.kind(), proto::EXEC);
  EXPECT_EQ(op.command(), root);
  EXPECT_EQ(model.Path(op.ref()), T("bin/cc"));
  // It is the parent's operation.
  EXPECT_THAT(model.commands()[0].ops, ::testing::Contains(exec));
  EXPECT_THAT(model.commands()[1].ops, IsEmpty());
}

TEST_F(TraceModelTest, RootsExecIsItsOwnAndComesAfterItsPathSearch) {
  const uint64_t root = trace_.StartWithoutExec(0, Command({"make"}));
  // The launcher's PATH search, handed to the root: failed execs first.
  const size_t failed = trace_.Exec(root, T("nowhere/make"));
  const size_t exec = trace_.Exec(root, T("bin/make"));
  trace_.End(root);

  TraceModel model = Load();

  EXPECT_EQ(model.ops()[failed].error(), ENOENT);
  ASSERT_TRUE(model.commands()[0].exec_op.has_value());
  EXPECT_EQ(*model.commands()[0].exec_op, exec);
}

// The recorder resolves the program path of an exec after writing the
// CommandStart; a symlink the walk follows (say /bin -> usr/bin) is logged
// as the parent's READLINK operation before the parent's EXEC.
TEST_F(TraceModelTest, ExecOpIsFoundAfterTheParentsReadlinkOfTheProgramPath) {
  ASSERT_EQ(symlink("bin", T("tools").c_str()), 0);
  const uint64_t root = trace_.Start(0, Command({"make"}));
  const uint64_t child = trace_.StartWithoutExec(root, Command({"cc"}));
  trace_.Readlink(root, T("tools"));
  const size_t exec = trace_.Exec(root, T("bin/cc"));
  trace_.End(child);
  trace_.End(root);

  TraceModel model = Load();

  ASSERT_EQ(model.commands().size(), 2u);
  ASSERT_TRUE(model.commands()[1].exec_op.has_value());
  EXPECT_EQ(*model.commands()[1].exec_op, exec);
}

TEST_F(TraceModelTest, CommandWithoutAnExecRightAfterItsStartHasNoExecOp) {
  WriteFile(T("x"), "x");
  const uint64_t root = trace_.Start(0, Command({"make"}));
  const uint64_t child = trace_.StartWithoutExec(root, Command({"cc"}));
  trace_.Read(root, T("x"));
  // A later exec of the parent is not the one that started the child.
  trace_.Exec(root, T("bin/cc"));
  trace_.End(child);
  trace_.End(root);

  TraceModel model = Load();

  EXPECT_FALSE(model.commands()[1].exec_op.has_value());
}

TEST_F(TraceModelTest, CommandEndSaysHowItEnded) {
  const uint64_t root = trace_.Start(0, Command({"make"}));
  const uint64_t failed = trace_.Start(root, Command({"cc"}));
  trace_.End(failed, 1);
  const uint64_t unfinished = trace_.Start(root, Command({"ld"}));
  trace_.End(root);
  (void)unfinished;

  TraceModel model = Load();

  ASSERT_EQ(model.commands().size(), 3u);
  EXPECT_TRUE(model.commands()[0].Succeeded());
  EXPECT_TRUE(model.commands()[1].ended);
  EXPECT_EQ(model.commands()[1].end.exit_code(), 1);
  EXPECT_FALSE(model.commands()[1].Succeeded());
  EXPECT_FALSE(model.commands()[2].ended);
  EXPECT_FALSE(model.commands()[2].Succeeded());
}

TEST_F(TraceModelTest, PipesListTheirReadersAndWriters) {
  const uint64_t root = trace_.Start(0, Command({"sh"}));
  const uint64_t writer = trace_.Start(root, Command({"gen"}));
  trace_.Pipe(writer, proto::PIPE_WRITE, 77);
  const uint64_t reader = trace_.Start(root, Command({"sort"}));
  trace_.Pipe(reader, proto::PIPE_READ, 77);
  trace_.Pipe(reader, proto::PIPE_WRITE, 78);
  trace_.End(writer);
  trace_.End(reader);
  trace_.End(root);

  TraceModel model = Load();

  ASSERT_EQ(model.pipes().size(), 2u);
  const TraceModel::Pipe& pipe = model.pipes().at(77);
  EXPECT_THAT(pipe.writers, ElementsAre(1u));
  EXPECT_THAT(pipe.readers, ElementsAre(2u));
  EXPECT_THAT(model.pipes().at(78).writers, ElementsAre(2u));
  EXPECT_THAT(model.pipes().at(78).readers, IsEmpty());
}

// make's jobserver: a command holding both ends of a pipe passes tokens,
// not data, to the others that hold it.
TEST_F(TraceModelTest, CommandHoldingBothEndsOfAPipeIsNeitherReaderNorWriter) {
  const uint64_t root = trace_.Start(0, Command({"make"}));
  const uint64_t a = trace_.Start(root, Command({"cc"}));
  trace_.Pipe(a, proto::PIPE_READ, 3);
  trace_.Pipe(a, proto::PIPE_WRITE, 3);
  const uint64_t b = trace_.Start(root, Command({"cc"}));
  trace_.Pipe(b, proto::PIPE_READ, 3);
  trace_.Pipe(b, proto::PIPE_WRITE, 3);
  trace_.End(a);
  trace_.End(b);
  trace_.End(root);

  TraceModel model = Load();

  auto pipe = model.pipes().find(3);
  if (pipe != model.pipes().end()) {
    EXPECT_THAT(pipe->second.readers, IsEmpty());
    EXPECT_THAT(pipe->second.writers, IsEmpty());
  }
}

TEST_F(TraceModelTest, PipeOperationsWriteNoPath) {
  const uint64_t root = trace_.Start(0, Command({"sh"}));
  const size_t pipe = trace_.Pipe(root, proto::PIPE_WRITE, 5);
  trace_.End(root);

  TraceModel model = Load();

  OpPaths paths = model.PathsOf(model.ops()[pipe]);
  EXPECT_FALSE(paths.observation);
  EXPECT_THAT(paths.written, IsEmpty());
}

TEST_F(TraceModelTest, FirstWriteIsTheFirstOperationChangingThePath) {
  WriteFile(T("in"), "in");
  WriteFile(T("old"), "old");
  WriteFile(T("gone"), "gone");
  WriteFile(T("mode"), "mode");
  WriteFile(T("cut"), "cut");
  const uint64_t root = trace_.Start(0, Command({"make"}));
  trace_.Read(root, T("in"));
  trace_.Read(root, T("out"));  // before it is written: not a write
  const size_t write = trace_.Write(root, T("out"));
  trace_.Write(root, T("out"));
  const size_t mkdir = trace_.Link(root, T("dir"), proto::NEWDIR);
  const size_t symlink = trace_.Link(root, T("dir/link"), proto::SYMLINK, "../in");
  const size_t unlink = trace_.Unlink(root, T("gone"));
  const size_t rename = trace_.Rename(root, T("old"), T("new"));
  const size_t chmod = trace_.Chmod(root, T("mode"), 0755);
  const size_t trunc = trace_.Trunc(root, T("cut"), 0);
  proto::Operation denied = trace_.Observe(root, proto::WRITE, T("denied"));
  denied.set_error(EACCES);
  trace_.Add(denied);
  trace_.End(root);

  TraceModel model = Load();

  EXPECT_EQ(model.FirstWrite(T("out")), write);
  EXPECT_EQ(model.FirstWrite(T("dir")), mkdir);
  EXPECT_EQ(model.FirstWrite(T("dir/link")), symlink);
  EXPECT_EQ(model.FirstWrite(T("gone")), unlink);
  EXPECT_EQ(model.FirstWrite(T("old")), rename);
  EXPECT_EQ(model.FirstWrite(T("new")), rename);
  EXPECT_EQ(model.FirstWrite(T("mode")), chmod);
  EXPECT_EQ(model.FirstWrite(T("cut")), trunc);
  EXPECT_EQ(model.FirstWrite(T("in")), kNever);
  EXPECT_EQ(model.FirstWrite(T("denied")), kNever);  // the write failed
  EXPECT_EQ(model.FirstWrite(T("bin/make")), kNever);
}

TEST_F(TraceModelTest, BuildWritesNamesByDirectoryAndName) {
  WriteFile(T("src/a.c"), "a");
  const uint64_t root = trace_.Start(0, Command({"make"}));
  trace_.Read(root, T("src/a.c"));
  trace_.Write(root, T("src/a.o"));
  trace_.End(root);

  TraceModel model = Load();

  EXPECT_TRUE(model.BuildWrites(T("src"), "a.o"));
  EXPECT_FALSE(model.BuildWrites(T("src"), "a.c"));
  EXPECT_FALSE(model.BuildWrites(tree_, "a.o"));
}

TEST_F(TraceModelTest, PathsOfAWriteThatCreatesChangesItsDirectory) {
  const uint64_t root = trace_.Start(0, Command({"make"}));
  const size_t create = trace_.Write(root, T("out"), proto::NEWFILE);
  const size_t rewrite = trace_.Write(root, T("out"), proto::LINK_NONE);
  const size_t rename = trace_.Rename(root, T("out"), T("sub/final"));
  trace_.End(root);

  TraceModel model = Load();

  OpPaths created = model.PathsOf(model.ops()[create]);
  EXPECT_THAT(created.written, ElementsAre(T("out")));
  EXPECT_THAT(created.dirs_changed, ElementsAre(tree_));
  EXPECT_FALSE(created.observation);  // a truncating write observes nothing
  EXPECT_THAT(model.PathsOf(model.ops()[rewrite]).dirs_changed, IsEmpty());
  OpPaths renamed = model.PathsOf(model.ops()[rename]);
  EXPECT_THAT(renamed.written, ElementsAre(T("out"), T("sub/final")));
  EXPECT_THAT(renamed.dirs_changed, ElementsAre(tree_, T("sub")));
}

TEST_F(TraceModelTest, WritesNoPathNeverSkipsAnOperationThatChangesAPath) {
  ASSERT_EQ(mkdir(T("dir").c_str(), 0755), 0);
  WriteFile(T("dir/f"), "f");
  const uint64_t root = trace_.Start(0, Command({"make"}));
  std::vector<size_t> indices;
  for (int kind = proto::OpKind_MIN; kind <= proto::OpKind_MAX; ++kind) {
    if (!proto::OpKind_IsValid(kind)) continue;
    for (int error : {0, ENOENT}) {
      proto::Operation op = trace_.Observe(root, proto::GET, T("dir/f"));
      op.set_kind(static_cast<proto::OpKind>(kind));
      op.set_error(error);
      op.set_create(proto::NEWFILE);
      *op.mutable_ref2() = trace_.Ref(root, T("g"));
      indices.push_back(trace_.Add(op));
    }
  }
  trace_.End(root);

  TraceModel model = Load();
  int writers = 0;
  for (size_t index : indices) {
    const proto::Operation& op = model.ops()[index];
    const OpPaths paths = model.PathsOf(op);
    if (paths.written.empty()) continue;
    ++writers;
    EXPECT_FALSE(WritesNoPath(op)) << proto::OpKind_Name(op.kind()) << " error " << op.error();
  }
  // WRITE, CHMOD, CHOWN, UTIMES, TRUNC, LINK, UNLINK, RMDIR, RENAME and
  // XATTR_WRITE change their path when they succeed; the observations and
  // every failed operation are skipped.
  EXPECT_EQ(writers, 10);
  size_t skipped = 0;
  for (size_t index : indices) skipped += WritesNoPath(model.ops()[index]) ? 1 : 0;
  EXPECT_GE(skipped, indices.size() - 10 - 1);  // OP_UNKNOWN alone may be kept
}

TEST_F(TraceModelTest, OperationOfAnUnknownCommandBelongsToNoCommand) {
  WriteFile(T("x"), "x");
  const uint64_t root = trace_.Start(0, Command({"make"}));
  const size_t stray = trace_.Read(42, T("x"));
  trace_.End(root);

  TraceModel model = Load();

  ASSERT_GT(model.ops().size(), stray);
  EXPECT_EQ(model.ops()[stray].command(), 42u);
  EXPECT_THAT(model.commands()[0].ops, ::testing::Not(::testing::Contains(stray)));
}

TEST_F(TraceModelTest, SyscallIsTheInternedNameOrTheTextOfAnOlderTrace) {
  const uint64_t root = trace_.Start(0, Command({"make"}));
  proto::Operation op = trace_.Observe(root, proto::STAT, T("a"));
  op.set_syscall("newfstatat");
  trace_.Add(op);
  op.set_syscall("statx");
  trace_.Add(op, /*intern_syscall=*/false);
  trace_.End(root);

  TraceModel model = Load();

  const std::vector<size_t>& ops = model.commands()[0].ops;
  ASSERT_GE(ops.size(), 2u);
  const proto::Operation& interned = model.ops()[ops[ops.size() - 2]];
  const proto::Operation& text = model.ops()[ops.back()];
  EXPECT_TRUE(interned.syscall().empty());
  EXPECT_NE(interned.syscall_name(), 0u);
  EXPECT_EQ(model.Syscall(interned), "newfstatat");
  EXPECT_EQ(text.syscall_name(), 0u);
  EXPECT_EQ(model.Syscall(text), "statx");
}

// A dormant command's lookups and failed calls are left unparsed at load
// (TraceReader::ReadAll): what the model says of them, and of each of them
// once parsed on demand, must be what the trace holds, and the operations
// that matter at load (its writes, its pipe ends, the exec that started
// it) are known as if everything had been parsed.
TEST_F(TraceModelTest, DormantOperationsLeftUnparsedReadBackWhole) {
  WriteFile(T("in"), "in");
  ASSERT_EQ(symlink("in", T("link").c_str()), 0);
  const uint64_t root = trace_.Start(0, Command({"make"}));
  const size_t build_read = trace_.Read(root, T("in"));
  CommandSpec kept = Command({"cc", "b.c"});
  kept.dormant = true;
  const uint64_t dormant = trace_.Start(root, kept);
  std::vector<size_t> unparsed = {
      trace_.Read(dormant, T("in")),       trace_.Stat(dormant, T("missing")),
      trace_.Readlink(dormant, T("link")), trace_.List(dormant, tree_),
      trace_.Get(dormant, T("in")),
  };
  proto::Operation denied = trace_.Observe(dormant, proto::WRITE, T("denied"));
  denied.set_error(EACCES);
  unparsed.push_back(trace_.Add(denied));
  const size_t write = trace_.Write(dormant, T("out"));
  const size_t pipe = trace_.Pipe(dormant, proto::PIPE_WRITE, 7);
  trace_.End(dormant);
  trace_.End(root);

  // The same trace read record by record: the operations as written.
  trace_.Finish();
  std::vector<proto::Operation> written;
  {
    absl::StatusOr<std::unique_ptr<TraceReader>> reader = TraceReader::Open(trace_.path());
    ASSERT_TRUE(reader.ok()) << reader.status();
    proto::Record record;
    while ((*reader)->Next(&record)) {
      if (record.has_operation()) written.push_back(record.operation());
    }
  }
  // Read at load, on a thread of its own while the model is moved and
  // looked at, or when first needed (LoadOptions): the same model.
  for (const int when : {0, 1, 2}) {
    SCOPED_TRACE(when == 0 ? "at load" : when == 1 ? "in the background" : "when needed");
    TraceModel loaded = Load({.defer_dormant = when != 0});
    if (when == 1) loaded.IndexDormantInBackground();
    EXPECT_EQ(loaded.commands()[loaded.IndexOf(dormant)].start.argv_size(), 2);
    const TraceModel model = std::move(loaded);
    ExpectDormantOperationsReadBackWhole(model, written, unparsed, dormant, write, pipe,
                                         build_read);
  }
}

void TraceModelTest::ExpectDormantOperationsReadBackWhole(
    const TraceModel& model, const std::vector<proto::Operation>& written,
    const std::vector<size_t>& unparsed, uint64_t dormant, size_t write, size_t pipe,
    size_t build_read) {
  ASSERT_EQ(model.ops().size(), written.size());
  // Those above, and the exec that started the dormant command.
  EXPECT_EQ(model.ops_left_unparsed(), unparsed.size() + 1);

  const size_t d = model.IndexOf(dormant);
  ASSERT_NE(d, kNoCommand);
  EXPECT_TRUE(model.IsDormant(d));
  ASSERT_TRUE(model.commands()[d].exec_op.has_value());
  EXPECT_EQ(model.ops().Summary(*model.commands()[d].exec_op).kind, proto::EXEC);
  EXPECT_TRUE(model.DormantWrites(T("out")));
  EXPECT_EQ(model.DormantLastWrite(T("out")), write);
  EXPECT_FALSE(model.DormantWrites(T("denied")));
  EXPECT_THAT(model.dormant_pipes(), ElementsAre(::testing::Key(7u)));
  std::vector<size_t> ops_of_dormant = unparsed;
  ops_of_dormant.push_back(write);
  ops_of_dormant.push_back(pipe);
  EXPECT_EQ(model.commands()[d].ops, ops_of_dormant);

  for (size_t index = 0; index < written.size(); ++index) {
    SCOPED_TRACE(index);
    const OperationSummary before = model.ops().Summary(index);
    EXPECT_EQ(before.command, written[index].command());
    EXPECT_EQ(before.kind, written[index].kind());
    EXPECT_EQ(before.error, written[index].error());
    EXPECT_EQ(model.ops()[index].SerializeAsString(), written[index].SerializeAsString());
    proto::Record record;
    *record.mutable_operation() = written[index];
    EXPECT_EQ(model.RawOperation(index), record.SerializeAsString());
    EXPECT_EQ(model.FramedOperation(index).size(),
              model.RawOperation(index).size() + 1);  // (each under 128 bytes)
  }
  EXPECT_EQ(model.ops()[build_read].kind(), proto::READ);
}

// A dormant operation that does not parse, in a trace whose framing is
// whole, is found only when the dormant records are indexed. Then the build's
// commands stay as they are, the commands kept from earlier builds are left
// as if they never finished (no rebuild skips or keeps them), and warning()
// says why.
TEST_F(TraceModelTest, DamagedDormantOperationFoundInTheBackgroundDropsTheKeptCommands) {
  WriteFile(T("in"), "in");
  const uint64_t root = trace_.Start(0, Command({"make"}));
  trace_.Read(root, T("in"));
  const size_t build_write = trace_.Write(root, T("made"));
  CommandSpec kept = Command({"cc", "b.c"});
  kept.dormant = true;
  const uint64_t dormant = trace_.Start(root, kept);
  trace_.Read(dormant, T("in"));
  const size_t damaged = trace_.Write(dormant, T("out"));
  trace_.End(dormant);
  trace_.End(root);
  trace_.Finish();

  // Its Operation's first field tag made one of wire type 7, which no
  // message has: the record's size and framing stay as they were.
  std::string raw;
  {
    absl::StatusOr<TraceModel> whole = TraceModel::Load(trace_.path());
    ASSERT_TRUE(whole.ok()) << whole.status();
    raw = std::string(whole->RawOperation(damaged));
  }
  std::string bytes = ReadFile(trace_.path());
  const size_t at = bytes.find(raw);
  ASSERT_NE(at, std::string::npos);
  ASSERT_EQ(bytes.find(raw, at + 1), std::string::npos);
  bytes[at + 2] = 0x07;  // after the Record's tag and the Operation's size
  WriteFile(trace_.path(), bytes);

  absl::StatusOr<TraceModel> model = TraceModel::Load(trace_.path(), {.defer_dormant = true});
  ASSERT_TRUE(model.ok()) << model.status();
  model->IndexDormantInBackground();
  const size_t d = model->IndexOf(dormant);
  ASSERT_NE(d, kNoCommand);
  EXPECT_TRUE(model->commands()[d].ended);  // until the operations are indexed
  model->WaitDormant();
  EXPECT_THAT(model->warning(), HasSubstr("does not parse"));
  EXPECT_THAT(model->warning(), HasSubstr(trace_.path()));
  EXPECT_FALSE(model->commands()[d].ended);
  EXPECT_FALSE(model->DormantWrites(T("out")));
  EXPECT_EQ(model->commands()[d].ops.size(), 0u);
  // The build's commands and operations are whole.
  const size_t r = model->IndexOf(root);
  EXPECT_TRUE(model->commands()[r].ended);
  EXPECT_EQ(model->FirstWrite(T("made")), build_write);
  EXPECT_EQ(model->ops()[build_write].kind(), proto::WRITE);
  // Every operation can still be asked for, the damaged one too.
  ASSERT_EQ(model->ops().size(), damaged + 1);
  EXPECT_EQ(model->ops()[damaged].ref().components_size(), 0);
}

// make 4.3 leaves `--jobserver-auth=3,4` in MAKEFLAGS for every recipe but
// closes 3 and 4 in those that are no sub-make; a shell there opens its own
// pipes on those numbers. Such a pipe is one between commands, in the
// build's records and in the dormant ones.
TEST_F(TraceModelTest, APipeOnADescriptorMakeflagsNamesIsStillAPipeBetweenCommands) {
  const std::vector<std::string> env = {"PATH=/bin", "MAKEFLAGS= -j2 --jobserver-auth=3,4"};
  const uint64_t root = trace_.Start(0, MakeCommand(tree_, {"make"}, env));
  auto pipe_end = [&](uint64_t command, proto::OpKind kind, uint64_t pipe, int fd) {
    proto::Operation op;
    op.set_command(command);
    op.set_kind(kind);
    op.set_syscall("(inherited)");
    op.set_number(pipe);
    proto::Ref* ref = op.mutable_ref();
    ref->set_base(proto::BASE_FD);
    ref->set_base_fd(fd);
    ref->set_base_path(trace_.Intern(absl::StrCat("pipe:[", pipe, "]")));
    ref->set_is_fd(true);
    trace_.Add(op);
  };
  std::vector<uint64_t> readers, writers;
  for (const bool dormant : {false, true}) {
    CommandSpec reader = MakeCommand(tree_, {"cat"}, env);
    CommandSpec writer = MakeCommand(tree_, {"sed", "s/a/b/"}, env);
    reader.dormant = writer.dormant = dormant;
    const uint64_t pipe = dormant ? 9 : 8;
    readers.push_back(trace_.Start(root, reader));
    pipe_end(readers.back(), proto::PIPE_READ, pipe, 3);
    writers.push_back(trace_.Start(root, writer));
    pipe_end(writers.back(), proto::PIPE_WRITE, pipe, 4);
    trace_.End(readers.back());
    trace_.End(writers.back());
  }
  trace_.End(root);

  TraceModel model = Load({.defer_dormant = true});
  model.IndexDormantInBackground();

  ASSERT_TRUE(model.pipes().contains(8));
  EXPECT_THAT(model.pipes().at(8).readers, ElementsAre(model.IndexOf(readers[0])));
  EXPECT_THAT(model.pipes().at(8).writers, ElementsAre(model.IndexOf(writers[0])));
  ASSERT_TRUE(model.dormant_pipes().contains(9));
  EXPECT_THAT(model.dormant_pipes().at(9).readers, ElementsAre(model.IndexOf(readers[1])));
  EXPECT_THAT(model.dormant_pipes().at(9).writers, ElementsAre(model.IndexOf(writers[1])));
  for (uint64_t id : {readers[0], writers[0], readers[1], writers[1]}) {
    EXPECT_TRUE(model.commands()[model.IndexOf(id)].uses_pipes) << id;
  }
}

// An operation's framed bytes are its size prefix and its record as the
// file held them; those of operations written one after the other lie side
// by side, and written back as one run they read back as the same records.
TEST_F(TraceModelTest, FramedOperationsAreTheFilesBytesAndCopyBackWhole) {
  WriteFile(T("in"), "in");
  const uint64_t root = trace_.Start(0, Command({"make"}));
  // Their strings interned first, so that no record comes between them.
  trace_.Read(root, T("in"));
  trace_.Stat(root, T("missing"));
  proto::Operation long_target = trace_.Observe(root, proto::READLINK, T("in"));
  // A record of more than 127 bytes: a size prefix of two bytes.
  long_target.set_text(std::string(300, 'x'));
  std::vector<size_t> run = {
      trace_.Read(root, T("in")),
      trace_.Add(long_target, /*intern_syscall=*/false),
      trace_.Stat(root, T("missing")),
  };
  trace_.End(root);
  TraceModel model = Load();

  std::string joined;
  for (size_t i = 0; i < run.size(); ++i) {
    SCOPED_TRACE(i);
    const std::string_view raw = model.RawOperation(run[i]);
    ASSERT_FALSE(raw.empty());
    std::string prefix;
    google::protobuf::io::StringOutputStream prefix_stream(&prefix);
    {
      google::protobuf::io::CodedOutputStream out(&prefix_stream);
      out.WriteVarint32(static_cast<uint32_t>(raw.size()));
    }
    EXPECT_EQ(prefix.size(), i == 1 ? 2u : 1u);
    const std::string_view framed = model.FramedOperation(run[i]);
    EXPECT_EQ(framed, prefix + std::string(raw));
    if (i > 0) {
      EXPECT_EQ(joined.size(), framed.data() - model.FramedOperation(run[0]).data());
    }
    joined += std::string(framed);
  }
  EXPECT_TRUE(model.FramedOperation(model.ops().size()).empty());

  const std::string copy = scratch_.P("copy");
  {
    absl::StatusOr<std::unique_ptr<TraceWriter>> writer = TraceWriter::Create(copy, {});
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->WriteFramedOperations(joined, run.size()).ok());
    EXPECT_EQ((*writer)->operations(), run.size());
    ASSERT_TRUE((*writer)->Finish(0).ok());
  }
  absl::StatusOr<std::unique_ptr<TraceReader>> reader = TraceReader::Open(copy);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::vector<std::string> copied;
  proto::Record record;
  while ((*reader)->Next(&record)) {
    if (record.has_operation()) copied.push_back(record.operation().SerializeAsString());
  }
  std::vector<std::string> expected;
  for (size_t index : run) expected.push_back(model.ops()[index].SerializeAsString());
  EXPECT_EQ(copied, expected);
  ASSERT_TRUE((*reader)->trailer().has_value());
  EXPECT_EQ((*reader)->trailer()->operations(), run.size());
}

TEST(TraceModelLoadTest, MissingFileIsAnErrorNamingIt) {
  ScratchDir scratch;
  const std::string path = scratch.P("no-such-trace");
  absl::StatusOr<TraceModel> model = TraceModel::Load(path);
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(model.status().message(), HasSubstr(path));
}

TEST(TraceModelLoadTest, CorruptFileIsAnErrorNamingIt) {
  ScratchDir scratch;
  const std::string path = scratch.P("corrupt");
  WriteFile(path, "this is not a dodo trace at all\n");
  absl::StatusOr<TraceModel> model = TraceModel::Load(path);
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(model.status().message(), HasSubstr(path));
}

TEST(TraceModelLoadTest, EmptyTraceHasNoRoot) {
  ScratchDir scratch;
  TraceBuilder trace(scratch.P("empty"));
  trace.Finish();
  absl::StatusOr<TraceModel> model = TraceModel::Load(scratch.P("empty"));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_TRUE(model->commands().empty());
  EXPECT_EQ(model->root(), kNoCommand);
  EXPECT_TRUE(model->complete());
  EXPECT_EQ(model->path(), scratch.P("empty"));
}

}  // namespace
}  // namespace dodo::model
