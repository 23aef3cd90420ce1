#include "model/notation.h"

#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace dodo::model {
namespace {

// The printed form of chown's "unchanged" id.
constexpr uint32_t kUnchangedId = static_cast<uint32_t>(-1);

struct Utf8Char {
  size_t length;  // 0: not a valid UTF-8 sequence
  uint32_t code_point;
};

// Decodes the UTF-8 sequence at s[i], rejecting overlong forms, surrogates
// and code points past U+10FFFF (all of which strict decoders refuse).
Utf8Char DecodeUtf8(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return {1, c};
  size_t length;
  uint32_t code_point;
  uint32_t min;
  if ((c & 0xE0) == 0xC0) {
    length = 2;
    code_point = c & 0x1F;
    min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    length = 3;
    code_point = c & 0x0F;
    min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    length = 4;
    code_point = c & 0x07;
    min = 0x10000;
  } else {
    return {0, 0};
  }
  if (i + length > s.size()) return {0, 0};
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return {0, 0};
    code_point = (code_point << 6) | (byte(i + k) & 0x3F);
  }
  if (code_point < min || code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF)) {
    return {0, 0};
  }
  return {length, code_point};
}

// Control characters, C1 controls included: they would act on a terminal.
bool IsControl(uint32_t code_point) {
  return code_point < 0x20 || (code_point >= 0x7F && code_point <= 0x9F);
}

void AppendHexEscape(std::string& out, unsigned char byte) {
  absl::StrAppendFormat(&out, "\\x%02x", byte);
}

// Appends s with the escapes of the notation (and of bash's $'...').
void AppendEscaped(std::string& out, std::string_view s, char quote) {
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (c == quote || c == '\\') {
      out += '\\';
      out += c;
      ++i;
      continue;
    }
    switch (c) {
      case '\n':
        out += "\\n";
        ++i;
        continue;
      case '\t':
        out += "\\t";
        ++i;
        continue;
      case '\r':
        out += "\\r";
        ++i;
        continue;
      default:
        break;
    }
    Utf8Char u = DecodeUtf8(s, i);
    if (u.length == 0 || IsControl(u.code_point)) {
      // Escape every byte of an invalid or control sequence.
      size_t n = u.length == 0 ? 1 : u.length;
      for (size_t k = 0; k < n; ++k) AppendHexEscape(out, static_cast<unsigned char>(s[i + k]));
      i += n;
    } else {
      out.append(s, i, u.length);
      i += u.length;
    }
  }
}

std::string_view Lookup(StringLookup strings, uint32_t id) {
  return id == 0 ? std::string_view() : strings(id);
}

std::string QuotedString(StringLookup strings, uint32_t id) { return Quote(Lookup(strings, id)); }

std::string BaseText(const proto::Ref& ref) {
  switch (ref.base()) {
    case proto::BASE_ROOT:
      return "/";
    case proto::BASE_CWD:
      return ".";
    case proto::BASE_FD:
      return absl::StrCat("FD(", ref.base_fd(), ")");
    default:
      return absl::StrCat("BASE(", static_cast<int>(ref.base()), ")");
  }
}

// The GET chain of the first `count` components of `ref`. When a lookup
// among them failed, the chain stops at the failing GET.
std::string FormatChain(const proto::Ref& ref, int count, StringLookup strings) {
  if (ref.is_fd()) {
    std::string_view path = Lookup(strings, ref.base_path());
    if (path.empty()) return absl::StrCat("FD(", ref.base_fd(), ")");
    return absl::StrCat("FD(", ref.base_fd(), ", ", Quote(path), ")");
  }
  count = std::clamp(count, 0, ref.components_size());
  int printed =
      ref.found() < static_cast<uint32_t>(count) ? static_cast<int>(ref.found()) + 1 : count;
  // Outermost GET first: GET("c", GET("b", GET("a", /))).
  std::string out;
  for (int i = printed - 1; i >= 0; --i) {
    absl::StrAppend(&out, "GET(", QuotedString(strings, ref.components(i)), ", ");
  }
  out += BaseText(ref);
  out.append(static_cast<size_t>(printed), ')');
  return out;
}

// `"name", <dir>` for operations on a directory entry: the last component
// is the entry's name, the ones before it lead to the directory.
std::string FormatNameInDir(const proto::Ref& ref, StringLookup strings) {
  int size = ref.components_size();
  std::string name = size == 0 ? Quote("") : QuotedString(strings, ref.components(size - 1));
  return absl::StrCat(name, ", ", FormatChain(ref, size - 1, strings));
}

