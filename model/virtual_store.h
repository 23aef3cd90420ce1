// The virtual store: what dodo build does with the files its commands write
// inside the project. A file is settled when every process that opened it
// for writing has exited: with status 0 it is committed (saved in the
// content-addressed store and entered in the manifest), otherwise the tree
// gets back the version it had before. Three ways to get there
// (WriteMode):
//
//  - kInPlace: commands write the real files. Before one first changes a
//    file, its current version is moved or copied to .dodo/stage/, and a
//    journal line there says how to put it back. Lookups need nothing from
//    dodo, so the tracer can leave them untrapped.
//  - kStaged: each written file is a staged copy in .dodo/stage/, and every
//    traced access to its path is redirected there (tracer::PathRedirector)
//    until it is renamed over the real path. No other process ever sees a
//    half-written file, at the price of trapping every lookup.
//  - kDirect: in place, with nothing kept to undo a failure.
//
//   .dodo/stage/N-name     kStaged: staged files; kInPlace: versions kept aside
//   .dodo/stage/journal    kInPlace: how to undo what is not settled yet
//   .dodo/failed/PATH      with --keep-failed: what failed commands wrote
//   .dodo/manifest         proto::Manifest: the outputs in the tree, by path
//
// docs/vfs.md says what happens to each syscall.
#ifndef DODO_MODEL_VIRTUAL_STORE_H_
#define DODO_MODEL_VIRTUAL_STORE_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/file_errors.h"
#include "model/file_hasher.h"
#include "model/recorder.h"
#include "model/store.h"
#include "proto/manifest.pb.h"
#include "tracer/events.h"

namespace dodo::model {

enum class WriteMode { kInPlace, kStaged, kDirect };

struct VirtualStoreOptions {
  std::string project_root;  // absolute; only paths below it are staged
  WriteMode mode = WriteMode::kInPlace;
  // Failed commands' staged files go to .dodo/failed/ instead of away.
  bool keep_failed = false;
};

struct VirtualStoreStats {
  uint64_t staged = 0;     // files staged (new or copied up)
  uint64_t copied_up = 0;  // of which existing files copied first
  uint64_t committed = 0;
  uint64_t discarded = 0;         // writers failed: the tree kept its version
  uint64_t symlinks_removed = 0;  // created by a process that failed
  uint64_t in_place = 0;  // of the staged, files with other hard links, written without undo
  uint64_t restored = 0;  // kInPlace: versions put back after a failure
};

// Lexically normal absolute form of `path` relative to `base` ("." and ".."
// folded, duplicate slashes removed); empty when `path` is relative and
// `base` is unknown.
std::string NormalPath(const std::string& base, const std::string& path);

class VirtualStore : public tracer::PathRedirector, public tracer::EventSink, public PathMapper {
 public:
  // Events are passed on to `next` (after the commits an exit causes).
  // `store`, `hasher` and `next` must outlive the virtual store. Undoes what
  // a killed build's journal says was not settled, clears .dodo/stage/ and
  // loads the manifest (a damaged one is replaced; it only describes the
  // tree).
  static absl::StatusOr<std::unique_ptr<VirtualStore>> Create(const VirtualStoreOptions& options,
                                                              Store* store, FileHasher* hasher,
                                                              tracer::EventSink* next);

  // The command id to put in manifest entries for a process.
  void set_command_of(std::function<uint64_t(pid_t)> command_of) {
    command_of_ = std::move(command_of);
  }

  // tracer::PathRedirector
  bool RewritesPaths() const override { return options_.mode == WriteMode::kStaged; }
  tracer::Redirection Redirect(const tracer::SyscallEvent& event) override;
  void AfterSyscall(const tracer::SyscallEvent& event, int64_t result) override;
  // (Also PathMapper's.)
  std::optional<std::string> Logical(const std::string& physical) const override;

  // tracer::EventSink: everything goes on to `next`; a process's exit first
  // settles the files it was writing.
  void OnSyscall(const tracer::SyscallEvent& event) override { next_->OnSyscall(event); }
  void OnExec(const tracer::ExecEvent& event) override;
  void OnExecFailed(const tracer::ExecFailedEvent& event) override { next_->OnExecFailed(event); }
  void OnFork(const tracer::ForkEvent& event) override { next_->OnFork(event); }
  void OnExit(const tracer::ExitEvent& event) override;
  void OnWarning(const tracer::WarningEvent& event) override { next_->OnWarning(event); }

  // PathMapper
  const std::string& Physical(const std::string& path) const override;

  // Ends the build: files still staged (writers that never reported an exit)
  // are committed if `build_ok`, discarded otherwise; the manifest is
  // written (beside, then renamed over the old one).
  absl::Status Finish(bool build_ok);
  // Removes `path` as a traced unlink would: the name in the tree, its
  // staged file, its manifest entry. For outputs a skipped command removed.
  absl::Status Remove(const std::string& path);

  const VirtualStoreStats& stats() const { return stats_; }
  // The first commit that failed (disk full, tree not writable), if any.
  const absl::Status& first_error() const { return first_error_; }
  std::string manifest_path() const { return store_->dir() + "/manifest"; }
  std::string stage_dir() const { return store_->dir() + "/stage"; }
  std::string failed_dir() const { return store_->dir() + "/failed"; }
  std::string journal_path() const { return stage_dir() + "/journal"; }

