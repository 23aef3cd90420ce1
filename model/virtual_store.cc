#include "model/virtual_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "model/file_errors.h"

namespace dodo::model {
namespace {

using tracer::Effect;

using Fd = ScopedFd;

absl::Status ErrnoError(int error, const std::string& what, const std::string& path) {
  return CannotError(error, what, path);
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

std::string Basename(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// Copies `from` to a new file `to` with the same bytes, permissions and
// times: a reflink where the file system can share blocks, a copy otherwise.
// `to` must not exist unless `replace`.
absl::Status CopyUp(const std::string& from, const std::string& to, const struct stat& st,
                    bool replace = false) {
  Fd in(open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return ErrnoError(errno, "read", from);
  Fd out(open(to.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (replace ? O_TRUNC : O_EXCL),
              st.st_mode & 07777));
  if (out.get() < 0) return ErrnoError(errno, "create", to);
  if (ioctl(out.get(), FICLONE, in.get()) != 0) {
    for (off_t left = st.st_size; left > 0;) {
      ssize_t n =
          copy_file_range(in.get(), nullptr, out.get(), nullptr, static_cast<size_t>(left), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int error = n < 0 ? errno : EIO;
        unlink(to.c_str());
        return ErrnoError(error, "copy to", to);
      }
      left -= n;
    }
  }
  // The copy is the same file as far as anyone can tell: mode (the umask
  // took bits off at creation) and times, so make sees no change.
  fchmod(out.get(), st.st_mode & 07777);
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  futimens(out.get(), times);
  return absl::OkStatus();
}

// Creates `path`, which must not exist, empty and with the mode of `like`
// (the umask taken back off), for an open that truncates anyway to find.
// The owner too, where dodo may give files away (root).
absl::Status CreateEmptyLike(const std::string& path, const struct stat& like) {
  Fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, like.st_mode & 07777));
  if (fd.get() < 0) return ErrnoError(errno, "create", path);
  fchmod(fd.get(), like.st_mode & 07777);
  if ((like.st_uid != geteuid() || like.st_gid != getegid()) &&
      fchown(fd.get(), like.st_uid, like.st_gid) != 0) {
    // Not ours to give away: the file stays dodo's user's, as the command's
    // own new file would be.
  }
  return absl::OkStatus();
}

void RemoveFilesIn(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  while (dirent* entry = readdir(d)) {
    if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0) continue;
    unlinkat(dirfd(d), entry->d_name, 0);
  }
  closedir(d);
}

bool OpenWrites(uint64_t flags) {
  if ((flags & O_PATH) != 0) return false;
  return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_CREAT)) != 0;
}

}  // namespace

