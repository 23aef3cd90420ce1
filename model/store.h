// The build store, `.dodo/` next to the Dodofile: a content-addressed copy of
// every file version the builds produced (named by SHA-256, the digest
// Bazel's remote cache protocol uses), the trace of the last build, and the
// hash cache. One build at a time: the store is locked while it is open.
//
//   .dodo/objects/ab/cdef...   one file per version, read-only
//   .dodo/trace                the last build's trace
//   .dodo/hashes               FileHasher's cache
//   .dodo/lock                 flock()ed by the build that has the store open
//
// Objects are never changed once written; model/store_gc.h removes the ones
// the last build no longer names.
#ifndef DODO_MODEL_STORE_H_
#define DODO_MODEL_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/file_hasher.h"

namespace dodo::model {

class Store {
 public:
  // Opens the store in `dir`, creating it if needed, and locks it. Another
  // build holding the lock is an error (FailedPrecondition naming the dir),
  // not a wait: two builds in one tree would overwrite each other's outputs.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& dir);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Copies the regular file at `path` into the store (hashing what it
  // copies, so the object is exactly the version returned). An object that
  // is already there is not written twice.
  absl::StatusOr<FileVersion> Save(const std::string& path, FileHasher& hasher);
  bool Has(const Digest& digest) const;
  std::string ObjectPath(const Digest& digest) const;
  // Writes the object `digest` to `path` with permission bits `mode`. The
  // copy is made beside `path` and renamed over it: a reader sees the old
  // file or the new one, never a part. Missing parent directories are made.
  absl::Status Restore(const Digest& digest, uint32_t mode, const std::string& path) const;
  // Writes the bytes of object `digest` from `offset` on to `fd`, as a
  // program writing them would: at the descriptor's offset, or at the end
  // if it appends. Errors name `shown`, the file behind `fd`.
  absl::Status WriteTail(const Digest& digest, uint64_t offset, int fd,
                         const std::string& shown) const;

  // An object as found below objects/.
  struct Object {
    Digest digest;
    uint64_t size;  // bytes on disk
  };
  // Every object below objects/. Other files there (the half-made copy of a
  // build that was killed while saving) are appended to `leftovers`, as
  // paths. Errors name the directory that could not be read.
  absl::Status ListObjects(std::vector<Object>& objects, std::vector<std::string>& leftovers) const;
  // Removes the object `digest`; then its fan-out directory, if empty.
  absl::Status RemoveObject(const Digest& digest) const;

  const std::string& dir() const { return dir_; }
  std::string trace_path() const { return dir_ + "/trace"; }
  std::string hashes_path() const { return dir_ + "/hashes"; }
  // Outputs being written, until their writers succeed (model/virtual_store.h).
  std::string stage_dir() const { return dir_ + "/stage"; }
  // The no-op stamp (see model/up_to_date.h).
  std::string stamp_path() const { return dir_ + "/uptodate"; }
  // The next build writes its trace here; CommitTrace() makes it the last
  // build's trace (fsync, then rename over trace_path()).
  std::string next_trace_path() const { return dir_ + "/trace.new"; }
  absl::Status CommitTrace() const;

 private:
  Store(std::string dir, int lock_fd) : dir_(std::move(dir)), lock_fd_(lock_fd) {}
  std::string dir_;
  int lock_fd_;
};

// Creates the parent directories of `path` (like mkdir -p of its dirname).
absl::Status MakeParentDirs(const std::string& path);

}  // namespace dodo::model

#endif  // DODO_MODEL_STORE_H_
