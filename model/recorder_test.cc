// The recorder turns tracer events into operations; these tests feed it
// events by hand (no tracing) on a scratch tree and read back the trace.
#include "model/recorder.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/trace_reader.h"

namespace dodo::model {
namespace {

using tracer::Effect;
using tracer::ExecEvent;
using tracer::FdInfo;
using tracer::FdKind;
using tracer::PathArg;
using tracer::SyscallEvent;

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

struct Loaded {
  std::vector<proto::CommandStart> starts;
  std::vector<proto::CommandEnd> ends;
  std::vector<proto::Operation> ops;
  std::vector<proto::Warning> warnings;
  std::unique_ptr<TraceReader> reader;  // owns the string table
  std::string Str(uint32_t id) const { return std::string(reader->String(id)); }
  std::string Path(const proto::Ref& ref) const {
    std::string path = ref.base() == proto::BASE_ROOT ? "" : Str(ref.base_path());
    for (uint32_t c : ref.components()) path += "/" + Str(c);
    return path;
  }
  // The recorder interns each operation's syscall name.
  std::string Syscall(const proto::Operation& op) const {
    EXPECT_TRUE(op.syscall().empty());
    return Str(op.syscall_name());
  }
  std::vector<proto::Operation> OfKind(proto::OpKind kind) const {
    std::vector<proto::Operation> result;
    for (const proto::Operation& op : ops) {
      if (op.kind() == kind) result.push_back(op);
    }
    return result;
  }
};

class RecorderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = getenv("TEST_TMPDIR");
    std::string templ = std::string(base != nullptr ? base : "/tmp") + "/recorder-XXXXXX";
    std::vector<char> buffer(templ.begin(), templ.end());
    buffer.push_back('\0');
    ASSERT_NE(mkdtemp(buffer.data()), nullptr) << templ;
    char real[4096];
    ASSERT_NE(realpath(buffer.data(), real), nullptr);
    dir_ = real;
    trace_path_ = dir_ + "/t.trace";
    proto::Header header;
    auto writer = TraceWriter::Create(trace_path_, header);
    ASSERT_TRUE(writer.ok()) << writer.status();
    writer_ = *std::move(writer);
    recorder_ = std::make_unique<Recorder>(writer_.get(), &resolver_, &hasher_);
  }

  Loaded Finish() {
    EXPECT_TRUE(recorder_->Finish().ok());
    EXPECT_TRUE(writer_->Finish(0).ok());
    Loaded loaded;
    auto reader = TraceReader::Open(trace_path_);
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return loaded;
    loaded.reader = *std::move(reader);
    proto::Record record;
    while (loaded.reader->Next(&record)) {
      if (record.has_command_start()) loaded.starts.push_back(record.command_start());
      if (record.has_command_end()) loaded.ends.push_back(record.command_end());
      if (record.has_operation()) loaded.ops.push_back(record.operation());
      if (record.has_warning()) loaded.warnings.push_back(record.warning());
    }
    return loaded;
  }

  PathArg Arg(const std::string& path, bool follow = true) {
    PathArg arg;
    arg.path = path;
    arg.base = dir_;
    arg.follow_final = follow;
    return arg;
  }

  // The process `pid` execs /bin/true (a real file, so it can be hashed).
  void Exec(pid_t pid, std::vector<FdInfo> fds = {}) {
    ExecEvent exec;
    exec.pid = pid;
    exec.path = Arg("/bin/true");
    exec.executable = "/usr/bin/true";
    exec.argv = {"true", std::to_string(pid)};
    exec.env = {"A=1"};
    exec.cwd = dir_;
    exec.fds = std::move(fds);
    recorder_->OnExec(exec);
  }

  void Fork(pid_t parent, pid_t child) {
    tracer::ForkEvent fork;
    fork.parent = parent;
    fork.child = child;
    recorder_->OnFork(fork);
  }

  SyscallEvent Open(pid_t pid, const std::string& path, uint64_t flags,
                    std::optional<int64_t> result = 3) {
    SyscallEvent event;
    event.pid = event.tgid = pid;
    event.effect = Effect::kOpen;
    event.syscall = "openat";
    event.path = Arg(path, (flags & O_NOFOLLOW) == 0);
    event.flags = flags;
    event.result = result;
    return event;
  }

