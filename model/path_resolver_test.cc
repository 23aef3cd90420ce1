#include "model/path_resolver.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dodo::model {

// For gmock's container matchers; must live in the type's namespace for ADL.
bool operator==(const Resolution::Link& a, const Resolution::Link& b) {
  return a.path == b.path && a.target == b.target;
}
void PrintTo(const Resolution::Link& link, std::ostream* os) {
  *os << "{" << link.path << " -> " << link.target << "}";
}

namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;
using Kind = Resolution::Kind;

std::vector<std::string> Split(const std::string& absolute) {
  return absl::StrSplit(absolute, '/', absl::SkipEmpty());
}

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A scratch tree:
//   top.txt
//   src/a.c  src/b.c  src/sub/deep.h
//   src2/x
//   other/y
//   fifo                      (named pipe)
//   rel -> src                (relative link to a directory)
//   abs -> <root>/src         (absolute link)
//   fl -> src/a.c             (link to a file)
//   deep -> src/sub           (".." after it is physical: <root>/src)
//   src/up -> ../other        (relative target climbing out)
//   hop -> rel/sub            (a link whose target goes through a link)
//   loop1 -> loop2, loop2 -> loop1, self -> self
//   dangling -> nowhere
//   fileslash -> src/a.c/     (target demands a directory)
//   bin -> usr/bin, usr/bin/sh -> dash, usr/bin/dash  (a merged-/usr layout)
class PathResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    std::string pattern =
        absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/path_resolver_test.XXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << pattern;
    // The resolver requires a canonical base; the temp dir may sit below a symlink.
    char real[PATH_MAX];
    ASSERT_NE(realpath(pattern.c_str(), real), nullptr);
    root_ = real;
    root_parts_ = Split(root_);

    MakeFile("top.txt");
    MakeDir("src");
    MakeFile("src/a.c");
    MakeFile("src/b.c");
    MakeDir("src/sub");
    MakeFile("src/sub/deep.h");
    MakeDir("src2");
    MakeFile("src2/x");
    MakeDir("other");
    MakeFile("other/y");
    ASSERT_EQ(mkfifo(P("fifo").c_str(), 0644), 0);
    MakeLink("src", "rel");
    MakeLink(P("src"), "abs");
    MakeLink("src/a.c", "fl");
    MakeLink("src/sub", "deep");
    MakeLink("../other", "src/up");
    MakeLink("rel/sub", "hop");
    MakeLink("loop2", "loop1");
    MakeLink("loop1", "loop2");
    MakeLink("self", "self");
    MakeLink("nowhere", "dangling");
    MakeLink("src/a.c/", "fileslash");
    MakeDir("usr");
    MakeDir("usr/bin");
    MakeFile("usr/bin/dash");
    MakeLink("dash", "usr/bin/sh");
    MakeLink("usr/bin", "bin");
  }

  void TearDown() override {
    if (!root_.empty()) {
      std::string command = absl::StrCat("rm -rf '", root_, "'");
      EXPECT_EQ(std::system(command.c_str()), 0);
    }
  }

  std::string P(const std::string& relative) const { return absl::StrCat(root_, "/", relative); }
  std::vector<std::string> R(const std::vector<std::string>& names) const {
    return Concat(root_parts_, names);
  }

  void MakeFile(const std::string& relative, const std::string& content = "x") {
    FILE* f = fopen(P(relative).c_str(), "w");
    ASSERT_NE(f, nullptr) << relative;
    fputs(content.c_str(), f);
    fclose(f);
  }
  void MakeDir(const std::string& relative) { ASSERT_EQ(mkdir(P(relative).c_str(), 0755), 0); }
  void MakeLink(const std::string& target, const std::string& relative) {
    ASSERT_EQ(symlink(target.c_str(), P(relative).c_str()), 0) << relative;
  }

  // What the kernel says about `path` from `base`: 0 or the errno of fstatat.
  static int KernelStat(const std::string& base, const std::string& path, bool follow,
                        struct stat* st) {
    int dirfd = open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) return -1;
    int rc = fstatat(dirfd, path.c_str(), st, follow ? 0 : AT_SYMLINK_NOFOLLOW);
    int error = rc == 0 ? 0 : errno;
    close(dirfd);
    return error;
  }

  // Checks a resolution against the kernel: same error, and on success the
  // resolved absolute path names the same object (looked up without
  // following: every symlink on the way must already have been expanded,
  // except a final one that was not to be followed).
  void ExpectMatchesKernel(const std::string& base, const std::string& path, bool follow) {
    SCOPED_TRACE(absl::StrCat("base=", base, " path=", path, " follow=", follow));
    PathResolver resolver;
    Resolution r = resolver.Resolve(base, path, follow);
    struct stat expected;
    int kernel_error = KernelStat(base, path, follow, &expected);
    ASSERT_EQ(r.error, kernel_error);
    if (kernel_error != 0) {
      EXPECT_LT(r.found, r.components.size() + (r.error == ENOTDIR ? 1 : 0));
      return;
    }
    EXPECT_EQ(r.found, r.components.size());
    for (size_t i = 0; i + 1 < r.components.size(); ++i) {
      EXPECT_NE(r.components[i], "..");
      EXPECT_NE(r.components[i], ".");
    }
    struct stat actual;
    ASSERT_EQ(lstat(r.AbsolutePath().c_str(), &actual), 0) << r.AbsolutePath();
    EXPECT_EQ(actual.st_dev, expected.st_dev);
    EXPECT_EQ(actual.st_ino, expected.st_ino);
    Kind kind = S_ISREG(expected.st_mode)   ? Kind::kFile
                : S_ISDIR(expected.st_mode) ? Kind::kDirectory
                : S_ISLNK(expected.st_mode) ? Kind::kSymlink
                                            : Kind::kOther;
    EXPECT_EQ(r.kind, kind);
  }

  std::string root_;
  std::vector<std::string> root_parts_;
  PathResolver resolver_;
};

