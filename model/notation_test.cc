#include "model/notation.h"

#include <cerrno>
#include <csignal>
#include <initializer_list>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dodo::model {
namespace {

using ::testing::HasSubstr;

// An intern table like the trace's: ids from 1.
class Strings {
 public:
  uint32_t Id(const std::string& s) {
    if (s.empty()) return 0;
    for (size_t i = 0; i < table_.size(); ++i) {
      if (table_[i] == s) return static_cast<uint32_t>(i + 1);
    }
    table_.push_back(s);
    return static_cast<uint32_t>(table_.size());
  }
  std::string_view Get(uint32_t id) const {
    return id == 0 || id > table_.size() ? std::string_view() : table_[id - 1];
  }

  // A ref from `base` through `components`; `found` < 0 means all resolved.
  proto::Ref Ref(proto::Base base, std::initializer_list<std::string> components, int found = -1) {
    proto::Ref ref;
    ref.set_base(base);
    for (const std::string& c : components) ref.add_components(Id(c));
    ref.set_found(found < 0 ? static_cast<uint32_t>(components.size())
                            : static_cast<uint32_t>(found));
    return ref;
  }

 private:
  std::vector<std::string> table_;
};

class NotationTest : public ::testing::Test {
 protected:
  std::string Format(const proto::Operation& op) {
    return FormatOperation(op, [this](uint32_t id) { return strings_.Get(id); });
  }
  std::string Json(const proto::Operation& op) {
    return OperationToJson(op, [this](uint32_t id) { return strings_.Get(id); });
  }
  proto::Operation Op(proto::OpKind kind, const proto::Ref& ref, int error = 0) {
    proto::Operation op;
    op.set_command(1);
    op.set_kind(kind);
    *op.mutable_ref() = ref;
    op.set_error(error);
    return op;
  }

