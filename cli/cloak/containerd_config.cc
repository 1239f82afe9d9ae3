#include "cli/cloak/containerd_config.h"

// toml++ reports parse errors by exception (TOML_EXCEPTIONS=1, as Debian
// builds it); they are caught here and turned into statuses.
#include <toml++/toml.h>

#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace cloak::cli {
namespace {

using Path = std::vector<std::string>;

constexpr absl::string_view kRecordPrefix = "# cloak-containerd-config: ";
constexpr absl::string_view kHeader =
    "# Cloak's runtimes were added to this file by `cloak containerd-config`;\n"
    "# `cloak containerd-config --remove` takes out exactly what the next line records.\n";

std::string PathName(const Path& path) {
  std::vector<std::string> parts;
  for (const std::string& p : path) {
    parts.push_back(absl::StrContains(p, '.') ? absl::StrCat("\"", p, "\"") : p);
  }
  return absl::StrJoin(parts, ".");
}

// One changed key: its path and its TOML text before ("" = absent).
struct Entry {
  Path path;
  std::optional<std::string> before;
};

struct Record {
  std::vector<Entry> entries;
  bool Has(const Path& path) const {
    for (const Entry& e : entries) {
      if (e.path == path) return true;
    }
    return false;
  }
};

std::string RecordToJson(const Record& record) {
  nlohmann::json changes = nlohmann::json::array();
  for (const Entry& e : record.entries) {
    nlohmann::json j = {{"path", e.path}};
    j["before"] = e.before.has_value() ? nlohmann::json(*e.before) : nlohmann::json(nullptr);
    changes.push_back(std::move(j));
  }
  return nlohmann::json{{"changes", changes}}.dump();
}

absl::StatusOr<std::optional<Record>> FindRecord(absl::string_view text) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, kRecordPrefix)) continue;
    nlohmann::json j = nlohmann::json::parse(line.substr(kRecordPrefix.size()), nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("changes") ||
        !j["changes"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the record line \"", kRecordPrefix,
          "...\" of this containerd config is damaged; restore the file from its backup"));
    }
    Record record;
    for (const nlohmann::json& c : j["changes"]) {
      if (!c.is_object() || !c.contains("path") || !c["path"].is_array() || c["path"].empty() ||
          !c.contains("before") || !(c["before"].is_null() || c["before"].is_string())) {
        return absl::InvalidArgumentError(
            "an entry of the cloak-containerd-config record is damaged; restore the file from "
            "its backup");
      }
      Entry e;
      for (const nlohmann::json& p : c["path"]) {
        if (!p.is_string()) return absl::InvalidArgumentError("damaged cloak-containerd-config record");
        e.path.push_back(p.get<std::string>());
      }
      if (c["before"].is_string()) e.before = c["before"].get<std::string>();
      record.entries.push_back(std::move(e));
    }
    return std::optional<Record>(std::move(record));
  }
  return std::optional<Record>();
}

absl::StatusOr<toml::table> ParseToml(absl::string_view text, absl::string_view what) {
  try {
    return toml::parse(std::string_view(text.data(), text.size()), std::string(what));
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    return absl::InvalidArgumentError(absl::StrCat(what, " is not valid TOML (", where.str(),
                                                   "): ", std::string(e.description())));
  }
}

std::string Format(const toml::table& table) {
  std::ostringstream out;
  out << toml::toml_formatter(table, toml::format_flags::none);
  return out.str();
}

// The TOML text of one node, as the value of key "v".
std::string NodeText(const toml::node& node) {
  toml::table holder;
  node.visit([&](const auto& n) { holder.insert_or_assign("v", n); });
  return Format(holder);
}

absl::StatusOr<toml::table*> EnsureTable(toml::table& root, const Path& path, size_t depth) {
  toml::table* at = &root;
  for (size_t i = 0; i < depth; ++i) {
    toml::node* next = at->get(path[i]);
    if (next == nullptr) {
      at->insert_or_assign(path[i], toml::table{});
      next = at->get(path[i]);
    }
    if (!next->is_table()) {
      return absl::FailedPreconditionError(absl::StrCat(
          PathName(Path(path.begin(), path.begin() + static_cast<long>(i) + 1)),
          " is not a table in this containerd config; fix it by hand before adding Cloak"));
    }
    at = next->as_table();
  }
  return at;
}

toml::node* Find(toml::table& root, const Path& path) {
  toml::node* at = &root;
  for (const std::string& key : path) {
    if (at == nullptr || !at->is_table()) return nullptr;
    at = at->as_table()->get(key);
  }
  return at;
}

// Sets `path` to `value`, recording what was there the first time.
template <typename T>
absl::Status Set(toml::table& root, const Path& path, T&& value, Record& record) {
  if (!record.Has(path)) {
    toml::node* old = Find(root, path);
    record.entries.push_back(
        {path, old != nullptr ? std::optional<std::string>(NodeText(*old)) : std::nullopt});
  }
  ASSIGN_OR_RETURN(toml::table * parent, EnsureTable(root, path, path.size() - 1));
  parent->insert_or_assign(path.back(), std::forward<T>(value));
  return absl::OkStatus();
}

