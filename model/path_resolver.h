// Path resolution as the Linux kernel performs it, component by component,
// against the live file system. The tracer sees a syscall's path argument
// before (or just after) the kernel walks it; to record which names the
// command depended on (including the ones it failed to find, and every
// symbolic link on the way) the model repeats the walk with lstat/readlink.
//
// Rules, following fs/namei.c:
//   * Empty components and "." are skipped. ".." pops the previous component
//     (which is a real directory: symlinks before it were already expanded).
//     ".." above a relative base continues in the base's parent, so the
//     result becomes absolute; ".." at "/" stays at "/".
//   * A component is "final" when nothing at all follows it in the path text.
//     A trailing "/" or "/." makes the last name non-final, exactly like in
//     the kernel: it is followed if it is a symlink and must be a directory.
//   * A symlink in a non-final component, or in the final one when
//     follow_final is set, is followed: an absolute target restarts at "/",
//     a relative one continues in the link's directory, and the rest of the
//     path is appended to the target. At most 40 links (MAXSYMLINKS) are
//     followed per resolution; the 41st gives ELOOP.
//
// The base directory is trusted: it must be an absolute path without
// symlinks (a cwd from /proc is one). It is never looked up.
//
// `found` and `error`, precisely (invariant: error == 0 iff fully resolved):
//   * success: error = 0, found = components.size(), kind = the final object.
//   * ENOENT (or another errno from lstat, e.g. EACCES, or ENAMETOOLONG for a
//     name longer than NAME_MAX): components[found] is the name whose lookup
//     failed; components after it are the rest of the path, unresolved
//     ("." and empty names dropped, ".." kept as given).
//   * ENOTDIR: a non-directory was used as a directory. The non-directory
//     itself exists, so it is counted: found = its index + 1. When a name
//     follows it, components[found] is that name, the lookup that failed;
//     when only a trailing "/" or "/." follows, found == components.size()
//     and kind is the non-directory's kind.
//   * ELOOP: components[found] is the symlink that could not be followed
//     because 40 links already were (links_followed holds those 40).
//   * ENAMETOOLONG for a path text of PATH_MAX bytes or more: found = 0, and
//     no lookup is made.
//   * An empty path: ENOENT, found = 0, no components (AT_EMPTY_PATH is the
//     caller's business).
#ifndef DODO_MODEL_PATH_RESOLVER_H_
#define DODO_MODEL_PATH_RESOLVER_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "model/path_mapper.h"

namespace dodo::model {

struct Resolution {
  enum class Kind { kMissing, kFile, kDirectory, kSymlink, kOther };

  bool absolute = false;  // chain starts at "/" (else at the base directory, printed ".")
  std::string base;       // absolute path of the base directory ("/" when absolute)
  // Names walked from the base, after following symlinks and folding "." and
  // "..". On failure, the failing name and the unresolved rest follow.
  std::vector<std::string> components;
  size_t found = 0;  // leading components that exist (see the rules above)
  int error = 0;     // 0, ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG (or lstat's errno)
  // Kind of the final object when error == 0 (and for a trailing-slash ENOTDIR).
  Kind kind = Kind::kMissing;

  struct Link {
    std::string path;    // absolute path of the symlink
    std::string target;  // its target text, as readlink returned it
  };
  std::vector<Link> links_followed;  // in the order met

  // Base joined with all components, normalized lexically ("." and ".."
  // can only remain in the unresolved tail of a failed resolution).
  std::string AbsolutePath() const;
  // Absolute path of the directory holding the last component: base joined
  // with all components but the last. With no components, the parent of
  // the base ("/" for "/").
  std::string ParentPath() const;
};

class PathResolver {
 public:
  PathResolver() = default;
  PathResolver(const PathResolver&) = delete;
  PathResolver& operator=(const PathResolver&) = delete;

  // base_dir: absolute directory a relative path starts from (canonical: no
  // symlinks). follow_final: follow a symlink in the last component.
  Resolution Resolve(std::string_view base_dir, std::string_view path, bool follow_final);

  // readlink() of an absolute path as the current process sees it: 0 and
  // the target in `target`, or the errno (EINVAL for no symlink).
  int ReadLink(const std::string& absolute_path, std::string* target);

  // The entry at that absolute path was created, removed or replaced.
  void Invalidate(std::string_view absolute_path);
  // A directory was renamed or removed: drop it and everything cached below.
  void InvalidateTree(std::string_view absolute_path);
  void Clear();
  // The process whose paths are resolved next: /proc/self and
  // /proc/thread-self name it, not dodo. 0: dodo's own view.
  // Links in /proc are read through `mapper` (must outlive the resolver), so
  // a descriptor open on a staged file shows the path the process opened.
  void set_path_mapper(const PathMapper* mapper) { mapper_ = mapper; }
  void set_process(int tgid, int tid) {
    tgid_ = tgid;
    tid_ = tid;
  }

  size_t cache_hits() const { return cache_hits_; }
  size_t cache_misses() const { return cache_misses_; }  // == lstat calls made

 private:
  // What lstat (and readlink, for a symlink) said about one absolute path.
  struct Entry {
    int error = 0;  // lstat's or readlink's errno; 0 on success
    Resolution::Kind kind = Resolution::Kind::kMissing;
    std::string link_target;  // kSymlink only
  };

  const Entry& Lookup(const std::string& absolute_path);
  static void Examine(const std::string& absolute_path, Entry& entry);

  const PathMapper* mapper_ = nullptr;
  int tgid_ = 0;
  int tid_ = 0;
  // /proc is never cached (descriptors and processes come and go); its
  // answer lives here until the next lookup.
  Entry proc_entry_;

  absl::flat_hash_map<std::string, Entry> cache_;
  size_t cache_hits_ = 0;
  size_t cache_misses_ = 0;
};

}  // namespace dodo::model

#endif  // DODO_MODEL_PATH_RESOLVER_H_
