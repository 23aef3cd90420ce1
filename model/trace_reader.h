// Reads a dodo trace (proto/trace.proto) one record at a time. Traces of big
// builds are large, so Next() streams: it keeps the interned strings and the
// current record, never the whole file. ReadAll(), for a caller that keeps
// every record anyway, maps the whole file and keeps it until ReleaseBytes()
// hands it over.
#ifndef DODO_MODEL_TRACE_READER_H_
#define DODO_MODEL_TRACE_READER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "google/protobuf/arena.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "proto/trace.pb.h"

namespace dodo::model {

// The fields of an Operation that indexing a trace needs.
struct OperationSummary {
  uint64_t command = 0;
  proto::OpKind kind = proto::OP_UNKNOWN;
  int32_t error = 0;
};

// Reads them from an Operation Record's bytes (TraceReader::Item::bytes)
// without parsing the rest; false if the bytes are no well-formed Operation
// record.
bool SummarizeOperation(std::string_view record, OperationSummary* out);

// Calls `take` with each record of `framed`, a run of records each after its
// size prefix (TraceReader::Item::deferred); false if the framing breaks off.
bool ForEachFramedRecord(std::string_view framed,
                         absl::FunctionRef<void(std::string_view record)> take);

// Parses an Operation Record's bytes into a new Operation on `arena`; null
// if they do not parse.
proto::Operation* ParseOperation(std::string_view record, google::protobuf::Arena* arena);

class TraceReader {
 public:
  // Opens `path` and reads its Header. Errors name the file:
  //   NotFound, PermissionDenied, ...: the file cannot be opened;
  //   InvalidArgument "<path>: not a dodo trace (<why>)": the file is empty,
  //     not protobuf, or its first record is not a Header with magic
  //     "dodo-trace";
  //   InvalidArgument "<path>: trace format version N is newer than ...".
  static absl::StatusOr<std::unique_ptr<TraceReader>> Open(const std::string& path);

  ~TraceReader();

  TraceReader(const TraceReader&) = delete;
  TraceReader& operator=(const TraceReader&) = delete;

  const proto::Header& header() const { return header_; }

  // Reads the next CommandStart, CommandEnd, Operation or Warning record into
  // `record`. InternedString records are absorbed into the string table and
  // the Trailer into trailer(); records of kinds this version does not know
  // are skipped. Returns false at the end of the trace.
  //
  // A damaged tail (a record cut short or unparseable) ends the stream: Next()
  // returns false and warning() says where it stopped. It is not an error,
  // because every record before it is whole and usable.
  bool Next(proto::Record* record);

  // One record ReadAll() read: an Operation record as the bare Operation (a
  // Record around each of a trace's many operations would only take
  // memory), any other kind as the Record. Exactly one is set, unless the
  // operation was left unparsed.
  struct Item {
    proto::Record* record = nullptr;
    proto::Operation* operation = nullptr;
    // The Record's bytes as the file holds them (without the size prefix,
    // which the same buffer holds just before them), valid while the holder
    // bytes() returns lives.
    std::string_view bytes;
    // An Operation left unparsed (see ReadAll's `leave_dormant`):
    // neither pointer is set, and `summary` has what indexing it needs.
    bool unparsed = false;
    OperationSummary summary;
    // Operations of dormant commands that were not even summarized (see
    // ReadAll's `defer_dormant`): `bytes` holds `deferred_count` Operation
    // records side by side, each after its size prefix, as the file holds
    // them (ForEachFramedRecord takes them apart).
    bool deferred = false;
    uint32_t deferred_count = 0;
  };

  // The bytes ReadAll() parsed: the file mapped, or read into memory when
  // it cannot be. Items' `bytes` point into it.
  class Bytes {
   public:
    virtual ~Bytes() = default;
    virtual std::string_view view() const = 0;
  };
  // Hands over the bytes ReadAll() read (null before it): a caller that
  // copies records unchanged into another trace keeps them.
  std::unique_ptr<Bytes> ReleaseBytes() { return std::move(bytes_); }

  // Reads every remaining record at once, instead of Next() in a loop, for a
  // caller that keeps them all anyway: the file is read whole and its
  // records parsed on several threads, into `arena`. Appends to `items`
  // exactly the records Next() would have returned, in order; strings,
  // trailer and warning() end up as after the last Next(). Only before any
  // Next().
  //
  // The operations of dormant commands (proto::CommandStart.dormant) for
  // which `leave_dormant` says so are left unparsed (called on several
  // threads): after a small edit those are most of a trace, and a build that
  // starts none of those commands again never looks at most of them.
  // ParseOperation() parses one when it is needed. With `defer_dormant`
  // (and `leave_dormant`), no dormant operation is looked at: each run of
  // them comes back as one `deferred` item, for the caller to summarize or
  // parse later, on a thread of its own if it likes. Damage in them then
  // goes unnoticed here.
  void ReadAll(google::protobuf::Arena* arena, std::vector<Item>* items,
               std::optional<absl::FunctionRef<bool(const OperationSummary&)>> leave_dormant = {},
               bool defer_dormant = false);

  // The interned string `id`; "" for 0 or ids not defined (yet).
  std::string_view String(uint32_t id) const {
    return id == 0 || id > strings_.size() ? std::string_view() : strings_[id - 1];
  }

  // How many interned strings were read so far (ids 1..string_count()).
  size_t string_count() const { return strings_.size(); }

  // True once the Trailer was read: the trace is whole.
  bool complete() const { return trailer_.has_value(); }
  const std::optional<proto::Trailer>& trailer() const { return trailer_; }

  // Why the stream ended early, prefixed with the path; empty if it did not.
  // Set when a damaged record was met ("trace cut short after N records") or
  // the stream ended without a Trailer ("trace is incomplete: no trailer").
  const std::string& warning() const { return warning_; }

  // Records read so far, of every kind, the Header included.
  uint64_t records_read() const { return records_read_; }

  const std::string& path() const { return path_; }

 private:
  TraceReader(std::string path, int fd);

  enum class ReadResult { kRecord, kEnd, kDamaged };
  ReadResult ReadRecord(proto::Record* record);
  // What a record that was read means for the stream.
  enum class Absorbed {
    kData,     // for the caller
    kSkipped,  // taken in (a string) or not known to this version
    kTrailer,  // the end, unless data follows
    kStopped,  // a second header: reading stops, warning() says why
  };
  Absorbed Absorb(proto::Record* record);
  // The stream ends at a damaged record (or a read error), or at its end.
  void EndDamaged();
  void EndClean();

  std::string path_;
  int fd_;  // owned; closed by the destructor
  std::unique_ptr<google::protobuf::io::FileInputStream> stream_;
  proto::Header header_;
  std::vector<std::string> strings_;
  std::unique_ptr<Bytes> bytes_;  // what ReadAll() read
  std::optional<proto::Trailer> trailer_;
  std::string warning_;
  uint64_t records_read_ = 0;
  bool done_ = false;
};

}  // namespace dodo::model

#endif  // DODO_MODEL_TRACE_READER_H_
