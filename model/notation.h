// Prints trace records in dodo's operation notation, the language of the
// design notes, and as JSON lines for scripts.
//
// The notation, by example:
//
//   R(GET("a.c", .)) = OK
//       command read the contents of ./a.c
//   GET("gcc", GET("bin", /)) = ENOENT
//       a path lookup: /bin exists, but /bin/gcc does not
//   W(TRUNC(LINK_IF_NEEDED(NEWFILE, "a.s", GET("tmp", /)))) = OK [sha256:1f2e3d4c]
//       open("/tmp/a.s", O_WRONLY|O_CREAT|O_TRUNC), contents then written
//
// Rules:
// - A path is a chain of GETs, innermost first: GET("name", <directory>). The
//   chain starts at its base: `/` (absolute path), `.` (the working
//   directory) or `FD(3)` (a directory descriptor, *at() calls). Symbolic
//   links were already followed and "." / ".." folded, so every GET names a
//   real directory entry.
// - A lookup that failed prints only up to the failing GET, which is then the
//   outermost one, and the result is its error.
// - A descriptor used as a file (fchmod, ftruncate, ...) prints as
//   FD(3, "/its/path"), or FD(3) when its path is unknown.
// - Contents: R(...) read, W(...) written, X(...) executed.
// - Creating opens: LINK_IF_NEEDED(NEWFILE, "name", <dir>) for O_CREAT,
//   LINK(NEWFILE, "name", <dir>) for O_CREAT|O_EXCL, wrapped in TRUNC(...)
//   for O_TRUNC.
// - New names: LINK(NEWDIR | NEWNODE | NEWFILE | SYMLINK("target") |
//   <existing file>, "name", <dir>). Removed names: UNLINK("name", <dir>),
//   RMDIR("name", <dir>). RENAME("old", <dir>, "new", <dir>).
// - Metadata: STAT(p), LIST(p) (directory listing), READLINK(p), CHDIR(p),
//   CHMOD(p, 0755), CHOWN(p, uid, gid) (-1 = unchanged), UTIMES(p),
//   TRUNC(p, length), XATTR_READ(p, "name"), XATTR_WRITE(p, "name").
// - Pipes a command inherited: PIPE_READ(PIPE(id)), PIPE_WRITE(PIPE(id)).
// - After the operation: ` = OK` or ` = <errno name>`, then what was observed:
//   ` -> "target"` (READLINK), ` [sha256:1f2e3d4c]` (the first 8 hex digits of
//   the contents' SHA-256), ` [listing:0a1b2c3d]` (a directory listing's
//   digest), ` [gone]` (a written file that no longer existed when hashed).
// - Strings are double-quoted; `"`, `\` and control characters are escaped as
//   in C (\", \\, \n, \t, \r, \xNN); bytes that are not UTF-8 print as \xNN.
#ifndef DODO_MODEL_NOTATION_H_
#define DODO_MODEL_NOTATION_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "proto/trace.pb.h"

namespace dodo::model {

// Resolves an interned string id ("" for unknown ids), e.g. TraceReader::String.
using StringLookup = absl::FunctionRef<std::string_view(uint32_t)>;

// A Ref as nested GETs: GET("gcc", GET("bin", GET("usr", /))).
std::string FormatRef(const proto::Ref& ref, StringLookup strings);

// One operation as a full notation line, e.g. `R(GET("a.c", .)) = OK`.
std::string FormatOperation(const proto::Operation& op, StringLookup strings);

// What a Version records, as the suffix of notation lines: space-separated
// tags "[sha256:1f2e3d4c]", "[listing:0a1b2c3d]", "[gone]"; "" if none.
std::string FormatVersion(const proto::Version& version);

// A command's heading: `[3] (parent 1) pid 4242: cc1 -quiet a.c -o /tmp/ccX.s`.
// The root command has no "(parent N)". argv words that the shell would split
// or expand are quoted as a shell would need them.
std::string FormatCommandHeader(const proto::CommandStart& command, StringLookup strings);

// How a command ended: `exit 0`, `killed by SIGSEGV`, `replaced by exec`.
std::string FormatCommandEnd(const proto::CommandEnd& end);

// One operation as a one-line JSON object. Keys: "type" ("operation"),
// "command", "kind" (e.g. "READ"), "syscall", "error" ("OK", "ENOENT", ...),
// "notation" (FormatOperation's line), and when they apply: "path" / "path2"
// (the whole path the operation named, absolute when the base directory is
// known, even when its lookup failed part way), "found" (components that
// resolved), "create" ("NEWFILE", ...), "exclusive", "truncate", "sha256"
// (full hex), "listing_sha256", "size", "mode", "mtime_ns", "absent", "text",
// "number", "uid", "gid", "xattr".
std::string OperationToJson(const proto::Operation& op, StringLookup strings);

// The system call that produced `op`: interned, or as text in older traces.
std::string_view SyscallName(const proto::Operation& op, StringLookup strings);

// Whether `op` is a write to a device, FIFO or socket (`2>/dev/null`), which
// the recorder marks with the thing's mode: it changed no path of the tree.
bool WritesNoFile(const proto::Operation& op);

// `s` as a JSON string literal, quotes included. Bytes that are not UTF-8
// become U+FFFD, since JSON text must be Unicode.
std::string JsonQuote(std::string_view s);

// Builds one JSON object, key by key, for `dodo log --json`.
class JsonObject {
 public:
  JsonObject& String(const char* key, std::string_view value) {
    Key(key);
    out_ += JsonQuote(value);
    return *this;
  }
  template <typename T>
  JsonObject& Number(const char* key, T value) {
    Key(key);
    absl::StrAppend(&out_, value);
    return *this;
  }
  JsonObject& Bool(const char* key, bool value) {
    Key(key);
    out_ += value ? "true" : "false";
    return *this;
  }
  JsonObject& StringArray(const char* key, const std::vector<std::string>& values) {
    Key(key);
    out_ += '[';
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) out_ += ',';
      out_ += JsonQuote(values[i]);
    }
    out_ += ']';
    return *this;
  }
  // `json` must already be valid JSON (an array, a nested object).
  JsonObject& Raw(const char* key, std::string_view json) {
    Key(key);
    out_ += json;
    return *this;
  }
  // Closes the object and hands it over; the builder is spent afterwards.
  std::string Finish() {
    out_ += '}';
    return std::move(out_);
  }

 private:
  void Key(const char* key) {
    if (out_.size() > 1) out_ += ',';
    absl::StrAppend(&out_, "\"", key, "\":");
  }
  std::string out_ = "{";
};

// `s` as a notation string literal, quotes included (see the rules above).
std::string Quote(std::string_view s);

// "OK" for 0, the symbolic name of an errno ("ENOENT", "ENOTDIR", ...), or
// "E<number>" for numbers the C library does not name.
std::string ErrnoName(int error);

// "SIGSEGV" etc., or "SIG<number>".
std::string SignalName(int signal);

// The path `ref` names as one string: the base directory's path (or "/",
// or "." when the working directory is unknown) joined with every component.
// Empty when it cannot be said (a descriptor base whose path is unknown).
std::string RefToPath(const proto::Ref& ref, StringLookup strings);
// The same into `out`, whose buffer is reused: for loops over many refs.
void RefToPath(const proto::Ref& ref, StringLookup strings, std::string* out);

}  // namespace dodo::model

#endif  // DODO_MODEL_NOTATION_H_
