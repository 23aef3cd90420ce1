#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/arena.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/unknown_field_set.h"
#include "google/protobuf/util/delimited_message_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "model/trace_reader.h"
#include "model/trace_writer.h"

namespace dodo::model {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

std::string TempPath(absl::string_view name) {
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  return absl::StrCat(::testing::TempDir(), "/", test->name(), "_", name);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

void WriteFile(const std::string& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
}

proto::Header TestHeader() {
  proto::Header header;
  header.set_tool_version("0.1.0");
  header.add_root_argv("make");
  header.add_root_argv("-j2");
  header.set_working_directory("/src");
  header.set_start_time_ns(1234);
  header.set_hostname("host");
  return header;
}

// One record of every kind the caller writes, using interned strings.
std::vector<proto::Record> WriteSampleTrace(TraceWriter& writer) {
  std::vector<proto::Record> records;

  proto::Record start;
  proto::CommandStart* command = start.mutable_command_start();
  command->set_id(1);
  command->set_pid(4242);
  command->set_executable(writer.Intern("/usr/bin/make"));
  command->add_argv(writer.Intern("make"));
  command->add_argv(writer.Intern("-j2"));
  command->add_env(writer.Intern("PATH=/usr/bin"));
  command->set_cwd(writer.Intern("/src"));
  command->set_start_time_ns(99);
  proto::InheritedFd* fd = command->add_fds();
  fd->set_fd(1);
  fd->set_kind(proto::FD_PIPE);
  fd->set_pipe_id(812);
  fd->set_writable(true);
  records.push_back(start);

  proto::Record read;
  proto::Operation* op = read.mutable_operation();
  op->set_command(1);
  op->set_kind(proto::READ);
  op->set_syscall("openat");
  op->mutable_ref()->set_base(proto::BASE_CWD);
  op->mutable_ref()->set_base_path(writer.Intern("/src"));
  op->mutable_ref()->add_components(writer.Intern("Makefile"));
  op->mutable_ref()->set_found(1);
  op->mutable_version()->set_sha256(std::string(32, '\xab'));
  op->mutable_version()->set_size(120);
  op->mutable_version()->set_mode(0100644);
  op->mutable_version()->set_mtime_ns(5);
  records.push_back(read);

  proto::Record rename;
  op = rename.mutable_operation();
  op->set_command(1);
  op->set_kind(proto::RENAME);
  op->set_syscall("renameat2");
  op->mutable_ref()->add_components(writer.Intern("tmp"));
  op->mutable_ref()->add_components(writer.Intern("a.o"));
  op->mutable_ref()->set_found(2);
  op->mutable_ref2()->set_base(proto::BASE_CWD);
  op->mutable_ref2()->add_components(writer.Intern("a.o"));
  op->mutable_ref2()->set_found(1);
  op->set_number(1);
  records.push_back(rename);

  proto::Record warning;
  warning.mutable_warning()->set_command(1);
  warning.mutable_warning()->set_pid(4242);
  warning.mutable_warning()->set_syscall("io_uring_setup");
  warning.mutable_warning()->set_message("unsupported");
  records.push_back(warning);

  proto::Record end;
  end.mutable_command_end()->set_id(1);
  end.mutable_command_end()->set_end_time_ns(100);
  end.mutable_command_end()->set_how(proto::CommandEnd::EXITED);
  end.mutable_command_end()->set_exit_code(2);
  records.push_back(end);

  for (const proto::Record& record : records) {
    EXPECT_TRUE(writer.Write(record).ok());
  }
  return records;
}

std::vector<proto::Record> ReadAll(TraceReader& reader) {
  std::vector<proto::Record> records;
  proto::Record record;
  while (reader.Next(&record)) records.push_back(record);
  return records;
}

// The same through ReadAll(): records, parsed on several threads when there
// are many.
std::vector<proto::Record> ReadAtOnce(TraceReader& reader) {
  google::protobuf::Arena arena;
  std::vector<TraceReader::Item> read;
  reader.ReadAll(&arena, &read);
  std::vector<proto::Record> records;
  for (const TraceReader::Item& item : read) {
    EXPECT_NE(item.record == nullptr, item.operation == nullptr);
    if (item.operation != nullptr) {
      *records.emplace_back().mutable_operation() = *item.operation;
    } else {
      records.push_back(*item.record);
    }
  }
  return records;
}

// Reading `path` record by record and all at once gives the same records,
// strings, trailer and warning.
void ExpectBothWaysAgree(const std::string& path) {
  auto one_by_one = TraceReader::Open(path);
  auto at_once = TraceReader::Open(path);
  ASSERT_TRUE(one_by_one.ok()) << one_by_one.status();
  ASSERT_TRUE(at_once.ok()) << at_once.status();
  const std::vector<proto::Record> expected = ReadAll(**one_by_one);
  const std::vector<proto::Record> read = ReadAtOnce(**at_once);
  ASSERT_EQ(read.size(), expected.size());
  for (size_t i = 0; i < read.size(); ++i) {
    ASSERT_TRUE(MessageDifferencer::Equals(read[i], expected[i])) << "record " << i;
  }
  EXPECT_EQ((*at_once)->warning(), (*one_by_one)->warning());
  EXPECT_EQ((*at_once)->complete(), (*one_by_one)->complete());
  EXPECT_EQ((*at_once)->records_read(), (*one_by_one)->records_read());
  ASSERT_EQ((*at_once)->string_count(), (*one_by_one)->string_count());
  for (uint32_t id = 1; id <= (*at_once)->string_count(); ++id) {
    ASSERT_EQ((*at_once)->String(id), (*one_by_one)->String(id)) << "string " << id;
  }
}

// The raw records of a file and the offset where each one ends.
struct RawRecord {
  proto::Record record;
  size_t end;
};
std::vector<RawRecord> ParseRaw(const std::string& bytes) {
  std::vector<RawRecord> raw;
  google::protobuf::io::ArrayInputStream input(bytes.data(), static_cast<int>(bytes.size()));
  proto::Record record;
  bool clean_eof = false;
  while (google::protobuf::util::ParseDelimitedFromZeroCopyStream(&record, &input, &clean_eof)) {
    raw.push_back({record, static_cast<size_t>(input.ByteCount())});
    record.Clear();
  }
  EXPECT_TRUE(clean_eof);
  return raw;
}

// A trace that inherits another's string table gives every string the
// same id, so an operation written as the other trace's bytes reads back as
// it was, and strings interned later follow the inherited ones.
TEST(TraceIoTest, InheritedStringsKeepTheirIdsForOperationsCopiedAsBytes) {
  const std::string first_path = TempPath("first");
  {
    absl::StatusOr<std::unique_ptr<TraceWriter>> writer =
        TraceWriter::Create(first_path, TestHeader());
    ASSERT_TRUE(writer.ok()) << writer.status();
    WriteSampleTrace(**writer);
    ASSERT_TRUE((*writer)->Finish(0).ok());
  }
  absl::StatusOr<std::unique_ptr<TraceReader>> first = TraceReader::Open(first_path);
  ASSERT_TRUE(first.ok()) << first.status();
  google::protobuf::Arena arena;
  std::vector<TraceReader::Item> items;
  (*first)->ReadAll(&arena, &items);
  auto op = std::find_if(items.begin(), items.end(),
                         [](const TraceReader::Item& item) { return item.operation != nullptr; });
  ASSERT_NE(op, items.end());
  ASSERT_FALSE(op->bytes.empty());
  std::vector<std::string> strings;
  for (uint32_t id = 1; id <= (*first)->string_count(); ++id) {
    strings.emplace_back((*first)->String(id));
  }
  ASSERT_GE(strings.size(), 2u);
  // The records' bytes stay readable once the reader is gone.
  std::unique_ptr<TraceReader::Bytes> bytes = (*first)->ReleaseBytes();
  ASSERT_NE(bytes, nullptr);
  first->reset();

  const std::string second_path = TempPath("second");
  absl::StatusOr<std::unique_ptr<TraceWriter>> writer =
      TraceWriter::Create(second_path, TestHeader());
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->InheritStrings(strings).ok());
  EXPECT_EQ((*writer)->Intern(strings[1]), 2u);
  EXPECT_EQ((*writer)->Intern("a string of the second trace"), strings.size() + 1);
  ASSERT_TRUE((*writer)->WriteRawOperation(op->bytes).ok());
  EXPECT_EQ((*writer)->operations(), 1u);
  ASSERT_TRUE((*writer)->Finish(0).ok());

  absl::StatusOr<std::unique_ptr<TraceReader>> second = TraceReader::Open(second_path);
  ASSERT_TRUE(second.ok()) << second.status();
  proto::Record record;
  ASSERT_TRUE((*second)->Next(&record));
  ASSERT_TRUE(record.has_operation());
  EXPECT_TRUE(MessageDifferencer::Equals(record.operation(), *op->operation))
      << record.operation().DebugString();
  EXPECT_FALSE((*second)->Next(&record));
  EXPECT_TRUE((*second)->complete()) << (*second)->warning();
  EXPECT_EQ((*second)->trailer()->operations(), 1u);
  ASSERT_EQ((*second)->string_count(), strings.size() + 1);
  for (uint32_t id = 1; id <= strings.size(); ++id) {
    EXPECT_EQ((*second)->String(id), strings[id - 1]);
  }
  EXPECT_EQ((*second)->String(static_cast<uint32_t>(strings.size() + 1)),
            "a string of the second trace");
}

TEST(TraceIoTest, StringsAreInheritedBeforeAnyIsInterned) {
  absl::StatusOr<std::unique_ptr<TraceWriter>> writer =
      TraceWriter::Create(TempPath("trace"), TestHeader());
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_EQ((*writer)->Intern("/src"), 1u);
  EXPECT_EQ((*writer)->InheritStrings({"/usr"}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*writer)->Intern("/usr"), 2u);
}

TEST(TraceIoTest, RoundTripsEveryRecordKind) {
  std::string path = TempPath("trace");
  std::vector<proto::Record> written;
  {
    auto writer = TraceWriter::Create(path, TestHeader());
    ASSERT_TRUE(writer.ok()) << writer.status();
    written = WriteSampleTrace(**writer);
    EXPECT_EQ((*writer)->commands(), 1u);
    EXPECT_EQ((*writer)->operations(), 2u);
    EXPECT_EQ((*writer)->warnings(), 1u);
    ASSERT_TRUE((*writer)->Finish(2).ok());
  }

  auto reader = TraceReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  const proto::Header& header = (*reader)->header();
  EXPECT_EQ(header.magic(), "dodo-trace");
  EXPECT_EQ(header.format_version(), 1u);
  EXPECT_EQ(header.tool_version(), "0.1.0");
  EXPECT_THAT(header.root_argv(), ::testing::ElementsAre("make", "-j2"));
  EXPECT_EQ(header.working_directory(), "/src");
  EXPECT_EQ(header.start_time_ns(), 1234);
  EXPECT_EQ(header.hostname(), "host");

  std::vector<proto::Record> read = ReadAll(**reader);
  ASSERT_EQ(read.size(), written.size());
  for (size_t i = 0; i < read.size(); ++i) {
    EXPECT_TRUE(MessageDifferencer::Equals(read[i], written[i]))
        << "record " << i << ":\n"
        << read[i].DebugString() << "\nwritten:\n"
        << written[i].DebugString();
  }
  // Ids resolve to the strings they were interned for.
  const proto::CommandStart& command = read[0].command_start();
  EXPECT_EQ((*reader)->String(command.executable()), "/usr/bin/make");
  EXPECT_EQ((*reader)->String(command.argv(0)), "make");
  EXPECT_EQ((*reader)->String(command.env(0)), "PATH=/usr/bin");
  EXPECT_EQ((*reader)->String(read[1].operation().ref().components(0)), "Makefile");
  EXPECT_EQ((*reader)->String(0), "");
  EXPECT_EQ((*reader)->String(100000), "");

  EXPECT_TRUE((*reader)->complete());
  EXPECT_EQ((*reader)->warning(), "");
  ASSERT_TRUE((*reader)->trailer().has_value());
  EXPECT_EQ((*reader)->trailer()->commands(), 1u);
  EXPECT_EQ((*reader)->trailer()->operations(), 2u);
  EXPECT_EQ((*reader)->trailer()->warnings(), 1u);
  EXPECT_EQ((*reader)->trailer()->root_exit_status(), 2);
  EXPECT_GT((*reader)->trailer()->end_time_ns(), 0);
  // The end stays the end.
  proto::Record record;
  EXPECT_FALSE((*reader)->Next(&record));
}

TEST(TraceIoTest, InternsEachStringOnce) {
  std::string path = TempPath("trace");
  {
    auto writer = TraceWriter::Create(path, TestHeader());
    ASSERT_TRUE(writer.ok()) << writer.status();
    TraceWriter& w = **writer;
    EXPECT_EQ(w.Intern(""), 0u);
    uint32_t a = w.Intern("a.c");
    uint32_t b = w.Intern("b.c");
    EXPECT_EQ(a, 1u);
    EXPECT_EQ(b, 2u);
    EXPECT_EQ(w.Intern("a.c"), a);
    EXPECT_EQ(w.Intern(std::string("b.") + "c"), b);
    // Bytes that are not text intern like any other.
    EXPECT_EQ(w.Intern(std::string("x\0y", 3)), 3u);
    ASSERT_TRUE(w.Finish(0).ok());
  }
  std::vector<RawRecord> raw = ParseRaw(ReadFile(path));
  std::vector<std::string> strings;
  for (const RawRecord& r : raw) {
    if (r.record.has_string()) strings.push_back(r.record.string().value());
  }
  EXPECT_THAT(strings, ::testing::ElementsAre("a.c", "b.c", std::string("x\0y", 3)));

  auto reader = TraceReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_TRUE(ReadAll(**reader).empty());
  EXPECT_EQ((*reader)->String(1), "a.c");
  EXPECT_EQ((*reader)->String(2), "b.c");
  EXPECT_EQ((*reader)->String(3), std::string_view("x\0y", 3));
  EXPECT_TRUE((*reader)->complete());
}

TEST(TraceIoTest, WriterRejectsRecordsItOwnsAndWritesAfterFinish) {
  std::string path = TempPath("trace");
  auto writer = TraceWriter::Create(path, TestHeader());
  ASSERT_TRUE(writer.ok()) << writer.status();
  proto::Record record;
  record.mutable_header()->set_magic("dodo-trace");
  EXPECT_EQ((*writer)->Write(record).code(), absl::StatusCode::kInvalidArgument);
  record.mutable_trailer();
  EXPECT_EQ((*writer)->Write(record).code(), absl::StatusCode::kInvalidArgument);
  record.mutable_string()->set_value("x");
  EXPECT_EQ((*writer)->Write(record).code(), absl::StatusCode::kInvalidArgument);
  record.Clear();
  EXPECT_EQ((*writer)->Write(record).code(), absl::StatusCode::kInvalidArgument);

  ASSERT_TRUE((*writer)->Finish(0).ok());
  EXPECT_TRUE((*writer)->Finish(1).ok());  // idempotent: no second trailer
  record.mutable_operation()->set_command(1);
  EXPECT_EQ((*writer)->Write(record).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*writer)->operations(), 0u);

