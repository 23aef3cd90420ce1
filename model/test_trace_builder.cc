#include "model/test_trace_builder.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace dodo::model::testutil {
namespace {

std::vector<std::string> SplitPath(const std::string& path) {
  return absl::StrSplit(path, '/', absl::SkipEmpty());
}

void SetFileVersion(FileHasher& hasher, const std::string& path, proto::Version* version) {
  absl::StatusOr<FileVersion> file = hasher.HashFile(path);
  if (!file.ok()) return;
  version->set_sha256(file->sha256.data(), file->sha256.size());
  version->set_size(file->size);
  version->set_mode(file->mode);
  version->set_mtime_ns(file->mtime_ns);
}

}  // namespace

ScratchDir::ScratchDir() {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string pattern =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/model_test.XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << pattern << ": " << strerror(errno);
    return;
  }
  char real[PATH_MAX];
  path_ = realpath(pattern.c_str(), real) != nullptr ? real : pattern;
}

ScratchDir::~ScratchDir() {
  if (path_.empty()) return;
  std::error_code error;
  std::filesystem::remove_all(path_, error);
}

std::string ScratchDir::P(const std::string& relative) const {
  return absl::StrCat(path_, "/", relative);
}

void WriteFile(const std::string& path, std::string_view content, mode_t mode) {
  std::error_code error;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), error);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  ASSERT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()))
      << path;
  ASSERT_EQ(close(fd), 0) << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_FALSE(error) << dir << ": " << error.message();
  std::sort(names.begin(), names.end());
  return names;
}

CommandSpec MakeCommand(const std::string& cwd, std::vector<std::string> argv,
                        std::vector<std::string> env) {
  CommandSpec spec;
  spec.executable = absl::StrCat(cwd, "/bin/", argv.empty() ? "" : argv[0]);
  if (!Exists(spec.executable)) WriteFile(spec.executable, "program " + spec.executable, 0755);
  spec.argv = std::move(argv);
  spec.env = std::move(env);
  spec.cwd = cwd;
  return spec;
}

TraceBuilder::TraceBuilder(std::string path, proto::Header header) : path_(std::move(path)) {
  if (header.tool_version().empty()) header.set_tool_version("test");
  absl::StatusOr<std::unique_ptr<TraceWriter>> writer = TraceWriter::Create(path_, header);
  if (!writer.ok()) {
    ADD_FAILURE() << writer.status();
    return;
  }
  writer_ = *std::move(writer);
}

TraceBuilder::~TraceBuilder() {
  if (writer_ != nullptr) Finish();
}

uint32_t TraceBuilder::Intern(std::string_view s) {
  return writer_ != nullptr ? writer_->Intern(s) : 0;
}

uint64_t TraceBuilder::StartWithoutExec(uint64_t parent, const CommandSpec& spec) {
  const uint64_t id = next_id_++;
  cwd_[id] = spec.cwd;
  proto::Record record;
  proto::CommandStart* start = record.mutable_command_start();
  start->set_id(id);
  start->set_parent_id(parent);
  start->set_pid(static_cast<int32_t>(1000 + id));
  start->set_executable(Intern(spec.executable));
  for (const std::string& arg : spec.argv) start->add_argv(Intern(arg));
  for (const std::string& entry : spec.env) start->add_env(Intern(entry));
  start->set_cwd(Intern(spec.cwd));
  start->set_start_time_ns(static_cast<int64_t>(id));
  start->set_dormant(spec.dormant);
  if (writer_ != nullptr) {
    EXPECT_TRUE(writer_->Write(record).ok());
  }
  return id;
}

uint64_t TraceBuilder::Start(uint64_t parent, const CommandSpec& spec) {
  const uint64_t id = StartWithoutExec(parent, spec);
  Exec(parent != 0 ? parent : id, spec.executable);
  return id;
}

