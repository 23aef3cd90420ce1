// `dodo gc`: objects the last build no longer names go, its own outputs stay
// restorable, and a store it cannot read safely loses nothing.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/file_hasher.h"
#include "tests/build_test_util.h"
#include "tests/trace_test_util.h"

namespace dodo::test {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Every object of the project's store, as "ab/cdef...".
std::set<std::string> Objects(const Project& project) {
  std::set<std::string> out;
  const std::filesystem::path root = project.Path(".dodo/objects");
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.is_regular_file()) out.insert(entry.path().lexically_relative(root).string());
  }
  return out;
}

// The store's name for `content`.
std::string ObjectName(const std::string& content) {
  const std::string hex = model::DigestHex(model::Sha256OfString(content));
  return hex.substr(0, 2) + "/" + hex.substr(2);
}

RunResult Gc(const Project& project, const std::vector<std::string>& args = {}) {
  std::vector<std::string> argv = {DodoPath(), "gc"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, project.dir());
}

// Builds c_build, then edits b.c and builds again: the first build's b.o and
// prog are then in the store but named by no trace.
Project BuildTwice(std::string* old_prog, std::string* old_b_o) {
  Project project = Project::Copy("c_build");
  EXPECT_EQ(project.Build().run.exit_status, 0);
  *old_prog = project.Read("prog").value_or("");
  *old_b_o = project.Read("b.o").value_or("");
  project.Append("b.c", "int another(void) { return 1; }\n");
  EXPECT_EQ(project.Build().run.exit_status, 0);
  return project;
}

TEST(GcTest, RemovesTheVersionsTheLastBuildReplacedAndKeepsItsOwn) {
  std::string old_prog, old_b_o;
  Project project = BuildTwice(&old_prog, &old_b_o);
  const std::set<std::string> before = Objects(project);
  ASSERT_TRUE(before.contains(ObjectName(old_prog)));
  ASSERT_TRUE(before.contains(ObjectName(old_b_o)));
  const std::optional<std::string> prog = project.Read("prog");
  const std::optional<std::string> b_o = project.Read("b.o");
  ASSERT_NE(prog, old_prog);

  RunResult r = Gc(project);
  ASSERT_EQ(r.exit_status, 0) << r.err;
  EXPECT_THAT(r.err, IsEmpty());
  const std::set<std::string> after = Objects(project);
  EXPECT_FALSE(after.contains(ObjectName(old_prog)));
  EXPECT_FALSE(after.contains(ObjectName(old_b_o)));
  EXPECT_TRUE(after.contains(ObjectName(*prog)));
  EXPECT_TRUE(after.contains(ObjectName(*b_o)));
  const size_t removed = before.size() - after.size();
  EXPECT_GE(removed, 2u);
  EXPECT_THAT(r.out, HasSubstr("removed " + std::to_string(removed) + " objects"));
  EXPECT_THAT(r.out, HasSubstr("kept " + std::to_string(after.size()) + " objects"));

  // The last build's outputs still come back from the store, nothing reruns.
  EXPECT_EQ(project.WhyQuiet(), 0);
  project.Remove("prog");
  project.Remove("b.o");
  BuildRun rebuild = project.Build();
  EXPECT_EQ(rebuild.run.exit_status, 0) << rebuild.run.err;
  EXPECT_THAT(RanLabels(rebuild.trace), IsEmpty()) << DescribeCommands(rebuild.trace);
  EXPECT_EQ(project.Read("prog"), prog);
  EXPECT_EQ(project.Read("b.o"), b_o);

  // A second collection finds nothing more.
  RunResult again = Gc(project);
  EXPECT_EQ(again.exit_status, 0) << again.err;
  EXPECT_THAT(again.out, HasSubstr("removed 0 objects"));
  EXPECT_EQ(Objects(project), after);
}

TEST(GcTest, DryRunSaysWhatItWouldRemoveAndRemovesNothing) {
  std::string old_prog, old_b_o;
  Project project = BuildTwice(&old_prog, &old_b_o);
  const std::set<std::string> before = Objects(project);

  RunResult r = Gc(project, {"--dry-run"});
  EXPECT_EQ(r.exit_status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("would remove"));
  EXPECT_EQ(Objects(project), before);
}

TEST(GcTest, RemovesWhatAKilledBuildLeftInTheStage) {
  std::string old_prog, old_b_o;
  Project project = BuildTwice(&old_prog, &old_b_o);
  project.Write(".dodo/stage/7-prog", "half a program");
  project.Write(".dodo/trace.new", "half a trace");

  RunResult r = Gc(project);
  EXPECT_EQ(r.exit_status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("2 files"));
  EXPECT_EQ(project.Read(".dodo/stage/7-prog"), std::nullopt);
  EXPECT_EQ(project.Read(".dodo/trace.new"), std::nullopt);
  EXPECT_EQ(project.WhyQuiet(), 0);
}

TEST(GcTest, RefusedWhileABuildHoldsTheStore) {
  std::string old_prog, old_b_o;
  Project project = BuildTwice(&old_prog, &old_b_o);
  const std::set<std::string> before = Objects(project);
  const int fd = open(project.Path(".dodo/lock").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  RunResult r = Gc(project);
  close(fd);
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_THAT(r.err, HasSubstr("another dodo build is running"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(Objects(project), before);
}

TEST(GcTest, ATraceCutShortRemovesNothing) {
  std::string old_prog, old_b_o;
  Project project = BuildTwice(&old_prog, &old_b_o);
  const std::set<std::string> before = Objects(project);
  const std::string trace = project.Path(".dodo/trace");
  struct stat st;
  ASSERT_EQ(stat(trace.c_str(), &st), 0);
  ASSERT_EQ(truncate(trace.c_str(), st.st_size / 2), 0);

  RunResult r = Gc(project);
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_THAT(r.err, HasSubstr(trace));
  EXPECT_THAT(r.err, HasSubstr("nothing removed"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(Objects(project), before);
}

TEST(GcTest, NoStoreIsNothingToDo) {
  const std::string dir = MakeTempDir();
  RunResult r = RunCommand({DodoPath(), "gc"}, dir);
  EXPECT_EQ(r.exit_status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("nothing to do"));
  EXPECT_NE(access((dir + "/.dodo").c_str(), F_OK), 0) << "gc creates no store";
}

}  // namespace
}  // namespace dodo::test