  std::string dir_;
  std::string trace_path_;
  std::unique_ptr<TraceWriter> writer_;
  PathResolver resolver_;
  FileHasher hasher_;
  std::unique_ptr<Recorder> recorder_;
};

TEST_F(RecorderTest, RootLaunchOperationsBelongToTheRootCommand) {
  // Before its exec the root process has no command: its PATH search is
  // given to the command it execs.
  tracer::ExecFailedEvent miss;
  miss.pid = 10;
  miss.path = Arg("/nonexistent-dir/true");
  miss.error = ENOENT;
  recorder_->OnExecFailed(miss);
  Exec(10);
  Loaded t = Finish();
  ASSERT_EQ(t.starts.size(), 1u);
  EXPECT_EQ(t.starts[0].parent_id(), 0u);
  EXPECT_EQ(t.Str(t.starts[0].executable()), "/usr/bin/true");
  std::vector<proto::Operation> execs = t.OfKind(proto::EXEC);
  ASSERT_EQ(execs.size(), 2u);
  EXPECT_EQ(execs[0].error(), ENOENT);
  EXPECT_EQ(execs[0].ref().found(), 0u);  // "nonexistent-dir" is the failed lookup
  EXPECT_EQ(execs[0].command(), t.starts[0].id());
  EXPECT_EQ(execs[1].error(), 0);
  EXPECT_EQ(execs[1].version().sha256().size(), 32u);
  EXPECT_EQ(t.Path(execs[1].ref()), "/usr/bin/true");
}

// A command's output file, inherited at exec, is recorded at the size the
// tracer read while the program was still stopped: a skip later replays
// what the program appended from there. The file on disk may be longer by
// the time the recorder hears of the exec (the program runs meanwhile); a
// size taken then left a skipped `cat notes > out` restoring nothing.
TEST_F(RecorderTest, AnInheritedOutputKeepsTheSizeItHadAtTheExec) {
  WriteFile(dir_ + "/out.txt", "abc and what the program wrote since");
  tracer::FdInfo out;
  out.fd = 1;
  out.kind = tracer::FdKind::kFile;
  out.path = dir_ + "/out.txt";
  out.writable = true;
  out.size = 3;
  tracer::FdInfo err = out;
  err.fd = 2;
  err.path = dir_ + "/err.txt";
  err.size.reset();  // (none read: none recorded)
  Exec(10, {out, err});
  Loaded t = Finish();
  ASSERT_EQ(t.starts.size(), 1u);
  ASSERT_EQ(t.starts[0].fds_size(), 2);
  EXPECT_TRUE(t.starts[0].fds(0).has_size());
  EXPECT_EQ(t.starts[0].fds(0).size(), 3u);
  EXPECT_FALSE(t.starts[0].fds(1).has_size());
}

TEST_F(RecorderTest, ReadsCarryTheContentDigestAndMissesTheFailedName) {
  WriteFile(dir_ + "/in.txt", "abc");
  Exec(10);
  recorder_->OnSyscall(Open(10, "in.txt", O_RDONLY));
  recorder_->OnSyscall(Open(10, "sub/missing.h", O_RDONLY, -ENOENT));
  Loaded t = Finish();
  std::vector<proto::Operation> reads = t.OfKind(proto::READ);
  ASSERT_EQ(reads.size(), 2u);
  EXPECT_EQ(reads[0].error(), 0);
  EXPECT_EQ(reads[0].ref().base(), proto::BASE_CWD);
  Digest abc = Sha256OfString("abc");
  EXPECT_EQ(reads[0].version().sha256(), std::string(abc.begin(), abc.end()));
  EXPECT_EQ(reads[1].error(), ENOENT);
  EXPECT_EQ(reads[1].ref().found(), 0u);  // the walk failed at "sub"
  EXPECT_TRUE(reads[1].version().sha256().empty());
}