 private:
  struct Staged {
    std::string physical;  // the path itself when direct
    // dodo made an empty file at the real path so that listings show the
    // name; it goes away if the writers fail.
    bool placeholder = false;
    ino_t placeholder_ino = 0;
    // Processes (thread group ids) holding it open for writing: those that
    // opened it, and programs that inherited such a descriptor at exec.
    absl::flat_hash_set<pid_t> writers;
    // Only an opener's failure fails the file. A program that writes to an
    // inherited descriptor (a shell's `cmd >> log`) does not decide the fate
    // of what others write there; the shell that opened it does.
    absl::flat_hash_set<pid_t> openers;
    bool failed = false;
    uint64_t command = 0;
    // Written where it is, as with --direct: a file with other hard links.
    // A staged copy committed by rename would be a new inode, and the other
    // names would keep the old bytes.
    bool in_place = false;
    // kInPlace: how a failure is undone. `backup` (in .dodo/stage/) goes
    // back to `backup_of`; a file that did not exist goes away.
    uint64_t journal_id = 0;  // 0: nothing to undo
    std::string backup;
    std::string backup_of;
    bool created = false;
  };
  // What a syscall's entry decided, for its exit.
  struct Pending {
    std::string path = {};
    std::string path2 = {};
    bool created = false;  // the entry staged the file (new, or moved aside)
  };

  VirtualStore(VirtualStoreOptions options, Store* store, FileHasher* hasher,
               tracer::EventSink* next);

  bool InProject(const std::string& path) const;
  // After `path` is unlinked: drops its staged file and manifest entry.
  void ForgetPath(const std::string& path);
  std::string Relative(const std::string& path) const;
  // `path` (absolute, normal) with the symlinks of its directories resolved,
  // and the final component's too when `follow`.
  std::string Canonical(const std::string& path, bool follow);
  std::string CanonicalDir(const std::string& dir);

  tracer::Redirection OnOpen(const tracer::SyscallEvent& event, const std::string& path);
  tracer::Redirection OnMetadataWrite(const tracer::SyscallEvent& event, const std::string& path);
  // Stages `path` for process `tgid`: copies it first when `copy`, makes a
  // placeholder when it does not exist. Null when staging failed (the write
  // then happens in place).
  // `links` is the file's link count (0 when it does not exist): with more
  // than one, it is written in place.
  Staged* Stage(const std::string& path, nlink_t links, bool copy, pid_t tgid, pid_t pid);
  // Whether `staged` is the real file itself (not kStaged, or hard-linked).
  bool InPlace(const Staged& staged) const {
    return options_.mode != WriteMode::kStaged || staged.in_place;
  }
  bool Redirects() const { return options_.mode == WriteMode::kStaged; }
  // kInPlace: keeps the version of `path` aside before it changes (moved
  // when `truncate`, copied otherwise), and journals the undo.
  absl::Status KeepForUndo(const std::string& path, const struct stat& st, bool truncate,
                           Staged& staged);
  // Appends the undo of `staged` (or, `settled`, that it needs none now) to
  // the journal.
  void Journal(const Staged& staged, bool settled = false);
  // Undoes the unsettled lines of a killed build's journal.
  void RecoverFromJournal();
  // Puts back the version kept aside, or removes the file that was new.
  void Undo(const std::string& path, Staged& staged);
  // The file's undo is no longer needed: drops the version kept aside.
  void DropUndo(Staged& staged);
  void AddWriter(const std::string& path, Staged& staged, pid_t tgid, bool opener = true);
  tracer::Redirection RedirectTo(const Staged& staged) const;
  void Settle(pid_t tgid, bool failed);
  void Commit(const std::string& path, Staged& staged);
  // The manifest entries of the other names of `file` (hard links) take the
  // version just committed through one of them.
  void UpdateOtherNames(const struct stat& file, const proto::ManifestEntry& written);
  void Discard(const std::string& path, Staged& staged);
  void ForgetManifestEntry(const std::string& path);
  void NoteError(absl::Status status);
  absl::Status WriteManifest();

  VirtualStoreOptions options_;
  Store* store_;
  FileHasher* hasher_;
  tracer::EventSink* next_;
  std::function<uint64_t(pid_t)> command_of_;
  VirtualStoreStats stats_;
  absl::Status first_error_;
  std::string stage_dir_;
  uint64_t next_stage_id_ = 1;
  ScopedFd journal_{-1};  // kInPlace, opened at the first staging

  absl::flat_hash_map<std::string, Staged> staged_;           // by real path
  absl::flat_hash_map<std::string, std::string> logical_of_;  // staged path -> real path
  absl::flat_hash_map<pid_t, std::vector<std::string>> writes_of_;
  absl::flat_hash_map<pid_t, std::vector<std::string>> symlinks_of_;
  absl::flat_hash_map<pid_t, Pending> pending_;  // by thread
  absl::flat_hash_map<std::string, std::string> canonical_dirs_;
  std::map<std::string, proto::ManifestEntry> manifest_;  // by relative path
};

}  // namespace dodo::model

#endif  // DODO_MODEL_VIRTUAL_STORE_H_