  Strings strings_;
};

TEST_F(NotationTest, RefsPrintAsNestedGetsFromTheirBase) {
  auto lookup = [this](uint32_t id) { return strings_.Get(id); };
  EXPECT_EQ(FormatRef(strings_.Ref(proto::BASE_ROOT, {}), lookup), "/");
  EXPECT_EQ(FormatRef(strings_.Ref(proto::BASE_CWD, {"a.c"}), lookup), R"(GET("a.c", .))");
  EXPECT_EQ(FormatRef(strings_.Ref(proto::BASE_ROOT, {"usr", "bin", "gcc"}), lookup),
            R"(GET("gcc", GET("bin", GET("usr", /))))");
  proto::Ref at = strings_.Ref(proto::BASE_FD, {"x"});
  at.set_base_fd(3);
  at.set_base_path(strings_.Id("/tmp"));
  EXPECT_EQ(FormatRef(at, lookup), R"(GET("x", FD(3)))");

  proto::Ref fd;
  fd.set_base(proto::BASE_FD);
  fd.set_is_fd(true);
  fd.set_base_fd(4);
  EXPECT_EQ(FormatRef(fd, lookup), "FD(4)");
  fd.set_base_path(strings_.Id("/tmp/out"));
  EXPECT_EQ(FormatRef(fd, lookup), R"(FD(4, "/tmp/out"))");
}

TEST_F(NotationTest, FailedLookupPrintsOnlyUpToTheFailingGet) {
  EXPECT_EQ(Format(Op(proto::GET, strings_.Ref(proto::BASE_ROOT, {"bin", "gcc"}, 1), ENOENT)),
            R"(GET("gcc", GET("bin", /)) = ENOENT)");
  EXPECT_EQ(
      Format(Op(proto::READ, strings_.Ref(proto::BASE_ROOT, {"a", "b", "c", "d"}, 1), ENOTDIR)),
      R"(R(GET("b", GET("a", /))) = ENOTDIR)");
  EXPECT_EQ(Format(Op(proto::STAT, strings_.Ref(proto::BASE_CWD, {"x", "y"}, 0), ENOENT)),
            R"(STAT(GET("x", .)) = ENOENT)");
  // A failure inside the directory chain of a name operation.
  EXPECT_EQ(Format(Op(proto::UNLINK, strings_.Ref(proto::BASE_ROOT, {"x", "y", "f"}, 0), ENOENT)),
            R"(UNLINK("f", GET("x", /)) = ENOENT)");
}

TEST_F(NotationTest, ContentsOperations) {
  proto::Operation read = Op(proto::READ, strings_.Ref(proto::BASE_CWD, {"a.c"}));
  read.mutable_version()->set_sha256(std::string("\x1f\x2e\x3d\x4c\x5b\x6a", 6) +
                                     std::string(26, '\0'));
  EXPECT_EQ(Format(read), R"(R(GET("a.c", .)) = OK [sha256:1f2e3d4c])");

  EXPECT_EQ(Format(Op(proto::EXEC, strings_.Ref(proto::BASE_ROOT, {"usr", "bin", "gcc"}))),
            R"(X(GET("gcc", GET("bin", GET("usr", /)))) = OK)");

  proto::Operation write = Op(proto::WRITE, strings_.Ref(proto::BASE_ROOT, {"tmp", "a.s"}));
  write.set_create(proto::NEWFILE);
  write.set_truncate(true);
  EXPECT_EQ(Format(write), R"(W(TRUNC(LINK_IF_NEEDED(NEWFILE, "a.s", GET("tmp", /)))) = OK)");

  write.set_exclusive(true);
  write.set_truncate(false);
  write.set_error(EEXIST);
  EXPECT_EQ(Format(write), R"(W(LINK(NEWFILE, "a.s", GET("tmp", /))) = EEXIST)");

  proto::Operation trunc_only = Op(proto::WRITE, strings_.Ref(proto::BASE_CWD, {"prog"}));
  trunc_only.set_truncate(true);
  trunc_only.mutable_version()->set_absent(true);
  EXPECT_EQ(Format(trunc_only), R"(W(TRUNC(GET("prog", .))) = OK [gone])");
}

TEST_F(NotationTest, NameOperations) {
  proto::Operation mkdir = Op(proto::LINK, strings_.Ref(proto::BASE_CWD, {"out"}));
  mkdir.set_create(proto::NEWDIR);
  EXPECT_EQ(Format(mkdir), R"(LINK(NEWDIR, "out", .) = OK)");

  proto::Operation mknod = Op(proto::LINK, strings_.Ref(proto::BASE_ROOT, {"tmp", "fifo"}));
  mknod.set_create(proto::NEWNODE);
  EXPECT_EQ(Format(mknod), R"(LINK(NEWNODE, "fifo", GET("tmp", /)) = OK)");

  proto::Operation symlink = Op(proto::LINK, strings_.Ref(proto::BASE_CWD, {"lib", "libx.so"}));
  symlink.set_create(proto::SYMLINK);
  symlink.set_text("libx.so.1");
  EXPECT_EQ(Format(symlink), R"(LINK(SYMLINK("libx.so.1"), "libx.so", GET("lib", .)) = OK)");

  proto::Operation hardlink = Op(proto::LINK, strings_.Ref(proto::BASE_CWD, {"b"}));
  hardlink.set_create(proto::EXISTING);
  *hardlink.mutable_ref2() = strings_.Ref(proto::BASE_CWD, {"a"});
  EXPECT_EQ(Format(hardlink), R"(LINK(GET("a", .), "b", .) = OK)");

  EXPECT_EQ(Format(Op(proto::UNLINK, strings_.Ref(proto::BASE_ROOT, {"tmp", "a.s"}))),
            R"(UNLINK("a.s", GET("tmp", /)) = OK)");
  EXPECT_EQ(Format(Op(proto::RMDIR, strings_.Ref(proto::BASE_CWD, {"d"}), ENOTEMPTY)),
            R"(RMDIR("d", .) = ENOTEMPTY)");

  proto::Operation rename = Op(proto::RENAME, strings_.Ref(proto::BASE_ROOT, {"tmp", "a.o"}));
  *rename.mutable_ref2() = strings_.Ref(proto::BASE_CWD, {"b.o"});
  EXPECT_EQ(Format(rename), R"(RENAME("a.o", GET("tmp", /), "b.o", .) = OK)");
}

TEST_F(NotationTest, MetadataAndPipeOperations) {
  proto::Ref file = strings_.Ref(proto::BASE_CWD, {"f"});
  EXPECT_EQ(Format(Op(proto::STAT, file)), R"(STAT(GET("f", .)) = OK)");

  proto::Operation list = Op(proto::LIST, strings_.Ref(proto::BASE_CWD, {"src"}));
  list.mutable_version()->set_listing_sha256(std::string("\xde\xad\xbe\xef\x01", 5));
  EXPECT_EQ(Format(list), R"(LIST(GET("src", .)) = OK [listing:deadbeef])");

  proto::Operation readlink = Op(proto::READLINK, strings_.Ref(proto::BASE_ROOT, {"bin"}));
  readlink.set_text("usr/bin");
  EXPECT_EQ(Format(readlink), R"(READLINK(GET("bin", /)) = OK -> "usr/bin")");

  EXPECT_EQ(Format(Op(proto::CHDIR, strings_.Ref(proto::BASE_CWD, {"sub"}))),
            R"(CHDIR(GET("sub", .)) = OK)");

  proto::Operation chmod = Op(proto::CHMOD, file);
  chmod.set_number(0755);
  EXPECT_EQ(Format(chmod), R"(CHMOD(GET("f", .), 0755) = OK)");

  proto::Operation chown = Op(proto::CHOWN, file, EPERM);
  chown.set_uid(1000);
  chown.set_gid(4294967295u);
  EXPECT_EQ(Format(chown), R"(CHOWN(GET("f", .), 1000, -1) = EPERM)");

  EXPECT_EQ(Format(Op(proto::UTIMES, file)), R"(UTIMES(GET("f", .)) = OK)");

  proto::Ref fd;
  fd.set_base(proto::BASE_FD);
  fd.set_is_fd(true);
  fd.set_base_fd(5);
  fd.set_base_path(strings_.Id("/out/f"));
  proto::Operation trunc = Op(proto::TRUNC, fd);
  trunc.set_number(4096);
  EXPECT_EQ(Format(trunc), R"(TRUNC(FD(5, "/out/f"), 4096) = OK)");

  proto::Operation xattr_read = Op(proto::XATTR_READ, file, ENODATA);
  xattr_read.set_xattr_name(strings_.Id("user.mime"));
  EXPECT_EQ(Format(xattr_read), R"(XATTR_READ(GET("f", .), "user.mime") = ENODATA)");
  proto::Operation xattr_write = Op(proto::XATTR_WRITE, file);
  xattr_write.set_xattr_name(strings_.Id("user.mime"));
  EXPECT_EQ(Format(xattr_write), R"(XATTR_WRITE(GET("f", .), "user.mime") = OK)");

  proto::Operation pipe_read;
  pipe_read.set_kind(proto::PIPE_READ);
  pipe_read.set_number(812);
  EXPECT_EQ(Format(pipe_read), "PIPE_READ(PIPE(812)) = OK");
  proto::Operation pipe_write = pipe_read;
  pipe_write.set_kind(proto::PIPE_WRITE);
  EXPECT_EQ(Format(pipe_write), "PIPE_WRITE(PIPE(812)) = OK");
}

TEST_F(NotationTest, Versions) {
  proto::Version version;
  EXPECT_EQ(FormatVersion(version), "");
  version.set_sha256(std::string("\xab\xcd\xef\x01\x23", 5));
  EXPECT_EQ(FormatVersion(version), "[sha256:abcdef01]");
  version.set_absent(true);
  version.set_listing_sha256(std::string("\x00\x11\x22\x33", 4));
  EXPECT_EQ(FormatVersion(version), "[sha256:abcdef01] [listing:00112233] [gone]");
}

TEST_F(NotationTest, StringsAreQuotedWithCEscapes) {
  EXPECT_EQ(Quote(""), R"("")");
  EXPECT_EQ(Quote("plain name.c"), R"("plain name.c")");
  EXPECT_EQ(Quote("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(Quote("line\nnext\ttab\r"), R"("line\nnext\ttab\r")");
  EXPECT_EQ(Quote(std::string("\x01\x7f\0", 3)), R"("\x01\x7f\x00")");
  // UTF-8 text stays readable; bytes that are not UTF-8 are escaped.
  EXPECT_EQ(Quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(Quote("bad\xff\xc3("), R"("bad\xff\xc3(")");
  EXPECT_EQ(Quote("\xc0\xaf"), R"("\xc0\xaf")");  // overlong "/"

  EXPECT_EQ(Format(Op(proto::READ, strings_.Ref(proto::BASE_CWD, {"we\"ird\n"}))),
            R"(R(GET("we\"ird\n", .)) = OK)");
}

TEST_F(NotationTest, ErrnoNames) {
  EXPECT_EQ(ErrnoName(0), "OK");
  EXPECT_EQ(ErrnoName(ENOENT), "ENOENT");
  EXPECT_EQ(ErrnoName(ENOTDIR), "ENOTDIR");
  EXPECT_EQ(ErrnoName(EACCES), "EACCES");
  EXPECT_EQ(ErrnoName(EEXIST), "EEXIST");
  EXPECT_EQ(ErrnoName(ELOOP), "ELOOP");
  EXPECT_EQ(ErrnoName(ENAMETOOLONG), "ENAMETOOLONG");
  EXPECT_EQ(ErrnoName(EXDEV), "EXDEV");
  EXPECT_EQ(ErrnoName(99999), "E99999");
  EXPECT_EQ(ErrnoName(-2), "E-2");
}

TEST_F(NotationTest, CommandHeadersAndEnds) {
  auto lookup = [this](uint32_t id) { return strings_.Get(id); };
  proto::CommandStart root;
  root.set_id(1);
  root.set_pid(100);
  root.add_argv(strings_.Id("make"));
  root.add_argv(strings_.Id("-j2"));
  EXPECT_EQ(FormatCommandHeader(root, lookup), "[1] pid 100: make -j2");

  proto::CommandStart cc1;
  cc1.set_id(3);
  cc1.set_parent_id(1);
  cc1.set_pid(4242);
  for (const char* word : {"cc1", "-quiet", "a.c", "-o", "/tmp/ccX.s"}) {
    cc1.add_argv(strings_.Id(word));
  }
  EXPECT_EQ(FormatCommandHeader(cc1, lookup),
            "[3] (parent 1) pid 4242: cc1 -quiet a.c -o /tmp/ccX.s");

  proto::CommandStart sh;
  sh.set_id(4);
  sh.set_parent_id(1);
  sh.set_pid(7);
  for (const char* word : {"sh", "-c", "echo 'hi' $X", "", "a\nb"}) sh.add_argv(strings_.Id(word));
  EXPECT_EQ(FormatCommandHeader(sh, lookup),
            R"([4] (parent 1) pid 7: sh -c 'echo '\''hi'\'' $X' '' $'a\nb')");

  proto::CommandStart no_argv;
  no_argv.set_id(5);
  no_argv.set_pid(8);
  no_argv.set_executable(strings_.Id("/bin/true"));
  EXPECT_EQ(FormatCommandHeader(no_argv, lookup), "[5] pid 8: /bin/true");

  proto::CommandEnd end;
  end.set_how(proto::CommandEnd::EXITED);
  end.set_exit_code(0);
  EXPECT_EQ(FormatCommandEnd(end), "exit 0");
  end.set_exit_code(2);
  EXPECT_EQ(FormatCommandEnd(end), "exit 2");
  end.set_how(proto::CommandEnd::KILLED);
  end.set_signal(SIGSEGV);
  EXPECT_EQ(FormatCommandEnd(end), "killed by SIGSEGV");
  end.set_how(proto::CommandEnd::REPLACED);
  EXPECT_EQ(FormatCommandEnd(end), "replaced by exec");
}

TEST_F(NotationTest, JsonOfAnOperation) {
  proto::Ref ref = strings_.Ref(proto::BASE_CWD, {"dir", "a.c"});
  ref.set_base_path(strings_.Id("/src"));
  proto::Operation read = Op(proto::READ, ref);
  read.set_command(7);
  read.set_syscall("openat");
  read.mutable_version()->set_sha256(std::string(31, '\0') + "\x01");
  read.mutable_version()->set_size(12);
  read.mutable_version()->set_mode(0100644);
  read.mutable_version()->set_mtime_ns(1700000000123456789);
  EXPECT_EQ(
      Json(read),
      "{\"type\":\"operation\",\"command\":7,\"kind\":\"READ\",\"syscall\":\"openat\","
      "\"path\":\"/src/dir/a.c\",\"found\":2,\"error\":\"OK\","
      "\"sha256\":\"" +
          std::string(62, '0') +
          "01\",\"size\":12,\"mode\":33188,\"mtime_ns\":1700000000123456789,"
          "\"notation\":\"R(GET(\\\"a.c\\\", GET(\\\"dir\\\", .))) = OK [sha256:00000000]\"}");

  // A failed lookup names the whole path; "found" says how far it resolved.
  proto::Operation get = Op(proto::GET, strings_.Ref(proto::BASE_ROOT, {"bin", "gcc"}, 1), ENOENT);
  get.set_syscall("execve");
  EXPECT_EQ(Json(get),
            R"({"type":"operation","command":1,"kind":"GET","syscall":"execve","path":"/bin/gcc",)"
            R"("found":1,"error":"ENOENT","notation":"GET(\"gcc\", GET(\"bin\", /)) = ENOENT"})");

  proto::Operation write = Op(proto::WRITE, strings_.Ref(proto::BASE_ROOT, {"tmp", "a.s"}));
  write.set_create(proto::NEWFILE);
  write.set_exclusive(true);
  write.set_truncate(true);
  std::string json = Json(write);
  EXPECT_THAT(json, HasSubstr(R"("create":"NEWFILE","exclusive":true,"truncate":true)"));

  proto::Operation rename = Op(proto::RENAME, strings_.Ref(proto::BASE_CWD, {"a"}));
  *rename.mutable_ref2() = strings_.Ref(proto::BASE_CWD, {"sub", "b"});
  EXPECT_THAT(Json(rename), HasSubstr(R"("path":"a","found":1,"path2":"sub/b")"));

  proto::Operation chown = Op(proto::CHOWN, strings_.Ref(proto::BASE_ROOT, {"f"}));
  chown.set_uid(4294967295u);
  chown.set_gid(5);
  EXPECT_THAT(Json(chown), HasSubstr(R"("uid":-1,"gid":5)"));
}

TEST_F(NotationTest, JsonEscaping) {
  EXPECT_EQ(JsonQuote(""), R"("")");
  EXPECT_EQ(JsonQuote("say \"hi\"\\"), R"("say \"hi\"\\")");
  EXPECT_EQ(JsonQuote("a\nb\r\t\b\f"), R"("a\nb\r\t\b\f")");
  EXPECT_EQ(JsonQuote(std::string("\x01\x1f\x7f\0", 4)), R"("\u0001\u001f\u007f\u0000")");
  // Valid UTF-8 passes through; other bytes become U+FFFD.
  EXPECT_EQ(JsonQuote("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa6"),
            "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa6\"");
  EXPECT_EQ(JsonQuote("x\xff\xfey"), R"("x\ufffd\ufffdy")");
  EXPECT_EQ(JsonQuote("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");  // a surrogate
  EXPECT_EQ(JsonQuote("cut \xe2\x82"), R"("cut \ufffd\ufffd")");

  proto::Operation op = Op(proto::READ, strings_.Ref(proto::BASE_ROOT, {"a\"\n\xff"}));
  EXPECT_THAT(Json(op), HasSubstr(R"("path":"/a\"\n\ufffd")"));
  EXPECT_THAT(Json(op), HasSubstr(R"("notation":"R(GET(\"a\\\"\\n\\xff\", /)) = OK")"));
}

}  // namespace
}  // namespace dodo::model
