#include "model/trace_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/util/delimited_message_util.h"

namespace dodo::model {
namespace {

// Large enough that the tracer's hot path rarely enters the kernel: at ~100
// bytes per operation a write(2) happens every ~10k records.
constexpr int kOutputBufferSize = 1 << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<TraceWriter>> TraceWriter::Create(const std::string& path,
                                                                 proto::Header header) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot create trace"));
  }
  // The constructor is private so that every writer starts with a Header.
  std::unique_ptr<TraceWriter> writer(new TraceWriter(path, fd));
  header.set_magic(kTraceMagic);
  header.set_format_version(kTraceFormatVersion);
  if (header.start_time_ns() == 0) header.set_start_time_ns(absl::GetCurrentTimeNanos());
  proto::Record record;
  *record.mutable_header() = std::move(header);
  if (absl::Status status = writer->WriteRecord(record); !status.ok()) return status;
  return writer;
}

TraceWriter::TraceWriter(std::string path, int fd)
    : path_(std::move(path)),
      fd_(fd),
      file_(fd),
      stream_(std::make_unique<google::protobuf::io::CopyingOutputStreamAdaptor>(
          &file_, kOutputBufferSize)) {}

bool TraceWriter::WritebackFile::Write(const void* buffer, int size) {
  const char* data = static_cast<const char*>(buffer);
  const off_t start = written_;
  while (size > 0) {
    const ssize_t n = write(fd_, data, static_cast<size_t>(size));
    if (n < 0) {
      if (errno == EINTR) continue;
      error_ = errno;
      return false;
    }
    data += n;
    size -= static_cast<int>(n);
    written_ += n;
  }
  // Only a head start: an error here (a file system without it) changes
  // nothing, the fsync in Finish still decides.
  (void)sync_file_range(fd_, start, written_ - start, SYNC_FILE_RANGE_WRITE);
  return true;
}

TraceWriter::~TraceWriter() {
  // Destroying the stream flushes it; the fd must outlive it.
  stream_.reset();
  if (fd_ >= 0) close(fd_);
}

absl::Status TraceWriter::StreamError(const char* what) const {
  const int error = file_.error();
  if (error == 0) return absl::InternalError(absl::StrCat(path_, ": ", what));
  return absl::ErrnoToStatus(error, absl::StrCat(path_, ": ", what));
}

absl::Status TraceWriter::WriteRecord(const proto::Record& record) {
  if (!status_.ok()) return status_;
  if (finished_) return absl::FailedPreconditionError(absl::StrCat(path_, ": trace is finished"));
  if (!google::protobuf::util::SerializeDelimitedToZeroCopyStream(record, stream_.get())) {
    status_ = StreamError("cannot write trace");
  }
  return status_;
}

uint32_t TraceWriter::Intern(std::string_view s) {
  if (s.empty()) return 0;
  // flat_hash_map<std::string, ...> looks up string_view keys directly, so a
  // string seen before costs no allocation. (This absl is built with its own
  // string_view type, hence the conversion.)
  const absl::string_view key(s.data(), s.size());
  if (auto it = strings_.find(key); it != strings_.end()) return it->second;
  const uint32_t id = next_string_id_++;
  strings_.emplace(std::string(s), id);
  string_record_.mutable_string()->mutable_value()->assign(s.data(), s.size());
  // An error here is kept in status_ and reported by the next Write().
  (void)WriteRecord(string_record_);
  return id;
}

absl::Status TraceWriter::InheritStrings(const std::vector<std::string>& strings) {
  if (next_string_id_ != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": strings can be inherited only before any is interned"));
  }
  strings_.reserve(strings.size());
  for (size_t i = 0; i < strings.size(); ++i) {
    // Every one is written, a repeat or "" too, so that the ids stay those
    // of the trace they come from; lookups find the first.
    if (!strings[i].empty()) strings_.try_emplace(strings[i], static_cast<uint32_t>(i + 1));
    string_record_.mutable_string()->set_value(strings[i]);
    if (absl::Status status = WriteRecord(string_record_); !status.ok()) return status;
  }
  next_string_id_ = static_cast<uint32_t>(strings.size() + 1);
  return absl::OkStatus();
}

absl::Status TraceWriter::WriteRawOperation(std::string_view record) {
  if (!status_.ok()) return status_;
  if (finished_) return absl::FailedPreconditionError(absl::StrCat(path_, ": trace is finished"));
  {
    google::protobuf::io::CodedOutputStream out(stream_.get());
    out.WriteVarint32(static_cast<uint32_t>(record.size()));
    out.WriteRaw(record.data(), static_cast<int>(record.size()));
    if (out.HadError()) status_ = StreamError("cannot write trace");
  }
  if (status_.ok()) ++operations_;
  return status_;
}

absl::Status TraceWriter::WriteFramedOperations(std::string_view framed, uint64_t count) {
  if (!status_.ok()) return status_;
  if (finished_) return absl::FailedPreconditionError(absl::StrCat(path_, ": trace is finished"));
  {
    google::protobuf::io::CodedOutputStream out(stream_.get());
    out.WriteRaw(framed.data(), static_cast<int>(framed.size()));
    if (out.HadError()) status_ = StreamError("cannot write trace");
  }
  if (status_.ok()) operations_ += count;
  return status_;
}

absl::Status TraceWriter::Write(const proto::Record& record) {
  uint64_t* counter = nullptr;
  switch (record.kind_case()) {
    case proto::Record::kCommandStart:
      counter = &commands_;
      break;
    case proto::Record::kOperation:
      counter = &operations_;
      break;
    case proto::Record::kWarning:
      counter = &warnings_;
      break;
    case proto::Record::kCommandEnd:
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("TraceWriter::Write: record kind ",
                                                     record.kind_case(),
                                                     " is written by the writer itself"));
  }
  if (absl::Status status = WriteRecord(record); !status.ok()) return status;
  // Counted once written, so the Trailer's counts match the stream.
  if (counter != nullptr) ++*counter;
  return absl::OkStatus();
}

absl::Status TraceWriter::Flush() {
  if (!status_.ok() || finished_) return status_;
  if (!stream_->Flush()) status_ = StreamError("cannot write trace");
  return status_;
}

absl::Status TraceWriter::Finish(int root_exit_status) {
  if (finished_) return finish_status_;
  proto::Record record;
  proto::Trailer* trailer = record.mutable_trailer();
  trailer->set_commands(commands_);
  trailer->set_operations(operations_);
  trailer->set_warnings(warnings_);
  trailer->set_root_exit_status(root_exit_status);
  trailer->set_end_time_ns(absl::GetCurrentTimeNanos());
  absl::Status status = WriteRecord(record);
  if (status.ok()) status = Flush();
  finished_ = true;
  // The trace is the build's record: make sure it survives a power cut
  // before dodo reports success.
  if (status.ok() && fsync(fd_) != 0) {
    status = absl::ErrnoToStatus(errno, absl::StrCat(path_, ": cannot sync trace"));
  }
  stream_.reset();
  if (close(fd_) != 0 && status.ok()) {
    status = absl::ErrnoToStatus(errno, absl::StrCat(path_, ": cannot close trace"));
  }
  fd_ = -1;
  finish_status_ = status;
  if (status_.ok() && !status.ok()) status_ = status;
  return finish_status_;
}

}  // namespace dodo::model
