#include "tracer/listener_policy.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace dodo::tracer {
namespace {

class ProgramOfTest : public ::testing::Test {
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

TEST_F(ProgramOfTest, BinaryIsNamedAfterTheFileItsLinksLeadTo) {
  const std::string copy = dir_ + "/cc1";
  ASSERT_EQ(std::system(("cp /bin/true " + copy).c_str()), 0);
  ASSERT_EQ(symlink(copy.c_str(), (dir_ + "/compiler").c_str()), 0);
  EXPECT_EQ(ProgramOf(copy), "cc1");
  EXPECT_EQ(ProgramOf(dir_ + "/compiler"), "cc1");
}

TEST_F(ProgramOfTest, ScriptIsNamedAfterItsInterpreter) {
  ASSERT_EQ(symlink("/bin/true", (dir_ + "/shell").c_str()), 0);
  EXPECT_EQ(ProgramOf(Write("configure", "#!" + dir_ + "/shell\necho hi\n", 0755)), "true");
  EXPECT_EQ(ProgramOf(Write("gen.py", "#! /usr/bin/env  python3 -u\n", 0755)), "python3");
  EXPECT_EQ(ProgramOf(Write("plain", "#!/usr/bin/env -S make -f\n", 0755)), "env");
}

TEST_F(ProgramOfTest, NothingWhenTheExecWouldFail) {
  EXPECT_EQ(ProgramOf(dir_ + "/missing"), "");
  EXPECT_EQ(ProgramOf(Write("no-magic", "echo hi\n", 0755)), "");
  EXPECT_EQ(ProgramOf(Write("not-executable", "#!/bin/sh\n", 0644)), "");
  EXPECT_EQ(ProgramOf("relative/path"), "");
}

TEST(ListenerPolicyTest, JobRunnersShellsAndWrappersGetNone) {
  ListenerPolicy policy;
  for (const char* name :
       {"make", "ninja", "dash", "bash", "bash5.2", "env", "xargs", "python3.11"}) {
    EXPECT_FALSE(policy.WantsOwn(name)) << name;
  }
  EXPECT_FALSE(policy.WantsOwn(""));
  for (const char* name : {"x86_64-linux-gnu-gcc-12", "cc1", "as", "ld.bfd", "cp"}) {
    EXPECT_TRUE(policy.WantsOwn(name)) << name;
  }
}

TEST(ListenerPolicyTest, ProgramSeenRunningTwoChildrenAtOnceGetsNoneAfterwards) {
  ListenerPolicy policy;
  ASSERT_TRUE(policy.WantsOwn("lto-wrapper"));
  policy.SawParallelChildren("lto-wrapper");
  EXPECT_FALSE(policy.WantsOwn("lto-wrapper"));
  EXPECT_TRUE(policy.WantsOwn("cc1"));
}

}  // namespace
}  // namespace dodo::tracer
