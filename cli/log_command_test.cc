#include "cli/log_command.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/delimited_message_util.h"
#include "gtest/gtest.h"
#include "model/trace_writer.h"

namespace dodo::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string TempPath(absl::string_view name) {
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  return absl::StrCat(::testing::TempDir(), "/", test->name(), "_", name);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

// Writes traces record by record, as the recorder would.
class TraceBuilder {
 public:
  explicit TraceBuilder(const std::string& path) {
    auto writer = model::TraceWriter::Create(path, proto::Header());
    EXPECT_TRUE(writer.ok()) << writer.status();
    writer_ = std::move(*writer);
  }

  void Start(uint64_t id, uint64_t parent, int pid, std::vector<std::string> argv,
             uint32_t dormant_builds = 0) {
    proto::Record record;
    proto::CommandStart* start = record.mutable_command_start();
    start->set_dormant(dormant_builds != 0);
    start->set_dormant_builds(dormant_builds);
    start->set_id(id);
    start->set_parent_id(parent);
    start->set_pid(pid);
    start->set_executable(writer_->Intern("/usr/bin/" + argv[0]));
    for (const std::string& word : argv) start->add_argv(writer_->Intern(word));
    start->set_cwd(writer_->Intern("/src"));
    Write(record);
  }
  // A READ of ./name.
  void Read(uint64_t command, const std::string& name, int error = 0) {
    proto::Record record;
    proto::Operation* op = record.mutable_operation();
    op->set_command(command);
    op->set_kind(proto::READ);
    op->set_syscall("openat");
    op->mutable_ref()->set_base(proto::BASE_CWD);
    op->mutable_ref()->set_base_path(writer_->Intern("/src"));
    op->mutable_ref()->add_components(writer_->Intern(name));
    op->mutable_ref()->set_found(error == 0 ? 1 : 0);
    op->set_error(error);
    Write(record);
  }
  void Warn(uint64_t command, int pid, const std::string& message) {
    proto::Record record;
    record.mutable_warning()->set_command(command);
    record.mutable_warning()->set_pid(pid);
    record.mutable_warning()->set_syscall("io_uring_setup");
    record.mutable_warning()->set_message(message);
    Write(record);
  }
  // `output`: a file the command wrote, if any; `other_name`: another name
  // of that file (a hard link), if any.
  void Exit(uint64_t id, int code, const std::string& output = "",
            const std::string& other_name = "") {
    proto::Record record;
    record.mutable_command_end()->set_id(id);
    record.mutable_command_end()->set_how(proto::CommandEnd::EXITED);
    record.mutable_command_end()->set_exit_code(code);
    if (!output.empty()) {
      proto::Output* out = record.mutable_command_end()->add_outputs();
      out->set_path(writer_->Intern(output));
      out->mutable_version()->set_sha256(std::string(32, '\x42'));
      out->mutable_version()->set_size(7);
      if (!other_name.empty()) {
        proto::Output* other = record.mutable_command_end()->add_outputs();
        other->set_path(writer_->Intern(other_name));
        *other->mutable_version() = out->version();
        other->set_same_file_as(out->path());
      }
    }
    Write(record);
  }
  void Finish() { EXPECT_TRUE(writer_->Finish(0).ok()); }
  void Flush() { EXPECT_TRUE(writer_->Flush().ok()); }

