#include "cli/gc_command.h"

#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/store.h"
#include "model/store_gc.h"

namespace dodo::cli {
namespace {

// "812 objects (31.2 MiB)".
std::string Amount(uint64_t count, uint64_t bytes, const char* noun) {
  std::string size;
  if (bytes < 1024) {
    size = absl::StrCat(bytes, bytes == 1 ? " byte" : " bytes");
  } else if (bytes < 1024 * 1024) {
    size = absl::StrFormat("%.1f KiB", static_cast<double>(bytes) / 1024);
  } else if (bytes < uint64_t{1024} * 1024 * 1024) {
    size = absl::StrFormat("%.1f MiB", static_cast<double>(bytes) / (1024 * 1024));
  } else {
    size = absl::StrFormat("%.2f GiB", static_cast<double>(bytes) / (1024 * 1024 * 1024));
  }
  return absl::StrCat(count, " ", noun, count == 1 ? "" : "s", " (", size, ")");
}

}  // namespace

CLI::App* AddGcCommand(CLI::App& app, GcOptions& options) {
  CLI::App* gc = app.add_subcommand(
      "gc",
      "Free the space of stored objects that no build can restore any more. Every\n"
      "build saves the versions its commands write in .dodo/objects/, but the next\n"
      "build restores outputs only from the versions its last trace names; gc removes\n"
      "the others, and what killed builds left (.dodo/stage/, half-saved objects;\n"
      "a journal in .dodo/stage/ keeps it for the next build, which undoes from it).\n"
      "The last build's outputs stay restorable. Refused while a build runs here.\n\n"
      "Examples:\n"
      "  dodo gc --dry-run          # what would be removed, and how much space\n"
      "  dodo gc\n\n"
      "Exit status: 0 when done (also with no store here); 1 if the store cannot be\n"
      "collected (a build is running, the last trace cannot be read to its end).");
  gc->add_flag("-n,--dry-run", options.dry_run, "Remove nothing; print what would be removed");
  gc->add_flag("-q,--quiet", options.quiet, "Print errors only");
  return gc;
}

int RunGc(const GcOptions& options, std::ostream& out, std::ostream& err) {
  char cwd_buffer[4096];
  const std::string cwd = getcwd(cwd_buffer, sizeof(cwd_buffer)) != nullptr ? cwd_buffer : ".";
  const std::string dir = cwd + "/.dodo";
  if (access(dir.c_str(), F_OK) != 0) {
    if (!options.quiet) out << "dodo gc: " << dir << ": no store here; nothing to do\n";
    return 0;
  }
  // Holding the store's lock keeps builds out while objects go.
  absl::StatusOr<std::unique_ptr<model::Store>> store = model::Store::Open(dir);
  if (!store.ok()) {
    err << "dodo gc: " << store.status().message() << "\n";
    return 1;
  }
  absl::StatusOr<model::DigestSet> in_use =
      model::DigestsInUse((*store)->trace_path(), dir + "/manifest");
  if (!in_use.ok()) {
    err << "dodo gc: " << in_use.status().message() << "; nothing removed\n";
    return 1;
  }
  absl::StatusOr<model::GcStats> stats = model::CollectGarbage(**store, *in_use, options.dry_run);
  if (!stats.ok()) {
    err << "dodo gc: " << stats.status().message() << "\n";
    return 1;
  }
  if (options.quiet) return 0;
  out << "dodo gc: " << (options.dry_run ? "would remove " : "removed ")
      << Amount(stats->objects_removed, stats->bytes_removed, "object");
  if (stats->leftovers_removed != 0) {
    out << " and " << Amount(stats->leftovers_removed, stats->leftover_bytes_removed, "file")
        << " left by interrupted builds";
  }
  out << "; kept " << Amount(stats->objects_kept, stats->bytes_kept, "object")
      << " that the last build names\n";
  return 0;
}

}  // namespace dodo::cli
