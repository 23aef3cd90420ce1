// Benchmarks of PathResolver on the tracer's hot path: once the cache is
// warm, a resolution must cost no system call, only hashing and copying.
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "benchmark/benchmark.h"
#include "model/path_resolver.h"

namespace dodo::model {
namespace {

// A small tree shaped like a build: a deep header path reached through a
// symlinked directory, as with /bin -> usr/bin or a bazel-out link.
class Tree {
 public:
  Tree() {
    const char* tmp = getenv("TEST_TMPDIR");
    root_ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/resolver_bench.XXXXXX";
    if (mkdtemp(root_.data()) == nullptr) std::abort();
    char real[PATH_MAX];
    if (realpath(root_.c_str(), real) == nullptr) std::abort();
    root_ = real;
    std::string dir = root_;
    for (const char* name : {"/usr", "/usr/include", "/usr/include/c++", "/usr/include/c++/12"}) {
      dir = root_ + name;
      if (mkdir(dir.c_str(), 0755) != 0) std::abort();
    }
    FILE* f = fopen((dir + "/vector").c_str(), "w");
    if (f == nullptr) std::abort();
    fclose(f);
    if (symlink("usr/include", (root_ + "/inc").c_str()) != 0) std::abort();
  }
  ~Tree() {
    std::string command = "rm -rf '" + root_ + "'";
    if (std::system(command.c_str()) != 0)
      std::fprintf(stderr, "could not remove %s\n", root_.c_str());
  }
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

void BM_CachedRelativeThroughSymlink(benchmark::State& state) {
  Tree tree;
  PathResolver resolver;
  resolver.Resolve(tree.root(), "inc/c++/12/vector", true);  // warm the cache
  const size_t misses = resolver.cache_misses();
  for (auto _ : state) {
    Resolution r = resolver.Resolve(tree.root(), "inc/c++/12/vector", true);
    benchmark::DoNotOptimize(r);
  }
  if (resolver.cache_misses() != misses) state.SkipWithError("a cached resolution made a lookup");
}
BENCHMARK(BM_CachedRelativeThroughSymlink);

void BM_CachedAbsolute(benchmark::State& state) {
  Tree tree;
  PathResolver resolver;
  const std::string path = tree.root() + "/usr/include/c++/12/vector";
  resolver.Resolve("/", path, true);
  const size_t misses = resolver.cache_misses();
  for (auto _ : state) {
    Resolution r = resolver.Resolve("/", path, true);
    benchmark::DoNotOptimize(r);
  }
  if (resolver.cache_misses() != misses) state.SkipWithError("a cached resolution made a lookup");
}
BENCHMARK(BM_CachedAbsolute);

void BM_CachedMissing(benchmark::State& state) {
  Tree tree;
  PathResolver resolver;
  resolver.Resolve(tree.root(), "inc/c++/12/missing.h", true);
  for (auto _ : state) {
    Resolution r = resolver.Resolve(tree.root(), "inc/c++/12/missing.h", true);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_CachedMissing);

void BM_Uncached(benchmark::State& state) {
  Tree tree;
  PathResolver resolver;
  for (auto _ : state) {
    resolver.Clear();
    Resolution r = resolver.Resolve(tree.root(), "inc/c++/12/vector", true);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Uncached);

}  // namespace
}  // namespace dodo::model