 private:
  void Write(const proto::Record& record) { EXPECT_TRUE(writer_->Write(record).ok()); }
  std::unique_ptr<model::TraceWriter> writer_;
};

// make (1) runs cc (2) and ld (3) in parallel; their operations interleave.
std::string WriteParallelBuild() {
  std::string path = TempPath("trace");
  TraceBuilder trace(path);
  trace.Start(1, 0, 100, {"make", "-j2"});
  trace.Read(1, "Makefile");
  trace.Start(2, 1, 101, {"cc", "-c", "a.c"});
  trace.Start(3, 1, 102, {"ld", "-o", "prog", "b.o"});
  trace.Read(2, "a.c");
  trace.Read(3, "b.o");
  trace.Warn(2, 101, "not traced");
  trace.Read(2, "a.h", ENOENT);
  trace.Exit(3, 0);
  trace.Read(1, "prog");
  trace.Exit(2, 1, "/src/a.o");
  trace.Exit(1, 2);
  trace.Finish();
  return path;
}

struct Result {
  int status;
  std::string out;
  std::string err;
};
LogOptions Options(const std::string& path, bool json,
                   std::optional<uint64_t> command = std::nullopt) {
  LogOptions options;
  options.trace_path = path;
  options.json = json;
  options.command = command;
  return options;
}

Result RunLogFor(const LogOptions& options) {
  std::ostringstream out;
  std::ostringstream err;
  int status = RunLog(options, out, err);
  return {status, out.str(), err.str()};
}

TEST(LogCommandTest, GroupsOperationsByCommandInTheOrderCommandsEnd) {
  Result result = RunLogFor(Options(WriteParallelBuild(), false));
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.err, "");
  EXPECT_THAT(Lines(result.out), ElementsAre(                                   //
                                     "[3] (parent 1) pid 102: ld -o prog b.o",  //
                                     R"(  R(GET("b.o", .)) = OK)",              //
                                     "[3] exit 0",                              //
                                     "[2] (parent 1) pid 101: cc -c a.c",       //
                                     R"(  R(GET("a.c", .)) = OK)",
                                     "  warning: [cmd 2] pid 101 io_uring_setup: not traced",
                                     R"(  R(GET("a.h", .)) = ENOENT)",  //
                                     R"(  produced "/src/a.o" [sha256:42424242])",
                                     "[2] exit 1",                       //
                                     "[1] pid 100: make -j2",            //
                                     R"(  R(GET("Makefile", .)) = OK)",  //
                                     R"(  R(GET("prog", .)) = OK)",      //
                                     "[1] exit 2"));
}

// After `ln a.o b.o`, cc wrote a.o: b.o is another name of the same file.
TEST(LogCommandTest, OtherNamesOfAFileWrittenAreShownAsSuch) {
  std::string path = TempPath("trace");
  TraceBuilder trace(path);
  trace.Start(1, 0, 100, {"cc", "-c", "a.c"});
  trace.Exit(1, 0, "/src/a.o", "/src/b.o");
  trace.Finish();
  Result text = RunLogFor(Options(path, false));
  EXPECT_EQ(text.status, 0);
  EXPECT_THAT(
      Lines(text.out),
      ElementsAre("[1] pid 100: cc -c a.c", R"(  produced "/src/a.o" [sha256:42424242])",
                  R"(  produced "/src/b.o" as another name of "/src/a.o" [sha256:42424242])",
                  "[1] exit 0"));
  Result json = RunLogFor(Options(path, true));
  EXPECT_EQ(json.status, 0);
  EXPECT_THAT(json.out, HasSubstr(R"({"path":"/src/b.o","same_file_as":"/src/a.o","sha256":")"));
}

// A dormant command (kept from an earlier build, no part of this one) says
// so in its heading and in JSON.
TEST(LogCommandTest, DormantCommandsAreMarked) {
  std::string path = TempPath("trace");
  TraceBuilder trace(path);
  trace.Start(1, 0, 100, {"make"});
  trace.Exit(1, 0);
  trace.Start(2, 1, 90, {"cc", "-c", "b.c"}, /*dormant_builds=*/3);
  trace.Exit(2, 0);
  trace.Finish();
  Result text = RunLogFor(Options(path, false));
  EXPECT_EQ(text.status, 0);
  EXPECT_THAT(Lines(text.out),
              ElementsAre("[1] pid 100: make", "[1] exit 0",
                          "[2] (parent 1) dormant pid 90: cc -c b.c", "[2] exit 0"));
  Result json = RunLogFor(Options(path, true));
  EXPECT_EQ(json.status, 0);
  EXPECT_THAT(json.out, HasSubstr(R"("dormant":true,"dormant_builds":3)"));
}

TEST(LogCommandTest, CommandFilterPrintsOneCommand) {
  std::string path = WriteParallelBuild();
  Result result = RunLogFor(Options(path, false, 2));
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.err, "");
  EXPECT_THAT(Lines(result.out),
              ElementsAre("[2] (parent 1) pid 101: cc -c a.c", R"(  R(GET("a.c", .)) = OK)",
                          "  warning: [cmd 2] pid 101 io_uring_setup: not traced",
                          R"(  R(GET("a.h", .)) = ENOENT)",
                          R"(  produced "/src/a.o" [sha256:42424242])", "[2] exit 1"));

  Result missing = RunLogFor(Options(path, false, 99));
  EXPECT_EQ(missing.status, 1);
  EXPECT_EQ(missing.out, "");
  EXPECT_EQ(missing.err, absl::StrCat("dodo log: ", path, ": no command 99 in the trace\n"));
}

