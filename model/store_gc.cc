#include "model/store_gc.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/file_errors.h"
#include "model/trace_reader.h"
#include "proto/manifest.pb.h"
#include "proto/trace.pb.h"

namespace dodo::model {
namespace {

void AddDigest(std::string_view bytes, DigestSet& digests) {
  Digest digest;
  if (bytes.size() != digest.size()) return;  // no content digest (a listing, a directory)
  std::copy(bytes.begin(), bytes.end(), digest.begin());
  digests.insert(digest);
}

absl::Status AddManifestDigests(const std::string& manifest_path, DigestSet& digests) {
  ScopedFd fd(open(manifest_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return absl::OkStatus();
    return CannotError(errno, "open", manifest_path);
  }
  proto::Manifest manifest;
  if (!manifest.ParseFromFileDescriptor(fd.get())) {
    return absl::InvalidArgumentError(
        absl::StrCat(manifest_path, ": not a dodo manifest (cannot be parsed)"));
  }
  for (const proto::ManifestEntry& entry : manifest.entries()) AddDigest(entry.sha256(), digests);
  return absl::OkStatus();
}

// Size of the file at `path` (0 if it is gone), and whether it is a directory.
uint64_t SizeOf(const std::string& path, bool* is_dir = nullptr) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return 0;
  if (is_dir != nullptr) *is_dir = S_ISDIR(st.st_mode);
  return static_cast<uint64_t>(st.st_size);
}

// Files killed builds leave in the store: half-saved objects (`from_objects`),
// the staged outputs in stage/, an unfinished trace.new. A stage/ with a
// journal holds versions that the next build must put back in the tree
// (docs/vfs.md): it is left to that build.
absl::StatusOr<std::vector<std::string>> Leftovers(const Store& store,
                                                   std::vector<std::string> from_objects) {
  std::vector<std::string> leftovers = std::move(from_objects);
  const std::string stage = store.stage_dir();
  if (access(stage.c_str(), F_OK) == 0 && access((stage + "/journal").c_str(), F_OK) != 0) {
    absl::StatusOr<std::vector<std::string>> staged = ListNames(stage);
    if (!staged.ok()) return staged.status();
    for (const std::string& name : *staged) leftovers.push_back(absl::StrCat(stage, "/", name));
  }
  if (access(store.next_trace_path().c_str(), F_OK) == 0) {
    leftovers.push_back(store.next_trace_path());
  }
  return leftovers;
}

}  // namespace

absl::StatusOr<DigestSet> DigestsInUse(const std::string& trace_path,
                                       const std::string& manifest_path) {
  absl::StatusOr<std::unique_ptr<TraceReader>> reader = TraceReader::Open(trace_path);
  if (!reader.ok()) return reader.status();
  DigestSet digests;
  proto::Record record;
  while ((*reader)->Next(&record)) {
    if (record.has_operation()) {
      AddDigest(record.operation().version().sha256(), digests);
    } else if (record.has_command_end()) {
      for (const proto::Output& output : record.command_end().outputs()) {
        AddDigest(output.version().sha256(), digests);
      }
    }
  }
  if (!(*reader)->complete()) {
    return absl::DataLossError(
        absl::StrCat((*reader)->warning(), ": cannot tell which stored objects it needs"));
  }
  if (absl::Status s = AddManifestDigests(manifest_path, digests); !s.ok()) return s;
  return digests;
}

absl::StatusOr<GcStats> CollectGarbage(const Store& store, const DigestSet& in_use, bool dry_run) {
  std::vector<Store::Object> objects;
  std::vector<std::string> from_objects;
  if (absl::Status s = store.ListObjects(objects, from_objects); !s.ok()) return s;
  absl::StatusOr<std::vector<std::string>> leftovers = Leftovers(store, std::move(from_objects));
  if (!leftovers.ok()) return leftovers.status();

  GcStats stats;
  for (const Store::Object& object : objects) {
    if (in_use.contains(object.digest)) {
      ++stats.objects_kept;
      stats.bytes_kept += object.size;
      continue;
    }
    if (!dry_run) {
      if (absl::Status s = store.RemoveObject(object.digest); !s.ok()) return s;
    }
    ++stats.objects_removed;
    stats.bytes_removed += object.size;
  }
  for (const std::string& path : *leftovers) {
    bool is_dir = false;
    const uint64_t size = SizeOf(path, &is_dir);
    if (is_dir) continue;  // not something dodo makes: left alone
    if (!dry_run && unlink(path.c_str()) != 0 && errno != ENOENT) {
      return CannotError(errno, "remove", path);
    }
    ++stats.leftovers_removed;
    stats.leftover_bytes_removed += size;
  }
  return stats;
}

}  // namespace dodo::model