TEST_F(PathResolverTest, AbsolutePath) {
  Resolution r = resolver_.Resolve("/nonexistent-base", P("src/a.c"), true);
  EXPECT_TRUE(r.absolute);
  EXPECT_EQ(r.base, "/");
  EXPECT_EQ(r.components, R({"src", "a.c"}));
  EXPECT_EQ(r.found, r.components.size());
  EXPECT_EQ(r.error, 0);
  EXPECT_EQ(r.kind, Kind::kFile);
  EXPECT_THAT(r.links_followed, IsEmpty());
  EXPECT_EQ(r.AbsolutePath(), P("src/a.c"));
  EXPECT_EQ(r.ParentPath(), P("src"));
}

TEST_F(PathResolverTest, RelativePath) {
  Resolution r = resolver_.Resolve(root_, "src/a.c", true);
  EXPECT_FALSE(r.absolute);
  EXPECT_EQ(r.base, root_);
  EXPECT_THAT(r.components, ElementsAre("src", "a.c"));
  EXPECT_EQ(r.found, 2u);
  EXPECT_EQ(r.error, 0);
  EXPECT_EQ(r.kind, Kind::kFile);
  EXPECT_EQ(r.AbsolutePath(), P("src/a.c"));
  EXPECT_EQ(r.ParentPath(), P("src"));
}

TEST_F(PathResolverTest, BaseIsNormalized) {
  Resolution r = resolver_.Resolve(root_ + "//src/./", "a.c", true);
  EXPECT_EQ(r.base, P("src"));
  EXPECT_THAT(r.components, ElementsAre("a.c"));
  EXPECT_EQ(r.error, 0);
}

TEST_F(PathResolverTest, DirectoryKindAndEmptyWalks) {
  Resolution root = resolver_.Resolve(root_, "/", true);
  EXPECT_TRUE(root.absolute);
  EXPECT_THAT(root.components, IsEmpty());
  EXPECT_EQ(root.error, 0);
  EXPECT_EQ(root.kind, Kind::kDirectory);
  EXPECT_EQ(root.AbsolutePath(), "/");
  EXPECT_EQ(root.ParentPath(), "/");

  Resolution dot = resolver_.Resolve(root_, ".", true);
  EXPECT_FALSE(dot.absolute);
  EXPECT_THAT(dot.components, IsEmpty());
  EXPECT_EQ(dot.error, 0);
  EXPECT_EQ(dot.kind, Kind::kDirectory);
  EXPECT_EQ(dot.AbsolutePath(), root_);
  EXPECT_EQ(dot.ParentPath(), "/" + absl::StrJoin(root_parts_.begin(), root_parts_.end() - 1, "/"));

  Resolution dir = resolver_.Resolve(root_, "src", true);
  EXPECT_EQ(dir.kind, Kind::kDirectory);
}