std::string LinkSourceText(const proto::Operation& op, StringLookup strings) {
  switch (op.create()) {
    case proto::NEWFILE:
      return "NEWFILE";
    case proto::NEWDIR:
      return "NEWDIR";
    case proto::NEWNODE:
      return "NEWNODE";
    case proto::SYMLINK:
      return absl::StrCat("SYMLINK(", Quote(op.text()), ")");
    case proto::EXISTING:
      return FormatRef(op.ref2(), strings);
    default:
      return absl::StrCat("SOURCE(", static_cast<int>(op.create()), ")");
  }
}

// What R/W/X apply to: the file, or the LINK that an O_CREAT open makes.
std::string FormatOpenTarget(const proto::Operation& op, StringLookup strings) {
  std::string target;
  if (op.create() != proto::LINK_NONE) {
    target = absl::StrCat(op.exclusive() ? "LINK(" : "LINK_IF_NEEDED(", LinkSourceText(op, strings),
                          ", ", FormatNameInDir(op.ref(), strings), ")");
  } else {
    target = FormatRef(op.ref(), strings);
  }
  if (op.truncate()) return absl::StrCat("TRUNC(", target, ")");
  return target;
}

std::string KindName(proto::OpKind kind) {
  const std::string& name = proto::OpKind_Name(kind);
  return name.empty() ? absl::StrCat("OP_", static_cast<int>(kind)) : name;
}

std::string FormatId(uint32_t id) {
  return id == kUnchangedId ? std::string("-1") : absl::StrCat(id);
}

std::string FormatMode(uint64_t mode) { return mode == 0 ? "0" : absl::StrFormat("0%o", mode); }

std::string FormatOperationBody(const proto::Operation& op, StringLookup strings) {
  const std::string kind = KindName(op.kind());
  switch (op.kind()) {
    case proto::GET:
      return FormatRef(op.ref(), strings);
    case proto::READ:
      return absl::StrCat("R(", FormatOpenTarget(op, strings), ")");
    case proto::WRITE:
      return absl::StrCat("W(", FormatOpenTarget(op, strings), ")");
    case proto::EXEC:
      return absl::StrCat("X(", FormatOpenTarget(op, strings), ")");
    case proto::CHMOD:
      return absl::StrCat(kind, "(", FormatRef(op.ref(), strings), ", ", FormatMode(op.number()),
                          ")");
    case proto::CHOWN:
      return absl::StrCat(kind, "(", FormatRef(op.ref(), strings), ", ", FormatId(op.uid()), ", ",
                          FormatId(op.gid()), ")");
    case proto::TRUNC:
      return absl::StrCat(kind, "(", FormatRef(op.ref(), strings), ", ", op.number(), ")");
    case proto::LINK:
      return absl::StrCat(kind, "(", LinkSourceText(op, strings), ", ",
                          FormatNameInDir(op.ref(), strings), ")");
    case proto::UNLINK:
    case proto::RMDIR:
      return absl::StrCat(kind, "(", FormatNameInDir(op.ref(), strings), ")");
    case proto::RENAME:
      return absl::StrCat(kind, "(", FormatNameInDir(op.ref(), strings), ", ",
                          FormatNameInDir(op.ref2(), strings), ")");
    case proto::XATTR_READ:
    case proto::XATTR_WRITE:
      return absl::StrCat(kind, "(", FormatRef(op.ref(), strings), ", ",
                          QuotedString(strings, op.xattr_name()), ")");
    case proto::PIPE_READ:
    case proto::PIPE_WRITE:
      return absl::StrCat(kind, "(PIPE(", op.number(), "))");
    default:  // STAT, LIST, READLINK, CHDIR, UTIMES, and kinds from the future
      return absl::StrCat(kind, "(", FormatRef(op.ref(), strings), ")");
  }
}

std::string ShortHex(const std::string& digest) {
  return absl::BytesToHexString(absl::string_view(digest).substr(0, 4));
}

