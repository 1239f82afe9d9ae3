#include "snapshotter/store.h"

#include <cerrno>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace cloak::snapshotter {
namespace {

using json = nlohmann::json;
constexpr int kFormatVersion = 1;

absl::Status Corrupt(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("snapshot metadata: ", what));
}

bool KindFromInt(int v, Kind* out) {
  if (v < 1 || v > 3) return false;
  *out = static_cast<Kind>(v);
  return true;
}

}  // namespace

absl::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kView:
      return "view";
    case Kind::kActive:
      return "active";
    case Kind::kCommitted:
      return "committed";
  }
  return "unknown";
}

std::string EncodeState(const State& state) {
  json snapshots = json::array();
  for (const auto& [name, s] : state.snapshots) {
    json j = {{"name", s.name},
              {"parent", s.parent},
              {"kind", static_cast<int>(s.kind)},
              {"id", s.id},
              {"created_ns", absl::ToUnixNanos(s.created)},
              {"updated_ns", absl::ToUnixNanos(s.updated)},
              {"labels", s.labels},
              {"guest_pull", s.guest_pull},
              {"image", s.image},
              {"size", s.size},
              {"inodes", s.inodes}};
    snapshots.push_back(std::move(j));
  }
  json doc = {{"version", kFormatVersion}, {"next_id", state.next_id}, {"snapshots", snapshots}};
  // Inputs are checked for UTF-8 before they get here; never throw anyway.
  return doc.dump(1, ' ', false, json::error_handler_t::replace);
}

absl::StatusOr<State> DecodeState(absl::string_view text) {
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return Corrupt("not a JSON object (torn or edited?)");
  auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer() || *version != kFormatVersion) {
    return Corrupt(absl::StrCat("format version is not ", kFormatVersion));
  }
  auto next = doc.find("next_id");
  auto list = doc.find("snapshots");
  if (next == doc.end() || !next->is_number_unsigned() || list == doc.end() || !list->is_array()) {
    return Corrupt("next_id or snapshots missing");
  }
  State state;
  state.next_id = next->get<uint64_t>();
  for (const json& j : *list) {
    if (!j.is_object()) return Corrupt("a snapshot record is not an object");
    auto str = [&](const char* key, std::string* out) {
      auto it = j.find(key);
      if (it == j.end() || !it->is_string()) return false;
      *out = it->get<std::string>();
      return true;
    };
    auto i64 = [&](const char* key, int64_t* out) {
      auto it = j.find(key);
      if (it == j.end() || !it->is_number_integer()) return false;
      *out = it->get<int64_t>();
      return true;
    };
    Snapshot s;
    int64_t kind = 0, id = 0, created = 0, updated = 0;
    if (!str("name", &s.name) || !str("parent", &s.parent) || !str("image", &s.image) ||
        !i64("kind", &kind) || !i64("id", &id) || !i64("created_ns", &created) ||
        !i64("updated_ns", &updated) || !i64("size", &s.size) || !i64("inodes", &s.inodes)) {
      return Corrupt(absl::StrCat("snapshot record ", j.dump(), " lacks a field"));
    }
    if (s.name.empty() || id <= 0 || !KindFromInt(static_cast<int>(kind), &s.kind)) {
      return Corrupt(absl::StrCat("snapshot record ", j.dump(), " is invalid"));
    }
    s.id = static_cast<uint64_t>(id);
    s.created = absl::FromUnixNanos(created);
    s.updated = absl::FromUnixNanos(updated);
    auto gp = j.find("guest_pull");
    s.guest_pull = gp != j.end() && gp->is_boolean() && gp->get<bool>();
    auto labels = j.find("labels");
    if (labels != j.end()) {
      if (!labels->is_object()) return Corrupt(absl::StrCat("labels of ", s.name));
      for (auto it = labels->begin(); it != labels->end(); ++it) {
        if (!it.value().is_string())
          return Corrupt(absl::StrCat("label ", it.key(), " of ", s.name));
        s.labels[it.key()] = it.value().get<std::string>();
      }
    }
    if (s.id >= state.next_id) return Corrupt(absl::StrCat("id of ", s.name, " >= next_id"));
    if (!state.snapshots.emplace(s.name, s).second) {
      return Corrupt(absl::StrCat("snapshot ", s.name, " recorded twice"));
    }
  }
  for (const auto& [name, s] : state.snapshots) {
    if (s.parent.empty()) continue;
    auto p = state.snapshots.find(s.parent);
    if (p == state.snapshots.end() || p->second.kind != Kind::kCommitted) {
      return Corrupt(
          absl::StrCat("parent ", s.parent, " of ", name, " is missing or not committed"));
    }
  }
  return state;
}

absl::StatusOr<State> MetadataFile::Load() const {
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return State{};
    return ErrnoError(errno, "open ", path_);
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return ErrnoError(errno, "read ", path_);
  absl::StatusOr<State> state = DecodeState(text.str());
  if (!state.ok()) {
    return Annotate(state.status(),
                    absl::StrCat(path_,
                                 " (move it away to start with no snapshots; containerd "
                                 "will then re-pull images)"));
  }
  return state;
}

absl::Status MetadataFile::Save(const State& state) const {
  return WriteFileDurably(path_, EncodeState(state), 0600);
}

}  // namespace cloak::snapshotter
