// Where the bytes behind a path are while a build runs. dodo build's virtual
// store keeps a file a command is writing aside (staged) until the command
// succeeds; whoever looks at the tree on the build's behalf (the recorder,
// the replay at exec time) must see the staged file, as the processes do.
#ifndef DODO_MODEL_PATH_MAPPER_H_
#define DODO_MODEL_PATH_MAPPER_H_

#include <optional>
#include <string>

namespace dodo::model {

class PathMapper {
 public:
  virtual ~PathMapper() = default;
  // The file that holds `path`'s bytes now: `path` itself unless it is staged.
  virtual const std::string& Physical(const std::string& path) const = 0;
  // The other way: the path a process knows `physical` by (what /proc shows
  // for a descriptor open on a staged file), or nothing if it is not staged.
  virtual std::optional<std::string> Logical(const std::string& physical) const = 0;
};

}  // namespace dodo::model

#endif  // DODO_MODEL_PATH_MAPPER_H_