// Erases `path` and then every table on the way to it that became empty.
void EraseAndPrune(toml::table& root, const Path& path) {
  for (size_t len = path.size(); len > 0; --len) {
    Path parent_path(path.begin(), path.begin() + static_cast<long>(len) - 1);
    toml::node* parent = parent_path.empty() ? &root : Find(root, parent_path);
    if (parent == nullptr || !parent->is_table()) return;
    toml::table* table = parent->as_table();
    toml::node* node = table->get(path[len - 1]);
    if (node == nullptr) return;
    if (len == path.size() || (node->is_table() && node->as_table()->empty())) {
      table->erase(path[len - 1]);
    } else {
      return;
    }
  }
}

// Where the CRI settings live: config version 2 (containerd 1.6, 1.7; 2.x
// migrates it) keeps them in one plugin, version 3 (containerd 2.x) splits
// runtimes and images.
struct Layout {
  Path runtimes;                 // ...containerd.runtimes
  Path default_runtime_name;
  Path disable_snapshot_annotations;
  Path global_snapshotter;       // version 2 only
};

Layout LayoutFor(int64_t config_version) {
  if (config_version == 3) {
    const Path runtime = {"plugins", "io.containerd.cri.v1.runtime", "containerd"};
    const Path images = {"plugins", "io.containerd.cri.v1.images"};
    auto with = [](Path p, const char* key) {
      p.push_back(key);
      return p;
    };
    return {with(runtime, "runtimes"), with(runtime, "default_runtime_name"),
            with(images, "disable_snapshot_annotations"), with(images, "snapshotter")};
  }
  const Path cri = {"plugins", kCriPlugin, "containerd"};
  auto with = [&](const char* key) {
    Path p = cri;
    p.push_back(key);
    return p;
  };
  return {with("runtimes"), with("default_runtime_name"), with("disable_snapshot_annotations"),
          with("snapshotter")};
}

// The file's config version (2 or 3); an empty file gets the version that
// `containerd_version` writes by default.
absl::StatusOr<int64_t> ConfigVersion(const toml::table& root, ContainerdVersion containerd) {
  const toml::node* version = root.get("version");
  if (version == nullptr) {
    if (root.empty()) return containerd.major >= 2 ? 3 : 2;
    return absl::InvalidArgumentError(
        "this containerd config has no \"version = 2\" (or 3): version 1 configs (plugin names "
        "without the io.containerd prefix) are not supported; convert it to version 2 first");
  }
  std::optional<int64_t> v = version->value<int64_t>();
  if (!v.has_value() || (*v != 2 && *v != 3)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "this containerd config has version = ",
        v.has_value() ? absl::StrCat(*v) : "(not a number)",
        "; only versions 2 (containerd 1.6, 1.7) and 3 (containerd 2.x) are supported"));
  }
  if (*v == 3 && containerd.major < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "this containerd config has version = 3, which containerd ", containerd.major, ".",
        containerd.minor, " cannot read; pass the right --containerd-version"));
  }
  return *v;
}

bool ValidHandler(absl::string_view name) {
  if (!absl::StartsWith(name, "cloak-") || name.size() == 6 || name.size() > 63) return false;
  for (char c : name) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-')) return false;
  }
  return name.back() != '-';
}

Path Join(Path p, const std::string& key) {
  p.push_back(key);
  return p;
}

std::string Compose(const toml::table& root, const Record& record) {
  if (record.entries.empty()) return Format(root) + "\n";
  return absl::StrCat(kHeader, kRecordPrefix, RecordToJson(record), "\n", Format(root), "\n");
}

}  // namespace

absl::StatusOr<ContainerdVersion> ParseContainerdVersionFlag(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  ContainerdVersion v;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &v.major) ||
      !absl::SimpleAtoi(parts[1], &v.minor) || v.major < 1 || (v.major == 1 && v.minor < 6)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "containerd version \"", text, "\" is not MAJOR.MINOR of 1.6 or later (e.g. 1.6, 1.7)"));
  }
  return v;
}

absl::StatusOr<ContainerdVersion> ParseContainerdVersionOutput(absl::string_view output) {
  for (absl::string_view word : absl::StrSplit(output, absl::ByAnyChar(" \t\n"), absl::SkipEmpty())) {
    absl::ConsumePrefix(&word, "v");
    std::vector<absl::string_view> parts = absl::StrSplit(word, '.');
    ContainerdVersion v;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[0], &v.major) &&
        absl::SimpleAtoi(parts[1], &v.minor)) {
      return v;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "no version number in containerd's --version output \"",
      absl::StripAsciiWhitespace(output.substr(0, 120)), "\"; pass --containerd-version"));
}

std::string HandlerConfigPath(const ContainerdConfigOptions& options, absl::string_view handler) {
  std::string dir = options.shim_config_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return absl::StrCat(dir, "/", handler, ".toml");
}

