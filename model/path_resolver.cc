#include "model/path_resolver.h"

#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace dodo::model {
namespace {

// The kernel's MAXSYMLINKS: links followed in one resolution.
constexpr int kMaxSymlinks = 40;

using Kind = Resolution::Kind;

Kind KindOfMode(mode_t mode) {
  if (S_ISREG(mode)) return Kind::kFile;
  if (S_ISDIR(mode)) return Kind::kDirectory;
  if (S_ISLNK(mode)) return Kind::kSymlink;
  return Kind::kOther;
}

// Debian's absl has its own string_view class, distinct from std's.
absl::string_view ToAbsl(std::string_view text) { return {text.data(), text.size()}; }

std::string_view StripLeadingSlashes(std::string_view text) {
  size_t i = text.find_first_not_of('/');
  return i == std::string_view::npos ? std::string_view() : text.substr(i);
}

// Pushes the '/'-separated tokens of `text` (leading slashes already
// stripped) onto `pending` so that the first token ends up on top. Empty and
// "." tokens are kept: they are skipped when popped, but while they are on the
// stack the name before them is not final, which is what makes a trailing
// "/" demand a directory and follow a symlink, as in the kernel.
void PushTokens(std::string_view text, std::vector<std::string>& pending) {
  if (text.empty()) return;
  std::vector<absl::string_view> tokens = absl::StrSplit(ToAbsl(text), '/');
  for (auto it = tokens.rbegin(); it != tokens.rend(); ++it) pending.emplace_back(*it);
}

// Lexical normalization of absolute `base` followed by `names`: drops empty
// names and ".", folds "..". Only used where folding is known to be right
// (the base is canonical) or for display of an unresolved tail.
void AppendNormalized(std::string_view text, std::vector<std::string>& parts) {
  for (absl::string_view name : absl::StrSplit(ToAbsl(text), '/')) {
    if (name.empty() || name == ".") continue;
    if (name == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.emplace_back(name);
  }
}

std::string JoinAbsolute(const std::vector<std::string>& parts, size_t count) {
  if (count == 0) return "/";
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    out += '/';
    out += parts[i];
  }
  return out;
}

std::string ChildPath(const std::string& dir, std::string_view name) {
  std::string out;
  out.reserve(dir.size() + 1 + name.size());
  out = dir;
  if (out.size() != 1) out += '/';  // dir is "/" or "/a/b", never with a trailing slash
  out += name;
  return out;
}

std::string NormalizedJoin(std::string_view base, const std::vector<std::string>& components,
                           size_t count) {
  std::vector<std::string> parts;
  AppendNormalized(base, parts);
  for (size_t i = 0; i < count; ++i) AppendNormalized(components[i], parts);
  return JoinAbsolute(parts, parts.size());
}

}  // namespace

std::string Resolution::AbsolutePath() const {
  return NormalizedJoin(base, components, components.size());
}

std::string Resolution::ParentPath() const {
  if (components.empty()) {
    std::vector<std::string> parts;
    AppendNormalized(base, parts);
    if (!parts.empty()) parts.pop_back();
    return JoinAbsolute(parts, parts.size());
  }
  return NormalizedJoin(base, components, components.size() - 1);
}

const PathResolver::Entry& PathResolver::Lookup(const std::string& absolute_path) {
  if (absolute_path.starts_with("/proc/")) {
    proc_entry_ = Entry();
    if (tgid_ != 0 && absolute_path == "/proc/self") {
      proc_entry_.kind = Kind::kSymlink;
      proc_entry_.link_target = std::to_string(tgid_);
    } else if (tgid_ != 0 && absolute_path == "/proc/thread-self") {
      proc_entry_.kind = Kind::kSymlink;
      proc_entry_.link_target = absl::StrCat(tgid_, "/task/", tid_ != 0 ? tid_ : tgid_);
    } else {
      Examine(absolute_path, proc_entry_);
      if (mapper_ != nullptr && proc_entry_.kind == Kind::kSymlink) {
        if (std::optional<std::string> logical = mapper_->Logical(proc_entry_.link_target)) {
          proc_entry_.link_target = *std::move(logical);
        }
      }
    }
    return proc_entry_;
  }
  auto [it, inserted] = cache_.try_emplace(absolute_path);
  if (!inserted) {
    ++cache_hits_;
    return it->second;
  }
  ++cache_misses_;
  Examine(absolute_path, it->second);
  return it->second;
}

int PathResolver::ReadLink(const std::string& absolute_path, std::string* target) {
  // Not from the cache: a readlink result is what the trace records, and
  // the file system is the authority at this moment.
  const Entry* entry;
  if (absolute_path.starts_with("/proc/")) {
    entry = &Lookup(absolute_path);
  } else {
    proc_entry_ = Entry();
    Examine(absolute_path, proc_entry_);
    entry = &proc_entry_;
  }
  if (entry->error != 0) return entry->error;
  if (entry->kind != Kind::kSymlink) return EINVAL;
  *target = entry->link_target;
  return 0;
}

void PathResolver::Examine(const std::string& absolute_path, Entry& entry) {
  struct stat st;
  if (lstat(absolute_path.c_str(), &st) != 0) {
    entry.error = errno;
    return;
  }
  entry.kind = KindOfMode(st.st_mode);
  if (entry.kind == Kind::kSymlink) {
    // st_size is the target's length on most file systems but not all
    // (/proc reports 0), so read into a PATH_MAX buffer instead.
    std::string target(PATH_MAX, '\0');
    ssize_t n = readlink(absolute_path.c_str(), target.data(), target.size());
    if (n < 0) {
      // The link vanished between lstat and readlink: report what we saw last.
      entry.error = errno;
      entry.kind = Kind::kMissing;
    } else {
      target.resize(static_cast<size_t>(n));
      entry.link_target = std::move(target);
    }
  }
}

