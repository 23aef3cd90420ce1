// Acceptance tests of the virtual store (RFC-0048). `dodo build` lets the
// build write the files of the project in place, keeps the version each one
// had in .dodo/stage/ until its writers exit, and then commits the new one
// (saved in .dodo/objects/, recorded in .dodo/manifest) or puts the old one
// back. `dodo build --staged` instead redirects every file the build writes
// to a staging copy under .dodo/stage/, renamed over the real path at the
// commit. Every test runs in both modes.
// Each test runs one pattern that RFC-0048 lists as a gap of that design
// (ftruncate, utimes, lseek, pread/pwrite, symlinks, flock, fchmod/fchown,
// dup2, fsync, failed writers, paths the build can see) through
// //testdata/programs:rfc_gaps or a common tool, in a new empty project, and
// checks what can be seen from outside: the bytes in the real tree, the
// manifest entry, the store object and the operations in .dodo/trace.
//
// Every test runs with the dynamic and the static rfc_gaps (a static binary
// makes its syscalls without the libc's dynamic loader and wrappers), and,
// where a tool does the work, with coreutils/binutils and with busybox.
#include <openssl/evp.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "proto/manifest.pb.h"
#include "proto/trace.pb.h"
#include "tests/build_test_util.h"
#include "tests/trace_loader.h"
#include "tests/trace_test_util.h"

namespace dodo::test {
namespace {

namespace fs = std::filesystem;

// The programs that do a test's work when it is not rfc_gaps: the ones a
// Debian build finds in PATH, or busybox's applets. Archives are always made
// by binutils (busybox's ar only lists and extracts).
struct Tools {
  std::string name;
  std::string touch;
  std::string ln;
  std::string ar;  // for `t` and `x`
};

// For gtest's messages about a parameter.
std::ostream& operator<<(std::ostream& out, const Tools& tools) { return out << tools.name; }

const Tools kCoreutils = {"coreutils", "touch", "ln", "ar"};
const Tools kBusybox = {"busybox", "/bin/busybox touch", "/bin/busybox ln", "/bin/busybox ar"};

// What rfc_gaps fail-half writes before it exits 1.
std::string PartialBytes() {
  std::string bytes(50, '.');
  bytes.replace(0, 7, "partial");
  return bytes;
}

// `text` as one word for /bin/sh.
std::string ShellQuote(std::string_view text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

// The write mode flag of the running test: "" (in place) or "--staged".
std::string current_write_mode;

// `dodo build` arguments that run `script` with /bin/sh as the root command.
std::vector<std::string> Sh(const std::string& script) { return {"--", "/bin/sh", "-c", script}; }

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : bytes) {
    hex += kDigits[c >> 4];
    hex += kDigits[c & 0xf];
  }
  return hex;
}

// The raw 32-byte SHA-256 of `data`: how the manifest and the store name it.
std::string Sha256(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr) != 1) {
    ADD_FAILURE() << "EVP_Digest failed";
    return "";
  }
  return std::string(reinterpret_cast<const char*>(digest), size);
}

// Compares file contents without printing kilobytes of binary on failure.
::testing::AssertionResult SameBytes(const std::optional<std::string>& actual,
                                     std::string_view expected) {
  if (!actual.has_value()) return ::testing::AssertionFailure() << "the file is missing";
  if (*actual == expected) return ::testing::AssertionSuccess();
  auto preview = [](std::string_view bytes) {
    return ::testing::PrintToString(std::string(bytes.substr(0, 64))) +
           (bytes.size() > 64 ? "..." : "");
  };
  return ::testing::AssertionFailure()
         << "holds " << actual->size() << " bytes " << preview(*actual) << ", expected "
         << expected.size() << " bytes " << preview(expected);
}

std::string Explain(const BuildRun& build) {
  return "dodo exit status " + std::to_string(build.run.exit_status) + "\nstdout:\n" +
         build.run.out + "\nstderr:\n" + build.run.err + "\ncommands:\n" +
         DescribeCommands(build.trace) + "trace:\n" + build.trace.Dump();
}

bool MentionsStage(std::string_view text) { return text.find("/.dodo/") != std::string::npos; }

