#include "model/temp_names.h"

#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dodo::model {
namespace {

// What the last build made and removed again.
const std::set<std::string> kGone = {"/tmp/ccAbC123.s", "/tmp/ccXyZ789.o", "/tmp/ccDeF456.o",
                                     "/tmp/ccAbC123"};

bool WasTemporary(const std::string& path) { return kGone.contains(path); }

using Argv = std::vector<std::string>;

TEST(TempNamesTest, AssemblerInputUnderANewRandomName) {
  std::optional<TempRenames> renames =
      MatchTempNames({"as", "--64", "-o", "a.o", "/tmp/ccAbC123.s"},
                     {"as", "--64", "-o", "a.o", "/tmp/ccQ9w8E7.s"}, WasTemporary);
  ASSERT_TRUE(renames.has_value());
  ASSERT_EQ(renames->pairs().size(), 1u);
  EXPECT_EQ(renames->pairs()[0].first, "/tmp/ccAbC123.s");
  EXPECT_EQ(renames->pairs()[0].second, "/tmp/ccQ9w8E7.s");
}

TEST(TempNamesTest, EqualCommandLinesNeedNoRenames) {
  const Argv argv = {"as", "-o", "a.o", "/tmp/ccAbC123.s"};
  EXPECT_FALSE(MatchTempNames(argv, argv, WasTemporary).has_value());
}

TEST(TempNamesTest, OtherDifferencesAreNoMatch) {
  // Not a temporary of the last build (it is still there, or it never made it).
  EXPECT_FALSE(MatchTempNames({"as", "/tmp/ccKeep12.s"}, {"as", "/tmp/ccQ9w8E7.s"}, WasTemporary));
  // Another directory, another extension, another length, a relative path.
  EXPECT_FALSE(MatchTempNames({"as", "/tmp/ccAbC123.s"}, {"as", "/var/ccAbC123.s"}, WasTemporary));
  EXPECT_FALSE(MatchTempNames({"as", "/tmp/ccAbC123.s"}, {"as", "/tmp/ccQ9w8E7.o"}, WasTemporary));
  EXPECT_FALSE(MatchTempNames({"as", "/tmp/ccAbC123.s"}, {"as", "/tmp/ccQ9w8E.s"}, WasTemporary));
  EXPECT_FALSE(MatchTempNames({"x", "/tmp/ccAbC123.s"}, {"y", "/tmp/ccQ9w8E7.s"}, WasTemporary));
  EXPECT_FALSE(MatchTempNames({"as", "-O1"}, {"as", "-O2"}, WasTemporary));
  EXPECT_FALSE(MatchTempNames({"as"}, {"as", "/tmp/ccQ9w8E7.s"}, WasTemporary));
}

TEST(TempNamesTest, OneNameStandsForOneName) {
  // The same old name twice: the same new name both times.
  EXPECT_TRUE(MatchTempNames({"ld", "/tmp/ccXyZ789.o", "/tmp/ccXyZ789.o"},
                             {"ld", "/tmp/ccNew000.o", "/tmp/ccNew000.o"}, WasTemporary));
  EXPECT_FALSE(MatchTempNames({"ld", "/tmp/ccXyZ789.o", "/tmp/ccXyZ789.o"},
                              {"ld", "/tmp/ccNew000.o", "/tmp/ccNew111.o"}, WasTemporary));
  // Two old names cannot become one.
  EXPECT_FALSE(MatchTempNames({"ld", "/tmp/ccXyZ789.o", "/tmp/ccDeF456.o"},
                              {"ld", "/tmp/ccNew000.o", "/tmp/ccNew000.o"}, WasTemporary));
}

TEST(TempNamesTest, PathsAndComponentsUnderNewNames) {
  TempRenames renames;
  ASSERT_TRUE(renames.Add("/tmp/ccAbC123", "/tmp/ccQ9w8E7"));
  EXPECT_FALSE(renames.Add("/tmp/ccAbC123", "/tmp/ccOther1"));
  EXPECT_FALSE(renames.Add("/tmp/ccOther1", "/tmp/ccQ9w8E7"));
  EXPECT_TRUE(renames.Add("/tmp/ccAbC123", "/tmp/ccQ9w8E7"));  // the same pair again
  EXPECT_EQ(renames.Path("/tmp/ccAbC123"), "/tmp/ccQ9w8E7");
  EXPECT_EQ(renames.Path("/tmp/ccAbC123/sub/x.o"), "/tmp/ccQ9w8E7/sub/x.o");
  EXPECT_EQ(renames.Path("/tmp/ccAbC1234"), std::nullopt);
  EXPECT_EQ(renames.Path("/tmp"), std::nullopt);
  EXPECT_EQ(renames.Component("ccAbC123"), "ccQ9w8E7");
  EXPECT_EQ(renames.Component("tmp"), std::nullopt);
  EXPECT_TRUE(renames.Mentions("/tmp/ccAbC123/x"));
  EXPECT_TRUE(renames.Mentions("/home/u/ccAbC123.o"));
  EXPECT_FALSE(renames.Mentions("/home/u/a.o"));
  EXPECT_FALSE(renames.Mentions("/tmp/ccQ9w8E7"));
}

}  // namespace
}  // namespace dodo::model