void TraceBuilder::End(uint64_t command, int exit_code) {
  proto::Record record;
  proto::CommandEnd* end = record.mutable_command_end();
  end->set_id(command);
  end->set_end_time_ns(static_cast<int64_t>(1000 + command));
  end->set_how(proto::CommandEnd::EXITED);
  end->set_exit_code(exit_code);
  // As the recorder's EndCommand: the state each changed path is left in.
  for (const std::string& path : outputs_[command]) {
    proto::Output* output = end->add_outputs();
    output->set_path(Intern(path));
    proto::Version* version = output->mutable_version();
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) {
      version->set_absent(true);
    } else if (S_ISREG(st.st_mode)) {
      SetFileVersion(hasher_, path, version);
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = readlink(path.c_str(), target, sizeof(target));
      version->set_mode(st.st_mode);
      if (n >= 0) version->set_symlink_target(std::string(target, n));
    } else {
      version->set_mode(st.st_mode);
    }
  }
  outputs_.erase(command);
  for (const auto& [path, written_as] : other_names_[command]) {
    proto::Output* output = end->add_outputs();
    output->set_path(Intern(path));
    SetFileVersion(hasher_, written_as, output->mutable_version());
    output->set_same_file_as(Intern(written_as));
  }
  other_names_.erase(command);
  if (writer_ != nullptr) {
    EXPECT_TRUE(writer_->Write(record).ok());
  }
}

proto::Ref TraceBuilder::Ref(uint64_t command, const std::string& path) {
  proto::Ref ref;
  const std::string& cwd = cwd_[command];
  std::string base = "/";
  std::string below = path;
  if (!cwd.empty() && path.starts_with(cwd + "/")) {
    base = cwd;
    below = path.substr(cwd.size() + 1);
    ref.set_base(proto::BASE_CWD);
  } else {
    ref.set_base(proto::BASE_ROOT);
  }
  ref.set_base_path(Intern(base));
  std::string walked = base;
  uint32_t found = 0;
  bool missing = false;
  for (const std::string& name : SplitPath(below)) {
    ref.add_components(Intern(name));
    if (walked.back() != '/') walked += '/';
    walked += name;
    if (!missing && Exists(walked)) {
      ++found;
    } else {
      missing = true;
    }
  }
  ref.set_found(found);
  return ref;
}

proto::Operation TraceBuilder::Observe(uint64_t command, proto::OpKind kind,
                                       const std::string& path) {
  proto::Operation op;
  op.set_command(command);
  op.set_kind(kind);
  op.set_syscall("test");
  *op.mutable_ref() = Ref(command, path);
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    op.set_error(errno);
    return op;
  }
  switch (kind) {
    case proto::READ:
    case proto::EXEC:
      SetFileVersion(hasher_, path, op.mutable_version());
      break;
    case proto::STAT:
      if (stat(path.c_str(), &st) == 0) {
        op.mutable_version()->set_mode(st.st_mode);
        if (S_ISREG(st.st_mode)) {
          op.mutable_version()->set_size(st.st_size);
          op.mutable_version()->set_mtime_ns(st.st_mtim.tv_sec * 1'000'000'000LL +
                                             st.st_mtim.tv_nsec);
        }
      }
      break;
    case proto::LIST: {
      absl::StatusOr<std::vector<std::string>> names = ListNames(path);
      if (!names.ok()) {
        ADD_FAILURE() << names.status();
        break;
      }
      const Digest listing = HashNames(*names);
      op.mutable_version()->set_listing_sha256(listing.data(), listing.size());
      std::string* joined = op.mutable_version()->mutable_listing_names();
      for (const std::string& name : *names) joined->append(name).push_back('\0');
      break;
    }
    case proto::READLINK: {
      char target[4096];
      ssize_t n = readlink(path.c_str(), target, sizeof(target));
      if (n >= 0) {
        op.set_text(std::string(target, n));
      } else {
        op.set_error(errno);
      }
      break;
    }
    default:
      break;
  }
  return op;
}

size_t TraceBuilder::Add(const proto::Operation& op, bool intern_syscall) {
  proto::Record record;
  *record.mutable_operation() = op;
  if (intern_syscall && !op.syscall().empty()) {
    record.mutable_operation()->set_syscall_name(Intern(op.syscall()));
    record.mutable_operation()->clear_syscall();
  }
  if (writer_ != nullptr) {
    EXPECT_TRUE(writer_->Write(record).ok());
  }
  return ops_++;
}

size_t TraceBuilder::Get(uint64_t command, const std::string& path) {
  return Add(Observe(command, proto::GET, path));
}

size_t TraceBuilder::Read(uint64_t command, const std::string& path) {
  return Add(Observe(command, proto::READ, path));
}