TEST(LogCommandTest, JsonStreamsInTraceOrder) {
  std::string path = WriteParallelBuild();
  Result result = RunLogFor(Options(path, true));
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.err, "");
  std::vector<std::string> operations;
  for (const std::string& line : Lines(result.out)) {
    EXPECT_THAT(line, StartsWith("{\"type\":\""));
    EXPECT_EQ(line.back(), '}');
    if (line.starts_with("{\"type\":\"operation\"")) operations.push_back(line);
  }
  ASSERT_EQ(operations.size(), 5u);
  EXPECT_THAT(operations[0], HasSubstr(R"("command":1,"kind":"READ","syscall":"openat",)"
                                       R"("path":"/src/Makefile","found":1,"error":"OK")"));
  EXPECT_THAT(operations[1], HasSubstr(R"("command":2,)"));
  EXPECT_THAT(operations[2], HasSubstr(R"("command":3,)"));
  EXPECT_THAT(operations[3], HasSubstr(R"("path":"/src/a.h","found":0,"error":"ENOENT")"));
  EXPECT_THAT(operations[4], HasSubstr(R"("notation":"R(GET(\"prog\", .)) = OK")"));

  std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), 12u);
  EXPECT_EQ(lines[0],
            R"({"type":"command","id":1,"parent":0,"pid":100,"executable":"/usr/bin/make",)"
            R"("argv":["make","-j2"],"cwd":"/src","start_time_ns":0})");
  EXPECT_EQ(lines[6], R"({"type":"warning","command":2,"pid":101,"syscall":"io_uring_setup",)"
                      R"("message":"not traced"})");
  EXPECT_EQ(lines[8], R"({"type":"command_end","id":3,"how":"EXITED","exit_code":0,)"
                      R"("end_time_ns":0,"text":"exit 0"})");

  std::string digest;
  for (int i = 0; i < 32; ++i) digest += "42";
  EXPECT_EQ(lines[10], R"({"type":"command_end","id":2,"how":"EXITED","exit_code":1,)"
                       R"("end_time_ns":0,"text":"exit 1","outputs":[{"path":"/src/a.o",)"
                       R"("sha256":")" +
                           digest + R"(","size":7}]})");

  Result filtered = RunLogFor(Options(path, true, 3));
  std::vector<std::string> filtered_lines = Lines(filtered.out);
  ASSERT_EQ(filtered_lines.size(), 3u);
  EXPECT_THAT(filtered_lines[0], StartsWith(R"({"type":"command","id":3,)"));
  EXPECT_THAT(filtered_lines[1], HasSubstr(R"("path":"/src/b.o")"));
  EXPECT_THAT(filtered_lines[2], StartsWith(R"({"type":"command_end","id":3,)"));
}

