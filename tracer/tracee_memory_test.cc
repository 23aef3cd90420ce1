#include "tracer/tracee_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dodo::tracer {
namespace {

// The tests read this process's own memory: process_vm_readv treats it like
// any other process, and the layouts below (strings across page ends, next to
// unmapped pages) can be built exactly.

constexpr size_t kPage = 4096;

// Anonymous pages, unmapped on destruction.
class Pages {
 public:
  explicit Pages(size_t count) : size_(count * kPage) {
    void* at = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(at, MAP_FAILED);
    base_ = static_cast<char*>(at);
  }
  ~Pages() {
    if (base_ != nullptr) munmap(base_, size_);
  }
  Pages(const Pages&) = delete;
  Pages& operator=(const Pages&) = delete;
  char* at(size_t offset) { return base_ + offset; }
  // Unmaps page `index`, so reads that touch it fail.
  void Unmap(size_t index) { ASSERT_EQ(munmap(base_ + index * kPage, kPage), 0); }

 private:
  char* base_ = nullptr;
  size_t size_;
};

uint64_t Address(const void* p) { return reinterpret_cast<uint64_t>(p); }

TEST(ReadStringTest, ReadsUpToTheNulAcrossAPageEnd) {
  Pages pages(2);
  const std::string text(100, 'x');
  memcpy(pages.at(kPage - 40), text.c_str(), text.size() + 1);
  absl::StatusOr<std::string> got = ReadString(getpid(), Address(pages.at(kPage - 40)));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, text);
}

TEST(ReadStringTest, AStringEndingAtAnUnmappedPageIsRead) {
  Pages pages(2);
  pages.Unmap(1);
  const char* text = "ends right here";
  const size_t length = strlen(text) + 1;
  memcpy(pages.at(kPage - length), text, length);
  absl::StatusOr<std::string> got = ReadString(getpid(), Address(pages.at(kPage - length)));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, text);
}

TEST(ReadStringTest, AStringRunningIntoAnUnmappedPageFails) {
  Pages pages(2);
  pages.Unmap(1);
  memset(pages.at(0), 'y', kPage);  // no NUL before the hole
  EXPECT_FALSE(ReadString(getpid(), Address(pages.at(kPage - 10))).ok());
}

TEST(ReadStringArrayTest, ANullArrayIsEmpty) {
  absl::StatusOr<std::vector<std::string>> none = ReadStringArray(getpid(), 0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(ReadStringArrayTest, ReadsAnArgvLaidOutLikeTheKernelDoes) {
  // Strings packed one after another, the array elsewhere, as on an exec'd
  // process's stack.
  const std::vector<std::string> argv = {"cc", "-O2", "", "-o", "out file.o", "a.c"};
  Pages pages(1);
  std::vector<uint64_t> array;
  size_t offset = 0;
  for (const std::string& arg : argv) {
    memcpy(pages.at(offset), arg.c_str(), arg.size() + 1);
    array.push_back(Address(pages.at(offset)));
    offset += arg.size() + 1;
  }
  array.push_back(0);
  absl::StatusOr<std::vector<std::string>> got = ReadStringArray(getpid(), Address(array.data()));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, argv);
}

TEST(ReadStringArrayTest, StringsSpreadOverManyPagesAndPageEnds) {
  // More pages than one batch reads, strings out of address order, some
  // shared, some crossing into the next page, and one running into a page
  // that holds no string start (so it is not part of the batch).
  constexpr size_t kPageCount = 150;
  Pages pages(kPageCount);
  std::vector<std::string> expected;
  std::vector<uint64_t> array;
  for (size_t i = kPageCount; i-- > 0;) {
    if (i % 3 == 2) continue;  // pages without a string start
    std::string text = "string " + std::to_string(i) + std::string(i % 7 * 30, '#');
    const size_t offset = i * kPage + kPage - 20;  // most cross the page end
    if (offset + text.size() + 1 > kPageCount * kPage) text.resize(10);
    memcpy(pages.at(offset), text.c_str(), text.size() + 1);
    array.push_back(Address(pages.at(offset)));
    expected.push_back(text);
    array.push_back(Address(pages.at(offset)));  // the same string twice
    expected.push_back(text);
  }
  // One long string that runs on over two whole pages that hold no start.
  std::string long_text(2 * kPage + 100, 'L');
  Pages far(4);
  memcpy(far.at(kPage - 50), long_text.c_str(), long_text.size() + 1);
  array.push_back(Address(far.at(kPage - 50)));
  expected.push_back(long_text);
  array.push_back(0);
  absl::StatusOr<std::vector<std::string>> got = ReadStringArray(getpid(), Address(array.data()));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ((*got)[i], expected[i]) << "entry " << i;
}

TEST(ReadStringArrayTest, AStringEndingAtAnUnmappedPageIsRead) {
  Pages pages(2);
  pages.Unmap(1);
  const char* text = "last bytes of the mapping";
  const size_t length = strlen(text) + 1;
  memcpy(pages.at(kPage - length), text, length);
  memcpy(pages.at(0), "first", 6);
  std::vector<uint64_t> array = {Address(pages.at(0)), Address(pages.at(kPage - length)), 0};
  absl::StatusOr<std::vector<std::string>> got = ReadStringArray(getpid(), Address(array.data()));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, (std::vector<std::string>{"first", text}));
}

TEST(ReadStringArrayTest, APointerToUnmappedMemoryFails) {
  Pages pages(2);
  memcpy(pages.at(0), "fine", 5);
  pages.Unmap(1);
  std::vector<uint64_t> array = {Address(pages.at(0)), Address(pages.at(kPage + 8)), 0};
  EXPECT_FALSE(ReadStringArray(getpid(), Address(array.data())).ok());
}

TEST(ReadStringArrayTest, AnArrayEndingAtAnUnmappedPageIsRead) {
  Pages pages(2);
  pages.Unmap(1);
  memcpy(pages.at(0), "only", 5);
  uint64_t* array = reinterpret_cast<uint64_t*>(pages.at(kPage - 2 * sizeof(uint64_t)));
  array[0] = Address(pages.at(0));
  array[1] = 0;
  absl::StatusOr<std::vector<std::string>> got = ReadStringArray(getpid(), Address(array));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, std::vector<std::string>{"only"});
}

}  // namespace
}  // namespace dodo::tracer
