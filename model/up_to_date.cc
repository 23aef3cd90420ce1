#include "model/up_to_date.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "model/file_errors.h"
#include "model/file_hasher.h"
#include "model/trace_model.h"

namespace dodo::model {
namespace {

constexpr uint32_t kFormatVersion = 1;
// Changes this close before the plan's lookups may share a timestamp tick
// with a change made right after them.
constexpr int64_t kRacyMarginNs = 100'000'000;

void ToProto(const LiveTree::Identity& id, proto::FileIdentity* out) {
  out->set_error(id.error);
  out->set_dev(id.dev);
  out->set_ino(id.ino);
  out->set_mode(id.mode);
  out->set_size(static_cast<uint64_t>(id.size));
  out->set_mtime_ns(id.mtime_ns);
  out->set_ctime_ns(id.ctime_ns);
}

// The identity of `path` now (lstat, or stat), in the stamp's terms.
proto::FileIdentity IdentityNow(const std::string& path, bool follow) {
  proto::FileIdentity id;
  ToProto(LiveTree::IdentityNow(path, follow), &id);
  return id;
}

// Leaves out what a plan that did not list a directory cannot have seen.
void ForgetUnlisted(bool listed, proto::FileIdentity* id) {
  if (listed || !S_ISDIR(id->mode())) return;
  id->clear_size();
  id->clear_mtime_ns();
  id->clear_ctime_ns();
}

bool Same(const proto::FileIdentity& a, const proto::FileIdentity& b) {
  return a.error() == b.error() && a.dev() == b.dev() && a.ino() == b.ino() &&
         a.mode() == b.mode() && a.size() == b.size() && a.mtime_ns() == b.mtime_ns() &&
         a.ctime_ns() == b.ctime_ns();
}

}  // namespace

std::optional<UpToDateStamp> UpToDateStamp::FromPlan(const LiveTree& tree,
                                                     const std::string& skip_prefix,
                                                     const RootCall& root, uint64_t commands,
                                                     int exit_status, int64_t looked_since_ns) {
  UpToDateStamp result;
  proto::UpToDate& stamp = result.stamp_;
  stamp.set_format_version(kFormatVersion);
  for (const std::string& arg : root.argv) stamp.add_root_argv(arg);
  stamp.set_working_directory(root.cwd);
  for (const std::string& entry : root.env) stamp.add_env(entry);
  stamp.set_exit_status(exit_status);
  stamp.set_commands(commands);
  const int64_t settled_before = looked_since_ns - kRacyMarginNs;
  bool racy = false;
  tree.ForEachLookup([&](const std::string& path, const LiveTree::Entry& entry) {
    if (racy || (!skip_prefix.empty() && path.starts_with(skip_prefix))) return;
    proto::PathIdentity* out = stamp.add_paths();
    out->set_path(path);
    out->set_listed(entry.listed);
    ToProto(entry.lstat, out->mutable_lstat());
    ForgetUnlisted(entry.listed, out->mutable_lstat());
    if (entry.lstat.error == 0 && S_ISLNK(entry.lstat.mode)) {
      ToProto(entry.stat, out->mutable_stat());
      ForgetUnlisted(entry.listed, out->mutable_stat());
    }
    for (const proto::FileIdentity* id : {&out->lstat(), &out->stat()}) {
      if (id->ctime_ns() >= settled_before || id->mtime_ns() >= settled_before) racy = true;
    }
  });
  if (racy) return std::nullopt;
  return result;
}

absl::StatusOr<bool> UpToDateStamp::Write(const std::string& stamp_path,
                                          const std::string& trace_path,
                                          const proto::FileIdentity* planned_from) {
  const std::string lock_path = stamp_path + ".lock";
  ScopedFd lock(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock.valid()) return CannotError(errno, "open", lock_path);
  while (flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return CannotError(errno, "lock", lock_path);
  }
  proto::UpToDate& stamp = stamp_;
  *stamp.mutable_trace() = IdentityNow(trace_path, /*follow=*/false);
  if (stamp.trace().error() != 0) return CannotError(stamp.trace().error(), "stat", trace_path);
  if (planned_from != nullptr && !Same(*planned_from, stamp.trace())) return false;
  const std::string temp = stamp_path + ".new";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out || !stamp.SerializeToOstream(&out) || !out.flush()) {
      unlink(temp.c_str());
      return absl::InternalError(absl::StrCat(temp, ": cannot write the up-to-date stamp"));
    }
  }
  if (rename(temp.c_str(), stamp_path.c_str()) != 0) {
    const int error = errno;
    unlink(temp.c_str());
    return CannotError(error, "rename the up-to-date stamp onto", stamp_path);
  }
  return true;
}

