#include "model/temp_names.h"

namespace dodo::model {
namespace {

std::string_view Dirname(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash + 1);
}

std::string_view Basename(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// From the last dot of the last component on ("" without one). A random
// part never holds the dot: mkstemp fills only the X's of its template.
std::string_view Extension(std::string_view path) {
  const std::string_view base = Basename(path);
  const size_t dot = base.rfind('.');
  return dot == std::string_view::npos ? std::string_view() : base.substr(dot);
}

bool LookLikeOneTemporary(std::string_view before, std::string_view now) {
  return before.size() == now.size() && before.starts_with('/') && now.starts_with('/') &&
         Dirname(before) == Dirname(now) && Extension(before) == Extension(now) &&
         !Basename(before).empty() && Basename(before) != Basename(now);
}

}  // namespace

bool TempRenames::Add(const std::string& before, const std::string& now) {
  for (const auto& [old_name, new_name] : pairs_) {
    if (old_name == before || new_name == now) return old_name == before && new_name == now;
  }
  pairs_.emplace_back(before, now);
  return true;
}

std::optional<std::string> TempRenames::Path(std::string_view path) const {
  for (const auto& [before, now] : pairs_) {
    if (!path.starts_with(before)) continue;
    if (path.size() == before.size()) return now;
    if (path[before.size()] == '/') return now + std::string(path.substr(before.size()));
  }
  return std::nullopt;
}

std::optional<std::string> TempRenames::Component(std::string_view name) const {
  for (const auto& [before, now] : pairs_) {
    if (Basename(before) == name) return std::string(Basename(now));
  }
  return std::nullopt;
}

bool TempRenames::Mentions(std::string_view path) const {
  for (const auto& [before, now] : pairs_) {
    std::string_view stem = Basename(before);
    stem.remove_suffix(Extension(before).size());
    if (path.find(stem) != std::string_view::npos) return true;
  }
  return false;
}

std::optional<TempRenames> MatchTempNames(
    const std::vector<std::string>& before, const std::vector<std::string>& now,
    const std::function<bool(const std::string&)>& was_temporary) {
  if (before.size() != now.size()) return std::nullopt;
  TempRenames renames;
  for (size_t i = 0; i < before.size(); ++i) {
    if (before[i] == now[i]) continue;
    if (!LookLikeOneTemporary(before[i], now[i]) || !was_temporary(before[i]) ||
        !renames.Add(before[i], now[i])) {
      return std::nullopt;
    }
  }
  if (renames.empty()) return std::nullopt;
  return renames;
}

}  // namespace dodo::model
