// Measures the trace writer on the tracer's hot path: 1M operations of a
// build-like shape (a few hundred distinct paths, interned), and reading
// them back.
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "model/trace_reader.h"
#include "model/trace_writer.h"

namespace dodo::model {
namespace {

constexpr int kOperations = 1'000'000;

std::string BenchPath() { return absl::StrCat("/tmp/dodo_trace_io_perftest.", getpid()); }

// Writes kOperations READ operations on paths under a few directories, as a
// compiler reading headers would, and returns the trace's size.
int64_t WriteTrace(const std::string& path) {
  auto writer = TraceWriter::Create(path, proto::Header());
  if (!writer.ok()) return -1;
  TraceWriter& w = **writer;
  std::vector<std::string> names;
  for (int i = 0; i < 500; ++i) names.push_back(absl::StrCat("header_", i, ".h"));
  const char* const dirs[] = {"usr", "include", "c++", "12", "bits"};

  proto::Record record;  // reused, as the recorder does
  proto::CommandStart* start = record.mutable_command_start();
  start->set_id(1);
  start->set_pid(100);
  start->set_executable(w.Intern("/usr/bin/cc1plus"));
  if (!w.Write(record).ok()) return -1;

  record.Clear();
  proto::Operation* op = record.mutable_operation();
  op->set_command(1);
  op->set_kind(proto::READ);
  op->set_syscall("openat");
  op->mutable_version()->set_sha256(std::string(32, '\x5a'));
  op->mutable_version()->set_mode(0100644);
  for (int i = 0; i < kOperations; ++i) {
    proto::Ref* ref = op->mutable_ref();
    ref->clear_components();
    int depth = 1 + i % 5;
    for (int d = 0; d < depth; ++d) ref->add_components(w.Intern(dirs[d]));
    ref->add_components(w.Intern(names[i % names.size()]));
    ref->set_found(depth + 1);
    op->mutable_version()->set_size(1000 + i % 7919);
    op->mutable_version()->set_mtime_ns(1'700'000'000'000'000'000 + i);
    if (!w.Write(record).ok()) return -1;
  }
  if (!w.Finish(0).ok()) return -1;
  return static_cast<int64_t>(w.operations());
}

void BM_Write1MOperations(benchmark::State& state) {
  const std::string path = BenchPath();
  for (auto _ : state) {
    if (WriteTrace(path) != kOperations) {
      state.SkipWithError("writing the trace failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kOperations);
  unlink(path.c_str());
}
BENCHMARK(BM_Write1MOperations)->Unit(benchmark::kMillisecond);

void BM_Read1MOperations(benchmark::State& state) {
  const std::string path = BenchPath();
  if (WriteTrace(path) != kOperations) {
    state.SkipWithError("writing the trace failed");
    return;
  }
  for (auto _ : state) {
    auto reader = TraceReader::Open(path);
    if (!reader.ok()) {
      state.SkipWithError("opening the trace failed");
      break;
    }
    proto::Record record;
    int64_t operations = 0;
    while ((*reader)->Next(&record)) operations += record.has_operation();
    if (operations != kOperations || !(*reader)->complete()) {
      state.SkipWithError("reading the trace failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kOperations);
  unlink(path.c_str());
}
BENCHMARK(BM_Read1MOperations)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace dodo::model