TEST_F(PathResolverTest, OtherKind) {
  Resolution r = resolver_.Resolve(root_, "fifo", true);
  EXPECT_EQ(r.error, 0);
  EXPECT_EQ(r.kind, Kind::kOther);
}

TEST_F(PathResolverTest, DotsAndEmptyComponentsAreDropped) {
  Resolution r = resolver_.Resolve(root_, ".//src/././a.c", true);
  EXPECT_FALSE(r.absolute);
  EXPECT_THAT(r.components, ElementsAre("src", "a.c"));
  EXPECT_EQ(r.error, 0);
  EXPECT_EQ(r.kind, Kind::kFile);
}

TEST_F(PathResolverTest, DotDotPopsPreviousComponent) {
  Resolution r = resolver_.Resolve(root_, "src/sub/../b.c", true);
  EXPECT_FALSE(r.absolute);
  EXPECT_THAT(r.components, ElementsAre("src", "b.c"));
  EXPECT_EQ(r.found, 2u);
  EXPECT_EQ(r.kind, Kind::kFile);
}

TEST_F(PathResolverTest, DotDotAboveRelativeBaseBecomesAbsolute) {
  Resolution r = resolver_.Resolve(P("src"), "../top.txt", true);
  EXPECT_TRUE(r.absolute);
  EXPECT_EQ(r.base, "/");
  EXPECT_EQ(r.components, R({"top.txt"}));
  EXPECT_EQ(r.error, 0);
  EXPECT_EQ(r.kind, Kind::kFile);

  // Twice above, then down again.
  Resolution twice = resolver_.Resolve(P("src/sub"), "../../other/y", true);
  EXPECT_TRUE(twice.absolute);
  EXPECT_EQ(twice.components, R({"other", "y"}));
  EXPECT_EQ(twice.error, 0);
}

TEST_F(PathResolverTest, DotDotAtRootStaysAtRoot) {
  Resolution r = resolver_.Resolve(root_, "/../../..", true);
  EXPECT_TRUE(r.absolute);
  EXPECT_THAT(r.components, IsEmpty());
  EXPECT_EQ(r.kind, Kind::kDirectory);

  Resolution down = resolver_.Resolve(root_, "/../.." + root_ + "/top.txt", true);
  EXPECT_EQ(down.components, R({"top.txt"}));
  EXPECT_EQ(down.error, 0);

  // A relative base of "/" climbs to "/" too.
  Resolution from_root = resolver_.Resolve("/", "..", true);
  EXPECT_TRUE(from_root.absolute);
  EXPECT_THAT(from_root.components, IsEmpty());
  EXPECT_EQ(from_root.error, 0);
}

TEST_F(PathResolverTest, RelativeSymlinkInMiddle) {
  Resolution r = resolver_.Resolve(root_, "rel/a.c", false);
  EXPECT_FALSE(r.absolute);
  EXPECT_EQ(r.base, root_);
  EXPECT_THAT(r.components, ElementsAre("src", "a.c"));
  EXPECT_EQ(r.error, 0);
  EXPECT_EQ(r.kind, Kind::kFile);
  EXPECT_THAT(r.links_followed, ElementsAre(Resolution::Link{P("rel"), "src"}));
}

TEST_F(PathResolverTest, AbsoluteSymlinkRestartsAtRoot) {
  Resolution r = resolver_.Resolve(root_, "abs/sub/deep.h", true);
  EXPECT_TRUE(r.absolute);
  EXPECT_EQ(r.base, "/");
  EXPECT_EQ(r.components, R({"src", "sub", "deep.h"}));
  EXPECT_EQ(r.error, 0);
  EXPECT_THAT(r.links_followed, ElementsAre(Resolution::Link{P("abs"), P("src")}));
}

TEST_F(PathResolverTest, FinalSymlinkFollowedOnlyWhenAsked) {
  Resolution nofollow = resolver_.Resolve(root_, "fl", false);
  EXPECT_THAT(nofollow.components, ElementsAre("fl"));
  EXPECT_EQ(nofollow.error, 0);
  EXPECT_EQ(nofollow.kind, Kind::kSymlink);
  EXPECT_THAT(nofollow.links_followed, IsEmpty());

  Resolution follow = resolver_.Resolve(root_, "fl", true);
  EXPECT_THAT(follow.components, ElementsAre("src", "a.c"));
  EXPECT_EQ(follow.error, 0);
  EXPECT_EQ(follow.kind, Kind::kFile);
  EXPECT_THAT(follow.links_followed, ElementsAre(Resolution::Link{P("fl"), "src/a.c"}));
}

