// Temporary file names that differ from one build to the next. gcc hands its
// assembler a file it named at random (`as -o a.o /tmp/ccX1b2Qz.s`), so the
// exec of the same step never has the same command line twice, and a child
// matched by its command line alone is never recognized, never skipped. The
// names below are what lets the rebuilder match such a child anyway: the
// last build's temporary is taken to be this build's, and the child's
// recorded observations are checked, and its records copied, under the new
// name.
#ifndef DODO_MODEL_TEMP_NAMES_H_
#define DODO_MODEL_TEMP_NAMES_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dodo::model {

// Old temporary paths and the new ones that stand for them.
class TempRenames {
 public:
  // Records that `before` is now called `now`. False (and nothing recorded)
  // if that contradicts a pair recorded already: either name paired with
  // another.
  bool Add(const std::string& before, const std::string& now);
  bool empty() const { return pairs_.empty(); }
  const std::vector<std::pair<std::string, std::string>>& pairs() const { return pairs_; }

  // `path` under today's names: a renamed path, or a path below a renamed
  // directory, with the new name put in. Nothing if neither.
  std::optional<std::string> Path(std::string_view path) const;
  // The new last component for a path component that is the last component
  // of a renamed path (a name looked up in the temporary's directory).
  std::optional<std::string> Component(std::string_view name) const;
  // Whether `path` holds an old name's random part (its last component
  // without the extension) anywhere: a renamed path, one below it, or one
  // named after it (`gcc -c /tmp/ccX.c` writes ccX.o).
  bool Mentions(std::string_view path) const;

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
};

// Whether `now` is the command line `before` up to temporary names, and
// which. Each argument must be equal, or else a pair that looks like one
// temporary under two random names: two absolute paths of the same length in
// the same directory, with the same extension, and `was_temporary(before)`:
// the last build made that file and it is gone. Nothing if some argument
// differs otherwise, or if there is no such pair (equal command lines).
std::optional<TempRenames> MatchTempNames(
    const std::vector<std::string>& before, const std::vector<std::string>& now,
    const std::function<bool(const std::string&)>& was_temporary);

}  // namespace dodo::model

#endif  // DODO_MODEL_TEMP_NAMES_H_
