// Benchmarks of FileHasher on the tracer's hot path, where most files hashed
// are small headers: the cost of a digest beyond reading the bytes. Compare
// BM_ReadChangedFile (open, read, close: the floor) with BM_HashChangedFile, and
// BM_DigestTinyString (the fixed cost of one digest) with the time a header's
// bytes take.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "benchmark/benchmark.h"
#include "model/file_hasher.h"

namespace dodo::model {
namespace {

constexpr size_t kHeaderSize = 6 * 1024;  // about a system header's size

class SmallFile {
 public:
  SmallFile() {
    const char* tmp = getenv("TEST_TMPDIR");
    path_ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/hasher_bench.XXXXXX";
    const int fd = mkstemp(path_.data());
    if (fd < 0) std::abort();
    const std::string bytes(kHeaderSize, 'h');
    if (write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) std::abort();
    close(fd);
  }
  ~SmallFile() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Both loops change the file's size first, one byte up or down: the
// hasher's cache then cannot answer, and the baseline pays the same call.
void Resize(const SmallFile& file, size_t i) {
  if (truncate(file.path().c_str(), static_cast<off_t>(kHeaderSize - (i & 1))) != 0) std::abort();
}

void BM_ReadChangedFile(benchmark::State& state) {
  SmallFile file;
  char buffer[kHeaderSize + 1];
  size_t i = 0;
  for (auto _ : state) {
    Resize(file, i++);
    const int fd = open(file.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) state.SkipWithError("open failed");
    benchmark::DoNotOptimize(read(fd, buffer, sizeof(buffer)));
    close(fd);
  }
}
BENCHMARK(BM_ReadChangedFile);

void BM_HashChangedFile(benchmark::State& state) {
  SmallFile file;
  FileHasher hasher;
  size_t i = 0;
  const size_t read_before = hasher.files_read();
  for (auto _ : state) {
    Resize(file, i++);
    absl::StatusOr<FileVersion> version = hasher.HashFile(file.path());
    if (!version.ok()) state.SkipWithError("hash failed");
    benchmark::DoNotOptimize(version);
  }
  if (hasher.files_read() - read_before != i) state.SkipWithError("a hash came from the cache");
}
BENCHMARK(BM_HashChangedFile);

void BM_DigestTinyString(benchmark::State& state) {
  const std::string bytes = "#include <stdio.h>\n";
  for (auto _ : state) benchmark::DoNotOptimize(Sha256OfString(bytes));
}
BENCHMARK(BM_DigestTinyString);

void BM_DigestHeaderString(benchmark::State& state) {
  const std::string bytes(kHeaderSize, 'h');
  for (auto _ : state) benchmark::DoNotOptimize(Sha256OfString(bytes));
}
BENCHMARK(BM_DigestHeaderString);

}  // namespace
}  // namespace dodo::model