TEST_F(RecorderTest, WritesAreVersionedWhenTheCommandEnds) {
  Exec(10);
  recorder_->OnSyscall(Open(10, "out.o", O_WRONLY | O_CREAT | O_TRUNC));
  WriteFile(dir_ + "/out.o", "object");  // what the command writes after opening
  tracer::ExitEvent exit;
  exit.pid = 10;
  exit.code = 0;
  recorder_->OnExit(exit);
  Loaded t = Finish();
  std::vector<proto::Operation> writes = t.OfKind(proto::WRITE);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].create(), proto::NEWFILE);
  EXPECT_FALSE(writes[0].exclusive());
  EXPECT_TRUE(writes[0].truncate());
  ASSERT_EQ(t.ends.size(), 1u);
  EXPECT_EQ(t.ends[0].how(), proto::CommandEnd::EXITED);
  ASSERT_EQ(t.ends[0].outputs_size(), 1);
  EXPECT_EQ(t.Str(t.ends[0].outputs(0).path()), dir_ + "/out.o");
  Digest object = Sha256OfString("object");
  EXPECT_EQ(t.ends[0].outputs(0).version().sha256(), std::string(object.begin(), object.end()));
}

TEST_F(RecorderTest, ReadWriteOpenWithoutTruncRecordsBoth) {
  WriteFile(dir_ + "/db", "old");
  Exec(10);
  recorder_->OnSyscall(Open(10, "db", O_RDWR));
  recorder_->OnSyscall(Open(10, "fresh", O_RDWR | O_TRUNC | O_CREAT | O_EXCL));
  Loaded t = Finish();
  ASSERT_EQ(t.OfKind(proto::READ).size(), 1u);  // O_TRUNC, O_EXCL: nothing old is read
  std::vector<proto::Operation> writes = t.OfKind(proto::WRITE);
  ASSERT_EQ(writes.size(), 2u);
  EXPECT_TRUE(writes[1].exclusive());
}

TEST_F(RecorderTest, DirectoryOpenIsALookupAndListingIsHashed) {
  mkdir((dir_ + "/d").c_str(), 0755);
  WriteFile(dir_ + "/d/a", "");
  Exec(10);
  recorder_->OnSyscall(Open(10, "d", O_RDONLY | O_DIRECTORY));
  SyscallEvent list;
  list.pid = list.tgid = 10;
  list.effect = Effect::kList;
  list.syscall = "getdents64";
  FdInfo fd;
  fd.fd = 3;
  fd.kind = FdKind::kDirectory;
  fd.path = dir_ + "/d";
  list.fd = fd;
  recorder_->OnSyscall(list);
  Loaded t = Finish();
  EXPECT_EQ(t.OfKind(proto::GET).size(), 1u);
  std::vector<proto::Operation> lists = t.OfKind(proto::LIST);
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_TRUE(lists[0].ref().is_fd());
  EXPECT_EQ(lists[0].version().listing_sha256().size(), 32u);
}

TEST_F(RecorderTest, SymlinksFollowedAreReportedOncePerCommand) {
  mkdir((dir_ + "/real").c_str(), 0755);
  WriteFile(dir_ + "/real/f", "x");
  ASSERT_EQ(symlink("real", (dir_ + "/alias").c_str()), 0);
  Exec(10);
  recorder_->OnSyscall(Open(10, "alias/f", O_RDONLY));
  recorder_->OnSyscall(Open(10, "alias/f", O_RDONLY));
  Loaded t = Finish();
  std::vector<proto::Operation> links;
  for (const proto::Operation& op : t.OfKind(proto::READLINK)) {
    if (t.Path(op.ref()) != "/bin") links.push_back(op);  // /bin -> usr/bin, from the exec
  }
  ASSERT_EQ(links.size(), 1u);
  EXPECT_EQ(links[0].text(), "real");
  EXPECT_EQ(t.Path(links[0].ref()), dir_ + "/alias");
  // The second open repeats the first: one READ (see the Repeat tests).
  std::vector<proto::Operation> reads = t.OfKind(proto::READ);
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(t.Path(reads[0].ref()), dir_ + "/real/f");
}

// Repeats: an observation a command already made, with nothing changed since.

TEST_F(RecorderTest, RepeatedObservationIsWrittenOnce) {
  WriteFile(dir_ + "/f", "x");
  Exec(10);
  for (int i = 0; i < 3; ++i) {
    recorder_->OnSyscall(Open(10, "f", O_RDONLY));
    recorder_->OnSyscall(Open(10, "missing.h", O_RDONLY, -ENOENT));
  }
  EXPECT_EQ(recorder_->stats().repeats_dropped, 4u);
  Loaded t = Finish();
  std::vector<proto::Operation> reads = t.OfKind(proto::READ);
  ASSERT_EQ(reads.size(), 2u);
  EXPECT_EQ(t.Path(reads[0].ref()), dir_ + "/f");
  EXPECT_EQ(reads[0].error(), 0);
  EXPECT_EQ(t.Path(reads[1].ref()), dir_ + "/missing.h");
  EXPECT_EQ(reads[1].error(), ENOENT);
}