TEST_F(PathResolverTest, TrailingSlashFollowsFinalSymlink) {
  Resolution r = resolver_.Resolve(root_, "rel/", false);
  EXPECT_THAT(r.components, ElementsAre("src"));
  EXPECT_EQ(r.error, 0);
  EXPECT_EQ(r.kind, Kind::kDirectory);
  EXPECT_EQ(r.links_followed.size(), 1u);

  Resolution dot = resolver_.Resolve(root_, "rel/.", false);
  EXPECT_THAT(dot.components, ElementsAre("src"));
  EXPECT_EQ(dot.kind, Kind::kDirectory);
}

TEST_F(PathResolverTest, LinkThroughLinkAndClimbingTarget) {
  Resolution hop = resolver_.Resolve(root_, "hop/deep.h", true);
  EXPECT_THAT(hop.components, ElementsAre("src", "sub", "deep.h"));
  EXPECT_THAT(hop.links_followed, ElementsAre(Resolution::Link{P("hop"), "rel/sub"},
                                              Resolution::Link{P("rel"), "src"}));
  EXPECT_EQ(hop.error, 0);

  Resolution up = resolver_.Resolve(root_, "src/up/y", true);
  EXPECT_THAT(up.components, ElementsAre("other", "y"));
  EXPECT_THAT(up.links_followed, ElementsAre(Resolution::Link{P("src/up"), "../other"}));
  EXPECT_EQ(up.error, 0);
  EXPECT_EQ(up.kind, Kind::kFile);
}

TEST_F(PathResolverTest, DotDotAfterSymlinkIsPhysical) {
  // deep -> src/sub, so deep/.. is src, not the root of the tree.
  Resolution r = resolver_.Resolve(root_, "deep/../a.c", true);
  EXPECT_THAT(r.components, ElementsAre("src", "a.c"));
  EXPECT_EQ(r.error, 0);
  ExpectMatchesKernel(root_, "deep/../a.c", true);
}

TEST_F(PathResolverTest, MergedUsrLayout) {
  Resolution follow = resolver_.Resolve(root_, "bin/sh", true);
  EXPECT_THAT(follow.links_followed, ElementsAre(Resolution::Link{P("bin"), "usr/bin"},
                                                 Resolution::Link{P("usr/bin/sh"), "dash"}));
  EXPECT_THAT(follow.components, ElementsAre("usr", "bin", "dash"));
  EXPECT_EQ(follow.kind, Kind::kFile);

  Resolution nofollow = resolver_.Resolve(root_, "bin/sh", false);
  EXPECT_THAT(nofollow.links_followed, ElementsAre(Resolution::Link{P("bin"), "usr/bin"}));
  EXPECT_THAT(nofollow.components, ElementsAre("usr", "bin", "sh"));
  EXPECT_EQ(nofollow.kind, Kind::kSymlink);
}

TEST_F(PathResolverTest, RealBinShMatchesKernel) {
  // Whatever the machine's layout (merged /usr or not), the resolution must
  // land where the kernel does, and report /bin first when it is a link.
  Resolution r = resolver_.Resolve("/", "/bin/sh", false);
  ASSERT_EQ(r.error, 0);
  struct stat st;
  ASSERT_EQ(lstat("/bin", &st), 0);
  if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX];
    ssize_t n = readlink("/bin", target, sizeof(target));
    ASSERT_GT(n, 0);
    ASSERT_FALSE(r.links_followed.empty());
    EXPECT_EQ(r.links_followed[0].path, "/bin");
    EXPECT_EQ(r.links_followed[0].target, std::string(target, n));
    EXPECT_NE(r.components[0], "bin");
  } else {
    EXPECT_THAT(r.links_followed, IsEmpty());
    EXPECT_THAT(r.components, ElementsAre("bin", "sh"));
  }
  ExpectMatchesKernel("/", "/bin/sh", false);
  ExpectMatchesKernel("/", "/bin/sh", true);
  ExpectMatchesKernel("/usr", "../bin/sh", true);
}