// The descriptors a command inherited, as the exec gate compares them.
TEST(LogCommandTest, JsonListsTheInheritedDescriptors) {
  const std::string path = TempPath("trace");
  {
    auto writer = model::TraceWriter::Create(path, proto::Header());
    ASSERT_TRUE(writer.ok()) << writer.status();
    proto::Record record;
    proto::CommandStart* start = record.mutable_command_start();
    start->set_id(1);
    start->set_pid(100);
    start->add_argv((*writer)->Intern("tr"));
    proto::InheritedFd* in = start->add_fds();
    in->set_fd(0);
    in->set_kind(proto::FD_PIPE);
    in->set_pipe_id(77);
    in->set_readable(true);
    in->set_drained(true);
    proto::InheritedFd* out = start->add_fds();
    out->set_fd(1);
    out->set_kind(proto::FD_FILE);
    out->set_path((*writer)->Intern("/src/tmp.19791"));
    out->set_writable(true);
    out->set_size(12);
    proto::InheritedFd* err = start->add_fds();
    err->set_fd(2);
    err->set_kind(proto::FD_TTY);
    err->set_description("/dev/pts/0");
    err->set_writable(true);
    err->set_external(true);
    ASSERT_TRUE((*writer)->Write(record).ok());
    ASSERT_TRUE((*writer)->Finish(0).ok());
  }
  Result result = RunLogFor(Options(path, true));
  EXPECT_EQ(result.status, 0) << result.err;
  EXPECT_THAT(
      result.out,
      HasSubstr(R"("fds":[{"fd":0,"kind":"FD_PIPE","pipe":77,"readable":true,)"
                R"("drained":true},{"fd":1,"kind":"FD_FILE","path":"/src/tmp.19791",)"
                R"("writable":true,"size":12},{"fd":2,"kind":"FD_TTY","description":"/dev/pts/0",)"
                R"("writable":true,"external":true}]})"));
}

TEST(LogCommandTest, TruncatedTracePrintsEverythingThenWarns) {
  std::string full = WriteParallelBuild();
  std::string bytes;
  {
    std::ifstream in(full, std::ios::binary);
    std::ostringstream contents;
    contents << in.rdbuf();
    bytes = contents.str();
  }
  // Where each record ends.
  std::vector<size_t> ends;
  {
    google::protobuf::io::ArrayInputStream input(bytes.data(), static_cast<int>(bytes.size()));
    proto::Record record;
    while (google::protobuf::util::ParseDelimitedFromZeroCopyStream(&record, &input, nullptr)) {
      ends.push_back(static_cast<size_t>(input.ByteCount()));
    }
  }
  ASSERT_GT(ends.size(), 3u);
  // Cut inside make's CommandEnd, the record before the trailer.
  std::string path = TempPath("cut");
  {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(ends[ends.size() - 2] - 3));
  }
  Result result = RunLogFor(Options(path, false));
  EXPECT_EQ(result.status, 0);
  EXPECT_THAT(result.err,
              StartsWith(absl::StrCat("dodo log: warning: ", path, ": trace cut short after ")));
  EXPECT_EQ(Lines(result.err).size(), 1u);
  std::vector<std::string> lines = Lines(result.out);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], "[3] (parent 1) pid 102: ld -o prog b.o");
  EXPECT_EQ(lines.back(), "[1] (no end recorded)");
  EXPECT_THAT(result.out, HasSubstr("[2] exit 1\n"));
}

TEST(LogCommandTest, CommandsWithoutEndPrintLastInStartOrder) {
  std::string path = TempPath("trace");
  {
    TraceBuilder trace(path);
    trace.Start(5, 0, 10, {"sh"});
    trace.Start(6, 5, 11, {"sleep", "10"});
    trace.Read(6, "x");
    trace.Read(5, "y");
    trace.Read(9, "orphan");  // no CommandStart for 9
    trace.Warn(0, 12, "lost track of a process");
    trace.Flush();
    // No Finish(): dodo was killed.
  }
  Result result = RunLogFor(Options(path, false));
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.err, absl::StrCat("dodo log: warning: ", path,
                                     ": trace is incomplete: no trailer (dodo was killed?)\n"));
  EXPECT_THAT(Lines(result.out), ElementsAre(  //
                                     "warning: pid 12 io_uring_setup: lost track of a process",
                                     "[5] pid 10: sh",                   //
                                     R"(  R(GET("y", .)) = OK)",         //
                                     "[5] (no end recorded)",            //
                                     "[6] (parent 5) pid 11: sleep 10",  //
                                     R"(  R(GET("x", .)) = OK)",         //
                                     "[6] (no end recorded)",            //
                                     "[9] (no start recorded)",          //
                                     R"(  R(GET("orphan", .)) = OK)",    //
                                     "[9] (no end recorded)"));
}