Resolution PathResolver::Resolve(std::string_view base_dir, std::string_view path,
                                 bool follow_final) {
  Resolution r;
  std::vector<std::string> base_parts;
  AppendNormalized(base_dir, base_parts);
  r.absolute = !path.empty() && path.front() == '/';
  r.base = r.absolute ? "/" : JoinAbsolute(base_parts, base_parts.size());

  if (path.empty()) {
    r.error = ENOENT;
    return r;
  }
  if (path.size() >= PATH_MAX) {
    // The kernel refuses to copy such a path in (getname), before any lookup.
    for (absl::string_view name : absl::StrSplit(ToAbsl(path), '/')) {
      if (!name.empty() && name != ".") r.components.emplace_back(name);
    }
    r.error = ENAMETOOLONG;
    return r;
  }

  std::vector<std::string>& resolved = r.components;
  // Absolute path of the directory the walk is in, and its length before
  // each resolved component was appended, so ".." is a truncation.
  std::string dir = r.base;
  std::vector<size_t> dir_lengths;
  auto reset_to = [&](std::vector<std::string> parts) {
    resolved = std::move(parts);
    dir = "/";
    dir_lengths.clear();
    for (const std::string& name : resolved) {
      dir_lengths.push_back(dir.size());
      dir = ChildPath(dir, name);
    }
  };

  // Names still to walk, the next one on top.
  std::vector<std::string> pending;
  PushTokens(StripLeadingSlashes(path), pending);

  // Ends the walk with `error` at `name`: the name and what was left of the
  // path (without "." and empty names) are kept so the caller can report the
  // failed lookup and the names the process asked for.
  auto fail = [&](int error, std::string name) {
    r.found = resolved.size();
    r.error = error;
    resolved.push_back(std::move(name));
    for (auto it = pending.rbegin(); it != pending.rend(); ++it) {
      if (!it->empty() && *it != ".") resolved.push_back(std::move(*it));
    }
    return std::move(r);
  };

  Kind last_kind = Kind::kDirectory;  // the base, or "/"
  int links = 0;
  while (!pending.empty()) {
    std::string name = std::move(pending.back());
    pending.pop_back();
    if (name.empty() || name == ".") {
      last_kind = Kind::kDirectory;  // only reached after a directory was walked into
      continue;
    }
    if (name == "..") {
      if (!resolved.empty()) {
        resolved.pop_back();
        dir.resize(dir_lengths.back());
        dir_lengths.pop_back();
      } else if (!r.absolute) {
        // Climbing above a relative base: the chain now starts at "/" and the
        // base's own (canonical) components become its prefix.
        r.absolute = true;
        r.base = "/";
        reset_to(base_parts);
        if (!resolved.empty()) {
          resolved.pop_back();
          dir.resize(dir_lengths.back());
          dir_lengths.pop_back();
        }
      }  // else ".." at "/" stays at "/"
      last_kind = Kind::kDirectory;
      continue;
    }

    const bool final = pending.empty();
    if (name.size() > NAME_MAX) return fail(ENAMETOOLONG, std::move(name));

    std::string child = ChildPath(dir, name);
    const Entry& entry = Lookup(child);
    if (entry.error != 0) return fail(entry.error, std::move(name));

    if (entry.kind == Kind::kSymlink && (!final || follow_final)) {
      if (links == kMaxSymlinks) return fail(ELOOP, std::move(name));
      ++links;
      // Copy the target now: `entry` lives in the cache, which later lookups may rehash.
      std::string target = entry.link_target;
      // An empty target (only possible on a crafted file system) walks
      // nothing: the kernel's "pure jump" leaves the walk in the link's directory.
      if (target.front() == '/') {
        r.absolute = true;
        r.base = "/";
        reset_to({});
      }
      PushTokens(StripLeadingSlashes(target), pending);
      r.links_followed.push_back({std::move(child), std::move(target)});
      last_kind = Kind::kDirectory;  // the walk is in a directory again
      continue;
    }

    if (!final && entry.kind != Kind::kDirectory) {
      // Something follows, so this must be a directory. It exists, so it
      // counts as found; the lookup that fails is the next name, if any.
      Kind kind = entry.kind;
      resolved.push_back(std::move(name));
      r.found = resolved.size();
      r.error = ENOTDIR;
      for (auto it = pending.rbegin(); it != pending.rend(); ++it) {
        if (!it->empty() && *it != ".") resolved.push_back(std::move(*it));
      }
      if (r.found == resolved.size()) r.kind = kind;  // only a trailing "/" or "/." was left
      return r;
    }

    last_kind = entry.kind;
    resolved.push_back(std::move(name));
    dir_lengths.push_back(dir.size());
    dir = std::move(child);
  }

  r.found = resolved.size();
  r.kind = last_kind;
  return r;
}

void PathResolver::Invalidate(std::string_view absolute_path) {
  while (absolute_path.size() > 1 && absolute_path.back() == '/') absolute_path.remove_suffix(1);
  cache_.erase(ToAbsl(absolute_path));
}

void PathResolver::InvalidateTree(std::string_view absolute_path) {
  while (absolute_path.size() > 1 && absolute_path.back() == '/') absolute_path.remove_suffix(1);
  if (absolute_path == "/") {
    Clear();
    return;
  }
  // A linear scan: renames and removals of directories are rare next to
  // lookups, so no prefix index is kept.
  absl::erase_if(cache_, [absolute_path](const auto& item) {
    const std::string& key = item.first;
    return absl::StartsWith(key, ToAbsl(absolute_path)) &&
           (key.size() == absolute_path.size() || key[absolute_path.size()] == '/');
  });
}

void PathResolver::Clear() { cache_.clear(); }

}  // namespace dodo::model