absl::StatusOr<std::string> AddCloakToContainerdConfig(absl::string_view text,
                                                       const ContainerdConfigOptions& options) {
  if (options.handlers.empty()) {
    return absl::InvalidArgumentError("no runtime handlers given (e.g. --handlers cloak-dev)");
  }
  for (const std::string& h : options.handlers) {
    if (!ValidHandler(h)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "handler \"", h, "\" must be \"cloak-\" followed by lower-case letters, digits and "
          "dashes (e.g. cloak-dev), at most 63 characters"));
    }
  }
  if (options.shim_config_dir.empty() || options.shim_config_dir[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("the shim config dir \"",
                                                   options.shim_config_dir, "\" must be absolute"));
  }
  if (!options.snapshotter_address.empty() && options.snapshotter_address[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "the snapshotter address \"", options.snapshotter_address,
        "\" must be an absolute unix socket path"));
  }
  ASSIGN_OR_RETURN(toml::table root, ParseToml(text, "containerd config"));
  ASSIGN_OR_RETURN(const int64_t config_version, ConfigVersion(root, options.version));
  const Layout layout = LayoutFor(config_version);
  ASSIGN_OR_RETURN(std::optional<Record> found, FindRecord(text));
  Record record = found.value_or(Record{});
  if (root.get("version") == nullptr) {
    RETURN_IF_ERROR(Set(root, {"version"}, config_version, record));
  }

  // containerd replaces its default runtimes map (runc) with the file's as
  // soon as the file has one: without runc listed, CRI's default runtime
  // "runc" would be gone and the CRI plugin would not load.
  const toml::node* default_name = Find(root, layout.default_runtime_name);
  if (default_name == nullptr || default_name->value<std::string>() == "runc") {
    const Path runc = Join(layout.runtimes, "runc");
    if (!record.Has(runc) && Find(root, runc) == nullptr) {
      toml::table runtime;
      runtime.insert_or_assign("runtime_type", "io.containerd.runc.v2");
      RETURN_IF_ERROR(Set(root, runc, std::move(runtime), record));
    }
  }

  const bool per_handler = options.version >= ContainerdVersion{1, 7};
  for (const std::string& h : options.handlers) {
    const Path path = Join(layout.runtimes, h);
    if (!record.Has(path)) {
      toml::node* existing = Find(root, path);
      if (existing != nullptr) {
        const toml::node* type = existing->is_table() ? existing->as_table()->get("runtime_type")
                                                      : nullptr;
        if (type == nullptr || type->value<std::string>() != kCloakRuntimeType) {
          return absl::FailedPreconditionError(absl::StrCat(
              "this containerd config already has a runtime \"", h,
              "\" that is not Cloak's (runtime_type is not ", kCloakRuntimeType,
              "); rename it or choose other --handlers"));
        }
      }
    }
    toml::table runtime;
    runtime.insert_or_assign("runtime_type", kCloakRuntimeType);
    runtime.insert_or_assign("pod_annotations", toml::array{"io.cloak.*"});
    toml::table runtime_options;
    runtime_options.insert_or_assign("ConfigPath", HandlerConfigPath(options, h));
    runtime.insert_or_assign("options", std::move(runtime_options));
    if (per_handler && !options.snapshotter_address.empty()) {
      runtime.insert_or_assign("snapshotter", kSnapshotterName);
    }
    RETURN_IF_ERROR(Set(root, path, std::move(runtime), record));
  }

  if (!options.snapshotter_address.empty()) {
    toml::table proxy;
    proxy.insert_or_assign("type", "snapshot");
    proxy.insert_or_assign("address", options.snapshotter_address);
    RETURN_IF_ERROR(Set(root, {"proxy_plugins", kSnapshotterName}, std::move(proxy), record));
    // CRI passes the layer annotations the snapshotter decides on (docs/snapshotter.md).
    RETURN_IF_ERROR(Set(root, layout.disable_snapshot_annotations, false, record));
    if (!per_handler) {
      // containerd 1.6: one snapshotter for every pod.
      RETURN_IF_ERROR(Set(root, layout.global_snapshotter, kSnapshotterName, record));
    }
  }
  return Compose(root, record);
}

absl::StatusOr<std::string> RemoveCloakFromContainerdConfig(absl::string_view text) {
  ASSIGN_OR_RETURN(std::optional<Record> found, FindRecord(text));
  if (!found.has_value()) return std::string(text);
  ASSIGN_OR_RETURN(toml::table root, ParseToml(text, "containerd config"));
  for (auto it = found->entries.rbegin(); it != found->entries.rend(); ++it) {
    if (!it->before.has_value()) {
      EraseAndPrune(root, it->path);
      continue;
    }
    ASSIGN_OR_RETURN(toml::table holder, ParseToml(*it->before, "recorded value"));
    toml::node* value = holder.get("v");
    if (value == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the recorded value of ", PathName(it->path), " is damaged; restore the file from its "
          "backup"));
    }
    ASSIGN_OR_RETURN(toml::table * parent, EnsureTable(root, it->path, it->path.size() - 1));
    value->visit([&](const auto& n) { parent->insert_or_assign(it->path.back(), n); });
  }
  return Compose(root, Record{});
}

}  // namespace cloak::cli