size_t TraceBuilder::Exec(uint64_t command, const std::string& path) {
  return Add(Observe(command, proto::EXEC, path));
}

size_t TraceBuilder::Stat(uint64_t command, const std::string& path) {
  return Add(Observe(command, proto::STAT, path));
}

size_t TraceBuilder::List(uint64_t command, const std::string& dir) {
  return Add(Observe(command, proto::LIST, dir));
}

size_t TraceBuilder::Readlink(uint64_t command, const std::string& path) {
  return Add(Observe(command, proto::READLINK, path));
}

void TraceBuilder::OtherName(uint64_t command, const std::string& path,
                             const std::string& written_as) {
  other_names_[command].emplace_back(path, written_as);
}

void TraceBuilder::AddOutput(uint64_t command, const std::string& path) {
  std::vector<std::string>& outputs = outputs_[command];
  if (std::find(outputs.begin(), outputs.end(), path) == outputs.end()) outputs.push_back(path);
}

size_t TraceBuilder::Change(uint64_t command, proto::OpKind kind, const std::string& path) {
  proto::Operation op;
  op.set_command(command);
  op.set_kind(kind);
  op.set_syscall("test");
  *op.mutable_ref() = Ref(command, path);
  AddOutput(command, path);
  return Add(op);
}

size_t TraceBuilder::Write(uint64_t command, const std::string& path, proto::LinkSource create) {
  proto::Operation op;
  op.set_command(command);
  op.set_kind(proto::WRITE);
  op.set_syscall("openat");
  *op.mutable_ref() = Ref(command, path);
  op.set_create(create);
  op.set_truncate(true);
  AddOutput(command, path);
  return Add(op);
}

size_t TraceBuilder::Link(uint64_t command, const std::string& path, proto::LinkSource create,
                          const std::string& text) {
  proto::Operation op;
  op.set_command(command);
  op.set_kind(proto::LINK);
  op.set_syscall("test");
  *op.mutable_ref() = Ref(command, path);
  op.set_create(create);
  op.set_text(text);
  AddOutput(command, path);
  return Add(op);
}

size_t TraceBuilder::Unlink(uint64_t command, const std::string& path) {
  return Change(command, proto::UNLINK, path);
}

size_t TraceBuilder::Rename(uint64_t command, const std::string& from, const std::string& to) {
  proto::Operation op;
  op.set_command(command);
  op.set_kind(proto::RENAME);
  op.set_syscall("renameat2");
  *op.mutable_ref() = Ref(command, from);
  *op.mutable_ref2() = Ref(command, to);
  AddOutput(command, from);
  AddOutput(command, to);
  return Add(op);
}

size_t TraceBuilder::Chmod(uint64_t command, const std::string& path, uint32_t mode) {
  proto::Operation op;
  op.set_command(command);
  op.set_kind(proto::CHMOD);
  op.set_syscall("chmod");
  *op.mutable_ref() = Ref(command, path);
  op.set_number(mode);
  AddOutput(command, path);
  return Add(op);
}

size_t TraceBuilder::Trunc(uint64_t command, const std::string& path, uint64_t length) {
  proto::Operation op;
  op.set_command(command);
  op.set_kind(proto::TRUNC);
  op.set_syscall("truncate");
  *op.mutable_ref() = Ref(command, path);
  op.set_number(length);
  AddOutput(command, path);
  return Add(op);
}

size_t TraceBuilder::Pipe(uint64_t command, proto::OpKind kind, uint64_t pipe_id) {
  proto::Operation op;
  op.set_command(command);
  op.set_kind(kind);
  op.set_syscall("(inherited)");
  op.set_number(pipe_id);
  proto::Ref* ref = op.mutable_ref();
  ref->set_base(proto::BASE_FD);
  ref->set_base_fd(kind == proto::PIPE_READ ? 0 : 1);
  ref->set_base_path(Intern(absl::StrCat("pipe:[", pipe_id, "]")));
  ref->set_is_fd(true);
  return Add(op);
}

void TraceBuilder::Finish(int root_exit_status) {
  if (writer_ == nullptr) return;
  EXPECT_TRUE(writer_->Finish(root_exit_status).ok());
  writer_.reset();
}

}  // namespace dodo::model::testutil