TEST(LogCommandTest, LongBlocksPrintEarlyAndContinue) {
  std::string path = TempPath("trace");
  constexpr int kReads = 10'005;
  {
    TraceBuilder trace(path);
    trace.Start(1, 0, 10, {"ld"});
    trace.Start(2, 1, 11, {"as"});
    trace.Read(2, "a.s");
    for (int i = 0; i < kReads; ++i) trace.Read(1, "f");
    trace.Exit(2, 0);
    trace.Exit(1, 0);
    trace.Finish();
  }
  Result result = RunLogFor(Options(path, false));
  EXPECT_EQ(result.status, 0);
  std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), 1 + 10'000 + 3 + 1 + 5 + 1u);
  EXPECT_EQ(lines[0], "[1] pid 10: ld");
  EXPECT_EQ(lines[1], R"(  R(GET("f", .)) = OK)");
  EXPECT_EQ(lines[10'000], R"(  R(GET("f", .)) = OK)");
  EXPECT_EQ(lines[10'001], "[2] (parent 1) pid 11: as");
  EXPECT_EQ(lines[10'003], "[2] exit 0");
  EXPECT_EQ(lines[10'004], "[1] pid 10: ld (continued)");
  EXPECT_EQ(lines[10'005], R"(  R(GET("f", .)) = OK)");
  EXPECT_EQ(lines.back(), "[1] exit 0");
}

TEST(LogCommandTest, NotATraceExitsTwoWithOneLine) {
  std::string path = TempPath("notes.txt");
  {
    std::ofstream out(path);
    out << "these are not the records you are looking for\n";
  }
  Result result = RunLogFor(Options(path, false));
  EXPECT_EQ(result.status, 2);
  EXPECT_EQ(result.out, "");
  EXPECT_THAT(result.err, StartsWith(absl::StrCat("dodo log: ", path, ": not a dodo trace (")));
  EXPECT_EQ(Lines(result.err).size(), 1u);

  std::string missing = TempPath("missing");
  Result none = RunLogFor(Options(missing, true));
  EXPECT_EQ(none.status, 2);
  EXPECT_EQ(none.out, "");
  EXPECT_EQ(none.err, absl::StrCat("dodo log: ", missing, ": No such file or directory\n"));
}

TEST(LogCommandTest, CommandLine) {
  CLI::App app("dodo");
  LogOptions options;
  AddLogCommand(app, options);
  app.parse("log --json --command 3 build.trace", false);
  EXPECT_TRUE(app.got_subcommand("log"));
  EXPECT_EQ(options.trace_path, "build.trace");
  EXPECT_TRUE(options.json);
  EXPECT_EQ(options.command, 3u);

  CLI::App plain("dodo");
  LogOptions defaults;
  AddLogCommand(plain, defaults);
  plain.parse("log t", false);
  EXPECT_EQ(defaults.trace_path, "t");
  EXPECT_FALSE(defaults.json);
  EXPECT_FALSE(defaults.command.has_value());

  CLI::App strict("dodo");
  LogOptions unused;
  AddLogCommand(strict, unused);
  EXPECT_THROW(strict.parse("log", false), CLI::RequiredError);

  std::string help = app.get_subcommand("log")->help();
  EXPECT_THAT(help, HasSubstr("TRACE"));
  EXPECT_THAT(help, HasSubstr("--json"));
  EXPECT_THAT(help, HasSubstr("--command ID"));
  EXPECT_THAT(help, HasSubstr(R"(GET("gcc", GET("bin", /)) = ENOENT)"));
  EXPECT_THAT(help, HasSubstr("dodo log --command 3 build.trace"));
}

}  // namespace
}  // namespace dodo::cli