TEST_F(PathResolverTest, MissingComponent) {
  Resolution r = resolver_.Resolve(root_, "src/missing/./x//y", true);
  EXPECT_EQ(r.error, ENOENT);
  EXPECT_EQ(r.found, 1u);
  EXPECT_THAT(r.components, ElementsAre("src", "missing", "x", "y"));
  EXPECT_EQ(r.kind, Kind::kMissing);
  EXPECT_EQ(r.AbsolutePath(), P("src/missing/x/y"));

  Resolution last = resolver_.Resolve(root_, "src/nope", true);
  EXPECT_EQ(last.error, ENOENT);
  EXPECT_EQ(last.found, 1u);
  EXPECT_THAT(last.components, ElementsAre("src", "nope"));
  EXPECT_EQ(last.ParentPath(), P("src"));

  // ".." after a missing name stays in the unresolved tail, as given.
  Resolution dotdot = resolver_.Resolve(root_, "nope/../top.txt", true);
  EXPECT_EQ(dotdot.error, ENOENT);
  EXPECT_EQ(dotdot.found, 0u);
  EXPECT_THAT(dotdot.components, ElementsAre("nope", "..", "top.txt"));
  EXPECT_EQ(dotdot.AbsolutePath(), P("top.txt"));
}

TEST_F(PathResolverTest, MissingAfterSymlinkReportsExpandedNames) {
  Resolution r = resolver_.Resolve(root_, "rel/nope/z", true);
  EXPECT_EQ(r.error, ENOENT);
  EXPECT_EQ(r.found, 1u);
  EXPECT_THAT(r.components, ElementsAre("src", "nope", "z"));

  Resolution dangling = resolver_.Resolve(root_, "dangling", true);
  EXPECT_EQ(dangling.error, ENOENT);
  EXPECT_EQ(dangling.found, 0u);
  EXPECT_THAT(dangling.components, ElementsAre("nowhere"));
  EXPECT_THAT(dangling.links_followed, ElementsAre(Resolution::Link{P("dangling"), "nowhere"}));

  Resolution not_followed = resolver_.Resolve(root_, "dangling", false);
  EXPECT_EQ(not_followed.error, 0);
  EXPECT_EQ(not_followed.kind, Kind::kSymlink);
}

TEST_F(PathResolverTest, NotADirectoryCountsTheFileAsFound) {
  // A name inside a file: the file was found, the lookup of "x" fails.
  Resolution r = resolver_.Resolve(root_, "src/a.c/x/y", true);
  EXPECT_EQ(r.error, ENOTDIR);
  EXPECT_EQ(r.found, 2u);
  EXPECT_THAT(r.components, ElementsAre("src", "a.c", "x", "y"));
  EXPECT_EQ(r.kind, Kind::kMissing);

  // Only a trailing slash: everything was found, but it is not a directory.
  Resolution slash = resolver_.Resolve(root_, "src/a.c/", true);
  EXPECT_EQ(slash.error, ENOTDIR);
  EXPECT_EQ(slash.found, 2u);
  EXPECT_THAT(slash.components, ElementsAre("src", "a.c"));
  EXPECT_EQ(slash.kind, Kind::kFile);

  Resolution dot = resolver_.Resolve(root_, "src/a.c/.", true);
  EXPECT_EQ(dot.error, ENOTDIR);
  EXPECT_EQ(dot.found, 2u);
  EXPECT_THAT(dot.components, ElementsAre("src", "a.c"));

  Resolution dotdot = resolver_.Resolve(root_, "src/a.c/..", true);
  EXPECT_EQ(dotdot.error, ENOTDIR);
  EXPECT_EQ(dotdot.found, 2u);
  EXPECT_THAT(dotdot.components, ElementsAre("src", "a.c", ".."));

  // Through a link to a file, and a link whose target ends in a slash.
  Resolution via_link = resolver_.Resolve(root_, "fl/x", false);
  EXPECT_EQ(via_link.error, ENOTDIR);
  EXPECT_EQ(via_link.found, 2u);
  EXPECT_THAT(via_link.components, ElementsAre("src", "a.c", "x"));

  Resolution target_slash = resolver_.Resolve(root_, "fileslash", true);
  EXPECT_EQ(target_slash.error, ENOTDIR);
  EXPECT_THAT(target_slash.components, ElementsAre("src", "a.c"));
  EXPECT_EQ(target_slash.found, 2u);

  Resolution fifo = resolver_.Resolve(root_, "fifo/x", true);
  EXPECT_EQ(fifo.error, ENOTDIR);
  EXPECT_EQ(fifo.found, 1u);
}