  std::vector<RawRecord> raw = ParseRaw(ReadFile(path));
  ASSERT_EQ(raw.size(), 2u);
  EXPECT_TRUE(raw[0].record.has_header());
  ASSERT_TRUE(raw[1].record.has_trailer());
  EXPECT_EQ(raw[1].record.trailer().root_exit_status(), 0);
}

TEST(TraceIoTest, CreateFailsInAMissingDirectory) {
  std::string path = TempPath("no/such/dir/trace");
  auto writer = TraceWriter::Create(path, TestHeader());
  ASSERT_FALSE(writer.ok());
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(writer.status().message(), HasSubstr(path));
}

// A disk that fills up: the first write that reaches the file fails, and
// that error, naming the file and the cause, is what every later call gives.
TEST(TraceIoTest, AFullDiskFailsTheWritesWithTheFileAndTheCause) {
  auto writer = TraceWriter::Create("/dev/full", TestHeader());
  ASSERT_TRUE(writer.ok()) << writer.status();
  proto::Record record;
  record.mutable_command_start()->set_id(1);
  // Buffered: nothing has reached the file yet.
  EXPECT_TRUE((*writer)->Write(record).ok());
  const absl::Status flushed = (*writer)->Flush();
  EXPECT_EQ(flushed.code(), absl::StatusCode::kResourceExhausted) << flushed;
  EXPECT_THAT(flushed.message(), HasSubstr("/dev/full: cannot write trace"));
  EXPECT_EQ((*writer)->Write(record), flushed);
  EXPECT_EQ((*writer)->Finish(0), flushed);
}