// Runs `dodo build args...` in the project and checks what every build must
// get right whatever it ran: its exit status, and that the trace names the
// real tree, never a staging path.
BuildRun BuildIn(const Project& project, std::vector<std::string> args,
                 int expected_exit_status = 0) {
  if (!current_write_mode.empty() &&
      std::find(args.begin(), args.end(), "--direct") == args.end()) {
    args.insert(args.begin(), current_write_mode);
  }
  BuildRun build = project.Build(args);
  EXPECT_EQ(build.run.exit_status, expected_exit_status) << Explain(build);
  for (const TracedCommand& command : build.trace.commands) {
    EXPECT_FALSE(MentionsStage(command.cwd) || MentionsStage(command.executable))
        << "command " << command.id << " runs in or from the store: " << command.cwd << ", "
        << command.executable;
  }
  for (const TracedOp& op : build.trace.ops) {
    EXPECT_FALSE(MentionsStage(op.path) || MentionsStage(op.path2) || MentionsStage(op.text))
        << "the trace shows a staging path: " << op.notation;
  }
  return build;
}

bool HasOp(const LoadedTrace& trace, proto::OpKind kind, const std::string& path) {
  return !trace
              .Find([&](const TracedOp& op) {
                return op.kind == kind && op.path == path && op.error == 0;
              })
              .empty();
}

void ExpectOp(const BuildRun& build, proto::OpKind kind, const std::string& path) {
  EXPECT_TRUE(HasOp(build.trace, kind, path))
      << "no successful " << proto::OpKind_Name(kind) << " on " << path << " in the trace:\n"
      << build.trace.Dump();
}

// .dodo/manifest, or std::nullopt (and a failure) when there is none.
std::optional<proto::Manifest> ReadManifest(const Project& project) {
  std::optional<std::string> bytes = project.Read(".dodo/manifest");
  if (!bytes.has_value()) {
    ADD_FAILURE() << "no " << project.Path(".dodo/manifest");
    return std::nullopt;
  }
  proto::Manifest manifest;
  if (!manifest.ParseFromString(*bytes)) {
    ADD_FAILURE() << project.Path(".dodo/manifest") << " is not a dodo.proto.Manifest";
    return std::nullopt;
  }
  EXPECT_EQ(manifest.format_version(), 1u);
  EXPECT_EQ(manifest.project_root(), project.dir());
  return manifest;
}

const proto::ManifestEntry* FindEntry(const proto::Manifest& manifest, std::string_view path) {
  for (const proto::ManifestEntry& entry : manifest.entries()) {
    if (entry.path() == path) return &entry;
  }
  return nullptr;
}

// The manifest's entry for `relative`, failing the test when it has none.
std::optional<proto::ManifestEntry> ManifestEntry(const Project& project,
                                                  std::string_view relative) {
  std::optional<proto::Manifest> manifest = ReadManifest(project);
  if (!manifest.has_value()) return std::nullopt;
  const proto::ManifestEntry* entry = FindEntry(*manifest, relative);
  if (entry == nullptr) {
    ADD_FAILURE() << "the manifest has no entry for " << relative << ":\n"
                  << manifest->DebugString();
    return std::nullopt;
  }
  return *entry;
}

std::string StoreObjectPath(const Project& project, std::string_view content) {
  const std::string hex = Hex(Sha256(content));
  return project.Path(".dodo/objects/" + hex.substr(0, 2) + "/" + hex.substr(2));
}

void ExpectStored(const Project& project, std::string_view content) {
  const std::string object = StoreObjectPath(project, content);
  EXPECT_TRUE(SameBytes(ReadFile(object), content)) << "store object " << object;
}

std::optional<struct stat> Lstat(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return std::nullopt;
  return st;
}

