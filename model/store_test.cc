#include "model/store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/file_hasher.h"
#include "model/test_trace_builder.h"

namespace dodo::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testutil::Exists;
using testutil::Names;
using testutil::ReadFile;
using testutil::ScratchDir;
using testutil::WriteFile;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(StoreDir());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  std::string StoreDir() const { return scratch_.P(".dodo"); }

  // Every file below objects/, as "ab/cdef...".
  std::vector<std::string> Objects() const {
    std::vector<std::string> out;
    for (const std::string& prefix : Names(StoreDir() + "/objects")) {
      for (const std::string& name : Names(StoreDir() + "/objects/" + prefix)) {
        out.push_back(prefix + "/" + name);
      }
    }
    return out;
  }

  // Saves `content` from a file named `name` in the scratch directory.
  FileVersion SaveContent(const std::string& name, const std::string& content) {
    WriteFile(scratch_.P(name), content);
    absl::StatusOr<FileVersion> version = store_->Save(scratch_.P(name), hasher_);
    EXPECT_TRUE(version.ok()) << version.status();
    return version.ok() ? *version : FileVersion{};
  }

  ScratchDir scratch_;
  FileHasher hasher_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, SaveNamesTheObjectByTheSha256OfItsBytes) {
  const std::string content = "int main() { return 0; }\n";
  FileVersion version = SaveContent("a.c", content);

  EXPECT_EQ(version.sha256, Sha256OfString(content));
  EXPECT_EQ(version.size, content.size());
  const std::string hex = DigestHex(version.sha256);
  const std::string object = store_->ObjectPath(version.sha256);
  EXPECT_EQ(object, absl::StrCat(StoreDir(), "/objects/", hex.substr(0, 2), "/", hex.substr(2)));
  EXPECT_EQ(ReadFile(object), content);
  EXPECT_TRUE(store_->Has(version.sha256));
  EXPECT_THAT(Objects(), ElementsAre(hex.substr(0, 2) + "/" + hex.substr(2)));
}

TEST_F(StoreTest, HasIsFalseForAnUnsavedDigest) {
  EXPECT_FALSE(store_->Has(Sha256OfString("never saved")));
}

TEST_F(StoreTest, SavingTheSameContentTwiceWritesOneObject) {
  FileVersion first = SaveContent("one", "same bytes");
  FileVersion second = SaveContent("two", "same bytes");
  FileVersion again = SaveContent("one", "same bytes");

  EXPECT_EQ(first.sha256, second.sha256);
  EXPECT_EQ(first.sha256, again.sha256);
  const std::string hex = DigestHex(first.sha256);
  // One object, and no temporary file left beside it.
  EXPECT_THAT(Objects(), ElementsAre(hex.substr(0, 2) + "/" + hex.substr(2)));
  EXPECT_THAT(Names(StoreDir() + "/objects"), ElementsAre(hex.substr(0, 2)));
}

TEST_F(StoreTest, SaveOfAMissingFileFailsNamingIt) {
  absl::StatusOr<FileVersion> version = store_->Save(scratch_.P("missing"), hasher_);
  ASSERT_FALSE(version.ok());
  EXPECT_THAT(version.status().message(), HasSubstr(scratch_.P("missing")));
  EXPECT_TRUE(Objects().empty());
}