TEST_F(PathResolverTest, SymlinkLoops) {
  Resolution loop = resolver_.Resolve(root_, "loop1", true);
  EXPECT_EQ(loop.error, ELOOP);
  EXPECT_EQ(loop.links_followed.size(), 40u);
  EXPECT_LT(loop.found, loop.components.size());
  EXPECT_EQ(loop.components[loop.found], loop.links_followed.size() % 2 == 0 ? "loop1" : "loop2");

  Resolution nofollow = resolver_.Resolve(root_, "loop1", false);
  EXPECT_EQ(nofollow.error, 0);
  EXPECT_EQ(nofollow.kind, Kind::kSymlink);

  Resolution inner = resolver_.Resolve(root_, "self/x", false);
  EXPECT_EQ(inner.error, ELOOP);
  EXPECT_EQ(inner.found, 0u);
  EXPECT_THAT(inner.components, ElementsAre("self", "x"));
  EXPECT_EQ(inner.links_followed.size(), 40u);
  EXPECT_EQ(inner.links_followed[0], (Resolution::Link{P("self"), "self"}));
}

TEST_F(PathResolverTest, FortyLinksAllowedFortyFirstIsELoop) {
  // c0 -> c1 -> ... -> c40 -> top.txt
  MakeLink("top.txt", "c40");
  for (int i = 39; i >= 0; --i) MakeLink(absl::StrCat("c", i + 1), absl::StrCat("c", i));

  Resolution forty = resolver_.Resolve(root_, "c1", true);
  EXPECT_EQ(forty.error, 0);
  EXPECT_EQ(forty.links_followed.size(), 40u);
  EXPECT_THAT(forty.components, ElementsAre("top.txt"));

  Resolution forty_one = resolver_.Resolve(root_, "c0", true);
  EXPECT_EQ(forty_one.error, ELOOP);
  EXPECT_EQ(forty_one.links_followed.size(), 40u);
  EXPECT_THAT(forty_one.components, ElementsAre("c40"));
  EXPECT_EQ(forty_one.found, 0u);

  ExpectMatchesKernel(root_, "c1", true);
  ExpectMatchesKernel(root_, "c0", true);
  ExpectMatchesKernel(root_, "c0", false);
}

TEST_F(PathResolverTest, EmptyPath) {
  Resolution r = resolver_.Resolve(root_, "", true);
  EXPECT_EQ(r.error, ENOENT);
  EXPECT_EQ(r.found, 0u);
  EXPECT_THAT(r.components, IsEmpty());
  EXPECT_EQ(resolver_.cache_misses(), 0u);
}

TEST_F(PathResolverTest, NameTooLong) {
  std::string long_name(NAME_MAX + 1, 'n');
  Resolution name = resolver_.Resolve(root_, "src/" + long_name + "/x", true);
  EXPECT_EQ(name.error, ENAMETOOLONG);
  EXPECT_EQ(name.found, 1u);
  EXPECT_THAT(name.components, ElementsAre("src", long_name, "x"));

  std::string max_name(NAME_MAX, 'm');
  Resolution max = resolver_.Resolve(root_, "src/" + max_name, true);
  EXPECT_EQ(max.error, ENOENT);

  // PATH_MAX counts the terminating NUL: 4095 characters pass, 4096 do not.
  std::string ok_path;
  for (int i = 0; i < (PATH_MAX - 1 - 7) / 2; ++i) ok_path += "./";
  ok_path += "top.txt";
  ASSERT_EQ(ok_path.size(), static_cast<size_t>(PATH_MAX - 1));
  Resolution ok = resolver_.Resolve(root_, ok_path, true);
  EXPECT_EQ(ok.error, 0);
  EXPECT_THAT(ok.components, ElementsAre("top.txt"));
  ExpectMatchesKernel(root_, ok_path, true);

  std::string too_long = ok_path;
  too_long.insert(1, "/");
  Resolution bad = resolver_.Resolve(root_, too_long, true);
  EXPECT_EQ(bad.error, ENAMETOOLONG);
  EXPECT_EQ(bad.found, 0u);
  ExpectMatchesKernel(root_, too_long, true);
}