// cc1 asks every -I directory for each <bits/...> header: all it learns
// there is that the directory has no `bits`. One operation says so.
TEST_F(RecorderTest, FailedLookupsUnderTheSameMissingNameAreOneObservation) {
  Exec(10);
  recorder_->OnSyscall(Open(10, "inc/bits/types.h", O_RDONLY, -ENOENT));
  recorder_->OnSyscall(Open(10, "inc/bits/wordsize.h", O_RDONLY, -ENOENT));
  recorder_->OnSyscall(Open(10, "inc/sys/cdefs.h", O_RDONLY, -ENOENT));
  WriteFile(dir_ + "/file", "x");
  // Under a file: ENOTDIR, and "file/x" is as absent as "inc" is.
  recorder_->OnSyscall(Open(10, "file/x/y.h", O_RDONLY, -ENOTDIR));
  EXPECT_EQ(recorder_->stats().repeats_dropped, 2u);
  Loaded t = Finish();
  std::vector<proto::Operation> reads = t.OfKind(proto::READ);
  ASSERT_EQ(reads.size(), 2u);
  EXPECT_EQ(t.Path(reads[0].ref()), dir_ + "/inc");
  EXPECT_EQ(reads[0].ref().found(), 0u);
  EXPECT_EQ(reads[0].error(), ENOENT);
  EXPECT_EQ(t.Path(reads[1].ref()), dir_ + "/file/x");
  EXPECT_EQ(reads[1].ref().found(), 1u);
  EXPECT_EQ(reads[1].error(), ENOTDIR);
}

TEST_F(RecorderTest, RepeatedObservationWithAnotherResultIsWritten) {
  WriteFile(dir_ + "/f", "x");
  Exec(10);
  recorder_->OnSyscall(Open(10, "f", O_RDONLY));
  WriteFile(dir_ + "/f", "changed by a process dodo does not trace");
  recorder_->OnSyscall(Open(10, "f", O_RDONLY));
  Loaded t = Finish();
  std::vector<proto::Operation> reads = t.OfKind(proto::READ);
  ASSERT_EQ(reads.size(), 2u);
  EXPECT_NE(reads[0].version().sha256(), reads[1].version().sha256());
}

// A command that looked for a file before and after another command made and
// removed it saw the same thing twice, yet replay needs the second look: it
// makes the command a reader of what the other one left there.
TEST_F(RecorderTest, ObservationAfterAnyChangeIsNoRepeat) {
  Exec(10);
  Fork(10, 11);
  Exec(11);
  recorder_->OnSyscall(Open(10, "tmp", O_RDONLY, -ENOENT));
  recorder_->OnSyscall(Open(11, "tmp", O_WRONLY | O_CREAT));
  SyscallEvent unlink;
  unlink.pid = unlink.tgid = 11;
  unlink.effect = Effect::kUnlink;
  unlink.syscall = "unlink";
  unlink.path = Arg("tmp", false);
  unlink.result = 0;
  recorder_->OnSyscall(unlink);
  recorder_->OnSyscall(Open(10, "tmp", O_RDONLY, -ENOENT));
  EXPECT_EQ(recorder_->stats().repeats_dropped, 0u);
  Loaded t = Finish();
  int lookups = 0;
  for (const proto::Operation& op : t.OfKind(proto::READ)) {
    if (op.error() == ENOENT && t.Path(op.ref()) == dir_ + "/tmp") ++lookups;
  }
  EXPECT_EQ(lookups, 2);
}

TEST_F(RecorderTest, RepeatsAreKeptPerCommand) {
  WriteFile(dir_ + "/f", "x");
  Exec(10);
  Fork(10, 11);
  Exec(11);
  recorder_->OnSyscall(Open(10, "f", O_RDONLY));
  recorder_->OnSyscall(Open(11, "f", O_RDONLY));
  Loaded t = Finish();
  std::vector<proto::Operation> reads = t.OfKind(proto::READ);
  ASSERT_EQ(reads.size(), 2u);
  EXPECT_NE(reads[0].command(), reads[1].command());
}