int64_t MtimeNs(const struct stat& st) {
  return int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// Checks that the build committed `content` at `relative`: the real tree holds
// it (with permission bits `mode`, when given), the store has it as an object,
// and the manifest entry describes exactly that file as the tree has it.
void ExpectCommitted(const Project& project, std::string_view relative, std::string_view content,
                     std::optional<uint32_t> mode = std::nullopt) {
  SCOPED_TRACE("committed file " + std::string(relative));
  const std::string path = project.Path(relative);
  EXPECT_TRUE(SameBytes(ReadFile(path), content)) << "in the tree: " << path;
  std::optional<struct stat> st = Lstat(path);
  if (st.has_value()) {
    EXPECT_TRUE(S_ISREG(st->st_mode)) << path << " is not a regular file";
    if (mode.has_value()) {
      EXPECT_EQ(st->st_mode & 07777, *mode) << "mode of " << path;
    }
  }
  ExpectStored(project, content);
  std::optional<proto::ManifestEntry> entry = ManifestEntry(project, relative);
  if (!entry.has_value()) return;
  EXPECT_EQ(entry->kind(), proto::ENTRY_FILE);
  EXPECT_EQ(Hex(entry->sha256()), Hex(Sha256(content)));
  EXPECT_EQ(entry->size(), content.size());
  if (mode.has_value()) {
    EXPECT_EQ(entry->mode(), *mode) << "manifest mode";
  }
  if (st.has_value()) {
    EXPECT_EQ(entry->mode(), st->st_mode & 07777) << "manifest mode vs the tree";
    EXPECT_EQ(entry->uid(), st->st_uid);
    EXPECT_EQ(entry->gid(), st->st_gid);
    EXPECT_EQ(entry->mtime_ns(), MtimeNs(*st)) << "manifest mtime vs the tree";
  }
}

std::string LinkingName(const std::string& suffix) { return suffix.empty() ? "dynamic" : "static"; }
std::string ModeName(const std::string& flag) { return flag.empty() ? "in_place" : "staged"; }

// The dynamic and the static rfc_gaps (the target suffix), times the write
// modes (the flag).
class VfsTest : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {
 protected:
  void SetUp() override { current_write_mode = std::get<1>(GetParam()); }
  std::string RfcGaps() const { return ProgramPath("rfc_gaps" + std::get<0>(GetParam())); }
  // The same, as a word for a shell script.
  std::string Rfc() const { return ShellQuote(RfcGaps()); }
};

INSTANTIATE_TEST_SUITE_P(LinkingAndMode, VfsTest,
                         ::testing::Combine(::testing::Values("", "_static"),
                                            ::testing::Values("", "--staged")),
                         [](const auto& info) {
                           return LinkingName(std::get<0>(info.param)) + "_" +
                                  ModeName(std::get<1>(info.param));
                         });

// The same, times the tools that do part of the work.
class VfsToolsTest : public ::testing::TestWithParam<std::tuple<std::string, Tools, std::string>> {
 protected:
  void SetUp() override { current_write_mode = std::get<2>(GetParam()); }
  std::string Rfc() const { return ShellQuote(ProgramPath("rfc_gaps" + std::get<0>(GetParam()))); }
  const Tools& tools() const { return std::get<1>(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(LinkingToolsAndMode, VfsToolsTest,
                         ::testing::Combine(::testing::Values("", "_static"),
                                            ::testing::Values(kCoreutils, kBusybox),
                                            ::testing::Values("", "--staged")),
                         [](const auto& info) {
                           return LinkingName(std::get<0>(info.param)) + "_" +
                                  std::get<1>(info.param).name + "_" +
                                  ModeName(std::get<2>(info.param));
                         });

// ftruncate: a file rewritten in place must not keep the tail of its longer
// previous version, neither in the tree nor in the store.
TEST_P(VfsTest, FtruncateLeavesOnlyTheNewBytes) {
  Project project(MakeTempDir());
  project.Write("out.o", std::string(100, 'o'));
  BuildRun build = BuildIn(project, {"--", RfcGaps(), "ftruncate", "out.o"});
  ExpectCommitted(project, "out.o", "0123456789");
  ExpectOp(build, proto::TRUNC, project.Path("out.o"));
  ExpectOp(build, proto::WRITE, project.Path("out.o"));
}

// --direct turns redirection off: the same bytes come out, written into the
// very file that was there (same inode), and nothing is ever staged.
TEST_P(VfsTest, DirectWritesInPlaceAndStagesNothing) {
  Project project(MakeTempDir());
  project.Write("out.o", std::string(100, 'o'));
  std::optional<struct stat> before = Lstat(project.Path("out.o"));
  ASSERT_TRUE(before.has_value());
  BuildRun build = BuildIn(project, {"--direct", "--", RfcGaps(), "ftruncate", "out.o"});
  ExpectCommitted(project, "out.o", "0123456789");
  ExpectOp(build, proto::TRUNC, project.Path("out.o"));
  std::optional<struct stat> after = Lstat(project.Path("out.o"));
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->st_ino, before->st_ino) << "--direct replaced out.o instead of writing it";
  std::error_code error;
  if (fs::exists(project.Path(".dodo/stage"), error)) {
    for (const fs::directory_entry& entry :
         fs::recursive_directory_iterator(project.Path(".dodo/stage"), error)) {
      ADD_FAILURE() << "--direct staged " << entry.path();
    }
  }
}

// utimes: times set by touch are seen by later commands of the same build and
// stay on the file afterwards; the manifest records them.
TEST_P(VfsToolsTest, TouchSetsAnMtimeTheBuildAndTheTreeSee) {
  Project project(MakeTempDir());
  project.Write("header.h", "#define ANSWER 42\n");
  // touch -t is local time; mktime here reads the same TZ and zone file.
  struct tm noon = {};
  noon.tm_year = 2026 - 1900;
  noon.tm_mon = 0;
  noon.tm_mday = 1;
  noon.tm_hour = 12;
  noon.tm_isdst = -1;
  const time_t expected = mktime(&noon);
  ASSERT_NE(expected, time_t{-1});

  BuildRun build = BuildIn(project, Sh(tools().touch + " -t 202601011200 header.h && " + Rfc() +
                                       " mtime header.h > seen.txt"));
  ExpectCommitted(project, "seen.txt", std::to_string(expected) + "\n");
  std::optional<struct stat> st = Lstat(project.Path("header.h"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_mtim.tv_sec, expected);
  EXPECT_EQ(st->st_mtim.tv_nsec, 0);
  EXPECT_EQ(project.Read("header.h"), "#define ANSWER 42\n");
  ExpectOp(build, proto::UTIMES, project.Path("header.h"));
  std::optional<proto::ManifestEntry> entry = ManifestEntry(project, "header.h");
  if (entry.has_value()) {
    EXPECT_EQ(entry->mtime_ns(), int64_t{expected} * 1'000'000'000);
    EXPECT_EQ(Hex(entry->sha256()), Hex(Sha256("#define ANSWER 42\n")));
  }
}

// utimes as make sees it: a header touched inside a build is newer than the
// target the last build made, so make reruns the rule (counted in runs.txt).
TEST_P(VfsToolsTest, TouchedHeaderMakesMakeRebuild) {
  Project project = Project::Copy("vfs_make");
  const std::string make = "make RFC_GAPS=" + Rfc();
  BuildIn(project, Sh(make));
  ExpectCommitted(project, "out.txt", "#define VERSION 1\n");
  ExpectCommitted(project, "runs.txt", "run;");

  // Without the touch make finds out.txt up to date (whether or not dodo
  // skips it altogether): the counter only moves because of the touch.
  BuildIn(project, Sh(make));
  EXPECT_EQ(project.Read("runs.txt"), "run;");

  BuildRun touched = BuildIn(project, Sh(tools().touch + " header.h && " + make));
  ExpectCommitted(project, "runs.txt", "run;run;");
  ExpectCommitted(project, "out.txt", "#define VERSION 1\n");
  ExpectOp(touched, proto::UTIMES, project.Path("header.h"));
}

// lseek: ar writes an archive and reads it back by offsets; both ars list
// and extract it within the same build, and rfc_gaps reads a member's bytes
// at its offset in the archive.
TEST_P(VfsToolsTest, ArchiveIsListedAndExtractedInTheSameBuild) {
  Project project(MakeTempDir());
  project.Write("a.txt", "alpha\n");
  project.Write("b.txt", "bravo bravo\n");
  BuildIn(project, Sh("ar rc lib.a a.txt b.txt && " + tools().ar + " t lib.a > list.txt && " +
                      "mkdir ex && cd ex && " + tools().ar + " x ../lib.a && cd .. && " + Rfc() +
                      " readat lib.a 134 12 > member.txt"));
  // binutils on Debian makes deterministic archives: "!<arch>\n", then each
  // member's 60-byte header and its data (no symbol table for text files).
  const std::string archive =
      "!<arch>\n"
      "a.txt/          0           0     0     644     6         `\n"
      "alpha\n"
      "b.txt/          0           0     0     644     12        `\n"
      "bravo bravo\n";
  ExpectCommitted(project, "lib.a", archive);
  ExpectCommitted(project, "list.txt", "a.txt\nb.txt\n");
  ExpectCommitted(project, "ex/a.txt", "alpha\n");
  ExpectCommitted(project, "ex/b.txt", "bravo bravo\n");
  ExpectCommitted(project, "member.txt", "bravo bravo\n");
}

// lseek before read: from a source file and from a file the build just wrote.
TEST_P(VfsTest, ReadAtAnOffset) {
  Project project(MakeTempDir());
  project.Write("src.txt", "0123456789abcdef");
  BuildRun build = BuildIn(project, Sh(Rfc() + " readat src.txt 3 5 > a.txt && " +
                                       "printf ABCDEFGHIJKLMNOP > gen.txt && " + Rfc() +
                                       " readat gen.txt 10 4 > b.txt"));
  ExpectCommitted(project, "a.txt", "34567");
  ExpectCommitted(project, "b.txt", "KLMN");
  ExpectCommitted(project, "gen.txt", "ABCDEFGHIJKLMNOP");
  ExpectOp(build, proto::READ, project.Path("src.txt"));
  ExpectOp(build, proto::READ, project.Path("gen.txt"));
}

// lseek then read on an archive that the second build restores from the
// store: `ar rc` is skipped (its inputs did not change) and lib.a, deleted by
// hand, comes back from .dodo/objects; the reader that runs seeks into it.
TEST_P(VfsTest, ReadAtAnOffsetOfAnArchiveRestoredFromTheStore) {
  Project project(MakeTempDir());
  project.Write("a.txt", "alpha\n");
  project.Write("b.txt", "bravo\n");
  project.Write("offset.txt", "8");
  project.Write("Dodofile", "ar rc lib.a a.txt b.txt\n" + Rfc() +
                                " readat lib.a $(cat offset.txt) 6 > member.txt\n");
  BuildIn(project, {});
  EXPECT_EQ(project.Read("member.txt"), "a.txt/");
  const std::optional<std::string> archive = project.Read("lib.a");
  ASSERT_TRUE(archive.has_value());
  project.Remove("lib.a");
  // The second member's header: the 8-byte magic, a 60-byte header, "alpha\n".
  project.Write("offset.txt", "74");
  BuildRun second = BuildIn(project, {});
  EXPECT_EQ(project.Read("member.txt"), "b.txt/");
  EXPECT_TRUE(SameBytes(project.Read("lib.a"), *archive)) << "lib.a as restored";
  ExpectStored(project, *archive);
  std::vector<const TracedCommand*> ar = second.trace.CommandsRunning("ar");
  ASSERT_EQ(ar.size(), 1u) << DescribeCommands(second.trace);
  EXPECT_TRUE(ar[0]->restored) << "ar rc ran again instead of being skipped";
  std::vector<const TracedCommand*> reader =
      second.trace.CommandsRunning("rfc_gaps" + std::get<0>(GetParam()));
  ASSERT_EQ(reader.size(), 1u) << DescribeCommands(second.trace);
  EXPECT_FALSE(reader[0]->restored);
}

// lseek(SEEK_END) then write: the new bytes follow the old ones, both for a
// file the build found and for one it wrote itself.
TEST_P(VfsTest, AppendLandsAfterTheExistingContent) {
  Project project(MakeTempDir());
  project.Write("log.txt", "first\n");
  BuildRun build =
      BuildIn(project, Sh(Rfc() + " append log.txt second && printf 'one\\n' > new.txt && " +
                          Rfc() + " append new.txt two"));
  ExpectCommitted(project, "log.txt", "first\nsecond");
  ExpectCommitted(project, "new.txt", "one\ntwo");
  ExpectOp(build, proto::WRITE, project.Path("log.txt"));
  EXPECT_TRUE(build.trace
                  .Find([&](const TracedOp& op) {
                    return op.kind == proto::WRITE && op.path == project.Path("log.txt") &&
                           op.truncate;
                  })
                  .empty())
      << "log.txt was opened with O_TRUNC:\n"
      << build.trace.Dump();
}

// pread/pwrite from two threads at explicit offsets, no shared position.
TEST_P(VfsTest, PwriteFromTwoThreads) {
  Project project(MakeTempDir());
  BuildRun build = BuildIn(project, {"--", RfcGaps(), "pwrite", "big.bin"});
  ExpectCommitted(project, "big.bin", std::string(4096, 'A') + std::string(4096, 'B'));
  ExpectOp(build, proto::WRITE, project.Path("big.bin"));
}

// Symlinks the build makes: followed within the build, kept in the tree and
// recorded in the manifest with their targets.
// `ln a.txt b.txt` gives one file two names: bytes appended through b.txt
// show through a.txt, in the build and in the tree after it, whether a.txt
// is still staged (written by the same shell) or already committed (by an
// earlier process). A staged copy of b.txt would be a new file, and a.txt
// would keep "one" alone.
TEST_P(VfsToolsTest, WritesThroughAHardLinkReachEveryName) {
  const std::string& ln = tools().ln;
  for (const std::string& write_a :
       {std::string("printf 'one\\n' > a.txt"), std::string("sh -c \"printf 'one\\n' > a.txt\"")}) {
    SCOPED_TRACE(write_a);
    Project project(MakeTempDir());
    BuildRun build = BuildIn(project, Sh(write_a + " && " + ln +
                                         " a.txt b.txt && printf 'two\\n' >> b.txt && "
                                         "cat a.txt > seen.txt"));
    ExpectCommitted(project, "a.txt", "one\ntwo\n");
    ExpectCommitted(project, "b.txt", "one\ntwo\n");
    ExpectCommitted(project, "seen.txt", "one\ntwo\n");
    ExpectOp(build, proto::LINK, project.Path("b.txt"));
    std::optional<struct stat> a = Lstat(project.Path("a.txt"));
    std::optional<struct stat> b = Lstat(project.Path("b.txt"));
    ASSERT_TRUE(a.has_value() && b.has_value());
    EXPECT_EQ(a->st_ino, b->st_ino) << "two files, not two names of one";
    EXPECT_EQ(a->st_nlink, 2u);
  }
}

TEST_P(VfsToolsTest, SymlinkChainIsFollowedAndKept) {
  Project project(MakeTempDir());
  const std::string& ln = tools().ln;
  BuildRun build = BuildIn(
      project, Sh("printf lib > libfoo.so.1.0.0 && " + ln + " -s libfoo.so.1.0.0 libfoo.so.1 && " +
                  ln + " -s libfoo.so.1 libfoo.so && readlink libfoo.so > rl.txt && " +
                  "cat libfoo.so > via.txt && " + Rfc() + " readat libfoo.so 1 2 > tail.txt"));
  ExpectCommitted(project, "libfoo.so.1.0.0", "lib");
  ExpectCommitted(project, "rl.txt", "libfoo.so.1\n");
  ExpectCommitted(project, "via.txt", "lib");
  ExpectCommitted(project, "tail.txt", "ib");

  const std::vector<std::pair<std::string, std::string>> links = {
      {"libfoo.so.1", "libfoo.so.1.0.0"}, {"libfoo.so", "libfoo.so.1"}};
  std::optional<proto::Manifest> manifest = ReadManifest(project);
  for (const auto& [name, target] : links) {
    SCOPED_TRACE("symlink " + name);
    std::optional<struct stat> st = Lstat(project.Path(name));
    ASSERT_TRUE(st.has_value()) << "not in the tree";
    EXPECT_TRUE(S_ISLNK(st->st_mode));
    std::error_code error;
    EXPECT_EQ(fs::read_symlink(project.Path(name), error).string(), target);
    EXPECT_FALSE(build.trace
                     .Find([&](const TracedOp& op) {
                       return op.kind == proto::LINK && op.create == proto::SYMLINK &&
                              op.path == project.Path(name) && op.text == target;
                     })
                     .empty())
        << "no symlink LINK of " << name << " in the trace:\n"
        << build.trace.Dump();
    if (!manifest.has_value()) continue;
    const proto::ManifestEntry* entry = FindEntry(*manifest, name);
    if (entry == nullptr) {
      ADD_FAILURE() << "no manifest entry:\n" << manifest->DebugString();
      continue;
    }
    EXPECT_EQ(entry->kind(), proto::ENTRY_SYMLINK);
    EXPECT_EQ(entry->symlink_target(), target);
  }
}

// flock: two processes increment a shared counter under an exclusive lock;
// every increment counts only if both open the same file.
TEST_P(VfsTest, FlockedCounterSharedByParallelProcesses) {
  Project project(MakeTempDir());
  const std::string counter = Rfc() + " counter n.txt 200";
  BuildRun build = BuildIn(project, Sh("status=0; " + counter + " & pid=$!; " + counter +
                                       " || status=1; wait $pid || status=1; exit $status"));
  ExpectCommitted(project, "n.txt", "400\n");
  ExpectOp(build, proto::WRITE, project.Path("n.txt"));
}

// fchmod/fchown through the descriptor, and a later build that changes only
// the mode: both modes reach the tree and the manifest.
TEST_P(VfsTest, ModeSetThroughTheDescriptorIsCommitted) {
  Project project(MakeTempDir());
  BuildRun build = BuildIn(project, {"--", RfcGaps(), "install", "tool", "755"});
  ExpectCommitted(project, "tool", "installed\n", 0755);
  ExpectOp(build, proto::CHMOD, project.Path("tool"));
  ExpectOp(build, proto::CHOWN, project.Path("tool"));

  BuildRun again = BuildIn(project, {"--", RfcGaps(), "install", "tool", "700"});
  ExpectCommitted(project, "tool", "installed\n", 0700);
  ExpectOp(again, proto::CHMOD, project.Path("tool"));
}

// dup2 onto stdout and stderr, then exec: the program's own writes and the
// exec'd program's all land in the committed file.
TEST_P(VfsTest, Dup2AndExecWriteIntoOneFile) {
  Project project(MakeTempDir());
  BuildIn(project, Sh(Rfc() + " dup2 out.txt"));
  ExpectCommitted(project, "out.txt", "to stdout\nto stderr\nexec-ed\n");
}

// The shell's own redirections (>, >>, 2>&1) across several commands, one of
// which reads the file it is appending to; compared with a native run.
TEST_P(VfsTest, ShellRedirectionsCollectEveryCommandsOutput) {
  const std::string script = "echo a > log.txt 2>&1; ls /nonexistent-dir >> log.txt 2>&1; " +
                             Rfc() + " readat log.txt 0 2 >> log.txt 2>&1; true";
  const std::string native_dir = MakeTempDir();
  RunResult native = RunCommand({"/bin/sh", "-c", script}, native_dir);
  ASSERT_EQ(native.exit_status, 0) << native.err;
  std::optional<std::string> expected = ReadFile(native_dir + "/log.txt");
  ASSERT_TRUE(expected.has_value());
  ASSERT_TRUE(expected->starts_with("a\nls: ") && expected->ends_with("\na\n")) << *expected;

  Project project(MakeTempDir());
  BuildIn(project, Sh(script));
  ExpectCommitted(project, "log.txt", *expected);
}

// fsync and fdatasync on a redirected file succeed.
TEST_P(VfsTest, FsyncSucceeds) {
  Project project(MakeTempDir());
  BuildIn(project, {"--", RfcGaps(), "fsync", "f"});
  ExpectCommitted(project, "f", "synced\n");
}

// The path of both opens is rewritten (the first stages out.r, the second is
// redirected to the staged file); the program checks with raw syscalls that
// every argument register is what it set, and exits 3 otherwise.
TEST_P(VfsTest, RewrittenPathsLeaveTheRegistersAsTheProgramSetThem) {
  Project project(MakeTempDir());
  BuildRun build = BuildIn(project, {"--", RfcGaps(), "regs", "out.r"});
  EXPECT_EQ(build.run.exit_status, 0) << build.run.err;
  ExpectCommitted(project, "out.r", "r");
}

// The first build of the failure tests: out.o holds a good version.
void BuildGoodObject(const Project& project) {
  BuildIn(project, Sh("printf 'good object\\n' > out.o"));
  ExpectCommitted(project, "out.o", "good object\n");
}

// A writer that exits non-zero: its bytes are thrown away, and the tree (and
// the manifest, which describes the tree) keep the last good version.
TEST_P(VfsTest, FailedWriterLeavesThePreviousVersion) {
  Project project(MakeTempDir());
  BuildGoodObject(project);
  BuildRun failed = BuildIn(project, {"--", RfcGaps(), "fail-half", "out.o"}, 1);
  EXPECT_TRUE(SameBytes(project.Read("out.o"), "good object\n"));
  ExpectStored(project, "good object\n");
  ExpectOp(failed, proto::WRITE, project.Path("out.o"));
  EXPECT_FALSE(fs::exists(project.Path(".dodo/failed/out.o"))) << "kept without --keep-failed";
  if (std::optional<proto::Manifest> manifest = ReadManifest(project); manifest.has_value()) {
    if (const proto::ManifestEntry* entry = FindEntry(*manifest, "out.o"); entry != nullptr) {
      EXPECT_EQ(Hex(entry->sha256()), Hex(Sha256("good object\n")));
    }
  }
}

// --keep-failed: the failed writer's bytes are kept aside for a post-mortem,
// still not in the tree.
TEST_P(VfsTest, KeepFailedKeepsThePartialFileAside) {
  Project project(MakeTempDir());
  BuildGoodObject(project);
  BuildIn(project, {"--keep-failed", "--", RfcGaps(), "fail-half", "out.o"}, 1);
  EXPECT_TRUE(SameBytes(project.Read("out.o"), "good object\n"));
  EXPECT_TRUE(SameBytes(project.Read(".dodo/failed/out.o"), PartialBytes()))
      << project.Path(".dodo/failed/out.o");
}

// --direct: nothing is staged, so the failed writer's bytes are in the tree.
TEST_P(VfsTest, DirectLetsAFailedWriterOverwriteTheFile) {
  Project project(MakeTempDir());
  BuildGoodObject(project);
  BuildIn(project, {"--direct", "--", RfcGaps(), "fail-half", "out.o"}, 1);
  EXPECT_TRUE(SameBytes(project.Read("out.o"), PartialBytes()));
}

// The three lines rfc_gaps paths reports.
std::vector<std::string> Lines(const std::optional<std::string>& text) {
  std::vector<std::string> lines;
  if (!text.has_value()) return lines;
  size_t start = 0;
  for (size_t end; (end = text->find('\n', start)) != std::string::npos; start = end + 1) {
    lines.push_back(text->substr(start, end - start));
  }
  return lines;
}

// getcwd(), /proc/self/fd and realpath() show where a file really is to the
// build, never its staging copy.
TEST_P(VfsTest, PathsSeenByTheBuildAreTheRealOnes) {
  Project project(MakeTempDir());
  BuildIn(project, {"--", RfcGaps(), "paths", "out.bin", "report.txt"});
  const std::vector<std::string> lines = Lines(project.Read("report.txt"));
  ASSERT_EQ(lines.size(), 3u) << project.Read("report.txt").value_or("(missing)");
  for (const std::string& line : lines) EXPECT_FALSE(MentionsStage(line)) << line;
  EXPECT_EQ(lines[0], project.dir());
  EXPECT_EQ(lines[1], project.Path("out.bin"));
  EXPECT_EQ(lines[2], project.Path("out.bin"));
  // Only the tree: what is committed where is the other tests' business.
  EXPECT_EQ(project.Read("out.bin"), "x");
}

// The trace records what the build saw through /proc/self: its own pid and
// the file behind its own descriptor (never dodo's, such as .dodo/lock).
TEST_P(VfsTest, TraceRecordsTheProcLinksTheBuildSaw) {
  Project project(MakeTempDir());
  BuildRun build = BuildIn(project, {"--", RfcGaps(), "paths", "out.bin", "report.txt"});
  std::vector<const TracedCommand*> commands =
      build.trace.CommandsRunning("rfc_gaps" + std::get<0>(GetParam()));
  ASSERT_EQ(commands.size(), 1u) << DescribeCommands(build.trace);
  const std::string pid = std::to_string(commands[0]->pid);
  std::vector<const TracedOp*> self = build.trace.Find(
      [](const TracedOp& op) { return op.kind == proto::READLINK && op.path == "/proc/self"; });
  for (const TracedOp* op : self) EXPECT_EQ(op->text, pid) << op->notation;
  std::vector<const TracedOp*> fd_links = build.trace.Find([](const TracedOp& op) {
    return op.kind == proto::READLINK && op.path.starts_with("/proc/") &&
           op.path.find("/fd/") != std::string::npos;
  });
  ASSERT_FALSE(fd_links.empty()) << build.trace.Dump();
  for (const TracedOp* op : fd_links) {
    EXPECT_TRUE(op->path.starts_with("/proc/" + pid + "/fd/")) << op->notation;
    EXPECT_EQ(op->text, project.Path("out.bin")) << op->notation;
  }
}

// The same from a directory the build itself made.
TEST_P(VfsTest, PathsInADirectoryTheBuildMade) {
  Project project(MakeTempDir());
  BuildIn(project, Sh("mkdir sub && cd sub && " + Rfc() + " paths out.bin report.txt"));
  const std::vector<std::string> lines = Lines(project.Read("sub/report.txt"));
  ASSERT_EQ(lines.size(), 3u) << project.Read("sub/report.txt").value_or("(missing)");
  for (const std::string& line : lines) EXPECT_FALSE(MentionsStage(line)) << line;
  EXPECT_EQ(lines[0], project.Path("sub"));
  EXPECT_EQ(lines[1], project.Path("sub/out.bin"));
  EXPECT_EQ(lines[2], project.Path("sub/out.bin"));
  EXPECT_EQ(project.Read("sub/out.bin"), "x");
}

}  // namespace
}  // namespace dodo::test