// Shell-quotes an argv word only when the shell would not take it as is.
std::string ShellWord(std::string_view word) {
  if (word.empty()) return "''";
  bool plain = true;
  bool printable = true;
  for (size_t i = 0; i < word.size();) {
    char c = word[i];
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
          std::string_view("@%+=:,./_-").find(c) != std::string_view::npos)) {
      plain = false;
    }
    Utf8Char u = DecodeUtf8(word, i);
    if (u.length == 0 || IsControl(u.code_point)) {
      printable = false;
      break;
    }
    i += u.length;
  }
  if (plain) return std::string(word);
  std::string out;
  if (printable) {
    out = "'";
    for (char c : word) {
      if (c == '\'') {
        out += "'\\''";
      } else {
        out += c;
      }
    }
    out += '\'';
    return out;
  }
  // bash's ANSI-C quoting, whose escapes are the notation's.
  out = "$'";
  AppendEscaped(out, word, '\'');
  out += '\'';
  return out;
}

// Builds one JSON object; keys are fixed ASCII so only values are escaped.
int64_t JsonId(uint32_t id) { return id == kUnchangedId ? -1 : static_cast<int64_t>(id); }

}  // namespace

std::string Quote(std::string_view s) {
  std::string out = "\"";
  AppendEscaped(out, s, '"');
  out += '"';
  return out;
}

std::string JsonQuote(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        ++i;
        continue;
      case '\\':
        out += "\\\\";
        ++i;
        continue;
      case '\n':
        out += "\\n";
        ++i;
        continue;
      case '\r':
        out += "\\r";
        ++i;
        continue;
      case '\t':
        out += "\\t";
        ++i;
        continue;
      case '\b':
        out += "\\b";
        ++i;
        continue;
      case '\f':
        out += "\\f";
        ++i;
        continue;
      default:
        break;
    }
    if (c < 0x20 || c == 0x7F) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
      ++i;
      continue;
    }
    Utf8Char u = DecodeUtf8(s, i);
    if (u.length == 0) {
      out += "\\ufffd";  // REPLACEMENT CHARACTER
      ++i;
    } else {
      out.append(s, i, u.length);
      i += u.length;
    }
  }
  out += '"';
  return out;
}

std::string ErrnoName(int error) {
  if (error == 0) return "OK";
  const char* name = error > 0 ? strerrorname_np(error) : nullptr;
  return name != nullptr ? std::string(name) : absl::StrCat("E", error);
}

std::string SignalName(int signal) {
  const char* name = signal > 0 ? sigabbrev_np(signal) : nullptr;
  return name != nullptr ? absl::StrCat("SIG", name) : absl::StrCat("SIG", signal);
}

std::string FormatRef(const proto::Ref& ref, StringLookup strings) {
  return FormatChain(ref, ref.components_size(), strings);
}

std::string FormatOperation(const proto::Operation& op, StringLookup strings) {
  std::string out = FormatOperationBody(op, strings);
  absl::StrAppend(&out, " = ", ErrnoName(op.error()));
  if (op.kind() == proto::READLINK && !op.text().empty()) {
    absl::StrAppend(&out, " -> ", Quote(op.text()));
  }
  if (std::string version = FormatVersion(op.version()); !version.empty()) {
    absl::StrAppend(&out, " ", version);
  }
  return out;
}

std::string FormatVersion(const proto::Version& version) {
  std::vector<std::string> tags;
  if (!version.sha256().empty()) {
    tags.push_back(absl::StrCat("[sha256:", ShortHex(version.sha256()), "]"));
  }
  if (!version.listing_sha256().empty()) {
    tags.push_back(absl::StrCat("[listing:", ShortHex(version.listing_sha256()), "]"));
  }
  if (version.absent()) tags.push_back("[gone]");
  return absl::StrJoin(tags, " ");
}

std::string FormatCommandHeader(const proto::CommandStart& command, StringLookup strings) {
  std::string out = absl::StrCat("[", command.id(), "]");
  if (command.parent_id() != 0) absl::StrAppend(&out, " (parent ", command.parent_id(), ")");
  // A command dodo build skipped: its records come from the last build.
  // Dormant: kept from an earlier build for matching, no part of this one.
  if (command.dormant()) {
    absl::StrAppend(&out, " dormant");
  } else if (command.restored()) {
    absl::StrAppend(&out, " restored");
  }
  absl::StrAppend(&out, " pid ", command.pid(), ":");
  if (command.argv().empty()) {
    absl::StrAppend(&out, " ", ShellWord(Lookup(strings, command.executable())));
  }
  for (uint32_t word : command.argv()) {
    absl::StrAppend(&out, " ", ShellWord(Lookup(strings, word)));
  }
  return out;
}