TEST_F(PathResolverTest, AgreesWithKernel) {
  const std::vector<std::string> paths = {"top.txt",
                                          "src",
                                          "src/",
                                          "src/.",
                                          "src/a.c",
                                          "src/a.c/",
                                          "src/a.c/.",
                                          "src/a.c/..",
                                          "src/a.c/x",
                                          "src/sub/..",
                                          "src/../top.txt",
                                          "rel",
                                          "rel/",
                                          "rel/.",
                                          "rel/a.c",
                                          "rel/..",
                                          "abs/sub",
                                          "fl",
                                          "fl/",
                                          "deep/..",
                                          "deep/../a.c",
                                          "src/up",
                                          "src/up/y",
                                          "hop",
                                          "hop/deep.h",
                                          "loop1",
                                          "loop1/",
                                          "self",
                                          "dangling",
                                          "dangling/",
                                          "fileslash",
                                          "fileslash/x",
                                          "fifo",
                                          "fifo/",
                                          "missing",
                                          "missing/",
                                          "missing/..",
                                          "bin/sh",
                                          "bin/sh/",
                                          "bin/../bin",
                                          "..",
                                          "../..",
                                          "/",
                                          ".",
                                          "./src//a.c",
                                          "usr/bin/sh"};
  for (const std::string& path : paths) {
    ExpectMatchesKernel(root_, path, true);
    ExpectMatchesKernel(root_, path, false);
    ExpectMatchesKernel(P("src/sub"), "../../" + path, false);
    ExpectMatchesKernel("/", root_ + "/" + path, true);
  }
}

TEST_F(PathResolverTest, SecondResolutionMakesNoSystemCalls) {
  Resolution first = resolver_.Resolve(root_, "hop/deep.h", true);
  ASSERT_EQ(first.error, 0);
  size_t misses = resolver_.cache_misses();
  size_t hits = resolver_.cache_hits();
  EXPECT_GT(misses, 0u);

  Resolution second = resolver_.Resolve(root_, "hop/deep.h", true);
  EXPECT_EQ(resolver_.cache_misses(), misses);
  // hop, rel, src (rel's target), sub, deep.h.
  EXPECT_EQ(resolver_.cache_hits(), hits + 5);
  EXPECT_EQ(second.components, first.components);
  EXPECT_EQ(second.links_followed.size(), first.links_followed.size());

  // A sibling costs exactly one new lookup; failures are cached too.
  resolver_.Resolve(root_, "src/b.c", true);
  EXPECT_EQ(resolver_.cache_misses(), misses + 1);
  resolver_.Resolve(root_, "src/nope", true);
  resolver_.Resolve(root_, "src/nope", true);
  EXPECT_EQ(resolver_.cache_misses(), misses + 2);

  // The same file reached from another base or spelling shares entries
  // (the base itself is never looked up).
  size_t before = resolver_.cache_misses();
  resolver_.Resolve(P("src"), "./a.c", true);
  EXPECT_EQ(resolver_.cache_misses(), before + 1);  // only src/a.c itself
  resolver_.Resolve(root_, "src/sub/../a.c", true);
  EXPECT_EQ(resolver_.cache_misses(), before + 1);

  resolver_.Clear();
  before = resolver_.cache_misses();
  resolver_.Resolve(root_, "src/b.c", true);
  EXPECT_EQ(resolver_.cache_misses(), before + 2);
}

TEST_F(PathResolverTest, InvalidateMakesCreationVisible) {
  Resolution missing = resolver_.Resolve(root_, "src/new.c", true);
  ASSERT_EQ(missing.error, ENOENT);
  MakeFile("src/new.c");

  // The cache still answers from before: that is what Invalidate is for.
  EXPECT_EQ(resolver_.Resolve(root_, "src/new.c", true).error, ENOENT);

  resolver_.Invalidate(P("src/new.c"));
  Resolution found = resolver_.Resolve(root_, "src/new.c", true);
  EXPECT_EQ(found.error, 0);
  EXPECT_EQ(found.found, 2u);
  EXPECT_EQ(found.kind, Kind::kFile);

  // Removal, and replacement of a file by a symlink.
  ASSERT_EQ(unlink(P("src/new.c").c_str()), 0);
  MakeLink("b.c", "src/new.c");
  resolver_.Invalidate(P("src/new.c") + "/");  // a trailing slash names the same entry
  Resolution link = resolver_.Resolve(root_, "src/new.c", true);
  EXPECT_EQ(link.error, 0);
  EXPECT_THAT(link.components, ElementsAre("src", "b.c"));
}