TEST(TraceIoTest, MissingTrailerReadsAsIncomplete) {
  std::string path = TempPath("trace");
  std::vector<proto::Record> written;
  {
    auto writer = TraceWriter::Create(path, TestHeader());
    ASSERT_TRUE(writer.ok()) << writer.status();
    written = WriteSampleTrace(**writer);
    // Destroyed without Finish(), as when dodo is killed after a flush.
  }
  auto reader = TraceReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(ReadAll(**reader).size(), written.size());
  EXPECT_FALSE((*reader)->complete());
  EXPECT_FALSE((*reader)->trailer().has_value());
  EXPECT_EQ((*reader)->warning(),
            absl::StrCat(path, ": trace is incomplete: no trailer (dodo was killed?)"));
}

TEST(TraceIoTest, TruncatedAtEveryOffsetYieldsTheWholeRecordsBeforeTheCut) {
  std::string full_path = TempPath("full");
  {
    auto writer = TraceWriter::Create(full_path, TestHeader());
    ASSERT_TRUE(writer.ok()) << writer.status();
    WriteSampleTrace(**writer);
    ASSERT_TRUE((*writer)->Finish(0).ok());
  }
  const std::string bytes = ReadFile(full_path);
  const std::vector<RawRecord> raw = ParseRaw(bytes);
  ASSERT_GT(raw.size(), 10u);
  const size_t header_end = raw[0].end;

  std::string path = TempPath("cut");
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    SCOPED_TRACE(absl::StrCat("cut at byte ", cut, " of ", bytes.size()));
    WriteFile(path, std::string_view(bytes).substr(0, cut));
    auto reader = TraceReader::Open(path);
    if (cut < header_end) {
      ASSERT_FALSE(reader.ok());
      EXPECT_EQ(reader.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(reader.status().message(), HasSubstr(path + ": not a dodo trace"));
      continue;
    }
    ASSERT_TRUE(reader.ok()) << reader.status();

    std::vector<proto::Record> expected;
    bool cut_between_records = cut == header_end;
    for (const RawRecord& r : raw) {
      if (r.end == cut) cut_between_records = true;
      if (r.end > cut) break;
      if (!r.record.has_string() && !r.record.has_header() && !r.record.has_trailer()) {
        expected.push_back(r.record);
      }
    }
    ExpectBothWaysAgree(path);
    std::vector<proto::Record> read = ReadAll(**reader);
    ASSERT_EQ(read.size(), expected.size());
    for (size_t i = 0; i < read.size(); ++i) {
      EXPECT_TRUE(MessageDifferencer::Equals(read[i], expected[i])) << "record " << i;
    }
    EXPECT_FALSE((*reader)->complete());
    EXPECT_THAT((*reader)->warning(), HasSubstr(path + ": trace "));
    if (cut_between_records) {
      EXPECT_THAT((*reader)->warning(), HasSubstr("no trailer"));
    } else {
      EXPECT_THAT((*reader)->warning(), HasSubstr("cut short after"));
    }
  }
}