std::string FormatCommandEnd(const proto::CommandEnd& end) {
  switch (end.how()) {
    case proto::CommandEnd::EXITED:
      return absl::StrCat("exit ", end.exit_code());
    case proto::CommandEnd::KILLED:
      return absl::StrCat("killed by ", SignalName(end.signal()));
    case proto::CommandEnd::REPLACED:
      return "replaced by exec";
    default:
      return "ended (how is unknown)";
  }
}

void RefToPath(const proto::Ref& ref, StringLookup strings, std::string* out) {
  out->clear();
  std::string_view base = Lookup(strings, ref.base_path());
  if (ref.is_fd()) {
    out->assign(base);
    return;
  }
  if (!base.empty()) {
    out->assign(base);
  } else if (ref.base() == proto::BASE_ROOT) {
    out->assign("/");
  } else if (ref.base() == proto::BASE_CWD) {
    // Relative to a working directory the trace did not name.
    out->assign(".");
  } else {
    return;
  }
  for (uint32_t component : ref.components()) {
    if (out->back() != '/') out->push_back('/');
    out->append(Lookup(strings, component));
  }
  if (out->size() > 2 && out->starts_with("./")) out->erase(0, 2);
}

std::string RefToPath(const proto::Ref& ref, StringLookup strings) {
  std::string out;
  RefToPath(ref, strings, &out);
  return out;
}

bool WritesNoFile(const proto::Operation& op) {
  const uint32_t type = op.version().mode() & S_IFMT;
  return op.kind() == proto::WRITE && type != 0 && type != S_IFREG && type != S_IFDIR &&
         type != S_IFLNK;
}

std::string_view SyscallName(const proto::Operation& op, StringLookup strings) {
  return op.syscall_name() != 0 ? strings(op.syscall_name()) : std::string_view(op.syscall());
}

std::string OperationToJson(const proto::Operation& op, StringLookup strings) {
  JsonObject json;
  json.String("type", "operation");
  json.Number("command", op.command());
  json.String("kind", KindName(op.kind()));
  json.String("syscall", SyscallName(op, strings));
  if (op.has_ref()) {
    if (std::string path = RefToPath(op.ref(), strings); !path.empty()) json.String("path", path);
    if (!op.ref().is_fd()) json.Number("found", op.ref().found());
  }
  if (op.has_ref2()) {
    if (std::string path = RefToPath(op.ref2(), strings); !path.empty()) {
      json.String("path2", path);
    }
  }
  json.String("error", ErrnoName(op.error()));
  if (op.create() != proto::LINK_NONE) {
    const std::string& name = proto::LinkSource_Name(op.create());
    json.String("create", name.empty() ? absl::StrCat(static_cast<int>(op.create())) : name);
  }
  if (op.exclusive()) json.Bool("exclusive", true);
  if (op.truncate()) json.Bool("truncate", true);
  const proto::Version& version = op.version();
  if (!version.sha256().empty()) {
    json.String("sha256", absl::BytesToHexString(version.sha256()));
  }
  if (!version.listing_sha256().empty()) {
    json.String("listing_sha256", absl::BytesToHexString(version.listing_sha256()));
  }
  if (!version.sha256().empty() || version.size() != 0) json.Number("size", version.size());
  if (version.mode() != 0) json.Number("mode", version.mode());
  if (version.mtime_ns() != 0) json.Number("mtime_ns", version.mtime_ns());
  if (version.absent()) json.Bool("absent", true);
  if (!op.text().empty()) json.String("text", op.text());
  switch (op.kind()) {
    case proto::CHMOD:
    case proto::TRUNC:
    case proto::PIPE_READ:
    case proto::PIPE_WRITE:
      json.Number("number", op.number());
      break;
    case proto::CHOWN:
      if (op.number() != 0) json.Number("number", op.number());
      json.Number("uid", JsonId(op.uid()));
      json.Number("gid", JsonId(op.gid()));
      break;
    case proto::XATTR_READ:
    case proto::XATTR_WRITE:
      if (op.number() != 0) json.Number("number", op.number());
      json.String("xattr", Lookup(strings, op.xattr_name()));
      break;
    default:
      if (op.number() != 0) json.Number("number", op.number());
      break;
  }
  json.String("notation", FormatOperation(op, strings));
  return json.Finish();
}

}  // namespace dodo::model
