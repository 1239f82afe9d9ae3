#include "cli/cri/format.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "nlohmann/json.hpp"

namespace cloak::cri {
namespace {

namespace v1 = ::runtime::v1;
namespace pb = ::google::protobuf;
using Json = nlohmann::ordered_json;

// crictl's table: Go tabwriter with these settings (cmd/crictl display).
constexpr size_t kMinWidth = 20;
constexpr size_t kPadding = 3;

// Width as tabwriter counts it: UTF-8 code points.
size_t TextWidth(absl::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// "sha256:<64 hex>" (what go-digest parses for the ps IMAGE column).
bool IsDigest(absl::string_view s) {
  if (!absl::StartsWith(s, "sha256:") || s.size() != 7 + 64) return false;
  return std::all_of(s.begin() + 7, s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string Ago(int64_t created_at_ns, absl::Time now) {
  return absl::StrCat(HumanDuration(now - absl::FromUnixNanos(created_at_ns)), " ago");
}

Json FieldValue(const pb::Message& msg, const pb::FieldDescriptor* f, int index);

Json ToJson(const pb::Message& msg) {
  Json out = Json::object();
  const pb::Descriptor* d = msg.GetDescriptor();
  const pb::Reflection* r = msg.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    if (f->is_map()) {
      // Go's jsonpb writes map keys sorted.
      std::map<std::string, Json> entries;
      for (int j = 0; j < r->FieldSize(msg, f); ++j) {
        const pb::Message& e = r->GetRepeatedMessage(msg, f, j);
        const pb::Descriptor* ed = e.GetDescriptor();
        Json key = FieldValue(e, ed->map_key(), -1);
        entries[key.is_string() ? key.get<std::string>() : key.dump()] =
            FieldValue(e, ed->map_value(), -1);
      }
      Json obj = Json::object();
      for (auto& [k, v] : entries) obj[k] = std::move(v);
      out[f->json_name()] = std::move(obj);
    } else if (f->is_repeated()) {
      Json arr = Json::array();
      for (int j = 0; j < r->FieldSize(msg, f); ++j) arr.push_back(FieldValue(msg, f, j));
      out[f->json_name()] = std::move(arr);
    } else if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE && !r->HasField(msg, f)) {
      out[f->json_name()] = nullptr;  // jsonpb with EmitDefaults: an unset message is null
    } else {
      out[f->json_name()] = FieldValue(msg, f, -1);
    }
  }
  return out;
}

// One value of field `f` (element `index` of a repeated field, or -1).
Json FieldValue(const pb::Message& msg, const pb::FieldDescriptor* f, int index) {
  const pb::Reflection* r = msg.GetReflection();
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
      return rep ? r->GetRepeatedInt32(msg, f, index) : r->GetInt32(msg, f);
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      return rep ? r->GetRepeatedUInt32(msg, f, index) : r->GetUInt32(msg, f);
    case pb::FieldDescriptor::CPPTYPE_INT64:  // 64-bit integers are strings in protobuf JSON
      return std::to_string(rep ? r->GetRepeatedInt64(msg, f, index) : r->GetInt64(msg, f));
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      return std::to_string(rep ? r->GetRepeatedUInt64(msg, f, index) : r->GetUInt64(msg, f));
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      return rep ? r->GetRepeatedDouble(msg, f, index) : r->GetDouble(msg, f);
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      return rep ? r->GetRepeatedFloat(msg, f, index) : r->GetFloat(msg, f);
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      return rep ? r->GetRepeatedBool(msg, f, index) : r->GetBool(msg, f);
    case pb::FieldDescriptor::CPPTYPE_ENUM: {
      const pb::EnumValueDescriptor* e =
          rep ? r->GetRepeatedEnum(msg, f, index) : r->GetEnum(msg, f);
      return e->name();
    }
    case pb::FieldDescriptor::CPPTYPE_STRING: {
      std::string s = rep ? r->GetRepeatedString(msg, f, index) : r->GetString(msg, f);
      if (f->type() == pb::FieldDescriptor::TYPE_BYTES) return absl::Base64Escape(s);
      return s;  // not UTF-8: Dump replaces the bad bytes
    }
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      return ToJson(rep ? r->GetRepeatedMessage(msg, f, index) : r->GetMessage(msg, f));
  }
  return nullptr;
}

// Objects with their keys sorted, at every depth (Go's encoding/json of a map).
Json SortKeys(const Json& j) {
  if (j.is_array()) {
    Json arr = Json::array();
    for (const Json& e : j) arr.push_back(SortKeys(e));
    return arr;
  }
  if (!j.is_object()) return j;
  std::map<std::string, Json> sorted;
  for (const auto& [k, v] : j.items()) sorted[k] = SortKeys(v);
  Json obj = Json::object();
  for (auto& [k, v] : sorted) obj[k] = std::move(v);
  return obj;
}

std::string Dump(const Json& j) {
  return j.dump(2, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

std::string TruncateId(absl::string_view id, absl::string_view prefix) {
  if (absl::StartsWith(id, prefix)) id.remove_prefix(prefix.size());
  return std::string(id.substr(0, kTruncatedIdLength));
}

std::string HumanDuration(absl::Duration d) {
  const int64_t seconds = absl::ToInt64Seconds(d);
  if (seconds < 1) return "Less than a second";
  if (seconds == 1) return "1 second";
  if (seconds < 60) return absl::StrCat(seconds, " seconds");
  const int64_t minutes = absl::ToInt64Minutes(d);
  if (minutes == 1) return "About a minute";
  if (minutes < 60) return absl::StrCat(minutes, " minutes");
  const auto hours = static_cast<int64_t>(absl::ToDoubleHours(d) + 0.5);
  if (hours == 1) return "About an hour";
  if (hours < 48) return absl::StrCat(hours, " hours");
  if (hours < 24 * 7 * 2) return absl::StrCat(hours / 24, " days");
  if (hours < 24 * 30 * 2) return absl::StrCat(hours / 24 / 7, " weeks");
  if (hours < 24 * 365 * 2) return absl::StrCat(hours / 24 / 30, " months");
  return absl::StrCat(absl::ToInt64Hours(d) / 24 / 365, " years");
}

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    for (size_t j = 0; j + 1 < row.size(); ++j) {
      if (widths.size() <= j) widths.resize(j + 1, kMinWidth);
      widths[j] = std::max(widths[j], TextWidth(row[j]) + kPadding);
    }
  }
  std::string out;
  for (const auto& row : rows) {
    for (size_t j = 0; j < row.size(); ++j) {
      out += row[j];
      if (j + 1 < row.size()) out.append(widths[j] - TextWidth(row[j]), ' ');
    }
    out += '\n';
  }
  return out;
}

std::string ContainerStateText(v1::ContainerState state) {
  switch (state) {
    case v1::CONTAINER_CREATED:
      return "Created";
    case v1::CONTAINER_RUNNING:
      return "Running";
    case v1::CONTAINER_EXITED:
      return "Exited";
    default:
      return "Unknown";
  }
}

std::string PodStateText(v1::PodSandboxState state) {
  switch (state) {
    case v1::SANDBOX_READY:
      return "Ready";
    case v1::SANDBOX_NOTREADY:
      return "NotReady";
    default:
      return "Unknown";
  }
}

std::string ContainersTable(const std::vector<v1::Container>& containers, absl::Time now,
                            bool no_trunc) {
  std::vector<v1::Container> sorted = containers;  // newest first, as crictl lists
  std::stable_sort(sorted.begin(), sorted.end(), [](const v1::Container& a, const v1::Container& b) {
    return a.created_at() > b.created_at();
  });
  std::vector<std::vector<std::string>> rows = {
      {"CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"}};
  for (const v1::Container& c : sorted) {
    std::string id = c.id(), image = c.image().image(), pod_id = c.pod_sandbox_id();
    if (!no_trunc) {
      id = TruncateId(id);
      pod_id = TruncateId(pod_id);
      if (IsDigest(image)) image = TruncateId(image, "sha256:");
    }
    auto pod_name = c.labels().find("io.kubernetes.pod.name");
    rows.push_back({id, image, Ago(c.created_at(), now), ContainerStateText(c.state()),
                    c.metadata().name(), std::to_string(c.metadata().attempt()), pod_id,
                    pod_name == c.labels().end() ? "unknown" : pod_name->second});
  }
  return FormatTable(rows);
}

std::string PodsTable(const std::vector<v1::PodSandbox>& pods, absl::Time now, bool no_trunc) {
  std::vector<v1::PodSandbox> sorted = pods;
  std::stable_sort(sorted.begin(), sorted.end(), [](const v1::PodSandbox& a,
                                                    const v1::PodSandbox& b) {
    return a.created_at() > b.created_at();
  });
  std::vector<std::vector<std::string>> rows = {
      {"POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"}};
  for (const v1::PodSandbox& p : sorted) {
    rows.push_back({no_trunc ? p.id() : TruncateId(p.id()), Ago(p.created_at(), now),
                    PodStateText(p.state()), p.metadata().name(), p.metadata().namespace_(),
                    std::to_string(p.metadata().attempt()),
                    p.runtime_handler().empty() ? "(default)" : p.runtime_handler()});
  }
  return FormatTable(rows);
}

std::string MessageJson(const pb::Message& msg) { return Dump(ToJson(msg)); }

std::string StatusJson(const pb::Message& status, const std::map<std::string, std::string>& info) {
  Json out = Json::object();
  Json st = Json::object();
  const Json full = ToJson(status);
  for (const auto& [key, value] : full.items()) {
    if ((key == "createdAt" || key == "startedAt" || key == "finishedAt") && value.is_string()) {
      int64_t ns = 0;
      st[key] = absl::SimpleAtoi(value.get<std::string>(), &ns) ? Json(Rfc3339Nano(ns)) : value;
    } else {
      st[key] = SortKeys(value);
    }
  }
  out["status"] = std::move(st);
  for (const auto& [key, value] : info) {
    Json parsed = Json::parse(value, nullptr, /*allow_exceptions=*/false);
    out[key] = parsed.is_discarded() ? Json(value) : std::move(parsed);
  }
  return Dump(out);
}

std::string Rfc3339Nano(int64_t unix_nanos) {
  if (unix_nanos == 0) return "0001-01-01T00:00:00Z";  // Go's zero time
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", absl::FromUnixNanos(unix_nanos),
                          absl::UTCTimeZone());
}

std::string ExecSyncExitMessage(const std::vector<std::string>& cmd, int exit_code,
                                absl::string_view stderr_text) {
  return absl::StrCat("execing command in container synchronously: command '",
                      absl::StrJoin(cmd, " "), "' exited with ", exit_code, ": ", stderr_text);
}

std::string ExecStreamExitMessage(int exit_code) {
  return absl::StrCat("execing command in container: command terminated with exit code ",
                      exit_code);
}

}  // namespace cloak::cri
