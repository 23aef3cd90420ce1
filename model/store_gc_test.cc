#include "model/store_gc.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/file_hasher.h"
#include "model/store.h"
#include "model/test_trace_builder.h"
#include "proto/manifest.pb.h"

namespace dodo::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testutil::Exists;
using testutil::MakeCommand;
using testutil::Names;
using testutil::ReadFile;
using testutil::ScratchDir;
using testutil::TraceBuilder;
using testutil::WriteFile;

class StoreGcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(scratch_.P(".dodo"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  // Writes `content` to `name` in the project and saves it in the store.
  Digest Save(const std::string& name, const std::string& content) {
    WriteFile(scratch_.P(name), content);
    absl::StatusOr<FileVersion> version = store_->Save(scratch_.P(name), hasher_);
    EXPECT_TRUE(version.ok()) << version.status();
    return version.ok() ? version->sha256 : Digest{};
  }

  // The last build's trace: one command that reads `input` and writes
  // `output`, whose versions are what the tree holds now.
  void WriteTrace(const std::string& input, const std::string& output) {
    TraceBuilder trace(store_->trace_path());
    const uint64_t cc = trace.Start(0, MakeCommand(scratch_.path(), {"cc"}));
    trace.Read(cc, scratch_.P(input));
    trace.Write(cc, scratch_.P(output));
    trace.End(cc);
    trace.Finish();
  }

  DigestSet InUse() {
    absl::StatusOr<DigestSet> in_use = DigestsInUse(store_->trace_path(), ManifestPath());
    EXPECT_TRUE(in_use.ok()) << in_use.status();
    return in_use.ok() ? *in_use : DigestSet{};
  }

  std::string ManifestPath() const { return scratch_.P(".dodo/manifest"); }

  ScratchDir scratch_;
  FileHasher hasher_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreGcTest, RemovesTheObjectsTheLastTraceDoesNotName) {
  const Digest old_output = Save("out.o", "object code, first version");
  const Digest input = Save("a.c", "int a;");
  const Digest output = Save("out.o", "object code, second version");
  WriteTrace("a.c", "out.o");

  absl::StatusOr<GcStats> stats = CollectGarbage(*store_, InUse(), /*dry_run=*/false);
  ASSERT_TRUE(stats.ok()) << stats.status();

  EXPECT_FALSE(store_->Has(old_output));
  EXPECT_TRUE(store_->Has(input));  // read by the command: named by its R
  EXPECT_TRUE(store_->Has(output));
  EXPECT_EQ(ReadFile(store_->ObjectPath(output)), "object code, second version");
  EXPECT_EQ(stats->objects_removed, 1u);
  EXPECT_EQ(stats->bytes_removed, std::string("object code, first version").size());
  EXPECT_EQ(stats->objects_kept, 2u);
  EXPECT_EQ(stats->bytes_kept, std::string("int a;object code, second version").size());
  // The removed object's fan-out directory went with it (unless shared).
  const std::string old_dir = DigestHex(old_output).substr(0, 2);
  if (old_dir != DigestHex(input).substr(0, 2) && old_dir != DigestHex(output).substr(0, 2)) {
    EXPECT_FALSE(Exists(scratch_.P(".dodo/objects/" + old_dir)));
  }
}

TEST_F(StoreGcTest, DryRunRemovesNothingAndCountsWhatItWouldRemove) {
  const Digest old_output = Save("out.o", "old");
  Save("a.c", "int a;");
  Save("out.o", "new");
  WriteTrace("a.c", "out.o");

  absl::StatusOr<GcStats> stats = CollectGarbage(*store_, InUse(), /*dry_run=*/true);
  ASSERT_TRUE(stats.ok()) << stats.status();

  EXPECT_TRUE(store_->Has(old_output));
  EXPECT_EQ(stats->objects_removed, 1u);
  EXPECT_EQ(stats->bytes_removed, 3u);
  EXPECT_EQ(stats->objects_kept, 2u);
}

TEST_F(StoreGcTest, KeepsTheObjectsTheManifestNames) {
  Save("a.c", "int a;");
  Save("out.o", "new");
  WriteTrace("a.c", "out.o");
  const Digest installed = Save("lib/libfoo.so", "a library in the tree");
  proto::Manifest manifest;
  proto::ManifestEntry* entry = manifest.add_entries();
  entry->set_path("lib/libfoo.so");
  entry->set_kind(proto::ENTRY_FILE);
  entry->set_sha256(std::string(installed.begin(), installed.end()));
  {
    std::string bytes;
    ASSERT_TRUE(manifest.SerializeToString(&bytes));
    WriteFile(ManifestPath(), bytes);
  }

  absl::StatusOr<GcStats> stats = CollectGarbage(*store_, InUse(), /*dry_run=*/false);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(store_->Has(installed));
  EXPECT_EQ(stats->objects_removed, 0u);
  EXPECT_EQ(stats->objects_kept, 3u);
}

TEST_F(StoreGcTest, AnIncompleteTraceIsAnErrorNamingIt) {
  Save("a.c", "int a;");
  Save("out.o", "new");
  WriteTrace("a.c", "out.o");
  // Cut the trace short: its trailer, and so the end of what it names, is lost.
  struct stat st;
  ASSERT_EQ(stat(store_->trace_path().c_str(), &st), 0);
  ASSERT_EQ(truncate(store_->trace_path().c_str(), st.st_size - 3), 0);

  absl::StatusOr<DigestSet> in_use = DigestsInUse(store_->trace_path(), ManifestPath());
  ASSERT_FALSE(in_use.ok());
  EXPECT_THAT(in_use.status().message(), HasSubstr(store_->trace_path()));
}

TEST_F(StoreGcTest, AMissingTraceIsAnErrorNamingIt) {
  absl::StatusOr<DigestSet> in_use = DigestsInUse(store_->trace_path(), ManifestPath());
  ASSERT_FALSE(in_use.ok());
  EXPECT_EQ(in_use.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(in_use.status().message(), HasSubstr(store_->trace_path()));
}

TEST_F(StoreGcTest, ADamagedManifestIsAnErrorNamingIt) {
  Save("a.c", "int a;");
  Save("out.o", "new");
  WriteTrace("a.c", "out.o");
  WriteFile(ManifestPath(), "\xff\xff\xff not protobuf");

  absl::StatusOr<DigestSet> in_use = DigestsInUse(store_->trace_path(), ManifestPath());
  ASSERT_FALSE(in_use.ok());
  EXPECT_THAT(in_use.status().message(), HasSubstr(ManifestPath()));
}

TEST_F(StoreGcTest, LeavesTheOldVersionsAKilledBuildMustPutBack) {
  WriteTrace("a.c", "out.o");
  WriteFile(scratch_.P(".dodo/stage/3-out.o"), "the version before");
  WriteFile(scratch_.P(".dodo/stage/journal"), "3\tR\tsomewhere\tout.o\n");

  absl::StatusOr<GcStats> stats = CollectGarbage(*store_, InUse(), /*dry_run=*/false);
  ASSERT_TRUE(stats.ok()) << stats.status();

  EXPECT_EQ(stats->leftovers_removed, 0u);
  EXPECT_THAT(Names(scratch_.P(".dodo/stage")), ElementsAre("3-out.o", "journal"));
}

TEST_F(StoreGcTest, RemovesWhatKilledBuildsLeftAndNothingElseOfTheStore) {
  Save("a.c", "int a;");
  Save("out.o", "new");
  WriteTrace("a.c", "out.o");
  WriteFile(scratch_.P(".dodo/objects/incoming.dodo-AbC123"), "half an object");
  WriteFile(scratch_.P(".dodo/stage/3-out.o"), "a staged output");
  WriteFile(store_->next_trace_path(), "an unfinished trace");
  WriteFile(scratch_.P(".dodo/failed/out.o"), "kept for debugging");

  absl::StatusOr<GcStats> stats = CollectGarbage(*store_, InUse(), /*dry_run=*/false);
  ASSERT_TRUE(stats.ok()) << stats.status();

  EXPECT_EQ(stats->leftovers_removed, 3u);
  EXPECT_EQ(stats->leftover_bytes_removed,
            std::string("half an objecta staged outputan unfinished trace").size());
  EXPECT_FALSE(Exists(scratch_.P(".dodo/objects/incoming.dodo-AbC123")));
  EXPECT_THAT(Names(scratch_.P(".dodo/stage")), IsEmpty());
  EXPECT_FALSE(Exists(store_->next_trace_path()));
  // What --keep-failed kept is the user's, the trace and objects in use stay.
  EXPECT_EQ(ReadFile(scratch_.P(".dodo/failed/out.o")), "kept for debugging");
  EXPECT_TRUE(Exists(store_->trace_path()));
  EXPECT_EQ(stats->objects_kept, 2u);
}

}  // namespace
}  // namespace dodo::model
