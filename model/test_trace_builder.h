// Test helpers for the model layer, which is tested without tracing
// anything: scratch directories holding small real file trees, and
// TraceBuilder, which writes synthetic traces the way model/recorder.cc
// records a build (interned strings, refs made of a base directory and the
// names below it, the exec that started a command right after its
// CommandStart, outputs hashed when a command ends).
#ifndef DODO_MODEL_TEST_TRACE_BUILDER_H_
#define DODO_MODEL_TEST_TRACE_BUILDER_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "model/file_hasher.h"
#include "model/trace_writer.h"
#include "proto/trace.pb.h"

namespace dodo::model::testutil {

// A fresh directory under $TEST_TMPDIR (its real path, so it can be compared
// with the paths a trace holds), removed with everything in it at
// destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  // `relative` below the directory.
  std::string P(const std::string& relative) const;

 private:
  std::string path_;
};

// Writes `content` to `path` in place (the same inode when the file exists),
// creating the file with `mode` and its missing parent directories.
void WriteFile(const std::string& path, std::string_view content, mode_t mode = 0644);
// The file's bytes; "" when it cannot be read (the test then fails).
std::string ReadFile(const std::string& path);
bool Exists(const std::string& path);
// Entry names of `dir`, sorted ("." and ".." left out).
std::vector<std::string> Names(const std::string& dir);

// What a CommandStart says about a command.
struct CommandSpec {
  std::string executable;  // absolute path of the program file
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd;       // absolute
  bool dormant = false;  // kept from an earlier build (proto::CommandStart.dormant)
};

// A command running `cwd`/bin/`argv[0]` in `cwd`; the program file is made
// (with contents naming it) if it does not exist.
CommandSpec MakeCommand(const std::string& cwd, std::vector<std::string> argv,
                        std::vector<std::string> env = {});

// Writes a trace. Operations that observe something record what the file
// tree holds when they are added, as the recorder would have seen it then;
// an observed path that does not exist gets ENOENT. Failures of the writer
// fail the current test.
class TraceBuilder {
 public:
  // `header` is written as given, with tool_version "test" if it has none.
  explicit TraceBuilder(std::string path, proto::Header header = proto::Header());
  // Finishes the trace if Finish() was not called.
  ~TraceBuilder();
  TraceBuilder(const TraceBuilder&) = delete;
  TraceBuilder& operator=(const TraceBuilder&) = delete;

  // A new command (ids count up from 1; `parent` 0 for the root): its
  // CommandStart, then the successful EXEC of its program, which belongs to
  // the parent (to the command itself for the root). Returns the id.
  uint64_t Start(uint64_t parent, const CommandSpec& spec);
  // Only the CommandStart record; returns the id.
  uint64_t StartWithoutExec(uint64_t parent, const CommandSpec& spec);
  // CommandEnd: EXITED with `exit_code`. Its outputs are the paths the
  // command changed, with the versions the tree holds now.
  void End(uint64_t command, int exit_code = 0);
  // At its End, `command` also lists `path` as an output: another name of
  // the file it wrote as `written_as` (a hard link), with its version.
  void OtherName(uint64_t command, const std::string& path, const std::string& written_as);

  // `path` as the recorder refers to it: below the command's working
  // directory relative to it (BASE_CWD), else from "/" (BASE_ROOT), with
  // `found` counting the leading names that exist now.
  proto::Ref Ref(uint64_t command, const std::string& path);
  // An observation of `kind` (GET, READ, EXEC, STAT, LIST, READLINK, ...)
  // of `path` as of now, not yet written.
  proto::Operation Observe(uint64_t command, proto::OpKind kind, const std::string& path);

  // Writes `op` and returns its index in the trace (TraceModel::ops()),
  // with its syscall's name interned as the recorder writes it, or left as
  // text as dodo wrote it before syscall_name.
  size_t Add(const proto::Operation& op, bool intern_syscall = true);
  size_t Get(uint64_t command, const std::string& path);
  size_t Read(uint64_t command, const std::string& path);
  size_t Exec(uint64_t command, const std::string& path);
  size_t Stat(uint64_t command, const std::string& path);
  size_t List(uint64_t command, const std::string& dir);
  size_t Readlink(uint64_t command, const std::string& path);
  // A truncating open for writing, creating the file with `create` (or not,
  // LINK_NONE), as open(O_WRONLY|O_CREAT|O_TRUNC) records it.
  size_t Write(uint64_t command, const std::string& path,
               proto::LinkSource create = proto::NEWFILE);
  // A new name: mkdir (NEWDIR), symlink (SYMLINK, `text` the target), ...
  size_t Link(uint64_t command, const std::string& path, proto::LinkSource create,
              const std::string& text = "");
  size_t Unlink(uint64_t command, const std::string& path);
  size_t Rename(uint64_t command, const std::string& from, const std::string& to);
  size_t Chmod(uint64_t command, const std::string& path, uint32_t mode);
  size_t Trunc(uint64_t command, const std::string& path, uint64_t length);
  // An inherited pipe end, PIPE_READ or PIPE_WRITE, of pipe `pipe_id`.
  size_t Pipe(uint64_t command, proto::OpKind kind, uint64_t pipe_id);

  // Writes the Trailer and closes the file.
  void Finish(int root_exit_status = 0);

  uint32_t Intern(std::string_view s);
  const std::string& path() const { return path_; }

 private:
  size_t Change(uint64_t command, proto::OpKind kind, const std::string& path);
  void AddOutput(uint64_t command, const std::string& path);

  std::string path_;
  std::unique_ptr<TraceWriter> writer_;
  FileHasher hasher_;
  uint64_t next_id_ = 1;
  size_t ops_ = 0;
  absl::flat_hash_map<uint64_t, std::string> cwd_;
  absl::flat_hash_map<uint64_t, std::vector<std::string>> outputs_;
  // Per command: (path, written_as) pairs, see OtherName.
  absl::flat_hash_map<uint64_t, std::vector<std::pair<std::string, std::string>>> other_names_;
};

}  // namespace dodo::model::testutil

#endif  // DODO_MODEL_TEST_TRACE_BUILDER_H_
