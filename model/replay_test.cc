#include "model/replay.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/file_hasher.h"
#include "model/test_trace_builder.h"
#include "model/trace_model.h"

namespace dodo::model {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using testutil::CommandSpec;
using testutil::MakeCommand;
using testutil::ScratchDir;
using testutil::TraceBuilder;
using testutil::WriteFile;

const std::vector<std::string> kEnv = {"PATH=/bin", "X=1"};

// A tree in a scratch directory and a trace of a build in it (kept beside
// the tree, so listings of the tree do not see it).
class ReplayTest : public ::testing::Test {
 protected:
  ReplayTest() : tree_(scratch_.P("tree")), trace_(scratch_.P("trace")) {}
  void SetUp() override { ASSERT_EQ(mkdir(tree_.c_str(), 0755), 0); }

  std::string T(const std::string& relative) const { return tree_ + "/" + relative; }
  CommandSpec Command(std::vector<std::string> argv, std::vector<std::string> env = kEnv) {
    return MakeCommand(tree_, std::move(argv), std::move(env));
  }

  TraceModel Load() {
    trace_.Finish();
    absl::StatusOr<TraceModel> model = TraceModel::Load(trace_.path());
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? *std::move(model) : TraceModel();
  }

  // CheckCommands against the tree as it is now, all causes.
  std::vector<std::string> Causes(const TraceModel& model, std::vector<size_t> commands) {
    FileHasher hasher;
    LiveTree live(&hasher, tree_);
    return CheckCommands(model, std::move(commands), live, 100);
  }

  // The root alone: a trace of one command, `make`, that does everything.
  uint64_t StartRoot() { return trace_.Start(0, Command({"make"})); }

  ScratchDir scratch_;
  const std::string tree_;
  TraceBuilder trace_;
};

// OpsOf

// A small group's operations are sorted, a large share of the trace's found
// by marking: both give each operation of the commands, and the execs that
// started them, once and in trace order.
TEST_F(ReplayTest, OpsOfGivesEachOperationOnceInTraceOrder) {
  WriteFile(T("in"), "x");
  const uint64_t root = StartRoot();
  const uint64_t a = trace_.Start(root, Command({"a"}));
  const uint64_t b = trace_.Start(root, Command({"b"}));
  for (int i = 0; i < 20; ++i) {
    trace_.Read(a, T("in"));
    trace_.Stat(b, T("in"));
    for (int j = 0; j < 20; ++j) trace_.Get(root, T("in"));
  }
  trace_.End(b);
  trace_.End(a);
  trace_.End(root);
  TraceModel model = Load();
  ASSERT_EQ(model.commands().size(), 3u);

  auto expected = [&](const std::set<size_t>& commands) {
    std::vector<size_t> out;
    for (size_t index = 0; index < model.ops().size(); ++index) {
      bool wanted = commands.contains(model.IndexOf(model.ops()[index].command()));
      for (size_t c : commands) wanted = wanted || model.commands()[c].exec_op == index;
      if (wanted) out.push_back(index);
    }
    return out;
  };
  // Command a: 20 reads and its exec, a small share of 440 operations.
  const std::vector<size_t> of_a = OpsOf(model, {1});
  EXPECT_EQ(of_a.size(), 21u);
  EXPECT_EQ(of_a, expected({1}));
  EXPECT_EQ(OpsOf(model, {2, 1}), expected({1, 2}));
  const std::vector<size_t> all = OpsOf(model, {2, 0, 1});
  EXPECT_EQ(all.size(), model.ops().size());
  EXPECT_EQ(all, expected({0, 1, 2}));
}

// CheckCommands

// Dormant commands (kept from an earlier build for matching) come after the
// build's records and are no part of the build: no child, write or plan of
// it, yet each can be checked as a group of its own.
TEST_F(ReplayTest, DormantCommandsAreNoPartOfTheBuild) {
  WriteFile(T("a.c"), "a");
  WriteFile(T("b.c"), "b");
  const uint64_t root = StartRoot();
  const uint64_t compile_a = trace_.Start(root, Command({"cc", "a.c"}));
  trace_.Read(compile_a, T("a.c"));
  WriteFile(T("a.o"), "A");
  trace_.Write(compile_a, T("a.o"));
  trace_.End(compile_a);
  trace_.End(root);
  CommandSpec kept = Command({"cc", "b.c"});
  kept.dormant = true;
  const uint64_t compile_b = trace_.Start(root, kept);
  trace_.Read(compile_b, T("b.c"));
  trace_.Get(compile_b, T("b.o"));  // ENOENT: not made yet
  WriteFile(T("b.o"), "B");
  trace_.Write(compile_b, T("b.o"));
  trace_.End(compile_b);
  const TraceModel model = Load();

  ASSERT_EQ(model.commands().size(), 3u);
  EXPECT_EQ(model.build_size(), 2u);
  const size_t a = model.IndexOf(compile_a);
  const size_t b = model.IndexOf(compile_b);
  EXPECT_FALSE(model.IsDormant(a));
  EXPECT_TRUE(model.IsDormant(b));
  EXPECT_THAT(model.commands()[model.root()].children, ElementsAre(a));
  EXPECT_THAT(model.commands()[model.root()].dormant_children, ElementsAre(b));
  // The exec that started it is its own, not an operation of the root's.
  ASSERT_TRUE(model.commands()[b].exec_op.has_value());
  EXPECT_GE(*model.commands()[b].exec_op, model.build_ops());
  for (size_t index : model.commands()[model.root()].ops) EXPECT_LT(index, model.build_ops());
  EXPECT_EQ(model.FirstWrite(T("b.o")), kNever);
  EXPECT_TRUE(model.DormantWrites(T("b.o")));
  EXPECT_FALSE(model.DormantWrites(T("a.o")));
  EXPECT_THAT(model.pipes(), IsEmpty());

  // Its output, missing before it made it, is there now: no cause.
  EXPECT_THAT(Causes(model, {b}), IsEmpty());
  // Its input changed and its output is gone: a cause for it as a group,
  // nothing for the build, which neither reruns it nor restores b.o.
  WriteFile(T("b.c"), "changed");
  ASSERT_EQ(unlink(T("b.o").c_str()), 0);
  EXPECT_THAT(Causes(model, {b}), Contains(HasSubstr("b.c")));
  FileHasher hasher;
  LiveTree live(&hasher, tree_);
  const Plan plan = MakePlan(model, live, {"make"}, tree_, kEnv);
  EXPECT_EQ(plan.commands.size(), 2u);
  EXPECT_TRUE(plan.UpToDate());
}

TEST_F(ReplayTest, UnchangedTreeHasNoCauses) {
  WriteFile(T("src/a.c"), "int a;");
  ASSERT_EQ(symlink("a.c", T("src/link").c_str()), 0);
  const uint64_t root = StartRoot();
  trace_.Read(root, T("src/a.c"));
  trace_.Stat(root, T("src/a.c"));
  trace_.List(root, T("src"));
  trace_.Get(root, T("src/missing.h"));
  trace_.Readlink(root, T("src/link"));
  trace_.End(root);

  TraceModel model = Load();

  EXPECT_THAT(Causes(model, {0}), IsEmpty());
}

TEST_F(ReplayTest, ChangedContentIsACause) {
  WriteFile(T("src/a.c"), "int a;");
  const uint64_t root = StartRoot();
  trace_.Read(root, T("src/a.c"));
  trace_.End(root);
  TraceModel model = Load();

  WriteFile(T("src/a.c"), "int b;");

  std::vector<std::string> causes = Causes(model, {0});
  ASSERT_EQ(causes.size(), 1u);
  EXPECT_THAT(causes[0], HasSubstr("content of src/a.c changed"));
}

TEST_F(ReplayTest, PathsOutsideTheDisplayRootAreShownWhole) {
  WriteFile(scratch_.P("outside"), "v1");
  const uint64_t root = StartRoot();
  trace_.Read(root, scratch_.P("outside"));
  trace_.End(root);
  TraceModel model = Load();

  WriteFile(scratch_.P("outside"), "v2");

  EXPECT_THAT(Causes(model, {0}), ElementsAre(HasSubstr("content of " + scratch_.P("outside"))));
}

TEST_F(ReplayTest, LookupThatFailedAndNowFindsAFileIsACause) {
  const uint64_t root = StartRoot();
  trace_.Get(root, T("config.h"));
  trace_.End(root);
  TraceModel model = Load();

  WriteFile(T("config.h"), "#define X 1");

  EXPECT_THAT(Causes(model, {0}), ElementsAre("new file config.h"));
}

// `mv a b` opens b with O_DIRECTORY: ENOTDIR says b is there, as a file.
proto::Operation DirectoryProbe(TraceBuilder& trace, uint64_t command, const std::string& path) {
  proto::Operation op = trace.Observe(command, proto::GET, path);
  op.set_error(ENOTDIR);
  return op;
}

TEST_F(ReplayTest, FileFoundWhereADirectoryWasAskedForIsNoCauseWhileItIsAFile) {
  WriteFile(T("lib.a"), "old");
  const uint64_t root = StartRoot();
  trace_.Add(DirectoryProbe(trace_, root, T("lib.a")));
  trace_.End(root);
  TraceModel model = Load();

  WriteFile(T("lib.a"), "new contents");

  EXPECT_THAT(Causes(model, {0}), IsEmpty());
}

TEST_F(ReplayTest, FileFoundWhereADirectoryWasAskedForIsACauseOnceGoneOrADirectory) {
  WriteFile(T("lib.a"), "old");
  const uint64_t root = StartRoot();
  trace_.Add(DirectoryProbe(trace_, root, T("lib.a")));
  trace_.End(root);
  TraceModel model = Load();

  ASSERT_EQ(unlink(T("lib.a").c_str()), 0);
  EXPECT_THAT(Causes(model, {0}), ElementsAre("lib.a was removed"));
  ASSERT_EQ(mkdir(T("lib.a").c_str(), 0755), 0);
  EXPECT_THAT(Causes(model, {0}), ElementsAre("lib.a is now a directory"));
}

// ENOTDIR from a file in the middle of the path: the name after it was as
// absent as ENOENT leaves it.
TEST_F(ReplayTest, NameBehindAFileIsACauseOnceItExists) {
  WriteFile(T("sub"), "a file");
  const uint64_t root = StartRoot();
  proto::Operation probe = DirectoryProbe(trace_, root, T("sub/config.h"));
  ASSERT_EQ(probe.ref().found(), 1u);
  ASSERT_EQ(probe.ref().components_size(), 2);
  trace_.Add(probe);
  trace_.End(root);
  TraceModel model = Load();

  EXPECT_THAT(Causes(model, {0}), IsEmpty());
  ASSERT_EQ(unlink(T("sub").c_str()), 0);
  ASSERT_EQ(mkdir(T("sub").c_str(), 0755), 0);
  EXPECT_THAT(Causes(model, {0}), IsEmpty());
  WriteFile(T("sub/config.h"), "#define X 1");
  EXPECT_THAT(Causes(model, {0}), ElementsAre("new file sub/config.h"));
}

TEST_F(ReplayTest, FileReadThenRemovedIsACause) {
  WriteFile(T("a.c"), "int a;");
  const uint64_t root = StartRoot();
  trace_.Read(root, T("a.c"));
  trace_.End(root);
  TraceModel model = Load();

  ASSERT_EQ(unlink(T("a.c").c_str()), 0);

  EXPECT_THAT(Causes(model, {0}), ElementsAre("a.c was removed"));
}

TEST_F(ReplayTest, ModeChangeSeenByAStatIsACause) {
  WriteFile(T("script"), "echo", 0644);
  const uint64_t root = StartRoot();
  trace_.Stat(root, T("script"));
  trace_.End(root);
  TraceModel model = Load();

  ASSERT_EQ(chmod(T("script").c_str(), 0755), 0);

  EXPECT_THAT(Causes(model, {0}), ElementsAre(HasSubstr("mode of script changed")));
}

TEST_F(ReplayTest, SizeChangeSeenByAStatIsACause) {
  WriteFile(T("data"), "1234");
  const uint64_t root = StartRoot();
  trace_.Stat(root, T("data"));
  trace_.End(root);
  TraceModel model = Load();

  WriteFile(T("data"), "123456");

  EXPECT_THAT(Causes(model, {0}), ElementsAre("size of data changed (4 -> 6)"));
}

// A stat sees no contents: a same-size rewrite that puts the old mtime back
// looks the same to it.
TEST_F(ReplayTest, ContentChangeOfTheSameSizeAndMtimeIsNoCauseForAStat) {
  WriteFile(T("data"), "1234");
  struct stat before;
  ASSERT_EQ(stat(T("data").c_str(), &before), 0);
  const uint64_t root = StartRoot();
  trace_.Stat(root, T("data"));
  trace_.End(root);
  TraceModel model = Load();

  WriteFile(T("data"), "abcd");
  const timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, T("data").c_str(), times, 0), 0);

  EXPECT_THAT(Causes(model, {0}), IsEmpty());
}

