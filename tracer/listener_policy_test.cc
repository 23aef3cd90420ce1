#include "tracer/listener_policy.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dodo::tracer {
namespace {

class ExamineProgramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/dodo-policy-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { ASSERT_EQ(std::system(("rm -rf " + dir_).c_str()), 0); }

  std::string Write(const std::string& name, const std::string& text, mode_t mode) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    chmod(path.c_str(), mode);
    return path;
  }

  std::string dir_;
};

TEST_F(ExamineProgramTest, BinaryIsNamedAfterTheFileItsLinksLeadTo) {
  const std::string copy = dir_ + "/cc1";
  ASSERT_EQ(std::system(("cp /bin/true " + copy).c_str()), 0);
  ASSERT_EQ(symlink(copy.c_str(), (dir_ + "/compiler").c_str()), 0);
  EXPECT_EQ(ExamineProgram(copy).name, "cc1");
  EXPECT_EQ(ExamineProgram(dir_ + "/compiler").name, "cc1");
  EXPECT_FALSE(ExamineProgram(copy).script);
}

TEST_F(ExamineProgramTest, ScriptIsNamedAfterItsInterpreter) {
  ASSERT_EQ(symlink("/bin/true", (dir_ + "/shell").c_str()), 0);
  EXPECT_EQ(ExamineProgram(Write("configure", "#!" + dir_ + "/shell\necho hi\n", 0755)).name,
            "true");
  EXPECT_EQ(ExamineProgram(Write("gen.py", "#! /usr/bin/env  python3 -u\n", 0755)).name, "python3");
  EXPECT_EQ(ExamineProgram(Write("plain", "#!/usr/bin/env -S make -f\n", 0755)).name, "env");
  EXPECT_TRUE(ExamineProgram(dir_ + "/configure").script);
  EXPECT_TRUE(ExamineProgram(dir_ + "/gen.py").script);
}

TEST_F(ExamineProgramTest, NothingWhenTheExecWouldFail) {
  EXPECT_EQ(ExamineProgram(dir_ + "/missing").name, "");
  EXPECT_EQ(ExamineProgram(Write("no-magic", "echo hi\n", 0755)).name, "");
  EXPECT_EQ(ExamineProgram(Write("not-executable", "#!/bin/sh\n", 0644)).name, "");
  EXPECT_EQ(ExamineProgram("relative/path").name, "");
}

// A binary run with no arguments but its name.
Program Binary(const char* name) { return {name, false}; }

TEST(ListenerPolicyTest, JobRunnersWrappersAndCommandStringShellsGetNone) {
  ListenerPolicy policy;
  for (const char* name : {"make", "ninja", "env", "xargs", "python3.11", "busybox"}) {
    EXPECT_FALSE(policy.WantsOwn(Binary(name), {name, "all"})) << name;
  }
  EXPECT_FALSE(policy.WantsOwn(Binary(""), {"x"}));
  for (const char* name : {"x86_64-linux-gnu-gcc-12", "cc1", "as", "ld.bfd", "cp"}) {
    EXPECT_TRUE(policy.WantsOwn(Binary(name), {name, "-o", "x"})) << name;
  }
}

TEST(ListenerPolicyTest, ShellGetsOneOnlyForAScriptFile) {
  ListenerPolicy policy;
  const std::vector<std::vector<std::string>> command_or_input = {
      {"sh", "-c", "./configure && make -j2"},
      {"/bin/sh", "-ec", "cd sub && make"},
      {"bash", "-o", "pipefail", "-xc", "a | b"},
      {"bash", "--norc", "-c", "true"},
      {"sh"},
      {"sh", "-s", "arg"},
      {"sh", "-e", "--"},
  };
  for (const char* shell : {"sh", "dash", "bash", "bash5.2", "zsh"}) {
    for (const std::vector<std::string>& argv : command_or_input) {
      EXPECT_FALSE(policy.WantsOwn(Binary(shell), argv)) << shell << " " << argv[1 % argv.size()];
    }
    EXPECT_TRUE(policy.WantsOwn(Binary(shell), {"sh", "./configure", "--prefix=/usr"})) << shell;
    EXPECT_TRUE(policy.WantsOwn(Binary(shell), {"sh", "-e", "-o", "errexit", "gen.sh"}));
    EXPECT_TRUE(policy.WantsOwn(Binary(shell), {"bash", "--", "-c"}));
    // A "#!" script run by the shell: its argv is the script's own.
    EXPECT_TRUE(policy.WantsOwn({shell, true}, {"../libtool", "--mode=compile", "-c", "a.c"}));
    // The traced command itself (a Dodofile, a build script) gets none.
    EXPECT_FALSE(policy.WantsOwn({shell, true}, {"./Dodofile"}, /*root=*/true));
    EXPECT_FALSE(policy.WantsOwn(Binary(shell), {"sh", "build.sh"}, /*root=*/true));
  }
}

TEST(ListenerPolicyTest, ProgramSeenRunningTwoChildrenAtOnceGetsNoneAfterwards) {
  ListenerPolicy policy;
  ASSERT_TRUE(policy.WantsOwn(Binary("lto-wrapper"), {"lto-wrapper"}));
  policy.SawParallelChildren("lto-wrapper");
  EXPECT_FALSE(policy.WantsOwn(Binary("lto-wrapper"), {"lto-wrapper"}));
  EXPECT_TRUE(policy.WantsOwn(Binary("cc1"), {"cc1"}));
}

}  // namespace
}  // namespace dodo::tracer