TEST_F(PathResolverTest, InvalidateTreeAfterRename) {
  ASSERT_EQ(resolver_.Resolve(root_, "src/sub/deep.h", true).error, 0);
  ASSERT_EQ(resolver_.Resolve(root_, "moved/sub/deep.h", true).error, ENOENT);
  ASSERT_EQ(resolver_.Resolve(root_, "src2/x", true).error, 0);

  ASSERT_EQ(rename(P("src").c_str(), P("moved").c_str()), 0);
  resolver_.InvalidateTree(P("src"));
  resolver_.InvalidateTree(P("moved"));

  Resolution old_name = resolver_.Resolve(root_, "src/sub/deep.h", true);
  EXPECT_EQ(old_name.error, ENOENT);
  EXPECT_EQ(old_name.found, 0u);

  Resolution new_name = resolver_.Resolve(root_, "moved/sub/deep.h", true);
  EXPECT_EQ(new_name.error, 0);
  EXPECT_THAT(new_name.components, ElementsAre("moved", "sub", "deep.h"));

  // A sibling sharing the prefix "src" was not dropped.
  size_t misses = resolver_.cache_misses();
  EXPECT_EQ(resolver_.Resolve(root_, "src2/x", true).error, 0);
  EXPECT_EQ(resolver_.cache_misses(), misses);
}

TEST_F(PathResolverTest, InvalidateTreeDropsEverythingBelow) {
  ASSERT_EQ(resolver_.Resolve(root_, "src/sub/deep.h", true).error, 0);
  ASSERT_EQ(resolver_.Resolve(root_, "src/a.c", true).error, 0);
  // Replace the tree behind the cache's back: src/sub becomes a file.
  ASSERT_EQ(unlink(P("src/sub/deep.h").c_str()), 0);
  ASSERT_EQ(rmdir(P("src/sub").c_str()), 0);
  MakeFile("src/sub");

  resolver_.InvalidateTree(P("src/"));
  Resolution r = resolver_.Resolve(root_, "src/sub/deep.h", true);
  EXPECT_EQ(r.error, ENOTDIR);
  EXPECT_EQ(r.found, 2u);

  resolver_.InvalidateTree("/");
  size_t misses = resolver_.cache_misses();
  resolver_.Resolve(root_, "src/a.c", true);
  EXPECT_EQ(resolver_.cache_misses(), misses + 2);
}

// /proc/self is the traced process's, never the resolver's own.
TEST(PathResolverProcTest, ProcSelfNamesTheTracedProcess) {
  PathResolver resolver;
  resolver.set_process(4242, 4243);
  std::string target;
  EXPECT_EQ(resolver.ReadLink("/proc/self", &target), 0);
  EXPECT_EQ(target, "4242");
  EXPECT_EQ(resolver.ReadLink("/proc/thread-self", &target), 0);
  EXPECT_EQ(target, "4242/task/4243");
  resolver.set_process(7, 7);
  EXPECT_EQ(resolver.ReadLink("/proc/self", &target), 0);
  EXPECT_EQ(target, "7") << "answers about /proc are not cached";
}

class StageMapper : public PathMapper {
 public:
  const std::string& Physical(const std::string& path) const override { return path; }
  std::optional<std::string> Logical(const std::string& physical) const override {
    if (physical == "/dev/null") return "/project/out.o";
    return std::nullopt;
  }
};

TEST(PathResolverProcTest, DescriptorLinksAreShownAsTheProcessNamedThem) {
  PathResolver resolver;
  StageMapper mapper;
  resolver.set_path_mapper(&mapper);
  const std::string self = std::to_string(getpid());
  resolver.set_process(getpid(), getpid());
  const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string target;
  EXPECT_EQ(resolver.ReadLink("/proc/" + self + "/fd/" + std::to_string(fd), &target), 0);
  EXPECT_EQ(target, "/project/out.o");
  close(fd);
  EXPECT_EQ(resolver.ReadLink("/proc/" + self + "/fd/" + std::to_string(fd), &target), ENOENT);
}

}  // namespace
}  // namespace dodo::model