TEST_F(RecorderTest, KeepRepeatsWritesEveryObservation) {
  WriteFile(dir_ + "/f", "x");
  recorder_->set_keep_repeats(true);
  Exec(10);
  for (int i = 0; i < 3; ++i) recorder_->OnSyscall(Open(10, "f", O_RDONLY));
  EXPECT_EQ(recorder_->stats().repeats_dropped, 0u);
  Loaded t = Finish();
  EXPECT_EQ(t.OfKind(proto::READ).size(), 3u);
}

TEST_F(RecorderTest, ChildCommandsAndReplacement) {
  Exec(10);
  Fork(10, 11);
  Exec(11);  // a child command
  Exec(11);  // which execs again: the first child command is replaced
  tracer::ExitEvent exit;
  exit.pid = 11;
  exit.signaled = true;
  exit.signal = 9;
  recorder_->OnExit(exit);
  Loaded t = Finish();
  ASSERT_EQ(t.starts.size(), 3u);
  EXPECT_EQ(t.starts[1].parent_id(), t.starts[0].id());
  EXPECT_EQ(t.starts[2].parent_id(), t.starts[1].id());
  ASSERT_EQ(t.ends.size(), 3u);
  EXPECT_EQ(t.ends[0].id(), t.starts[1].id());
  EXPECT_EQ(t.ends[0].how(), proto::CommandEnd::REPLACED);
  EXPECT_EQ(t.ends[1].how(), proto::CommandEnd::KILLED);
  EXPECT_EQ(t.ends[1].signal(), 9);
  EXPECT_EQ(t.ends[2].how(), proto::CommandEnd::HOW_UNKNOWN);  // never saw the root exit
}

TEST_F(RecorderTest, InheritedPipesJoinCommandsButNotTheRootsOwn) {
  FdInfo outside;
  outside.fd = 1;
  outside.kind = FdKind::kPipe;
  outside.pipe_id = 500;
  outside.writable = true;
  Exec(10, {outside});
  FdInfo write_end = outside;
  write_end.pipe_id = 77;
  FdInfo read_end;
  read_end.fd = 0;
  read_end.kind = FdKind::kPipe;
  read_end.pipe_id = 77;
  read_end.readable = true;
  for (pid_t child : {11, 12}) {
    tracer::ForkEvent fork;
    fork.parent = 10;
    fork.child = child;
    recorder_->OnFork(fork);
  }
  Exec(11, {write_end, outside});
  Exec(12, {read_end, outside});
  Loaded t = Finish();
  std::vector<proto::Operation> writes = t.OfKind(proto::PIPE_WRITE);
  std::vector<proto::Operation> reads = t.OfKind(proto::PIPE_READ);
  ASSERT_EQ(writes.size(), 1u);  // pipe 500 came from outside the trace
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(writes[0].number(), 77u);
  EXPECT_EQ(reads[0].number(), 77u);
  EXPECT_NE(writes[0].command(), reads[0].command());
}

TEST_F(RecorderTest, RenameMakesTheOldNameMissingForLaterLookups) {
  WriteFile(dir_ + "/a", "1");
  Exec(10);
  SyscallEvent stat;
  stat.pid = stat.tgid = 10;
  stat.effect = Effect::kStat;
  stat.syscall = "newfstatat";
  stat.path = Arg("a");
  recorder_->OnSyscall(stat);  // caches "a" as present
  ASSERT_EQ(rename((dir_ + "/a").c_str(), (dir_ + "/b").c_str()), 0);
  SyscallEvent mv;
  mv.pid = mv.tgid = 10;
  mv.effect = Effect::kRename;
  mv.syscall = "renameat";
  mv.path = Arg("a", false);
  mv.path2 = Arg("b", false);
  mv.result = 0;
  recorder_->OnSyscall(mv);
  recorder_->OnSyscall(stat);
  Loaded t = Finish();
  std::vector<proto::Operation> stats = t.OfKind(proto::STAT);
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].error(), 0);
  EXPECT_EQ(stats[1].error(), ENOENT);
  std::vector<proto::Operation> renames = t.OfKind(proto::RENAME);
  ASSERT_EQ(renames.size(), 1u);
  EXPECT_EQ(t.Path(renames[0].ref2()), dir_ + "/b");
}