absl::StatusOr<bool> StampLastBuild(const std::string& store_dir, const RootCall& root) {
  const std::string trace_path = store_dir + "/trace";
  const proto::FileIdentity before = IdentityNow(trace_path, /*follow=*/false);
  if (before.error() != 0) return CannotError(before.error(), "stat", trace_path);
  absl::StatusOr<TraceModel> model = TraceModel::Load(trace_path);
  if (!model.ok()) return model.status();
  if (!Same(before, IdentityNow(trace_path, /*follow=*/false))) return false;
  if (model->commands().empty()) return false;
  FileHasher hasher;
  hasher.LoadCache(store_dir + "/hashes");
  LiveTree tree(&hasher, root.cwd);
  const int64_t plan_start = absl::ToUnixNanos(absl::Now());
  const Plan plan = MakePlan(*model, tree, root.argv, root.cwd, root.env);
  // The build hashed its outputs a moment after writing them, too soon for
  // the cache to trust those digests; the plan has just read them again,
  // settled, so the next build need not. Only a speed-up if it fails.
  if (hasher.cache_changed()) (void)hasher.SaveCache(store_dir + "/hashes");
  if (!plan.UpToDate()) return false;
  std::optional<UpToDateStamp> stamp =
      UpToDateStamp::FromPlan(tree, store_dir + "/", root, model->build_size(),
                              model->commands()[model->root()].end.exit_code(), plan_start);
  if (!stamp.has_value()) return false;
  return stamp->Write(store_dir + "/uptodate", trace_path, &before);
}

std::optional<UpToDateHit> CheckUpToDateStamp(const std::string& stamp_path,
                                              const std::string& trace_path, const RootCall& root) {
  proto::UpToDate stamp;
  {
    std::ifstream in(stamp_path, std::ios::binary);
    if (!in || !stamp.ParseFromIstream(&in)) return std::nullopt;
  }
  if (stamp.format_version() != kFormatVersion) return std::nullopt;
  if (!Same(stamp.trace(), IdentityNow(trace_path, /*follow=*/false))) return std::nullopt;
  if (stamp.working_directory() != root.cwd ||
      !std::equal(stamp.root_argv().begin(), stamp.root_argv().end(), root.argv.begin(),
                  root.argv.end())) {
    return std::nullopt;
  }
  // The same comparison as the plan's (it ignores OLDPWD and the like).
  const std::vector<std::string> env(stamp.env().begin(), stamp.env().end());
  if (!ChangedVariables(env, root.env).empty()) return std::nullopt;
  for (const proto::PathIdentity& path : stamp.paths()) {
    proto::FileIdentity now = IdentityNow(path.path(), /*follow=*/false);
    ForgetUnlisted(path.listed(), &now);
    if (!Same(path.lstat(), now)) return std::nullopt;
    if (path.has_stat()) {
      now = IdentityNow(path.path(), /*follow=*/true);
      ForgetUnlisted(path.listed(), &now);
      if (!Same(path.stat(), now)) return std::nullopt;
    }
  }
  return UpToDateHit{.commands = stamp.commands(), .exit_status = stamp.exit_status()};
}

}  // namespace dodo::model
