// Writes a dodo trace (proto/trace.proto) as a stream of length-delimited
// Record messages. The tracer calls this on its hot path, once per observed
// operation, so the writer keeps a large output buffer, reuses its scratch
// records and holds nothing in memory but the string intern table.
#ifndef DODO_MODEL_TRACE_WRITER_H_
#define DODO_MODEL_TRACE_WRITER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "proto/trace.pb.h"

namespace dodo::model {

// The value of Header.magic in every trace.
inline constexpr char kTraceMagic[] = "dodo-trace";
// The format version this code writes, and the newest it reads.
inline constexpr uint32_t kTraceFormatVersion = 1;

class TraceWriter {
 public:
  // Creates (or truncates) `path` and writes the Header record. The writer
  // sets `magic` and `format_version`, and `start_time_ns` when it is 0.
  static absl::StatusOr<std::unique_ptr<TraceWriter>> Create(const std::string& path,
                                                             proto::Header header);

  // Without Finish() the buffered records are still flushed, but no Trailer
  // is written: the trace then reads as incomplete, as after a crash.
  ~TraceWriter();

  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // The id of `s`: 0 for "", else an id counting up from 1. The first time a
  // string is seen an InternedString record defining it is written, so the
  // id can be used in any record written afterwards. A write error is
  // remembered and returned by the next Write(), Flush() or Finish().
  uint32_t Intern(std::string_view s);

  // Defines `strings`, in order, as ids 1, 2, ...: a trace that inherits
  // the string table of the one it follows can take records from it with
  // their string ids unchanged. Only before any Intern(): FailedPrecondition.
  absl::Status InheritStrings(const std::vector<std::string>& strings);

  // Writes an Operation record given as the bytes of its Record (without
  // the size prefix), as another trace holds them, and counts it.
  absl::Status WriteRawOperation(std::string_view record);

  // Writes `count` Operation records given as another trace holds them,
  // each with its size prefix, back to back, and counts them.
  absl::Status WriteFramedOperations(std::string_view framed, uint64_t count);

  // Writes a CommandStart, CommandEnd, Operation or Warning record and counts
  // it for the Trailer. Other kinds (Header, InternedString, Trailer) are
  // the writer's own business: InvalidArgument.
  absl::Status Write(const proto::Record& record);

  // Hands the buffered records to the kernel, so a crash of dodo itself
  // loses nothing written so far.
  absl::Status Flush();

  // Writes the Trailer (counts, end time, `root_exit_status`), flushes,
  // fsyncs and closes the file. Idempotent: later calls return the first
  // call's result. No record can be written after it.
  absl::Status Finish(int root_exit_status);

  // Records written with Write(), by kind.
  uint64_t operations() const { return operations_; }
  uint64_t commands() const { return commands_; }
  uint64_t warnings() const { return warnings_; }

  const std::string& path() const { return path_; }

 private:
  TraceWriter(std::string path, int fd);

  // Serializes one record into the output buffer; sets status_ on failure.
  absl::Status WriteRecord(const proto::Record& record);
  absl::Status StreamError(const char* what) const;

  // Writes what the buffer hands it to the file, and starts the kernel
  // writing it to the disk at once (sync_file_range), so that Finish's
  // fsync waits only for the last of it.
  class WritebackFile : public google::protobuf::io::CopyingOutputStream {
   public:
    explicit WritebackFile(int fd) : fd_(fd) {}
    bool Write(const void* buffer, int size) override;
    int error() const { return error_; }

   private:
    int fd_;
    off_t written_ = 0;
    int error_ = 0;
  };

  std::string path_;
  int fd_;  // owned; closed by the destructor or Finish()
  WritebackFile file_;
  std::unique_ptr<google::protobuf::io::CopyingOutputStreamAdaptor> stream_;
  // The first write error; once set, every later write fails with it.
  absl::Status status_;
  bool finished_ = false;
  absl::Status finish_status_;

  absl::flat_hash_map<std::string, uint32_t> strings_;
  uint32_t next_string_id_ = 1;  // not strings_.size() + 1: inherited repeats count
  // Reused for every InternedString record, so interning does not allocate
  // a Record per new string.
  proto::Record string_record_;

  uint64_t operations_ = 0;
  uint64_t commands_ = 0;
  uint64_t warnings_ = 0;
};

}  // namespace dodo::model

#endif  // DODO_MODEL_TRACE_WRITER_H_