// `sh -c 'x > a'; ln a b; ln a c; sh -c 'y >> b'`: the append changed a
// too, so its command lists a as an output holding b's version, another
// name of b. Not c, which was replaced by another file before it ended.
TEST_F(RecorderTest, OtherNamesOfAFileWrittenAreOutputsToo) {
  auto exit = [&](pid_t pid) {
    tracer::ExitEvent event;
    event.pid = pid;
    recorder_->OnExit(event);
  };
  Exec(10);
  Fork(10, 11);
  Exec(11);
  recorder_->OnSyscall(Open(11, "a", O_WRONLY | O_CREAT | O_TRUNC));
  WriteFile(dir_ + "/a", "one\n");
  exit(11);
  Fork(10, 12);
  Exec(12);
  for (const char* name : {"b", "c"}) {
    ASSERT_EQ(link((dir_ + "/a").c_str(), (dir_ + "/" + name).c_str()), 0);
    SyscallEvent ln;
    ln.pid = ln.tgid = 12;
    ln.effect = Effect::kLink;
    ln.syscall = "linkat";
    ln.path = Arg("a", false);
    ln.path2 = Arg(name, false);
    ln.result = 0;
    recorder_->OnSyscall(ln);
  }
  exit(12);
  Fork(10, 13);
  Exec(13);
  recorder_->OnSyscall(Open(13, "b", O_WRONLY | O_APPEND));
  std::ofstream(dir_ + "/b", std::ios::app) << "two\n";
  ASSERT_EQ(unlink((dir_ + "/c").c_str()), 0);
  WriteFile(dir_ + "/c", "one\ntwo\n");
  exit(13);
  Loaded t = Finish();

  const proto::CommandEnd* append = nullptr;
  for (const proto::CommandEnd& end : t.ends) {
    if (end.id() == t.starts[3].id()) append = &end;
  }
  ASSERT_NE(append, nullptr);
  const Digest both = Sha256OfString("one\ntwo\n");
  std::vector<std::string> lines;
  for (const proto::Output& output : append->outputs()) {
    const std::string& sha = output.version().sha256();
    lines.push_back(
        t.Str(output.path()).substr(dir_.size()) + " " +
        (output.same_file_as() == 0 ? "" : t.Str(output.same_file_as()).substr(dir_.size())) +
        (sha == std::string(both.begin(), both.end()) ? " one two" : " other"));
  }
  EXPECT_EQ(lines, (std::vector<std::string>{"/b  one two", "/a /b one two"}));
}

TEST_F(RecorderTest, ScriptAndItsInterpreterAreBothExecuted) {
  WriteFile(dir_ + "/build.sh", "#!/bin/sh\ntrue\n");
  ExecEvent exec;
  exec.pid = 10;
  exec.path = Arg("./build.sh");
  exec.executable = "/usr/bin/dash";  // what /proc/PID/exe shows for a script
  exec.argv = {"./build.sh"};
  exec.cwd = dir_;
  recorder_->OnExec(exec);
  Loaded t = Finish();
  std::vector<proto::Operation> execs = t.OfKind(proto::EXEC);
  ASSERT_EQ(execs.size(), 2u);
  EXPECT_EQ(t.Path(execs[0].ref()), dir_ + "/build.sh");
  Digest script = Sha256OfString("#!/bin/sh\ntrue\n");
  EXPECT_EQ(execs[0].version().sha256(), std::string(script.begin(), script.end()));
  EXPECT_EQ(t.Path(execs[1].ref()), "/usr/bin/dash");
  EXPECT_EQ(execs[1].version().sha256().size(), 32u);
  EXPECT_NE(execs[1].version().sha256(), execs[0].version().sha256());
}

TEST_F(RecorderTest, AccessChecksThePermissionAskedFor) {
  WriteFile(dir_ + "/plain", "x");
  chmod((dir_ + "/plain").c_str(), 0644);
  Exec(10);
  SyscallEvent access;
  access.pid = access.tgid = 10;
  access.effect = Effect::kAccess;
  access.syscall = "access";
  access.path = Arg("plain");
  access.mode = X_OK;
  recorder_->OnSyscall(access);
  access.mode = F_OK;
  recorder_->OnSyscall(access);
  Loaded t = Finish();
  std::vector<proto::Operation> gets = t.OfKind(proto::GET);
  ASSERT_EQ(gets.size(), 2u);
  EXPECT_EQ(gets[0].error(), EACCES);  // not executable, even for root
  EXPECT_EQ(gets[1].error(), 0);
}