void SetMtime(const std::string& path, time_t seconds) {
  const timespec times[2] = {{.tv_sec = seconds, .tv_nsec = 0}, {.tv_sec = seconds, .tv_nsec = 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
}

// The mtime is what make compares: a make that only looked at a file acts
// otherwise once it is newer, whatever its size.
TEST_F(ReplayTest, MtimeChangeSeenByAStatIsACause) {
  WriteFile(T("data"), "1234");
  const uint64_t root = StartRoot();
  trace_.Stat(root, T("data"));
  trace_.End(root);
  TraceModel model = Load();

  SetMtime(T("data"), 1'700'000'000);

  EXPECT_THAT(Causes(model, {0}), ElementsAre("mtime of data changed, and nothing reads it"));
}

// A command of the set that read the file acted on its contents, which are
// compared: its new mtime alone changes nothing (ld stats what it reads).
TEST_F(ReplayTest, MtimeChangeOfAFileTheCommandsReadIsNoCause) {
  WriteFile(T("data"), "1234");
  const uint64_t root = StartRoot();
  trace_.Stat(root, T("data"));
  const uint64_t child = trace_.Start(root, Command({"cat", "data"}));
  trace_.Read(child, T("data"));
  trace_.End(child);
  trace_.End(root);
  TraceModel model = Load();

  SetMtime(T("data"), 1'700'000'000);

  EXPECT_THAT(Causes(model, {0, 1}), IsEmpty());
  EXPECT_THAT(Causes(model, {0}), ElementsAre("mtime of data changed, and nothing reads it"));
}

// A file that only a dormant command wrote is no write of the last build's:
// its mtime moves only when this build runs or skips that command, and a
// make that found its target up to date would now make it (app/'s make
// stats lib/'s libutil.la, which lib/'s `mv` puts in place).
TEST_F(ReplayTest, MtimeChangeOfAFileOnlyADormantCommandWroteIsACause) {
  WriteFile(T("lib.la"), "archive");
  const uint64_t root = StartRoot();
  const uint64_t make = trace_.Start(root, Command({"make", "-C", "app"}));
  trace_.Stat(make, T("lib.la"));
  trace_.End(make);
  trace_.End(root);
  CommandSpec kept = Command({"mv", "lib.laT", "lib.la"});
  kept.dormant = true;
  const uint64_t move = trace_.Start(root, kept);
  trace_.Write(move, T("lib.la"));
  trace_.End(move);
  const TraceModel model = Load();
  ASSERT_TRUE(model.DormantWrites(T("lib.la")));

  SetMtime(T("lib.la"), 1'700'000'000);

  EXPECT_THAT(Causes(model, {model.IndexOf(make)}),
              ElementsAre("mtime of lib.la changed, and nothing reads it"));
}

// A rename reads nothing, but what it leaves at the new name is what it
// found at the old one: that file is an input once something put it there
// again, unless it is gone (its writer was skipped: the skip restores the
// rename's result).
TEST_F(ReplayTest, NewContentOfAFileTheCommandRenamesIsACause) {
  const uint64_t root = StartRoot();
  WriteFile(T("obj.loT"), "object 1");
  const uint64_t move = trace_.Start(root, Command({"mv", "obj.loT", "obj.lo"}));
  ASSERT_EQ(rename(T("obj.loT").c_str(), T("obj.lo").c_str()), 0);
  trace_.Rename(move, T("obj.loT"), T("obj.lo"));
  trace_.End(move);
  trace_.End(root);
  TraceModel model = Load();
  const std::vector<size_t> group = {model.IndexOf(move)};

  EXPECT_THAT(Causes(model, group), IsEmpty());
  WriteFile(T("obj.loT"), "object 1");
  EXPECT_THAT(Causes(model, group), IsEmpty());
  WriteFile(T("obj.loT"), "object 2");
  EXPECT_THAT(Causes(model, group),
              ElementsAre(HasSubstr("content of obj.loT, which it renames to obj.lo, changed")));
}

// `ln a.txt b.txt` leaves at b.txt the file it found at a.txt.
TEST_F(ReplayTest, NewContentOfAFileTheCommandHardLinksIsACause) {
  const uint64_t root = StartRoot();
  WriteFile(T("a.txt"), "one");
  const uint64_t ln = trace_.Start(root, Command({"ln", "a.txt", "b.txt"}));
  ASSERT_EQ(link(T("a.txt").c_str(), T("b.txt").c_str()), 0);
  proto::Operation op;
  op.set_command(ln);
  op.set_kind(proto::LINK);
  op.set_create(proto::EXISTING);
  op.set_syscall("linkat");
  *op.mutable_ref() = trace_.Ref(ln, T("b.txt"));
  *op.mutable_ref2() = trace_.Ref(ln, T("a.txt"));
  trace_.Add(op);
  trace_.OtherName(ln, T("b.txt"), T("a.txt"));
  trace_.End(ln);
  trace_.End(root);
  TraceModel model = Load();
  const std::vector<size_t> group = {model.IndexOf(ln)};

  EXPECT_THAT(Causes(model, group), IsEmpty());
  ASSERT_EQ(unlink(T("b.txt").c_str()), 0);
  WriteFile(T("a.txt"), "two");
  EXPECT_THAT(Causes(model, group),
              Contains(HasSubstr("content of a.txt, which it links as b.txt, changed")));
}

TEST_F(ReplayTest, NewNameInAListedDirectoryIsACause) {
  WriteFile(T("dir/a"), "a");
  const uint64_t root = StartRoot();
  trace_.List(root, T("dir"));
  trace_.End(root);
  TraceModel model = Load();

  WriteFile(T("dir/extra"), "extra");

  EXPECT_THAT(Causes(model, {0}), ElementsAre("new entry extra in directory dir"));
}

TEST_F(ReplayTest, NameThatLeftAListedDirectoryIsACause) {
  WriteFile(T("dir/a"), "a");
  WriteFile(T("dir/b"), "b");
  const uint64_t root = StartRoot();
  trace_.List(root, T("dir"));
  trace_.End(root);
  TraceModel model = Load();

  ASSERT_EQ(unlink(T("dir/a").c_str()), 0);

  EXPECT_THAT(Causes(model, {0}), ElementsAre("entry a left directory dir"));
}

TEST_F(ReplayTest, NamesTheBuildWritesAreLeftOutOfListings) {
  WriteFile(T("dir/a"), "a");
  const uint64_t root = StartRoot();
  trace_.List(root, T("dir"));
  const uint64_t gen = trace_.Start(root, Command({"gen"}));
  trace_.Write(gen, T("dir/generated"), proto::NEWFILE);
  WriteFile(T("dir/generated"), "generated");
  trace_.End(gen);
  trace_.End(root);
  TraceModel model = Load();

  // The generated file is in the tree now, as the build left it.
  EXPECT_THAT(Causes(model, {0}), IsEmpty());
  EXPECT_THAT(Causes(model, {0, 1}), IsEmpty());

  // A name nobody writes still counts.
  WriteFile(T("dir/extra"), "extra");
  EXPECT_THAT(Causes(model, {0}), ElementsAre("new entry extra in directory dir"));
}

// configure's `mkdir conftest.dir; ...; ls conftest.dir; rm -rf
// conftest.dir`: the listed directory is gone because the build removed it.
TEST_F(ReplayTest, ListingOfADirectoryTheBuildMadeAndRemovedIsNoCause) {
  const uint64_t root = StartRoot();
  const uint64_t mk = trace_.Start(root, Command({"mkdir", "scratch"}));
  ASSERT_EQ(mkdir(T("scratch").c_str(), 0755), 0);
  trace_.Link(mk, T("scratch"), proto::NEWDIR);
  trace_.End(mk);
  const uint64_t ls = trace_.Start(root, Command({"ls", "scratch"}));
  trace_.List(ls, T("scratch"));
  trace_.End(ls);
  const uint64_t rm = trace_.Start(root, Command({"rm", "-r", "scratch"}));
  trace_.Unlink(rm, T("scratch"));
  ASSERT_EQ(rmdir(T("scratch").c_str()), 0);
  trace_.End(rm);
  trace_.End(root);
  TraceModel model = Load();
  FileHasher hasher;
  LiveTree live(&hasher, tree_);

  EXPECT_TRUE(MakePlan(model, live, {"make"}, tree_, kEnv).UpToDate());
  // The exec gate checks the same for a group: the root with everything it
  // started, or ls alone.
  EXPECT_THAT(Causes(model, {0, 1, 2, 3}), IsEmpty());
  EXPECT_THAT(Causes(model, {2}), IsEmpty());
}

// libtool's configure: `cat <<EOF >> libtoolT` (an open that keeps the old
// contents, so it observes them), then `mv libtoolT libtool`. That open is
// the first write of libtoolT: what it observed was there before the build,
// and the tree now holds what the build left, so nothing is compared.
TEST_F(ReplayTest, WhatTheFirstWriteBuiltOnIsNoCauseOnceTheBuildMovedItAway) {
  const uint64_t root = StartRoot();
  const uint64_t sh = trace_.Start(root, Command({"sh", "configure"}));
  WriteFile(T("libtoolT"), "");
  proto::Operation append = trace_.Observe(sh, proto::WRITE, T("libtoolT"));
  *append.mutable_version() = trace_.Observe(sh, proto::READ, T("libtoolT")).version();
  ASSERT_FALSE(append.version().sha256().empty());
  trace_.Add(append);
  WriteFile(T("libtoolT"), "#!/bin/sh\n");
  const uint64_t mv = trace_.Start(sh, Command({"mv", "libtoolT", "libtool"}));
  ASSERT_EQ(rename(T("libtoolT").c_str(), T("libtool").c_str()), 0);
  trace_.Rename(mv, T("libtoolT"), T("libtool"));
  trace_.End(mv);
  trace_.End(sh);
  trace_.End(root);
  TraceModel model = Load();
  FileHasher hasher;
  LiveTree live(&hasher, tree_);

  EXPECT_TRUE(MakePlan(model, live, {"make"}, tree_, kEnv).UpToDate());
  EXPECT_THAT(Causes(model, {1, 2}), IsEmpty());
  EXPECT_THAT(Causes(model, {1}), IsEmpty());
}

// Kept, it is listed like any other: a name the build does not write is an
// input of ls, which also depends on mkdir.
TEST_F(ReplayTest, ListingOfADirectoryTheBuildMadeComparesItsOtherNames) {
  const uint64_t root = StartRoot();
  const uint64_t mk = trace_.Start(root, Command({"mkdir", "out"}));
  ASSERT_EQ(mkdir(T("out").c_str(), 0755), 0);
  trace_.Link(mk, T("out"), proto::NEWDIR);
  trace_.End(mk);
  const uint64_t ls = trace_.Start(root, Command({"ls", "out"}));
  trace_.List(ls, T("out"));
  trace_.End(ls);
  trace_.End(root);
  TraceModel model = Load();
  FileHasher hasher;
  LiveTree live(&hasher, tree_);
  EXPECT_TRUE(MakePlan(model, live, {"make"}, tree_, kEnv).UpToDate());

  WriteFile(T("out/extra"), "by hand");
  live.Forget();
  Plan plan = MakePlan(model, live, {"make"}, tree_, kEnv);
  EXPECT_FALSE(plan.commands[1].dirty);
  EXPECT_THAT(plan.commands[2].causes, ElementsAre("new entry extra in directory out"));
  EXPECT_THAT(Causes(model, {0, 1, 2}), ElementsAre("new entry extra in directory out"));
  EXPECT_THAT(Causes(model, {2}), ElementsAre("new entry extra in directory out"));
}

// `cmd 2>/dev/null` writes no file: whoever reads /dev/null later does not
// depend on that command, which may rerun without dirtying them.
TEST_F(ReplayTest, WriteToADeviceMakesNoReaderOfIt) {
  WriteFile(T("in.txt"), "in");
  const uint64_t root = StartRoot();
  const uint64_t quiet = trace_.Start(root, Command({"sh", "-c", "cat in.txt 2>/dev/null"}));
  trace_.Read(quiet, T("in.txt"));
  proto::Operation to_null = trace_.Observe(quiet, proto::WRITE, "/dev/null");
  to_null.mutable_version()->set_mode(S_IFCHR | 0666);
  const size_t write = trace_.Add(to_null);
  trace_.End(quiet);
  const uint64_t reader = trace_.Start(root, Command({"cat", "/dev/null"}));
  trace_.Read(reader, "/dev/null");
  trace_.End(reader);
  trace_.End(root);
  TraceModel model = Load();
  EXPECT_THAT(model.PathsOf(model.ops()[write]).written, IsEmpty());
  EXPECT_EQ(model.FirstWrite("/dev/null"), kNever);

  WriteFile(T("in.txt"), "changed");
  FileHasher hasher;
  LiveTree live(&hasher, tree_);
  Plan plan = MakePlan(model, live, {"make"}, tree_, kEnv);
  EXPECT_TRUE(plan.commands[model.IndexOf(quiet)].dirty);
  EXPECT_FALSE(plan.commands[model.IndexOf(reader)].dirty)
      << absl::StrJoin(plan.commands[model.IndexOf(reader)].causes, "; ");
}

// glibc's pthread_getattr_np reads /proc/self/maps: the symlink and the
// directory name the process that looked, which a rerun never is again.
TEST_F(ReplayTest, WhatAProcessReadAboutItselfIsNoCause) {
  const uint64_t root = StartRoot();
  const uint64_t grep = trace_.Start(root, Command({"grep", "x"}));
  trace_.Readlink(grep, "/proc/self");
  proto::Operation maps = trace_.Observe(grep, proto::READ, "/proc/self/maps");
  maps.mutable_ref()->set_components(1, trace_.Intern("999999999"));
  trace_.Add(maps);
  trace_.Stat(grep, "/proc/thread-self");
  trace_.End(grep);
  trace_.End(root);
  TraceModel model = Load();
  ASSERT_EQ(model.Path(model.ops()[model.ops().size() - 3].ref()), "/proc/self");
  FileHasher hasher;
  LiveTree live(&hasher, tree_);

  EXPECT_TRUE(MakePlan(model, live, {"make"}, tree_, kEnv).UpToDate());
}

// Like its lstat, a link's target is read once until Forget().
TEST_F(ReplayTest, LinkTargetIsReadOnceUntilForget) {
  ASSERT_EQ(symlink("a", T("link").c_str()), 0);
  FileHasher hasher;
  LiveTree live(&hasher, tree_);
  ASSERT_NE(live.LinkTarget(T("link")), nullptr);
  EXPECT_EQ(*live.LinkTarget(T("link")), "a");
  EXPECT_EQ(live.LinkTarget(T("absent")), nullptr);

  ASSERT_EQ(unlink(T("link").c_str()), 0);
  ASSERT_EQ(symlink("b", T("link").c_str()), 0);
  EXPECT_EQ(*live.LinkTarget(T("link")), "a");
  live.Forget();
  EXPECT_EQ(*live.LinkTarget(T("link")), "b");
}

TEST_F(ReplayTest, NewSymlinkTargetIsACause) {
  ASSERT_EQ(symlink("a", T("link").c_str()), 0);
  const uint64_t root = StartRoot();
  trace_.Readlink(root, T("link"));
  trace_.End(root);
  TraceModel model = Load();

  ASSERT_EQ(unlink(T("link").c_str()), 0);
  ASSERT_EQ(symlink("b", T("link").c_str()), 0);

  EXPECT_THAT(Causes(model, {0}), ElementsAre("symlink link now points to b (was a)"));
}

TEST_F(ReplayTest, SymlinkReplacedByAFileIsACause) {
  ASSERT_EQ(symlink("a", T("link").c_str()), 0);
  const uint64_t root = StartRoot();
  trace_.Readlink(root, T("link"));
  trace_.End(root);
  TraceModel model = Load();

  ASSERT_EQ(unlink(T("link").c_str()), 0);
  WriteFile(T("link"), "a");

  EXPECT_THAT(Causes(model, {0}), ElementsAre("link is no longer a symlink"));
}

TEST_F(ReplayTest, PathTheCommandsWroteEarlierIsNotCompared) {
  const uint64_t root = StartRoot();
  trace_.Write(root, T("gen.h"));
  WriteFile(T("gen.h"), "v1");
  trace_.Read(root, T("gen.h"));
  trace_.Stat(root, T("gen.h"));
  trace_.End(root);
  TraceModel model = Load();

  WriteFile(T("gen.h"), "v2, longer");

  EXPECT_THAT(Causes(model, {0}), IsEmpty());
}

TEST_F(ReplayTest, PathAnotherCommandOfTheSetWroteEarlierIsNotCompared) {
  const uint64_t root = StartRoot();
  const uint64_t gen = trace_.Start(root, Command({"gen"}));
  trace_.Write(gen, T("gen.h"));
  WriteFile(T("gen.h"), "v1");
  trace_.End(gen);
  const uint64_t cc = trace_.Start(root, Command({"cc"}));
  trace_.Read(cc, T("gen.h"));
  trace_.End(cc);
  trace_.End(root);
  TraceModel model = Load();

  WriteFile(T("gen.h"), "v2");

  EXPECT_THAT(Causes(model, {1, 2}), IsEmpty());
  // Checked alone, the reader depends on a file it did not write itself.
  EXPECT_THAT(Causes(model, {2}), ElementsAre(HasSubstr("content of gen.h changed")));
}

TEST_F(ReplayTest, PathTheBuildWritesOnlyLaterIsNotCompared) {
  WriteFile(T("out"), "left by the last build");
  const uint64_t root = StartRoot();
  trace_.Read(root, T("out"));
  trace_.Stat(root, T("out"));
  const uint64_t ld = trace_.Start(root, Command({"ld"}));
  trace_.Write(ld, T("out"));
  trace_.End(ld);
  trace_.End(root);
  TraceModel model = Load();

  WriteFile(T("out"), "changed by hand, and longer");

  EXPECT_THAT(Causes(model, {0}), IsEmpty());
}

TEST_F(ReplayTest, CommandThatFailedLastTimeIsACause) {
  const uint64_t root = StartRoot();
  trace_.End(root, 1);
  TraceModel model = Load();

  EXPECT_THAT(Causes(model, {0}), ElementsAre("failed last time (exit 1)"));
}

// configure's test compile: cc1 fails, gcc fails with it, and the shell
// goes on. The failures were handled: they are replayed, not retried.
TEST_F(ReplayTest, FailureAnAncestorHandledIsNoCause) {
  const uint64_t root = StartRoot();
  const uint64_t sh = trace_.Start(root, Command({"sh", "./configure"}));
  const uint64_t gcc = trace_.Start(sh, Command({"gcc", "-c", "conftest.c"}));
  const uint64_t cc1 = trace_.Start(gcc, Command({"cc1", "conftest.c"}));
  trace_.End(cc1, 1);
  trace_.End(gcc, 1);
  trace_.End(sh);
  trace_.End(root);
  TraceModel model = Load();

  EXPECT_THAT(Causes(model, {0, 1, 2, 3}), IsEmpty());
}

// The same with every ancestor failing: the build failed, cc1 is retried.
TEST_F(ReplayTest, FailureNoAncestorHandledIsACause) {
  const uint64_t root = StartRoot();
  const uint64_t sh = trace_.Start(root, Command({"sh", "./configure"}));
  const uint64_t gcc = trace_.Start(sh, Command({"gcc", "-c", "conftest.c"}));
  const uint64_t cc1 = trace_.Start(gcc, Command({"cc1", "conftest.c"}));
  trace_.End(cc1, 1);
  trace_.End(gcc, 1);
  trace_.End(sh, 1);
  trace_.End(root, 2);
  TraceModel model = Load();

  EXPECT_THAT(Causes(model, {3}), ElementsAre("failed last time (exit 1)"));
}

TEST_F(ReplayTest, CommandThatDidNotFinishIsACause) {
  const uint64_t root = StartRoot();
  trace_.Start(root, Command({"cc"}));
  trace_.End(root);
  TraceModel model = Load();

  EXPECT_THAT(Causes(model, {1}), ElementsAre("did not finish last time"));
}

TEST_F(ReplayTest, CheckCommandsStopsAtMaxCauses) {
  WriteFile(T("a"), "a");
  WriteFile(T("b"), "b");
  const uint64_t root = StartRoot();
  trace_.Read(root, T("a"));
  trace_.Read(root, T("b"));
  trace_.End(root);
  TraceModel model = Load();

  WriteFile(T("a"), "A");
  WriteFile(T("b"), "B");

  FileHasher hasher;
  LiveTree live(&hasher, tree_);
  std::vector<std::string> one = CheckCommands(model, {0}, live);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_THAT(one[0], HasSubstr("content of a changed"));
  EXPECT_EQ(Causes(model, {0}).size(), 2u);
}

// gcc's `as` read a temporary the last build's cc1 wrote and removed; this
// build's cc1 wrote another. Checked under the new name, the assembler is up
// to date exactly when the new file holds what the old one held; one that
// writes or lists a renamed path cannot be checked that way.
TEST_F(ReplayTest, RenamedTemporaryIsComparedUnderItsNewName) {
  const uint64_t root = StartRoot();
  const uint64_t cc1 = trace_.Start(root, Command({"cc1"}));
  trace_.Write(cc1, T("tmp/ccOld123.s"));
  WriteFile(T("tmp/ccOld123.s"), "movl $1, %eax\n");
  trace_.End(cc1);
  const uint64_t as = trace_.Start(root, Command({"as", "-o", "a.o", T("tmp/ccOld123.s")}));
  trace_.Read(as, T("tmp/ccOld123.s"));
  trace_.Write(as, T("a.o"));
  trace_.End(as);
  ASSERT_EQ(mkdir(T("tmp/ccDir789").c_str(), 0755), 0);
  const uint64_t lister = trace_.Start(root, Command({"ls", T("tmp/ccDir789")}));
  trace_.List(lister, T("tmp/ccDir789"));
  trace_.End(lister);
  ASSERT_EQ(rmdir(T("tmp/ccDir789").c_str()), 0);
  const uint64_t writer = trace_.Start(root, Command({"touch", T("tmp/ccOld123.s")}));
  trace_.Write(writer, T("tmp/ccOld123.s"));
  trace_.End(writer);
  // Looks for a file named after its input.
  const uint64_t prober = trace_.Start(root, Command({"probe", T("tmp/ccOld123.s")}));
  trace_.Read(prober, T("tmp/ccOld123.s"));
  trace_.Get(prober, T("tmp/ccOld123.d"));
  trace_.End(prober);
  // Named after its input: a skip would restore ccOld123.o, not ccNew456.o.
  const uint64_t derived = trace_.Start(root, Command({"as", T("tmp/ccOld123.s")}));
  trace_.Read(derived, T("tmp/ccOld123.s"));
  trace_.Write(derived, T("ccOld123.o"));
  trace_.End(derived);
  trace_.Unlink(root, T("tmp/ccOld123.s"));
  ASSERT_EQ(unlink(T("tmp/ccOld123.s").c_str()), 0);
  trace_.End(root);
  TraceModel model = Load();

  TempRenames renames;
  ASSERT_TRUE(renames.Add(T("tmp/ccOld123.s"), T("tmp/ccNew456.s")));
  ASSERT_TRUE(renames.Add(T("tmp/ccDir789"), T("tmp/ccDir000")));
  FileHasher hasher;
  LiveTree live(&hasher, tree_);
  auto check = [&](size_t command) {
    live.Forget();
    return CheckCommands(model, {command}, live, 100, &renames);
  };
  // Without the renames, the old name is simply gone.
  EXPECT_THAT(Causes(model, {2}), ElementsAre(HasSubstr("tmp/ccOld123.s was removed")));
  WriteFile(T("tmp/ccNew456.s"), "movl $1, %eax\n");
  EXPECT_THAT(check(2), IsEmpty());
  WriteFile(T("tmp/ccNew456.s"), "movl $2, %eax\n");
  EXPECT_THAT(check(2), ElementsAre(HasSubstr("content of tmp/ccNew456.s changed")));
  EXPECT_THAT(check(3), ElementsAre(HasSubstr("it lists tmp/ccDir789, a temporary")));
  EXPECT_THAT(check(4),
              ElementsAre(HasSubstr("it writes tmp/ccOld123.s, named after a temporary")));
  EXPECT_THAT(check(5), Contains(HasSubstr("it looks at tmp/ccOld123.d, named after a temporary")));
  EXPECT_THAT(check(6), Contains(HasSubstr("it writes ccOld123.o, named after a temporary")));
}

// A shell that writes a log through a descriptor (`exec 5>log`) and has a
// child write to it too (`cat a >&5`) writes again after the child ended
// (`echo end >&5`). Writes through a descriptor make no operation, so the
// child has the last operation on log; the version log was left in is the
// one the shell saw at its end, which ended after the child.
TEST_F(ReplayTest, FinalVersionIsTheOneTheWriterThatEndedLastSaw) {
  const uint64_t root = StartRoot();
  trace_.Write(root, T("log"));
  WriteFile(T("log"), "start\n");
  const uint64_t cat = trace_.Start(root, Command({"cat", "a"}));
  trace_.Write(cat, T("log"));
  WriteFile(T("log"), "start\na\n");
  trace_.End(cat);
  WriteFile(T("log"), "start\na\nend\n");
  trace_.End(root);
  const TraceModel model = Load();

  std::vector<FinalState> states = FinalStates(model, {0, 1});
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0].path, T("log"));
  EXPECT_EQ(
      states[0].version.sha256(),
      std::string(reinterpret_cast<const char*>(Sha256OfString("start\na\nend\n").data()), 32));
  // The child alone left the version it saw.
  std::vector<FinalState> child = FinalStates(model, {1});
  ASSERT_EQ(child.size(), 1u);
  EXPECT_EQ(child[0].version.size(), 8u);
  FileHasher hasher;
  LiveTree live(&hasher, tree_);
  EXPECT_TRUE(MakePlan(model, live, {"make"}, tree_, kEnv).UpToDate());
}

// W writes a, L links it as b, X rewrites the file through b (reading in),
// R reads a. X wrote a too: a's final version is X's, and R depends on X.
TEST_F(ReplayTest, CommandThatWroteThroughAnotherNameIsTheWriterOfEveryName) {
  WriteFile(T("in"), "two\n");
  const uint64_t root = StartRoot();
  const uint64_t w = trace_.Start(root, Command({"W"}));
  trace_.Write(w, T("a"));
  WriteFile(T("a"), "one\n");
  trace_.End(w);
  const uint64_t l = trace_.Start(root, Command({"L"}));
  trace_.Link(l, T("b"), proto::EXISTING);
  ASSERT_EQ(link(T("a").c_str(), T("b").c_str()), 0);
  trace_.End(l);
  const uint64_t x = trace_.Start(root, Command({"X"}));
  trace_.Read(x, T("in"));
  trace_.Write(x, T("b"), proto::LINK_NONE);
  WriteFile(T("b"), "one\ntwo\n");  // in place: a shows it too
  trace_.OtherName(x, T("a"), T("b"));
  trace_.End(x);
  const uint64_t r = trace_.Start(root, Command({"R"}));
  trace_.Read(r, T("a"));
  trace_.Write(r, T("out"));
  WriteFile(T("out"), "one\ntwo\n");
  trace_.End(r);
  trace_.End(root);
  const TraceModel model = Load();
  const size_t kW = 1, kX = 3, kR = 4;

  std::vector<FinalState> w_alone = FinalStates(model, {kW});
  ASSERT_EQ(w_alone.size(), 1u);
  EXPECT_EQ(w_alone[0].version.size(), 4u);
  EXPECT_EQ(w_alone[0].same_file_as, "");
  std::vector<FinalState> all = FinalStates(model, {0, 1, 2, 3, 4});
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].path, T("a"));
  EXPECT_EQ(all[0].version.size(), 8u);
  EXPECT_EQ(all[0].same_file_as, T("b"));
  EXPECT_EQ(all[0].writer, kX);

  FileHasher hasher;
  {
    LiveTree live(&hasher, tree_);
    Plan plan = MakePlan(model, live, {"make"}, tree_, kEnv);
    EXPECT_TRUE(plan.UpToDate()) << (plan.restore_reasons.empty() ? "" : plan.restore_reasons[0]);
  }
  {
    // a holds the same bytes, but is no longer b's file.
    ASSERT_EQ(unlink(T("a").c_str()), 0);
    WriteFile(T("a"), "one\ntwo\n");
    LiveTree live(&hasher, tree_);
    Plan plan = MakePlan(model, live, {"make"}, tree_, kEnv);
    EXPECT_THAT(plan.restore_reasons, ElementsAre("a is no longer the file b is"));
    ASSERT_EQ(unlink(T("a").c_str()), 0);
    ASSERT_EQ(link(T("b").c_str(), T("a").c_str()), 0);
  }
  WriteFile(T("in"), "three\n");
  LiveTree live(&hasher, tree_);
  Plan plan = MakePlan(model, live, {"make"}, tree_, kEnv);
  EXPECT_TRUE(plan.commands[kX].dirty);
  EXPECT_THAT(plan.commands[kR].causes, ElementsAre("reads a, which 'X' will rewrite"));
}

// A script is executed by the kernel and read by its interpreter: one edit,
// one cause, not the same line twice.
TEST_F(ReplayTest, ScriptExecutedAndReadChangesOnce) {
  WriteFile(T("build.sh"), "#!/bin/sh\ntrue\n");
  const uint64_t root = StartRoot();
  CommandSpec spec = Command({"./build.sh"});
  spec.executable = T("build.sh");
  const uint64_t script = trace_.Start(root, spec);
  trace_.Read(script, T("build.sh"));
  trace_.End(script);
  trace_.End(root);
  const TraceModel model = Load();
  WriteFile(T("build.sh"), "#!/bin/sh\nfalse\n");
  FileHasher hasher;
  LiveTree live(&hasher, tree_);
  Plan plan = MakePlan(model, live, {"make"}, tree_, kEnv);
  EXPECT_THAT(plan.commands[1].causes, ElementsAre(HasSubstr("content of build.sh changed")));
}

TEST_F(ReplayTest, ChangedProgramIsACauseForTheCommandItStarted) {
  const uint64_t root = StartRoot();
  const uint64_t cc = trace_.Start(root, Command({"cc"}));
  trace_.End(cc);
  trace_.End(root);
  TraceModel model = Load();

  WriteFile(T("bin/cc"), "a new compiler");

  EXPECT_THAT(Causes(model, {1}), ElementsAre(HasSubstr("content of bin/cc changed")));
}

// A touched source: the root stats it and A, which it started, reads it.
// Nothing reruns for that. A command that only looked at the file (make
// finding its target up to date) must rerun, and its parent with it.
TEST_F(ReplayTest, NewMtimeIsACauseOnlyForACommandThatNeverReadTheFile) {
  WriteFile(T("src"), "source");
  const uint64_t root = StartRoot();
  trace_.Stat(root, T("src"));
  const uint64_t a = trace_.Start(root, Command({"A", "src"}));
  trace_.Read(a, T("src"));
  trace_.End(a);
  const uint64_t submake = trace_.Start(root, Command({"make", "-C", "sub"}));
  trace_.Stat(submake, T("src"));
  trace_.End(submake);
  trace_.End(root);
  const TraceModel model = Load();
  FileHasher hasher;
  LiveTree before(&hasher, tree_);
  ASSERT_TRUE(MakePlan(model, before, {"make"}, tree_, kEnv).UpToDate());

  SetMtime(T("src"), 1'700'000'000);

  LiveTree live(&hasher, tree_);
  const Plan plan = MakePlan(model, live, {"make"}, tree_, kEnv);
  ASSERT_EQ(plan.commands.size(), 3u);
  EXPECT_FALSE(plan.commands[0].dirty);
  EXPECT_TRUE(plan.commands[0].runs);
  EXPECT_FALSE(plan.commands[1].runs);
  EXPECT_TRUE(plan.commands[2].dirty);
  EXPECT_THAT(plan.commands[2].causes, ElementsAre("mtime of src changed, and nothing reads it"));
}

// MakePlan: root `make` runs A (reads src, writes mid), then B (reads mid,
// writes out).
class PlanTest : public ReplayTest {
 protected:
  static constexpr size_t kRoot = 0, kA = 1, kB = 2;

  void SetUp() override {
    ReplayTest::SetUp();
    WriteFile(T("src"), "source v1");
    const uint64_t root = StartRoot();
    const uint64_t a = trace_.Start(root, Command({"A", "src", "mid"}));
    trace_.Read(a, T("src"));
    trace_.Write(a, T("mid"));
    WriteFile(T("mid"), "mid made from source v1");
    trace_.End(a);
    const uint64_t b = trace_.Start(root, Command({"B", "mid", "out"}));
    trace_.Read(b, T("mid"));
    trace_.Write(b, T("out"));
    WriteFile(T("out"), "out made from mid", 0755);
    trace_.End(b);
    trace_.End(root);
    model_ = Load();
    ASSERT_EQ(model_.commands().size(), 3u);
  }

  Plan PlanNow(const std::vector<std::string>& argv = {"make"},
               const std::vector<std::string>& env = kEnv) {
    FileHasher hasher;
    LiveTree live(&hasher, tree_);
    return MakePlan(model_, live, argv, tree_, env);
  }

  TraceModel model_;
};

TEST_F(PlanTest, UnchangedTreeIsUpToDate) {
  Plan plan = PlanNow();
  EXPECT_TRUE(plan.UpToDate());
  EXPECT_FALSE(plan.root_changed);
  EXPECT_THAT(plan.restores, IsEmpty());
  ASSERT_EQ(plan.commands.size(), 3u);
  for (const CommandVerdict& verdict : plan.commands) {
    EXPECT_FALSE(verdict.dirty);
    EXPECT_FALSE(verdict.runs);
    EXPECT_THAT(verdict.causes, IsEmpty());
  }
}

TEST_F(PlanTest, ChangedSourceMakesItsReaderAndTheReaderOfItsOutputDirty) {
  WriteFile(T("src"), "source v2");

  Plan plan = PlanNow();

  EXPECT_FALSE(plan.UpToDate());
  EXPECT_FALSE(plan.root_changed);
  const CommandVerdict& a = plan.commands[kA];
  EXPECT_TRUE(a.dirty);
  EXPECT_TRUE(a.runs);
  EXPECT_THAT(a.causes, ElementsAre(HasSubstr("content of src changed")));
  const CommandVerdict& b = plan.commands[kB];
  EXPECT_TRUE(b.dirty);
  EXPECT_TRUE(b.runs);
  EXPECT_THAT(b.causes, ElementsAre("reads mid, which 'A src mid' will rewrite"));
  const CommandVerdict& root = plan.commands[kRoot];
  EXPECT_FALSE(root.dirty);
  EXPECT_TRUE(root.runs);
  EXPECT_THAT(root.causes, ElementsAre("starts 'A src mid', which must run"));
  // Commands run: nothing is restored.
  EXPECT_THAT(plan.restores, IsEmpty());
}

TEST_F(PlanTest, IntermediateChangedByHandIsRestoredNotRebuilt) {
  WriteFile(T("mid"), "edited by hand");

  Plan plan = PlanNow();

  EXPECT_FALSE(plan.UpToDate());
  for (const CommandVerdict& verdict : plan.commands) EXPECT_FALSE(verdict.runs);
  ASSERT_EQ(plan.restores.size(), 1u);
  EXPECT_EQ(plan.restores[0].path, T("mid"));
  EXPECT_THAT(plan.restore_reasons, ElementsAre("mid was modified"));
}

TEST_F(PlanTest, MissingFinalOutputIsRestored) {
  ASSERT_EQ(unlink(T("out").c_str()), 0);

  Plan plan = PlanNow();

  EXPECT_FALSE(plan.UpToDate());
  for (const CommandVerdict& verdict : plan.commands) EXPECT_FALSE(verdict.runs);
  ASSERT_EQ(plan.restores.size(), 1u);
  EXPECT_EQ(plan.restores[0].path, T("out"));
  EXPECT_EQ(
      plan.restores[0].version.sha256(),
      std::string(reinterpret_cast<const char*>(Sha256OfString("out made from mid").data()), 32));
  EXPECT_EQ(plan.restores[0].version.mode() & 07777, 0755u);
  EXPECT_THAT(plan.restore_reasons, ElementsAre("out is missing"));
}

TEST_F(PlanTest, FinalStatesAreTheLastWritersOutputsInTraceOrder) {
  std::vector<FinalState> states = FinalStates(model_, {kRoot, kA, kB});
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states[0].path, T("mid"));
  EXPECT_EQ(states[1].path, T("out"));
  EXPECT_THAT(FinalStates(model_, {kB}),
              ElementsAre(::testing::Field(&FinalState::path, T("out"))));
}

TEST_F(PlanTest, OutputWithChangedModeIsRestored) {
  ASSERT_EQ(chmod(T("out").c_str(), 0644), 0);
  Plan plan = PlanNow();
  EXPECT_THAT(plan.restore_reasons, ElementsAre("out: mode changed"));
}

// SuspectCause: what the gate of dodo build looks at first.

// Checked against the tree as it is now, as the exec-time check does.
class SuspectTest : public PlanTest {
 protected:
  std::string Suspect(const Plan& plan, const std::vector<size_t>& group) {
    FileHasher hasher;
    LiveTree live(&hasher, tree_);
    return SuspectCause(model_, plan, group, {group.begin(), group.end()}, live);
  }
};

TEST_F(SuspectTest, ChangedSourceIsFoundWithoutTheWholeCheck) {
  WriteFile(T("src"), "source v2");
  Plan plan = PlanNow();

  EXPECT_EQ(plan.commands[kA].suspects.size(), 1u);
  EXPECT_THAT(Suspect(plan, {kA}), HasSubstr("content of src changed"));
  // A make that starts A has it in its group.
  EXPECT_THAT(Suspect(plan, {kRoot, kA, kB}), HasSubstr("content of src changed"));
  EXPECT_THAT(Causes(model_, {kRoot, kA, kB}), Not(IsEmpty()));
}

TEST_F(SuspectTest, SourceChangedBackIsNoCause) {
  WriteFile(T("src"), "source v2");
  Plan plan = PlanNow();
  WriteFile(T("src"), "source v1");

  EXPECT_EQ(Suspect(plan, {kRoot, kA, kB}), "");
  EXPECT_THAT(Causes(model_, {kRoot, kA, kB}), IsEmpty());
}

// B reads what A will rewrite: once A has run, B's read differs only if A
// wrote something else.
TEST_F(SuspectTest, ReadOfARewrittenFileIsACauseOnlyIfItDiffers) {
  WriteFile(T("src"), "source v2");
  Plan plan = PlanNow();
  ASSERT_EQ(plan.commands[kB].suspects.size(), 1u);

  WriteFile(T("mid"), "mid made from source v1");  // A wrote the same again
  EXPECT_EQ(Suspect(plan, {kB}), "");
  EXPECT_THAT(Causes(model_, {kB}), IsEmpty());

  WriteFile(T("mid"), "mid made from source v2");
  EXPECT_THAT(Suspect(plan, {kB}), HasSubstr("content of mid changed"));
  EXPECT_THAT(Causes(model_, {kB}), Not(IsEmpty()));
}

// With its writer in the group, what B reads is the group's own doing: the
// whole check does not compare it, and neither may the suspects.
TEST_F(SuspectTest, ReadOfWhatTheGroupWritesItselfIsNoCause) {
  WriteFile(T("src"), "source v2");
  Plan plan = PlanNow();
  WriteFile(T("src"), "source v1");
  WriteFile(T("mid"), "mid edited since");

  EXPECT_EQ(Suspect(plan, {kA, kB}), "");
  EXPECT_THAT(Causes(model_, {kA, kB}), IsEmpty());
  EXPECT_THAT(Suspect(plan, {kB}), HasSubstr("content of mid changed"));
}

TEST_F(SuspectTest, UnchangedTreeHasNoSuspects) {
  Plan plan = PlanNow();
  for (const CommandVerdict& verdict : plan.commands) EXPECT_THAT(verdict.suspects, IsEmpty());
  EXPECT_EQ(Suspect(plan, {kRoot, kA, kB}), "");
}

TEST_F(PlanTest, ChangedVariableMakesTheCommandsThatHadItDirty) {
  Plan plan = PlanNow({"make"}, {"PATH=/bin", "X=2"});

  EXPECT_FALSE(plan.UpToDate());
  EXPECT_FALSE(plan.root_changed);
  for (size_t c : {kRoot, kA, kB}) {
    EXPECT_TRUE(plan.commands[c].dirty) << c;
    EXPECT_THAT(plan.commands[c].causes, Contains("environment variable X changed")) << c;
  }
}

TEST_F(PlanTest, RemovedVariableMakesTheCommandsThatHadItDirty) {
  Plan plan = PlanNow({"make"}, {"PATH=/bin"});
  EXPECT_THAT(plan.commands[kA].causes, Contains("environment variable X changed"));
}

TEST_F(PlanTest, NewVariableMakesTheCommandsThatLackedItDirty) {
  Plan plan = PlanNow({"make"}, {"PATH=/bin", "X=1", "CFLAGS=-O2"});
  for (size_t c : {kRoot, kA, kB}) {
    EXPECT_THAT(plan.commands[c].causes, Contains("environment variable CFLAGS changed")) << c;
  }
}

TEST_F(PlanTest, DifferentRootArgvChangesTheRoot) {
  Plan plan = PlanNow({"make", "install"});
  EXPECT_TRUE(plan.root_changed);
  EXPECT_FALSE(plan.UpToDate());
  EXPECT_TRUE(plan.commands[kRoot].dirty);
  EXPECT_THAT(plan.commands[kRoot].causes, Contains("the root command is not the one recorded"));
  EXPECT_FALSE(plan.commands[kA].dirty);
}

TEST_F(PlanTest, DifferentWorkingDirectoryChangesTheRoot) {
  FileHasher hasher;
  LiveTree live(&hasher, tree_);
  Plan plan = MakePlan(model_, live, {"make"}, T("src"), kEnv);
  EXPECT_TRUE(plan.root_changed);
}

TEST_F(ReplayTest, CommandThatSetItsOwnValueIgnoresTheRootsChange) {
  const uint64_t root = StartRoot();
  const uint64_t child = trace_.Start(root, Command({"cc"}, {"PATH=/bin", "X=own"}));
  trace_.End(child);
  trace_.End(root);
  TraceModel model = Load();
  FileHasher hasher;
  LiveTree live(&hasher, tree_);

  Plan plan = MakePlan(model, live, {"make"}, tree_, {"PATH=/bin", "X=2"});

  EXPECT_TRUE(plan.commands[0].dirty);
  EXPECT_FALSE(plan.commands[1].dirty);
  EXPECT_THAT(plan.commands[1].causes, IsEmpty());
}

TEST_F(ReplayTest, ReaderOfAPipeFromADirtyCommandIsDirty) {
  WriteFile(T("src"), "v1");
  const uint64_t root = StartRoot();
  const uint64_t gen = trace_.Start(root, Command({"gen"}));
  trace_.Pipe(gen, proto::PIPE_WRITE, 5);
  trace_.Read(gen, T("src"));
  const uint64_t sort = trace_.Start(root, Command({"sort"}));
  trace_.Pipe(sort, proto::PIPE_READ, 5);
  trace_.End(gen);
  trace_.End(sort);
  trace_.End(root);
  TraceModel model = Load();
  FileHasher hasher;
  LiveTree live(&hasher, tree_);
  EXPECT_TRUE(MakePlan(model, live, {"make"}, tree_, kEnv).UpToDate());

  WriteFile(T("src"), "v2");
  live.Forget();
  Plan plan = MakePlan(model, live, {"make"}, tree_, kEnv);

  EXPECT_TRUE(plan.commands[1].dirty);
  EXPECT_THAT(plan.commands[2].causes, ElementsAre("reads a pipe from 'gen', which must rerun"));
}

// A pipe no command writes is fed by an ancestor's own process (a shell
// builtin, make's jobserver): its reader depends on that ancestor.
TEST_F(ReplayTest, ReaderOfAPipeNoCommandWritesDependsOnItsAncestors) {
  WriteFile(T("src"), "v1");
  const uint64_t root = StartRoot();
  trace_.Read(root, T("src"));
  const uint64_t sort = trace_.Start(root, Command({"sort"}));
  trace_.Pipe(sort, proto::PIPE_READ, 9);
  trace_.End(sort);
  trace_.End(root);
  TraceModel model = Load();
  FileHasher hasher;
  LiveTree live(&hasher, tree_);
  EXPECT_TRUE(MakePlan(model, live, {"make"}, tree_, kEnv).UpToDate());

  WriteFile(T("src"), "v2");
  live.Forget();
  Plan plan = MakePlan(model, live, {"make"}, tree_, kEnv);

  EXPECT_TRUE(plan.commands[0].dirty);
  EXPECT_TRUE(plan.commands[1].dirty);
  EXPECT_THAT(plan.commands[1].causes,
              ElementsAre(::testing::AllOf(HasSubstr("reads a pipe"), HasSubstr("'make'"))));
}

// Which cause a command is given first must not change from run to run:
// dirt spreads from the readers of ancestor-fed pipes in command order.
TEST_F(ReplayTest, DirtFromPipeReadersSpreadsInCommandOrder) {
  WriteFile(T("src"), "v1");
  const uint64_t root = StartRoot();
  trace_.Read(root, T("src"));
  constexpr int kReaders = 12;
  for (int i = 1; i <= kReaders; ++i) {
    const uint64_t reader = trace_.Start(root, Command({absl::StrCat("reader", i)}));
    trace_.Pipe(reader, proto::PIPE_READ, 100 + i);
    trace_.Write(reader, T(absl::StrCat("out", i)));
    trace_.End(reader);
  }
  const uint64_t user = trace_.Start(root, Command({"user"}));
  for (int i = kReaders; i >= 1; --i) trace_.Read(user, T(absl::StrCat("out", i)));
  trace_.End(user);
  trace_.End(root);
  TraceModel model = Load();
  FileHasher hasher;
  LiveTree live(&hasher, tree_);

  WriteFile(T("src"), "v2");
  Plan plan = MakePlan(model, live, {"make"}, tree_, kEnv);
  const size_t user_index = kReaders + 1;
  ASSERT_TRUE(plan.commands[user_index].dirty);
  EXPECT_THAT(plan.commands[user_index].causes,
              ElementsAre("reads out1, which 'reader1' will rewrite"));
}

// A pipe no command reads at its exec is read by the processes of an
// ancestor (a shell reading `$(echo x | sed ...)`): the writer is up to date
// with it, must run whenever that ancestor runs, and makes it dirty.
TEST_F(ReplayTest, WriterOfAPipeNoCommandReadsRunsWithTheAncestorThatReadsIt) {
  WriteFile(T("script"), "v1");
  WriteFile(T("pattern"), "v1");
  const uint64_t root = StartRoot();
  const uint64_t sh = trace_.Start(root, Command({"sh", "-c", "script"}));
  trace_.Read(sh, T("script"));
  const uint64_t sed = trace_.Start(sh, Command({"sed"}));
  trace_.Pipe(sed, proto::PIPE_WRITE, 9);
  trace_.Read(sed, T("pattern"));
  trace_.End(sed);
  trace_.End(sh);
  trace_.End(root);
  TraceModel model = Load();
  FileHasher hasher;
  LiveTree live(&hasher, tree_);
  EXPECT_TRUE(MakePlan(model, live, {"make"}, tree_, kEnv).UpToDate());

  WriteFile(T("script"), "v2");
  live.Forget();
  Plan plan = MakePlan(model, live, {"make"}, tree_, kEnv);
  EXPECT_TRUE(plan.commands[1].dirty);
  EXPECT_FALSE(plan.commands[2].dirty);
  EXPECT_TRUE(plan.commands[2].runs);
  EXPECT_THAT(plan.commands[2].causes,
              ElementsAre("shares a pipe with 'sh -c script', which must run"));

  WriteFile(T("script"), "v1");
  WriteFile(T("pattern"), "v2");
  live.Forget();
  plan = MakePlan(model, live, {"make"}, tree_, kEnv);
  EXPECT_TRUE(plan.commands[2].dirty);
  EXPECT_TRUE(plan.commands[1].dirty);
  EXPECT_THAT(plan.commands[1].causes, ElementsAre("reads a pipe from 'sed', which must rerun"));
  EXPECT_FALSE(plan.commands[0].dirty);
}

// With no ancestor left to read it (every one holds the write end), the
// pipe leads out of the build and cannot be replayed.
TEST_F(ReplayTest, WriterOfAPipeOnlyWritersHoldCannotBeReplayed) {
  const uint64_t root = StartRoot();
  trace_.Pipe(root, proto::PIPE_WRITE, 9);
  const uint64_t gen = trace_.Start(root, Command({"gen"}));
  trace_.Pipe(gen, proto::PIPE_WRITE, 9);
  trace_.End(gen);
  trace_.End(root);
  TraceModel model = Load();
  FileHasher hasher;
  LiveTree live(&hasher, tree_);

  Plan plan = MakePlan(model, live, {"make"}, tree_, kEnv);

  EXPECT_FALSE(plan.UpToDate());
  EXPECT_THAT(plan.commands[1].causes,
              ElementsAre("writes a pipe read by a process that is not a command"));
}

// The recorder logs the symlinks an exec's path walk follows as the parent's
// READLINK operations between the child's CommandStart and the parent's EXEC
// (model/recorder.cc, Recorder::OnExec via ResolveInto). A new program file
// must still make the command it started dirty.
TEST_F(ReplayTest, ChangedProgramReachedThroughASymlinkMakesItsCommandDirty) {
  const uint64_t root = StartRoot();
  CommandSpec cc = Command({"cc"});
  ASSERT_EQ(symlink("bin", T("tools").c_str()), 0);
  const uint64_t child = trace_.StartWithoutExec(root, cc);
  trace_.Readlink(root, T("tools"));
  trace_.Exec(root, T("bin/cc"));  // refs name real directories
  trace_.End(child);
  trace_.End(root);
  TraceModel model = Load();

  WriteFile(T("bin/cc"), "a new compiler");
  FileHasher hasher;
  LiveTree live(&hasher, tree_);
  Plan plan = MakePlan(model, live, {"make"}, tree_, kEnv);

  EXPECT_TRUE(plan.commands[1].dirty);
  EXPECT_THAT(plan.commands[1].causes, Contains(HasSubstr("content of bin/cc changed")));
  EXPECT_FALSE(plan.commands[0].dirty);
  EXPECT_THAT(Causes(model, {1}), ElementsAre(HasSubstr("content of bin/cc changed")));
}

// ChangedVariables and ShortCommand

TEST(ChangedVariablesTest, NamesOfChangedAddedAndRemovedVariablesSorted) {
  EXPECT_THAT(ChangedVariables({"A=1", "B=2", "C=3", "E="}, {"E=", "D=4", "B=5", "A=1"}),
              ElementsAre("B", "C", "D"));
}

TEST(ChangedVariablesTest, EmptyValueIsNotAMissingVariable) {
  EXPECT_THAT(ChangedVariables({"E="}, {}), ElementsAre("E"));
  EXPECT_THAT(ChangedVariables({}, {"E="}), ElementsAre("E"));
}

TEST(ChangedVariablesTest, OrderAndEntriesWithoutEqualsDoNotMatter) {
  EXPECT_THAT(ChangedVariables({"A=1", "B=2", "junk"}, {"B=2", "A=1"}), IsEmpty());
  EXPECT_THAT(ChangedVariables({}, {}), IsEmpty());
}

TEST(ChangedVariablesTest, ValueMayContainEquals) {
  EXPECT_THAT(ChangedVariables({"F=a=b"}, {"F=a=c"}), ElementsAre("F"));
  EXPECT_THAT(ChangedVariables({"F=a=b"}, {"F=a=b"}), IsEmpty());
}

TEST(ShortCommandTest, ProgramIsShownWithoutItsDirectory) {
  EXPECT_EQ(ShortCommand({"/usr/bin/gcc", "-c", "/src/a.c"}), "gcc -c /src/a.c");
  EXPECT_EQ(ShortCommand({"make"}), "make");
  EXPECT_EQ(ShortCommand({}), "");
}

TEST(ShortCommandTest, LongCommandIsCutToTheWidthWithAnEllipsis) {
  const std::string line = ShortCommand({"cc", std::string(100, 'x')}, 20);
  EXPECT_EQ(line.size(), 20u);
  EXPECT_EQ(line, "cc xxxxxxxxxxxxxx...");
  EXPECT_EQ(ShortCommand({"cc", "abc"}, 6), "cc abc");
  EXPECT_EQ(ShortCommand({"cc", "abcd"}, 6), "cc ...");
}

TEST(ShortCommandTest, DefaultWidthIs72) {
  EXPECT_EQ(ShortCommand({std::string(200, 'a')}).size(), 72u);
}

}  // namespace
}  // namespace dodo::model