TEST_F(StoreTest, RestoreWritesTheExactBytesWithTheModeAsked) {
  const std::string content = std::string("#!/bin/sh\necho \0hi\n", 19);
  FileVersion version = SaveContent("tool", content);

  const std::string target = scratch_.P("out/bin/tool");
  ASSERT_TRUE(store_->Restore(version.sha256, 0755, target).ok());

  EXPECT_EQ(ReadFile(target), content);
  struct stat st;
  ASSERT_EQ(stat(target.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  // The missing parents were made, and no temporary file is left.
  EXPECT_THAT(Names(scratch_.P("out/bin")), ElementsAre("tool"));
}

TEST_F(StoreTest, RestoreUsesOnlyThePermissionBitsOfTheMode) {
  FileVersion version = SaveContent("data", "data");
  const std::string target = scratch_.P("copy");
  ASSERT_TRUE(store_->Restore(version.sha256, S_IFREG | 0600, target).ok());
  struct stat st;
  ASSERT_EQ(stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFREG | 0600));
}

TEST_F(StoreTest, RestoreReplacesAnExistingFileByRenamingOverIt) {
  FileVersion version = SaveContent("new", "new contents");
  const std::string target = scratch_.P("dir/target");
  WriteFile(target, "old contents");
  // A second name for the old file: written in place, it would change too.
  ASSERT_EQ(link(target.c_str(), scratch_.P("dir/old-link").c_str()), 0);

  ASSERT_TRUE(store_->Restore(version.sha256, 0644, target).ok());

  EXPECT_EQ(ReadFile(target), "new contents");
  EXPECT_EQ(ReadFile(scratch_.P("dir/old-link")), "old contents");
  EXPECT_THAT(Names(scratch_.P("dir")), ElementsAre("old-link", "target"));
}

TEST_F(StoreTest, RestoreOfAMissingObjectFailsAndLeavesTheTargetUntouched) {
  const Digest digest = Sha256OfString("never saved");
  const std::string target = scratch_.P("dir/target");
  WriteFile(target, "old contents");

  absl::Status status = store_->Restore(digest, 0644, target);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr(store_->ObjectPath(digest)));
  EXPECT_EQ(ReadFile(target), "old contents");
  EXPECT_THAT(Names(scratch_.P("dir")), ElementsAre("target"));
}

TEST_F(StoreTest, RestoreOfAMissingObjectCreatesNoParentDirectories) {
  absl::Status status = store_->Restore(Sha256OfString("never saved"), 0644, scratch_.P("a/b/c"));
  ASSERT_FALSE(status.ok());
  EXPECT_FALSE(Exists(scratch_.P("a")));
}

TEST_F(StoreTest, SecondOpenFailsWhileTheFirstIsAlive) {
  absl::StatusOr<std::unique_ptr<Store>> second = Store::Open(StoreDir());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("another dodo build"));
  EXPECT_THAT(second.status().message(), HasSubstr(StoreDir()));

  store_.reset();
  absl::StatusOr<std::unique_ptr<Store>> third = Store::Open(StoreDir());
  EXPECT_TRUE(third.ok()) << third.status();
}

TEST_F(StoreTest, OpenCreatesTheLayout) {
  EXPECT_EQ(store_->dir(), StoreDir());
  EXPECT_THAT(Names(StoreDir()), ElementsAre("lock", "objects"));
  EXPECT_EQ(store_->trace_path(), StoreDir() + "/trace");
  EXPECT_EQ(store_->next_trace_path(), StoreDir() + "/trace.new");
  EXPECT_EQ(store_->hashes_path(), StoreDir() + "/hashes");
}

TEST_F(StoreTest, CommitTraceRenamesTheNextTraceOverTheLastOne) {
  WriteFile(store_->trace_path(), "last build");
  WriteFile(store_->next_trace_path(), "this build");

  ASSERT_TRUE(store_->CommitTrace().ok());

  EXPECT_EQ(ReadFile(store_->trace_path()), "this build");
  EXPECT_FALSE(Exists(store_->next_trace_path()));
}

TEST_F(StoreTest, CommitTraceWithoutANextTraceFailsNamingIt) {
  WriteFile(store_->trace_path(), "last build");
  absl::Status status = store_->CommitTrace();
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr(store_->next_trace_path()));
  EXPECT_EQ(ReadFile(store_->trace_path()), "last build");
}

TEST(StoreOpenTest, OpenUnderARegularFileFailsNamingThePath) {
  ScratchDir scratch;
  WriteFile(scratch.P("plain"), "not a directory");
  const std::string dir = scratch.P("plain/.dodo");

  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir);

  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr(dir));
}

TEST(StoreOpenTest, OpenOfARegularFileFailsNamingThePath) {
  ScratchDir scratch;
  WriteFile(scratch.P(".dodo"), "not a directory");

  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(scratch.P(".dodo"));

  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr(scratch.P(".dodo")));
}

TEST(MakeParentDirsTest, MakesEveryMissingParentButNotTheLeaf) {
  ScratchDir scratch;
  ASSERT_TRUE(MakeParentDirs(scratch.P("a/b/c/file")).ok());
  struct stat st;
  ASSERT_EQ(stat(scratch.P("a/b/c").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_FALSE(Exists(scratch.P("a/b/c/file")));
  // Existing parents are fine.
  EXPECT_TRUE(MakeParentDirs(scratch.P("a/b/other")).ok());
}

}  // namespace
}  // namespace dodo::model