TEST_F(RecorderTest, DevicesAreNotOutputs) {
  Exec(10);
  recorder_->OnSyscall(Open(10, "/dev/null", O_WRONLY | O_CREAT | O_TRUNC));
  tracer::ExitEvent exit;
  exit.pid = 10;
  recorder_->OnExit(exit);
  Loaded t = Finish();
  std::vector<proto::Operation> writes = t.OfKind(proto::WRITE);
  ASSERT_EQ(writes.size(), 1u);
  // Neither created nor truncated: the write keeps the device's mode.
  EXPECT_EQ(writes[0].create(), proto::LINK_NONE);
  EXPECT_FALSE(writes[0].truncate());
  EXPECT_TRUE(S_ISCHR(writes[0].version().mode()));
  ASSERT_EQ(t.ends.size(), 1u);
  EXPECT_EQ(t.ends[0].outputs_size(), 0);
}

// `cmd 2>/dev/null` changes no file: a look at a path after it is still a
// repeat, and a second write to /dev/null is one too.
TEST_F(RecorderTest, WritingToADeviceChangesNothingForTheRepeatFilter) {
  WriteFile(dir_ + "/f", "x");
  Exec(10);
  recorder_->OnSyscall(Open(10, "f", O_RDONLY));
  recorder_->OnSyscall(Open(10, "/dev/null", O_WRONLY | O_CREAT | O_TRUNC));
  recorder_->OnSyscall(Open(10, "f", O_RDONLY));
  recorder_->OnSyscall(Open(10, "/dev/null", O_WRONLY | O_CREAT | O_TRUNC));
  EXPECT_EQ(recorder_->stats().repeats_dropped, 2u);
  // A file written is a change: the next read is written again.
  recorder_->OnSyscall(Open(10, "g", O_WRONLY | O_CREAT | O_TRUNC));
  recorder_->OnSyscall(Open(10, "f", O_RDONLY));
  EXPECT_EQ(recorder_->stats().repeats_dropped, 2u);
  Loaded t = Finish();
  EXPECT_EQ(t.OfKind(proto::READ).size(), 2u);
  EXPECT_EQ(t.OfKind(proto::WRITE).size(), 2u);
}

TEST_F(RecorderTest, ReadlinkGivesTheTargetOrEinval) {
  WriteFile(dir_ + "/plain", "x");
  ASSERT_EQ(symlink("plain", (dir_ + "/lnk").c_str()), 0);
  Exec(10);
  SyscallEvent readlink;
  readlink.pid = readlink.tgid = 10;
  readlink.effect = Effect::kReadlink;
  readlink.syscall = "readlink";
  for (const char* name : {"lnk", "plain", "absent"}) {
    readlink.path = Arg(name, false);
    recorder_->OnSyscall(readlink);
  }
  Loaded t = Finish();
  std::vector<proto::Operation> ops;
  for (const proto::Operation& op : t.OfKind(proto::READLINK)) {
    if (t.Syscall(op) == "readlink") ops.push_back(op);
  }
  ASSERT_EQ(ops.size(), 3u);
  EXPECT_EQ(ops[0].error(), 0);
  EXPECT_EQ(ops[0].text(), "plain");
  EXPECT_EQ(ops[1].error(), EINVAL);
  EXPECT_EQ(ops[2].error(), ENOENT);
}

TEST_F(RecorderTest, WarningsNameTheirCommand) {
  Exec(10);
  tracer::WarningEvent warning;
  warning.pid = 10;
  warning.syscall = "io_uring_setup";
  warning.message = "refused";
  recorder_->OnWarning(warning);
  Loaded t = Finish();
  ASSERT_EQ(t.warnings.size(), 1u);
  EXPECT_EQ(t.warnings[0].command(), t.starts[0].id());
  EXPECT_EQ(t.warnings[0].syscall(), "io_uring_setup");
}

}  // namespace
}  // namespace dodo::model
