#include "model/trace_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/util/delimited_message_util.h"
#include "model/trace_writer.h"

namespace dodo::model {
namespace {

constexpr int kInputBufferSize = 256 << 10;

// The first byte of a Record holding an Operation: field 5, length-delimited.
constexpr uint8_t kOperationTag = (proto::Record::kOperationFieldNumber << 3) | 2;

// A read-only private mapping of a whole file, unmapped when it goes.
class MappedFile : public TraceReader::Bytes {
 public:
  MappedFile() = default;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() override {
    if (data_ != nullptr) munmap(data_, size_);
  }

  // MAP_POPULATE maps the cached pages in one call instead of one fault each.
  bool Map(int fd, size_t size) {
    void* data = mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (data == MAP_FAILED) return false;
    data_ = data;
    size_ = size;
    return true;
  }
  std::string_view view() const override { return {static_cast<const char*>(data_), size_}; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

// The same for a file that could not be mapped (a pipe), read into memory.
class CopiedFile : public TraceReader::Bytes {
 public:
  std::string& text() { return text_; }
  std::string_view view() const override { return text_; }

 private:
  std::string text_;
};

// Reads a varint of at most 5 bytes from `bytes` at `*at`, moving `*at`
// past it. False when the bytes end before it does.
bool ReadVarint32(std::string_view bytes, size_t* at, uint32_t* value) {
  *value = 0;
  for (int shift = 0; shift < 35 && *at < bytes.size(); shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(bytes[(*at)++]);
    *value |= static_cast<uint32_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

constexpr uint8_t kCommandStartTag = (proto::Record::kCommandStartFieldNumber << 3) | 2;

bool ReadVarint64(std::string_view bytes, size_t* at, uint64_t* value) {
  *value = 0;
  for (int shift = 0; shift < 70 && *at < bytes.size(); shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(bytes[(*at)++]);
    *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// The Operation inside an Operation Record's bytes: the field's tag, then a
// length that covers the rest. Nothing if the bytes are not that.
std::optional<std::string_view> OperationBytes(std::string_view record) {
  if (record.empty() || static_cast<uint8_t>(record[0]) != kOperationTag) return std::nullopt;
  size_t at = 1;
  uint32_t length = 0;
  if (!ReadVarint32(record, &at, &length) || length != record.size() - at) return std::nullopt;
  return record.substr(at);
}

absl::Status NotATrace(const std::string& path, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": not a dodo trace (", why, ")"));
}

}  // namespace

bool SummarizeOperation(std::string_view record, OperationSummary* out) {
  const std::optional<std::string_view> bytes = OperationBytes(record);
  if (!bytes.has_value()) return false;
  const std::string_view op = *bytes;
  *out = OperationSummary();
  size_t at = 0;
  while (at < op.size()) {
    uint64_t key = 0;
    if (!ReadVarint64(op, &at, &key)) return false;
    uint64_t value = 0;
    switch (key & 7) {
      case 0:  // varint
        if (!ReadVarint64(op, &at, &value)) return false;
        if (key >> 3 == proto::Operation::kCommandFieldNumber) out->command = value;
        if (key >> 3 == proto::Operation::kKindFieldNumber) {
          out->kind = proto::OpKind_IsValid(static_cast<int>(value))
                          ? static_cast<proto::OpKind>(value)
                          : proto::OP_UNKNOWN;
        }
        if (key >> 3 == proto::Operation::kErrorFieldNumber) {
          out->error = static_cast<int32_t>(value);
        }
        break;
      case 1:  // 64 bits
        if (op.size() - at < 8) return false;
        at += 8;
        break;
      case 2:  // length-delimited
        if (!ReadVarint64(op, &at, &value) || value > op.size() - at) return false;
        at += value;
        break;
      case 5:  // 32 bits
        if (op.size() - at < 4) return false;
        at += 4;
        break;
      default:
        return false;
    }
  }
  return true;
}

proto::Operation* ParseOperation(std::string_view record, google::protobuf::Arena* arena) {
  const std::optional<std::string_view> bytes = OperationBytes(record);
  if (!bytes.has_value()) return nullptr;
  proto::Operation* op = google::protobuf::Arena::CreateMessage<proto::Operation>(arena);
  if (!op->ParseFromArray(bytes->data(), static_cast<int>(bytes->size()))) return nullptr;
  return op;
}

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

void TraceReader::EndDamaged() {
  done_ = true;
  if (int error = stream_->GetErrno(); error != 0) {
    warning_ =
        absl::StrCat(path_, ": read error after ", records_read_, " records: ", strerror(error));
  } else {
    warning_ = absl::StrCat(path_, ": trace cut short after ", records_read_,
                            " records; the records before it are intact");
  }
}

void TraceReader::EndClean() {
  done_ = true;
  if (!complete()) {
    warning_ = absl::StrCat(path_, ": trace is incomplete: no trailer (dodo was killed?)");
  }
}

TraceReader::Absorbed TraceReader::Absorb(proto::Record* record) {
  switch (record->kind_case()) {
    case proto::Record::kString:
      strings_.push_back(std::move(*record->mutable_string()->mutable_value()));
      return Absorbed::kSkipped;
    case proto::Record::kTrailer:
      trailer_ = std::move(*record->mutable_trailer());
      done_ = true;
      return Absorbed::kTrailer;
    case proto::Record::kHeader:
      done_ = true;
      warning_ =
          absl::StrCat(path_, ": a second header at record ", records_read_, "; reading stopped");
      return Absorbed::kStopped;
    case proto::Record::KIND_NOT_SET:
      // A record kind added by a newer dodo of the same format version.
      return Absorbed::kSkipped;
    default:
      return Absorbed::kData;
  }
}

bool TraceReader::Next(proto::Record* record) {
  while (!done_) {
    switch (ReadRecord(record)) {
      case ReadResult::kRecord:
        break;
      case ReadResult::kEnd:
        EndClean();
        return false;
      case ReadResult::kDamaged:
        EndDamaged();
        return false;
    }
    switch (Absorb(record)) {
      case Absorbed::kData:
        return true;
      case Absorbed::kTrailer: {
        proto::Record extra;
        if (ReadRecord(&extra) != ReadResult::kEnd) {
          warning_ = absl::StrCat(path_, ": data after the trailer ignored");
        }
        return false;
      }
      case Absorbed::kStopped:
        return false;
      case Absorbed::kSkipped:
        break;
    }
  }
  return false;
}

bool ForEachFramedRecord(std::string_view framed,
                         absl::FunctionRef<void(std::string_view record)> take) {
  size_t at = 0;
  while (at < framed.size()) {
    uint32_t length = 0;
    if (!ReadVarint32(framed, &at, &length) || length > framed.size() - at) return false;
    take(framed.substr(at, length));
    at += length;
  }
  return true;
}

void TraceReader::ReadAll(
    google::protobuf::Arena* arena, std::vector<Item>* items,
    std::optional<absl::FunctionRef<bool(const OperationSummary&)>> leave_dormant,
    bool defer_dormant) {
  if (done_) return;
  // The rest of the file, and where each record's bytes are in it. Mapped
  // when it can be: reading xz's 19 MB trace into memory of our own took
  // 4,600 page faults and a copy of every byte. (Traces are replaced by
  // rename, never cut short in place, so the mapping stays whole.)
  std::string_view rest;
  const int64_t consumed = stream_->ByteCount();
  auto mapped = std::make_unique<MappedFile>();
  if (struct stat file; fstat(fd_, &file) == 0 && S_ISREG(file.st_mode) &&
                        file.st_size > consumed && mapped->Map(fd_, file.st_size)) {
    rest = mapped->view().substr(consumed);
    bytes_ = std::move(mapped);
  } else {
    auto copied = std::make_unique<CopiedFile>();
    const void* data = nullptr;
    int size = 0;
    while (stream_->Next(&data, &size)) {
      copied->text().append(static_cast<const char*>(data), size);
    }
    rest = copied->view();
    bytes_ = std::move(copied);
  }
  std::vector<std::pair<size_t, uint32_t>> spans;  // (offset, size)
  spans.reserve(rest.size() / 24);                 // operations take 38 bytes on average
  std::vector<size_t> starts;                      // the spans of CommandStart records
  size_t at = 0;
  while (at < rest.size()) {
    uint32_t length = 0;
    size_t start = at;
    if (!ReadVarint32(rest, &start, &length)) break;  // the size prefix
    if (length > rest.size() - start) break;
    if (length > 0 && static_cast<uint8_t>(rest[start]) == kCommandStartTag) {
      starts.push_back(spans.size());
    }
    spans.emplace_back(start, length);
    at = start + length;
  }
  const bool damaged_tail = at < rest.size() || stream_->GetErrno() != 0;

  // Dormant records come after all of the build's: the first dormant start
  // is found by bisecting the starts. From it on, the operations that
  // `leave_dormant` picks stay unparsed.
  size_t first_dormant = spans.size();
  if (leave_dormant.has_value()) {
    auto is_dormant = [&](size_t start) {
      proto::Record record;
      const auto [offset, size] = spans[start];
      return record.ParseFromArray(rest.data() + offset, static_cast<int>(size)) &&
             record.command_start().dormant();
    };
    auto first = std::partition_point(starts.begin(), starts.end(),
                                      [&](size_t start) { return !is_dormant(start); });
    if (first != starts.end()) first_dormant = *first;
  }

  // Parsing is most of the work, and records are independent of each
  // other: contiguous runs of them go to as many threads as there are CPUs
  // (up to 4). On two, xz's 30 MB trace parses in 0.11-0.15 s instead of
  // 0.23 s.
  // With `defer_dormant`, the records from the first dormant start on are
  // taken in below instead, their operations not at all.
  const bool defer = defer_dormant && first_dormant < spans.size();
  const size_t parse_end = defer ? first_dormant : spans.size();
  std::vector<Item> parsed;
  // Room for the deferred ones' items too (fewer than their records): a
  // vector of xz's 300,000 items grown once more was a copy of 20 MB.
  parsed.reserve(spans.size());
  parsed.resize(parse_end);
  auto parse_range = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const std::string_view bytes = rest.substr(spans[i].first, spans[i].second);
      parsed[i].bytes = bytes;
      if (i >= first_dormant && SummarizeOperation(bytes, &parsed[i].summary) &&
          (*leave_dormant)(parsed[i].summary)) {
        parsed[i].unparsed = true;
        continue;
      }
      // A Record holding an Operation and nothing else: its field's tag,
      // then a length that covers the rest.
      if (!bytes.empty() && static_cast<uint8_t>(bytes[0]) == kOperationTag) {
        size_t at = 1;
        uint32_t length = 0;
        if (ReadVarint32(bytes, &at, &length) && length == bytes.size() - at) {
          proto::Operation* op = google::protobuf::Arena::CreateMessage<proto::Operation>(arena);
          if (!op->ParseFromArray(bytes.data() + at, static_cast<int>(length))) return;  // damaged
          parsed[i].operation = op;
          continue;
        }
      }
      proto::Record* record = google::protobuf::Arena::CreateMessage<proto::Record>(arena);
      if (!record->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return;  // damaged: the records after it are never looked at
      }
      parsed[i].record = record;
    }
  };
  constexpr size_t kMinRecordsPerThread = 20000;
  const size_t threads = std::clamp<size_t>(
      std::min<size_t>(std::thread::hardware_concurrency(), parse_end / kMinRecordsPerThread), 1,
      4);
  std::vector<std::thread> helpers;
  const size_t per_thread = (parse_end + threads - 1) / threads;
  std::vector<std::pair<size_t, size_t>> own = {{0, std::min(per_thread, parse_end)}};
  for (size_t t = 1; t < threads; ++t) {
    const size_t begin = std::min(t * per_thread, parse_end);
    const size_t end = std::min((t + 1) * per_thread, parse_end);
    try {
      helpers.emplace_back(parse_range, begin, end);
    } catch (const std::system_error&) {
      own.emplace_back(begin, end);  // no thread to be had: parse it here
    }
  }
  for (const auto& [begin, end] : own) parse_range(begin, end);
  for (std::thread& helper : helpers) helper.join();
  if (defer) {
    // Each run of operations between the other records becomes one item,
    // framed as the file holds it; the others are parsed here (a few
    // thousand starts, ends and strings against a few hundred thousand
    // operations after a small edit of xz).
    size_t run_begin = 0;  // where the first operation's size prefix is
    uint32_t run_count = 0;
    auto end_of = [&](size_t i) { return spans[i].first + spans[i].second; };
    auto add_run = [&](size_t end) {
      Item& run = parsed.emplace_back();
      run.bytes = rest.substr(run_begin, end - run_begin);
      run.deferred = true;
      run.deferred_count = run_count;
    };
    for (size_t i = first_dormant; i < spans.size(); ++i) {
      const std::string_view bytes = rest.substr(spans[i].first, spans[i].second);
      if (!bytes.empty() && static_cast<uint8_t>(bytes[0]) == kOperationTag) {
        if (run_count++ == 0) run_begin = i == 0 ? 0 : end_of(i - 1);
        continue;
      }
      if (run_count > 0) {
        add_run(end_of(i - 1));
        run_count = 0;
      }
      proto::Record* record = google::protobuf::Arena::CreateMessage<proto::Record>(arena);
      Item& item = parsed.emplace_back();
      item.bytes = bytes;
      if (record->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        item.record = record;
      } else {
        break;  // damaged: the item without a record ends the stream below
      }
    }
    if (run_count > 0) add_run(end_of(spans.size() - 1));
  }

  // The records for the caller are moved to the front of `parsed` as they
  // are taken in, and `parsed` is then handed over whole when `items` holds
  // nothing yet: a copy of xz's 300,000 items took page faults of its own.
  size_t kept = 0;
  auto hand_over = [&] {
    parsed.resize(kept);
    if (items->empty()) {
      *items = std::move(parsed);
    } else {
      items->insert(items->end(), parsed.begin(), parsed.end());
    }
  };
  for (size_t i = 0; i < parsed.size(); ++i) {
    if (parsed[i].operation != nullptr || parsed[i].unparsed || parsed[i].deferred) {
      records_read_ += parsed[i].deferred ? parsed[i].deferred_count : 1;
      parsed[kept++] = parsed[i];
      continue;
    }
    if (parsed[i].record == nullptr) {
      hand_over();
      EndDamaged();
      return;
    }
    ++records_read_;
    switch (Absorb(parsed[i].record)) {
      case Absorbed::kData:
        parsed[kept++] = parsed[i];
        break;
      case Absorbed::kTrailer:
        if (i + 1 < parsed.size() || damaged_tail) {
          warning_ = absl::StrCat(path_, ": data after the trailer ignored");
        }
        hand_over();
        return;
      case Absorbed::kStopped:
        hand_over();
        return;
      case Absorbed::kSkipped:
        break;
    }
  }
  hand_over();
  if (damaged_tail) {
    EndDamaged();
  } else {
    EndClean();
  }
}

}  // namespace dodo::model
