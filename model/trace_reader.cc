#include "model/trace_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/delimited_message_util.h"
#include "model/trace_writer.h"

namespace dodo::model {
namespace {

constexpr int kInputBufferSize = 256 << 10;

absl::Status NotATrace(const std::string& path, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": not a dodo trace (", why, ")"));
}

}  // namespace

TraceReader::TraceReader(std::string path, int fd)
    : path_(std::move(path)),
      fd_(fd),
      stream_(std::make_unique<google::protobuf::io::FileInputStream>(fd, kInputBufferSize)) {}

TraceReader::~TraceReader() {
  stream_.reset();  // it reads from fd_, so it goes first
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<std::unique_ptr<TraceReader>> TraceReader::Open(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, path);
  std::unique_ptr<TraceReader> reader(new TraceReader(path, fd));

  proto::Record record;
  switch (reader->ReadRecord(&record)) {
    case ReadResult::kRecord:
      break;
    case ReadResult::kEnd:
      return NotATrace(path, "empty file");
    case ReadResult::kDamaged:
      // A directory, or an I/O error: say what the system said.
      if (int error = reader->stream_->GetErrno(); error != 0) {
        return absl::ErrnoToStatus(error, path);
      }
      return NotATrace(path, "not a protobuf record stream");
  }
  if (!record.has_header()) return NotATrace(path, "the first record is not a header");
  if (record.header().magic() != kTraceMagic) {
    return NotATrace(path, absl::StrCat("the header's magic is not \"", kTraceMagic, "\""));
  }
  uint32_t version = record.header().format_version();
  if (version == 0) return NotATrace(path, "format version 0");
  if (version > kTraceFormatVersion) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": trace format version ", version,
                                                   " is newer than this dodo reads (",
                                                   kTraceFormatVersion, "); use a newer dodo"));
  }
  reader->header_ = std::move(*record.mutable_header());
  return reader;
}

TraceReader::ReadResult TraceReader::ReadRecord(proto::Record* record) {
  record->Clear();  // parsing merges into the message
  bool clean_eof = false;
  if (google::protobuf::util::ParseDelimitedFromZeroCopyStream(record, stream_.get(), &clean_eof)) {
    ++records_read_;
    return ReadResult::kRecord;
  }
  if (!clean_eof) return ReadResult::kDamaged;
  // clean_eof only says the size varint could not be read without moving;
  // a malformed varint does that too. The end is real only if no byte is left.
  const void* data = nullptr;
  int size = 0;
  while (stream_->Next(&data, &size)) {
    if (size > 0) {
      stream_->BackUp(size);
      return ReadResult::kDamaged;
    }
  }
  return stream_->GetErrno() == 0 ? ReadResult::kEnd : ReadResult::kDamaged;
}

bool TraceReader::Next(proto::Record* record) {
  while (!done_) {
    switch (ReadRecord(record)) {
      case ReadResult::kRecord:
        break;
      case ReadResult::kEnd:
        done_ = true;
        if (!complete()) {
          warning_ = absl::StrCat(path_, ": trace is incomplete: no trailer (dodo was killed?)");
        }
        return false;
      case ReadResult::kDamaged:
        done_ = true;
        if (int error = stream_->GetErrno(); error != 0) {
          warning_ = absl::StrCat(path_, ": read error after ", records_read_,
                                  " records: ", strerror(error));
        } else {
          warning_ = absl::StrCat(path_, ": trace cut short after ", records_read_,
                                  " records; the records before it are intact");
        }
        return false;
    }
    switch (record->kind_case()) {
      case proto::Record::kString:
        strings_.push_back(std::move(*record->mutable_string()->mutable_value()));
        break;
      case proto::Record::kTrailer: {
        trailer_ = std::move(*record->mutable_trailer());
        done_ = true;
        proto::Record extra;
        if (ReadRecord(&extra) != ReadResult::kEnd) {
          warning_ = absl::StrCat(path_, ": data after the trailer ignored");
        }
        return false;
      }
      case proto::Record::kHeader:
        done_ = true;
        warning_ =
            absl::StrCat(path_, ": a second header at record ", records_read_, "; reading stopped");
        return false;
      case proto::Record::KIND_NOT_SET:
        // A record kind added by a newer dodo of the same format version.
        break;
      default:
        return true;
    }
  }
  return false;
}

}  // namespace dodo::model