std::string NormalPath(const std::string& base, const std::string& path) {
  std::string joined;
  if (!path.empty() && path[0] == '/') {
    joined = path;
  } else if (base.empty() || base[0] != '/') {
    return "";
  } else {
    joined = absl::StrCat(base, "/", path);
  }
  std::vector<absl::string_view> parts;
  for (absl::string_view part : absl::StrSplit(joined, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  if (parts.empty()) return "/";
  std::string result;
  for (absl::string_view part : parts) absl::StrAppend(&result, "/", part);
  return result;
}

VirtualStore::VirtualStore(VirtualStoreOptions options, Store* store, FileHasher* hasher,
                           tracer::EventSink* next)
    : options_(std::move(options)), store_(store), hasher_(hasher), next_(next) {
  stage_dir_ = store_->stage_dir();
}

absl::StatusOr<std::unique_ptr<VirtualStore>> VirtualStore::Create(
    const VirtualStoreOptions& options, Store* store, FileHasher* hasher, tracer::EventSink* next) {
  std::unique_ptr<VirtualStore> vfs(new VirtualStore(options, store, hasher, next));
  if (mkdir(vfs->stage_dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoError(errno, "create directory", vfs->stage_dir_);
  }
  // A build that was killed left its staged files; they never reached the
  // tree, and nobody will commit them now. Files it was writing in place go
  // back to the versions it kept aside.
  vfs->RecoverFromJournal();
  RemoveFilesIn(vfs->stage_dir_);
  std::ifstream in(vfs->manifest_path(), std::ios::binary);
  if (in) {
    proto::Manifest manifest;
    if (manifest.ParseFromIstream(&in) && manifest.project_root() == options.project_root) {
      for (const proto::ManifestEntry& entry : manifest.entries()) {
        vfs->manifest_[entry.path()] = entry;
      }
    }
  }
  return vfs;
}

bool VirtualStore::InProject(const std::string& path) const {
  const std::string& root = options_.project_root;
  if (!absl::StartsWith(path, root)) return false;
  if (path.size() == root.size()) return false;  // the root itself is never staged
  if (path[root.size()] != '/') return false;
  return !absl::StartsWith(path, store_->dir()) ||
         (path.size() > store_->dir().size() && path[store_->dir().size()] != '/');
}

std::string VirtualStore::Relative(const std::string& path) const {
  return path.substr(options_.project_root.size() + 1);
}

std::string VirtualStore::CanonicalDir(const std::string& dir) {
  auto it = canonical_dirs_.find(dir);
  if (it != canonical_dirs_.end()) return it->second;
  char* real = realpath(dir.c_str(), nullptr);
  if (real == nullptr) return dir;  // not there (yet): the kernel will say so
  std::string result(real);
  free(real);
  canonical_dirs_.emplace(dir, result);
  return result;
}

std::string VirtualStore::Canonical(const std::string& path, bool follow) {
  std::string current = path;
  for (int hops = 0; hops < 40; ++hops) {  // the kernel's ELOOP limit
    if (current == "/") return current;
    const std::string dir = CanonicalDir(Dirname(current));
    std::string joined = dir == "/" ? "/" + Basename(current) : dir + "/" + Basename(current);
    if (!follow || staged_.contains(joined)) return joined;
    char target[4096];
    const ssize_t n = readlink(joined.c_str(), target, sizeof(target));
    if (n < 0) return joined;  // not a symlink, or not there
    current = NormalPath(dir, std::string(target, static_cast<size_t>(n)));
  }
  return current;
}

tracer::Redirection VirtualStore::RedirectTo(const Staged& staged) const {
  tracer::Redirection redirection;
  if (!InPlace(staged)) redirection.path = staged.physical;
  return redirection;
}

tracer::Redirection VirtualStore::Redirect(const tracer::SyscallEvent& event) {
  if (!event.path.has_value()) return {};
  // Every trapped path syscall comes here: most name files plainly outside
  // the project (/usr/include/...), which are told apart without building a
  // normal path. (A rename may move a file from outside into the project.)
  const std::string& given = event.path->path;
  if (event.effect != Effect::kRename && given.find("..") == std::string::npos) {
    const std::string& start = !given.empty() && given[0] == '/' ? given : event.path->base;
    if (!absl::StartsWith(start, options_.project_root)) return {};
  }
  const std::string path = NormalPath(event.path->base, event.path->path);
  if (path.empty()) return {};
  const bool follow = event.path->follow_final;
  switch (event.effect) {
    case Effect::kOpen:
      if (!InProject(path)) return {};
      return OnOpen(event, path);
    case Effect::kTruncate:
    case Effect::kChmod:
    case Effect::kChown:
    case Effect::kUtimes:
    case Effect::kXattrWrite:
      if (!InProject(path)) return {};
      return OnMetadataWrite(event, path);
    case Effect::kRename: {
      if (!event.path2.has_value()) return {};
      const std::string to = NormalPath(event.path2->base, event.path2->path);
      if (!InProject(path) && !InProject(to)) return {};
      Pending& pending = pending_[event.pid];
      pending = Pending{.path = Canonical(path, false), .path2 = Canonical(to, false)};
      return {.wants_result = true};
    }
    case Effect::kUnlink:
    case Effect::kSymlink:
      if (!InProject(path)) return {};
      pending_[event.pid] = Pending{.path = Canonical(path, false)};
      return {.wants_result = true};
    case Effect::kMkdir:
    case Effect::kRmdir:
    case Effect::kMknod:
    case Effect::kChdir:
    case Effect::kExec:
    case Effect::kList:
      return {};
    case Effect::kStat:
    case Effect::kAccess:
    case Effect::kReadlink:
    case Effect::kXattrRead:
    case Effect::kProbe:
    case Effect::kLink:  // link(old, new): `old` is the staged file
      break;
  }
  if (staged_.empty() || !Redirects() || !InProject(path)) return {};
  auto it = staged_.find(Canonical(path, follow));
  if (it == staged_.end()) return {};
  return RedirectTo(it->second);
}

tracer::Redirection VirtualStore::OnOpen(const tracer::SyscallEvent& event,
                                         const std::string& path) {
  const uint64_t flags = event.flags;
  const bool follow = event.path->follow_final;
  if (!OpenWrites(flags)) {
    if (staged_.empty() || !Redirects()) return {};
    auto it = staged_.find(Canonical(path, follow));
    return it == staged_.end() ? tracer::Redirection{} : RedirectTo(it->second);
  }
  const std::string real = Canonical(path, follow);
  if (!InProject(real)) return {};
  if (auto it = staged_.find(real); it != staged_.end()) {
    AddWriter(real, it->second, event.tgid);
    return RedirectTo(it->second);
  }
  if ((flags & O_TMPFILE) == O_TMPFILE) return {};  // an unnamed file in a directory
  struct stat st;
  const bool exists = lstat(real.c_str(), &st) == 0;
  // Only regular files are staged. The kernel answers the rest on the real
  // path: ENOENT without O_CREAT, EEXIST for O_EXCL, devices and FIFOs.
  if (exists && !S_ISREG(st.st_mode)) return {};
  if (!exists && (flags & O_CREAT) == 0) return {};
  if (exists && (flags & O_CREAT) != 0 && (flags & O_EXCL) != 0) return {};
  if (!exists) {
    struct stat parent;
    if (stat(Dirname(real).c_str(), &parent) != 0 || !S_ISDIR(parent.st_mode)) return {};
  }
  Staged* staged = Stage(real, exists ? st.st_nlink : 0, exists && (flags & O_TRUNC) == 0,
                         event.tgid, event.pid);
  if (staged == nullptr) return {};
  tracer::Redirection redirection = RedirectTo(*staged);
  if ((!exists && Redirects()) || staged->journal_id != 0) {
    // If the open fails, the staging must go again.
    pending_[event.pid] = Pending{.path = real, .created = true};
    redirection.wants_result = true;
  }
  return redirection;
}

tracer::Redirection VirtualStore::OnMetadataWrite(const tracer::SyscallEvent& event,
                                                  const std::string& path) {
  const std::string real = Canonical(path, event.path->follow_final);
  if (!InProject(real)) return {};
  if (auto it = staged_.find(real); it != staged_.end()) {
    AddWriter(real, it->second, event.tgid);
    return RedirectTo(it->second);
  }
  struct stat st;
  if (lstat(real.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return {};
  Staged* staged = Stage(real, st.st_nlink, true, event.tgid, event.pid);
  return staged == nullptr ? tracer::Redirection{} : RedirectTo(*staged);
}

VirtualStore::Staged* VirtualStore::Stage(const std::string& path, nlink_t links, bool copy,
                                          pid_t tgid, pid_t pid) {
  const bool exists = links > 0;
  Staged staged;
  staged.command = command_of_ ? command_of_(pid) : 0;
  // `ln a b` makes two names of one file: what is written through one shows
  // through the other, in the build and after it.
  staged.in_place = links > 1;
  if (InPlace(staged)) {
    staged.physical = path;
    if (staged.in_place) ++stats_.in_place;
    if (!staged.in_place && options_.mode == WriteMode::kInPlace) {
      staged.journal_id = next_stage_id_++;
      struct stat st;
      if (!exists) {
        staged.created = true;
        Journal(staged);
      } else if (stat(path.c_str(), &st) != 0) {
        NoteError(ErrnoError(errno, "stat", path));
        return nullptr;
      } else if (absl::Status kept = KeepForUndo(path, st, !copy, staged); !kept.ok()) {
        NoteError(kept);
        return nullptr;
      }
    }
  } else {
    // The id makes the name unique; the base name (cut short, so that a
    // 255-byte name still fits) is for people looking at .dodo/stage/.
    staged.physical =
        absl::StrCat(stage_dir_, "/", next_stage_id_++, "-", Basename(path).substr(0, 64));
    if (exists) {
      struct stat st;
      absl::Status status =
          stat(path.c_str(), &st) == 0 ? absl::OkStatus() : ErrnoError(errno, "stat", path);
      if (status.ok() && copy) {
        status = CopyUp(path, staged.physical, st);
        if (status.ok()) ++stats_.copied_up;
      } else if (status.ok()) {
        status = CreateEmptyLike(staged.physical, st);  // truncated by the open anyway
      }
      if (!status.ok()) {
        NoteError(status);
        return nullptr;
      }
    } else {
      // The name shows in listings of its directory from now on.
      Fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
      struct stat st;
      if (fd.get() < 0 || fstat(fd.get(), &st) != 0) {
        NoteError(ErrnoError(errno, "create a placeholder for", path));
        return nullptr;
      }
      staged.placeholder = true;
      staged.placeholder_ino = st.st_ino;
    }
    logical_of_[staged.physical] = path;
  }
  ++stats_.staged;
  auto [it, inserted] = staged_.insert_or_assign(path, std::move(staged));
  AddWriter(path, it->second, tgid);
  return &it->second;
}

absl::Status VirtualStore::KeepForUndo(const std::string& path, const struct stat& st,
                                       bool truncate, Staged& staged) {
  staged.backup =
      absl::StrCat(stage_dir_, "/", staged.journal_id, "-", Basename(path).substr(0, 64));
  staged.backup_of = path;
  // Journaled first: a dodo killed right after the move still finds it.
  Journal(staged);
  if (truncate && rename(path.c_str(), staged.backup.c_str()) == 0) {
    // The open empties the file anyway, so the old one is moved rather than
    // copied, and an empty one takes its place.
    absl::Status created = CreateEmptyLike(path, st);
    if (!created.ok()) {
      rename(staged.backup.c_str(), path.c_str());
      staged.backup.clear();
    }
    return created;
  }
  // Copied (or the move failed: another file system): the command then
  // changes the very file that was there, as it would without dodo.
  absl::Status copied = CopyUp(path, staged.backup, st);
  if (copied.ok()) {
    ++stats_.copied_up;
  } else {
    staged.backup.clear();
  }
  return copied;
}

void VirtualStore::Journal(const Staged& staged, bool settled) {
  if (staged.journal_id == 0) return;
  if (!journal_.valid()) {
    journal_.reset(open(journal_path().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!journal_.valid()) {
      NoteError(ErrnoError(errno, "write", journal_path()));
      return;
    }
  }
  // One line per change, the last for an id counts: "ID S" settled, "ID R
  // BACKUP PATH" rename BACKUP over PATH, "ID D PATH" remove PATH.
  std::string line;
  if (settled) {
    line = absl::StrCat(staged.journal_id, "\tS\n");
  } else if (!staged.backup.empty()) {
    line = absl::StrCat(staged.journal_id, "\tR\t", absl::CEscape(staged.backup), "\t",
                        absl::CEscape(staged.backup_of), "\n");
  } else {
    line = absl::StrCat(staged.journal_id, "\tD\t", absl::CEscape(staged.physical), "\n");
  }
  if (write(journal_.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    NoteError(ErrnoError(errno, "write", journal_path()));
  }
}

void VirtualStore::RecoverFromJournal() {
  std::ifstream in(journal_path(), std::ios::binary);
  if (!in) return;
  std::map<uint64_t, std::vector<std::string>> last;  // id -> its last line's fields
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> fields = absl::StrSplit(line, '\t');
    uint64_t id = 0;
    if (fields.size() < 2 || !absl::SimpleAtoi(fields[0], &id)) continue;
    for (size_t i = 2; i < fields.size(); ++i) {
      std::string unescaped;
      if (!absl::CUnescape(fields[i], &unescaped)) fields.clear();  // a torn line
      if (fields.empty()) break;
      fields[i] = std::move(unescaped);
    }
    if (!fields.empty()) last[id] = std::move(fields);
  }
  // Newest first, so that a path written twice ends with its oldest version.
  // Only paths of this project and .dodo/stage/ are touched, whatever the
  // file says.
  for (auto it = last.rbegin(); it != last.rend(); ++it) {
    const std::vector<std::string>& fields = it->second;
    struct stat st;
    if (fields[1] == "R" && fields.size() == 4 && absl::StartsWith(fields[2], stage_dir_ + "/") &&
        InProject(fields[3])) {
      if (rename(fields[2].c_str(), fields[3].c_str()) == 0) ++stats_.restored;
    } else if (fields[1] == "D" && fields.size() == 3 && InProject(fields[2]) &&
               lstat(fields[2].c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      unlink(fields[2].c_str());
    }
  }
}

void VirtualStore::Undo(const std::string& path, Staged& staged) {
  struct stat st;
  const bool there = lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  bool kept = false;
  if (there && options_.keep_failed) {
    const std::string aside = absl::StrCat(failed_dir(), "/", Relative(path));
    kept = MakeParentDirs(aside).ok() && rename(path.c_str(), aside.c_str()) == 0;
  }
  if (!staged.backup.empty()) {
    if (rename(staged.backup.c_str(), staged.backup_of.c_str()) == 0) {
      ++stats_.restored;
    } else {
      NoteError(ErrnoError(errno, "put back the previous version of", staged.backup_of));
    }
  } else if (staged.created && there && !kept) {
    unlink(path.c_str());
  }
  Journal(staged, /*settled=*/true);
  // The manifest entry of a version put back still describes it.
  if (staged.backup.empty() || staged.backup_of != path) ForgetManifestEntry(path);
}

void VirtualStore::DropUndo(Staged& staged) {
  if (staged.journal_id == 0) return;
  if (!staged.backup.empty()) unlink(staged.backup.c_str());
  Journal(staged, /*settled=*/true);
  staged.journal_id = 0;
  staged.backup.clear();
  staged.created = false;
}

void VirtualStore::AddWriter(const std::string& path, Staged& staged, pid_t tgid, bool opener) {
  if (opener) staged.openers.insert(tgid);
  if (staged.writers.insert(tgid).second) writes_of_[tgid].push_back(path);
}

void VirtualStore::OnExec(const tracer::ExecEvent& event) {
  if (!staged_.empty()) {
    for (const tracer::FdInfo& fd : event.fds) {
      if (!fd.writable || fd.kind != tracer::FdKind::kFile) continue;
      auto it = staged_.find(fd.path);
      if (it != staged_.end()) AddWriter(fd.path, it->second, event.pid, /*opener=*/false);
    }
  }
  next_->OnExec(event);
}

void VirtualStore::AfterSyscall(const tracer::SyscallEvent& event, int64_t result) {
  auto found = pending_.find(event.pid);
  if (found == pending_.end()) return;
  const Pending pending = std::move(found->second);
  pending_.erase(found);
  switch (event.effect) {
    case Effect::kOpen: {
      if (result >= 0 || !pending.created) return;
      // The open failed (EACCES, EDQUOT, ...): nothing was staged after all.
      auto it = staged_.find(pending.path);
      if (it == staged_.end()) return;
      if (it->second.journal_id != 0) {
        // Nothing was written: the version kept aside goes back at once.
        Staged& staged = it->second;
        if (!staged.backup.empty()) rename(staged.backup.c_str(), staged.backup_of.c_str());
        Journal(staged, /*settled=*/true);
        staged_.erase(it);
        return;
      }
      struct stat st;
      if (lstat(it->second.physical.c_str(), &st) == 0) return;  // another writer made it
      it->second.writers.clear();
      Discard(pending.path, it->second);
      staged_.erase(it);
      return;
    }
    case Effect::kRename: {
      if (result != 0) return;
      canonical_dirs_.clear();  // a renamed directory moves what is below it
      const std::string& from = pending.path;
      const std::string& to = pending.path2;
      if (from == to) return;  // renaming a name onto itself changes nothing
      auto to_it = staged_.find(to);
      if (to_it != staged_.end() && !InPlace(to_it->second)) {
        // Replaced by the rename: that staged version is gone.
        unlink(to_it->second.physical.c_str());
      }
      // kInPlace: the version `to` had before the build, if it was kept.
      Staged replaced;
      if (to_it != staged_.end()) {
        replaced = std::move(to_it->second);
        staged_.erase(to_it);
      }
      auto from_it = staged_.find(from);
      if (from_it != staged_.end() && !InProject(to)) {
        // Moved out of the tree (into /tmp, say): it is no longer an output,
        // and the staged bytes must be where the process put them.
        DropUndo(from_it->second);
        if (!InPlace(from_it->second)) {
          const std::string physical = from_it->second.physical;
          struct stat st;
          if (rename(physical.c_str(), to.c_str()) != 0 && stat(physical.c_str(), &st) == 0) {
            // Another file system (EXDEV): copy.
            absl::Status copied = CopyUp(physical, to, st, /*replace=*/true);
            if (!copied.ok()) NoteError(copied);
            unlink(physical.c_str());
          }
        }
        staged_.erase(from_it);
        from_it = staged_.end();
      }
      if (from_it != staged_.end()) {
        Staged moved = std::move(from_it->second);
        staged_.erase(from_it);
        // The real rename moved the placeholder (or the old version) along:
        // it now stands at the new name.
        if (InPlace(moved)) {
          moved.physical = to;
          if (moved.journal_id != 0 && moved.backup.empty() && !replaced.backup.empty()) {
            // A new file renamed over one written in this build: a failure
            // puts back what `to` was before.
            moved.backup = std::exchange(replaced.backup, "");
            moved.backup_of = to;
            moved.created = false;
          }
          Journal(moved);
        } else {
          logical_of_[moved.physical] = to;
        }
        for (pid_t writer : moved.writers) {
          for (std::string& written : writes_of_[writer]) {
            if (written == from) written = to;
          }
        }
        staged_.insert_or_assign(to, std::move(moved));
      }
      DropUndo(replaced);
      if (InProject(from)) {
        auto entry = manifest_.find(Relative(from));
        if (entry != manifest_.end() && InProject(to)) {
          proto::ManifestEntry renamed = entry->second;
          renamed.set_path(Relative(to));
          manifest_[renamed.path()] = renamed;
        }
        ForgetManifestEntry(from);
      }
      return;
    }
    case Effect::kUnlink:
      if (result == 0) ForgetPath(pending.path);
      return;
    case Effect::kSymlink: {
      // Written through a link that leads out of the project: not an output.
      if (result != 0 || !InProject(pending.path)) return;
      canonical_dirs_.clear();
      symlinks_of_[event.tgid].push_back(pending.path);
      proto::ManifestEntry entry;
      entry.set_path(Relative(pending.path));
      entry.set_kind(proto::ENTRY_SYMLINK);
      entry.set_symlink_target(event.text);
      struct stat st;
      if (lstat(pending.path.c_str(), &st) == 0) {
        entry.set_uid(st.st_uid);
        entry.set_gid(st.st_gid);
        entry.set_mode(st.st_mode & 07777);
        entry.set_mtime_ns(st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
      }
      if (command_of_) entry.set_command(command_of_(event.pid));
      manifest_[entry.path()] = std::move(entry);
      return;
    }
    default:
      return;
  }
}

std::optional<std::string> VirtualStore::Logical(const std::string& physical) const {
  if (logical_of_.empty()) return std::nullopt;
  constexpr absl::string_view kDeleted = " (deleted)";
  std::string path = physical;
  std::string suffix;
  if (absl::EndsWith(path, kDeleted)) {
    path.resize(path.size() - kDeleted.size());
    suffix = std::string(kDeleted);
  }
  auto it = logical_of_.find(path);
  if (it == logical_of_.end()) return std::nullopt;
  return it->second + suffix;
}

const std::string& VirtualStore::Physical(const std::string& path) const {
  if (!Redirects() || staged_.empty()) return path;
  auto it = staged_.find(path);
  return it == staged_.end() ? path : it->second.physical;
}

void VirtualStore::OnExit(const tracer::ExitEvent& event) {
  if (event.process) Settle(event.pid, event.signaled || event.code != 0);
  next_->OnExit(event);
}

void VirtualStore::Settle(pid_t tgid, bool failed) {
  if (auto it = writes_of_.find(tgid); it != writes_of_.end()) {
    std::vector<std::string> paths = std::move(it->second);
    writes_of_.erase(it);
    for (const std::string& path : paths) {
      auto staged = staged_.find(path);
      if (staged == staged_.end() || !staged->second.writers.erase(tgid)) continue;
      if (failed && staged->second.openers.contains(tgid)) staged->second.failed = true;
      if (!staged->second.writers.empty()) continue;
      if (staged->second.failed) {
        Discard(path, staged->second);
      } else {
        Commit(path, staged->second);
      }
      staged_.erase(staged);
    }
  }
  if (auto it = symlinks_of_.find(tgid); it != symlinks_of_.end()) {
    if (failed && options_.mode != WriteMode::kDirect) {
      for (const std::string& link : it->second) {
        struct stat st;
        if (lstat(link.c_str(), &st) == 0 && S_ISLNK(st.st_mode) && unlink(link.c_str()) == 0) {
          ++stats_.symlinks_removed;
          ForgetManifestEntry(link);
        }
      }
    }
    symlinks_of_.erase(it);
  }
}

void VirtualStore::Commit(const std::string& path, Staged& staged) {
  if (!InPlace(staged)) {
    struct stat st;
    if (lstat(staged.physical.c_str(), &st) != 0) {
      // Never created (the open failed) or unlinked: nothing to commit.
      Discard(path, staged);
      return;
    }
    if (rename(staged.physical.c_str(), path.c_str()) != 0) {
      NoteError(ErrnoError(errno, "commit the new version of", path));
      unlink(staged.physical.c_str());
      return;
    }
  }
  DropUndo(staged);
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
  ++stats_.committed;
  absl::StatusOr<FileVersion> version = store_->Save(path, *hasher_);
  if (!version.ok()) {
    NoteError(version.status());
    return;
  }
  if (!InProject(path)) return;
  proto::ManifestEntry entry;
  entry.set_path(Relative(path));
  entry.set_kind(proto::ENTRY_FILE);
  entry.set_sha256(version->sha256.data(), version->sha256.size());
  entry.set_size(static_cast<uint64_t>(st.st_size));
  entry.set_mode(st.st_mode & 07777);
  entry.set_uid(st.st_uid);
  entry.set_gid(st.st_gid);
  entry.set_mtime_ns(st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
  entry.set_command(staged.command);
  if (st.st_nlink > 1) UpdateOtherNames(st, entry);
  manifest_[entry.path()] = std::move(entry);
}

void VirtualStore::UpdateOtherNames(const struct stat& file, const proto::ManifestEntry& written) {
  for (auto& [relative, entry] : manifest_) {
    if (relative == written.path() || entry.kind() != proto::ENTRY_FILE) continue;
    struct stat other;
    const std::string path = absl::StrCat(options_.project_root, "/", relative);
    if (lstat(path.c_str(), &other) != 0 || other.st_dev != file.st_dev ||
        other.st_ino != file.st_ino) {
      continue;
    }
    entry = written;
    entry.set_path(relative);
  }
}

void VirtualStore::Discard(const std::string& path, Staged& staged) {
  ++stats_.discarded;
  if (staged.journal_id != 0) {
    Undo(path, staged);
    return;
  }
  if (InPlace(staged)) {
    // Written in place: nothing to take back, but whatever the manifest said
    // about the path no longer describes the tree.
    ForgetManifestEntry(path);
    return;
  }
  struct stat st;
  if (lstat(staged.physical.c_str(), &st) == 0) {
    bool kept = false;
    if (options_.keep_failed) {
      const std::string aside = absl::StrCat(failed_dir(), "/", Relative(path));
      kept = MakeParentDirs(aside).ok() && rename(staged.physical.c_str(), aside.c_str()) == 0;
    }
    if (!kept) unlink(staged.physical.c_str());
  }
  if (staged.placeholder && lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
      st.st_ino == staged.placeholder_ino && st.st_size == 0) {
    unlink(path.c_str());
  }
}

void VirtualStore::ForgetManifestEntry(const std::string& path) {
  if (InProject(path)) manifest_.erase(Relative(path));
}

void VirtualStore::NoteError(absl::Status status) {
  if (first_error_.ok()) first_error_ = std::move(status);
}

void VirtualStore::ForgetPath(const std::string& path) {
  canonical_dirs_.clear();  // the name may have been a symlink to a directory
  auto it = staged_.find(path);
  if (it != staged_.end()) {
    if (!InPlace(it->second)) unlink(it->second.physical.c_str());
    DropUndo(it->second);
    staged_.erase(it);
  }
  ForgetManifestEntry(path);
}

absl::Status VirtualStore::Remove(const std::string& path) {
  ForgetPath(path);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot remove"));
  }
  return absl::OkStatus();
}

absl::Status VirtualStore::Finish(bool build_ok) {
  std::vector<std::string> left;
  for (const auto& [path, staged] : staged_) left.push_back(path);
  for (const std::string& path : left) {
    Staged& staged = staged_[path];
    if (build_ok && !staged.failed) {
      Commit(path, staged);
    } else {
      Discard(path, staged);
    }
  }
  staged_.clear();
  writes_of_.clear();
  if (journal_.valid()) {
    // Everything is settled: nothing left to undo after a crash.
    journal_.reset();
    unlink(journal_path().c_str());
  }
  return WriteManifest();
}

absl::Status VirtualStore::WriteManifest() {
  proto::Manifest manifest;
  manifest.set_format_version(1);
  manifest.set_project_root(options_.project_root);
  for (const auto& [relative, entry] : manifest_) {
    struct stat st;
    const std::string path = absl::StrCat(options_.project_root, "/", relative);
    if (lstat(path.c_str(), &st) != 0) continue;  // gone from the tree since
    *manifest.add_entries() = entry;
  }
  const std::string final_path = manifest_path();
  const std::string temp = final_path + ".new";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out || !manifest.SerializeToOstream(&out) || !out.flush()) {
      return absl::InternalError(absl::StrCat(temp, ": cannot write the manifest"));
    }
  }
  Fd fd(open(temp.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0 || fsync(fd.get()) != 0) return ErrnoError(errno, "sync", temp);
  if (rename(temp.c_str(), final_path.c_str()) != 0) {
    return ErrnoError(errno, "replace", final_path);
  }
  return absl::OkStatus();
}

}  // namespace dodo::model