TEST(TraceIoTest, OpenRejectsFilesThatAreNotTraces) {
  struct Case {
    std::string name;
    std::string contents;
  };
  std::string long_text;
  for (int i = 0; i < 40; ++i) long_text += "all work and no play makes a dull trace\n";
  proto::Record not_header;
  not_header.mutable_operation()->set_command(7);
  proto::Record wrong_magic;
  wrong_magic.mutable_header()->set_magic("dodo-trac");
  wrong_magic.mutable_header()->set_format_version(1);
  auto delimited = [](const proto::Record& record) {
    std::string out;
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::util::SerializeDelimitedToZeroCopyStream(record, &stream);
    return out;
  };
  const std::vector<Case> cases = {
      {"empty", ""},
      {"garbage", std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01zz", 13)},
      {"short text", "hello, world\n"},
      {"long text", long_text},
      {"not header", delimited(not_header)},
      {"wrong magic", delimited(wrong_magic)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string path = TempPath(c.name);
    WriteFile(path, c.contents);
    auto reader = TraceReader::Open(path);
    ASSERT_FALSE(reader.ok());
    EXPECT_EQ(reader.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(reader.status().message(), HasSubstr(path + ": not a dodo trace ("));
  }
}

TEST(TraceIoTest, OpenRejectsNewerFormatVersions) {
  proto::Record record;
  record.mutable_header()->set_magic("dodo-trace");
  record.mutable_header()->set_format_version(2);
  std::string bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  ASSERT_TRUE(google::protobuf::util::SerializeDelimitedToZeroCopyStream(record, &stream));
  std::string path = TempPath("v2");
  WriteFile(path, bytes);
  auto reader = TraceReader::Open(path);
  ASSERT_FALSE(reader.ok());
  EXPECT_THAT(reader.status().message(), HasSubstr(path + ": trace format version 2 is newer"));
}

TEST(TraceIoTest, OpenReportsMissingFilesAndDirectories) {
  std::string path = TempPath("missing");
  auto reader = TraceReader::Open(path);
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(reader.status().message(), HasSubstr(path + ": No such file"));

  auto dir = TraceReader::Open(::testing::TempDir());
  ASSERT_FALSE(dir.ok());
  EXPECT_THAT(dir.status().message(), HasSubstr(::testing::TempDir()));
}

TEST(TraceIoTest, DataAfterTheTrailerIsReported) {
  std::string path = TempPath("trace");
  {
    auto writer = TraceWriter::Create(path, TestHeader());
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Finish(0).ok());
  }
  std::string bytes = ReadFile(path) + "junk";
  WriteFile(path, bytes);
  auto reader = TraceReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_TRUE(ReadAll(**reader).empty());
  EXPECT_TRUE((*reader)->complete());
  EXPECT_THAT((*reader)->warning(), HasSubstr("data after the trailer"));
  ExpectBothWaysAgree(path);
}

// Enough records for ReadAll() to parse them on every CPU there is: whole,
// cut short in its last quarter, and with a damaged record there.
TEST(TraceIoTest, ReadAllOfABigTraceAgreesWithNext) {
  const std::string full_path = TempPath("full");
  constexpr int kOperations = 120000;
  {
    auto writer = TraceWriter::Create(full_path, TestHeader());
    ASSERT_TRUE(writer.ok()) << writer.status();
    for (int i = 0; i < kOperations; ++i) {
      proto::Record record;
      proto::Operation* op = record.mutable_operation();
      op->set_command(1 + i % 7);
      op->set_kind(proto::READ);
      op->mutable_ref()->set_base(proto::BASE_ROOT);
      op->mutable_ref()->add_components((*writer)->Intern(absl::StrCat("file", i % 5000)));
      ASSERT_TRUE((*writer)->Write(record).ok());
    }
    ASSERT_TRUE((*writer)->Finish(0).ok());
  }
  ExpectBothWaysAgree(full_path);
  {
    auto reader = TraceReader::Open(full_path);
    ASSERT_TRUE(reader.ok()) << reader.status();
    EXPECT_EQ(ReadAtOnce(**reader).size(), static_cast<size_t>(kOperations));
    EXPECT_TRUE((*reader)->complete());
    EXPECT_EQ((*reader)->warning(), "");
  }

  const std::string bytes = ReadFile(full_path);
  const std::vector<RawRecord> raw = ParseRaw(bytes);
  const std::string path = TempPath("changed");
  const size_t late = raw.size() * 7 / 8;
  WriteFile(path, std::string_view(bytes).substr(0, raw[late].end + 3));
  ExpectBothWaysAgree(path);

  std::string damaged = bytes;
  // Record late+1: a one-byte size, then a tag of field 0, which no parser
  // accepts.
  ASSERT_LT(static_cast<uint8_t>(damaged[raw[late].end]), 0x80);
  damaged[raw[late].end + 1] = 0x07;
  WriteFile(path, damaged);
  ExpectBothWaysAgree(path);
  auto reader = TraceReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  const size_t operations_before =
      std::count_if(raw.begin(), raw.begin() + late + 1,
                    [](const RawRecord& r) { return r.record.has_operation(); });
  EXPECT_EQ(ReadAtOnce(**reader).size(), operations_before);
  EXPECT_THAT((*reader)->warning(), HasSubstr(absl::StrCat("cut short after ", late + 1)));

  // Operations are parsed without their Record: damage inside one is found
  // all the same. Record late+1 is a one-byte size, the operation's tag and
  // a one-byte length; a tag of field 0 follows instead of its first field.
  ASSERT_TRUE(raw[late + 1].record.has_operation());
  damaged = bytes;
  ASSERT_EQ(static_cast<uint8_t>(damaged[raw[late].end + 1]), 0x2a);
  ASSERT_LT(static_cast<uint8_t>(damaged[raw[late].end + 2]), 0x80);
  damaged[raw[late].end + 3] = 0x07;
  WriteFile(path, damaged);
  ExpectBothWaysAgree(path);
  reader = TraceReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(ReadAtOnce(**reader).size(), operations_before);
  EXPECT_THAT((*reader)->warning(), HasSubstr(absl::StrCat("cut short after ", late + 1)));
}

// A Record with an Operation and more (a field a newer dodo added) is read
// whole, not as a bare Operation.
TEST(TraceIoTest, OperationRecordWithMoreFieldsIsReadAsARecord) {
  const std::string path = TempPath("extra");
  {
    auto writer = TraceWriter::Create(path, TestHeader());
    ASSERT_TRUE(writer.ok()) << writer.status();
    proto::Record record;
    record.mutable_operation()->set_command(3);
    record.mutable_operation()->set_kind(proto::STAT);
    // Field 99 holding 5, after the operation.
    record.GetReflection()->MutableUnknownFields(&record)->AddVarint(99, 5);
    ASSERT_TRUE((*writer)->Write(record).ok());
    ASSERT_TRUE((*writer)->Finish(0).ok());
  }
  ExpectBothWaysAgree(path);
  auto reader = TraceReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  google::protobuf::Arena arena;
  std::vector<TraceReader::Item> read;
  (*reader)->ReadAll(&arena, &read);
  ASSERT_EQ(read.size(), 1u);
  ASSERT_NE(read[0].record, nullptr);
  EXPECT_EQ(read[0].record->operation().kind(), proto::STAT);
  const google::protobuf::UnknownFieldSet& extra =
      read[0].record->GetReflection()->GetUnknownFields(*read[0].record);
  ASSERT_EQ(extra.field_count(), 1);
  EXPECT_EQ(extra.field(0).number(), 99);
}

// What an unparsed operation is known by: read from its bytes, or nothing
// when they are no whole Operation record.
TEST(TraceIoTest, SummaryOfAnOperationRecordIsItsCommandKindAndError) {
  proto::Record record;
  proto::Operation& op = *record.mutable_operation();
  op.set_command(uint64_t{1} << 41);  // a dormant id: a ten-byte varint
  op.set_kind(proto::READLINK);
  op.mutable_ref()->add_components(7);
  op.set_text("target");
  op.set_error(ENOENT);
  op.set_number(3);
  op.mutable_version()->set_sha256(std::string(32, 'x'));
  const std::string bytes = record.SerializeAsString();
  OperationSummary summary;
  ASSERT_TRUE(SummarizeOperation(bytes, &summary));
  EXPECT_EQ(summary.command, op.command());
  EXPECT_EQ(summary.kind, proto::READLINK);
  EXPECT_EQ(summary.error, ENOENT);
  google::protobuf::Arena arena;
  const proto::Operation* parsed = ParseOperation(bytes, &arena);
  ASSERT_NE(parsed, nullptr);
  EXPECT_EQ(parsed->SerializeAsString(), op.SerializeAsString());

  EXPECT_FALSE(SummarizeOperation(bytes.substr(0, bytes.size() - 1), &summary));
  EXPECT_EQ(ParseOperation(bytes.substr(0, bytes.size() - 1), &arena), nullptr);
  proto::Record start;
  start.mutable_command_start()->set_id(1);
  EXPECT_FALSE(SummarizeOperation(start.SerializeAsString(), &summary));
  proto::Record empty;
  empty.mutable_operation();
  ASSERT_TRUE(SummarizeOperation(empty.SerializeAsString(), &summary));
  EXPECT_EQ(summary.command, 0u);
  EXPECT_EQ(summary.kind, proto::OP_UNKNOWN);
}

}  // namespace
}  // namespace dodo::model
