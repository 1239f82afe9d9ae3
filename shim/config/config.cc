#include "shim/config/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/fd.h"
#include "common/status_macros.h"

// Debian ships toml++ as a shared library built with exceptions (its symbols
// live in toml::v3::ex), so this is the one translation unit that includes
// it, and it keeps the default TOML_EXCEPTIONS=1. toml::parse_error is caught
// in ParseConfig and never leaves this file.
#include <toml++/toml.h>

static_assert(TOML_EXCEPTIONS, "libtomlplusplus is built with exceptions; keep TOML_EXCEPTIONS=1");

#ifndef CLOAK_DATA_DIR
#error "CLOAK_DATA_DIR must be defined by the build (see shim/config/CMakeLists.txt)"
#endif
#ifndef CLOAK_SYSCONF_DIR
#error "CLOAK_SYSCONF_DIR must be defined by the build (see shim/config/CMakeLists.txt)"
#endif

namespace cloak::config {
namespace {

constexpr absl::string_view kAnnotationPrefix = "io.cloak.";
// A configuration file is a few KiB; refuse anything absurd.
constexpr size_t kMaxConfigBytes = 1 << 20;

// Tables that may appear in the file, as dotted paths.
constexpr absl::string_view kSections[] = {"runtime", "hypervisor", "tee", "tee.snp",
                                           "tee.tdx", "agent",      "kbs", "image"};

// Keys a pod may ever override: sizing and timeouts of its own VM. Host
// paths, the TEE and the agent channel are the host's choice alone.
const std::vector<std::string>& Overridable() {
  static const std::vector<std::string>* const keys = new std::vector<std::string>{
      "io.cloak.hypervisor.memory_mib", "io.cloak.hypervisor.vcpus", "io.cloak.agent.boot_timeout",
      "io.cloak.agent.request_timeout", "io.cloak.agent.log_level",  "io.cloak.image.pull_timeout",
  };
  return *keys;
}

constexpr absl::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error", "off"};

absl::string_view TypeName(toml::node_type type) {
  switch (type) {
    case toml::node_type::none:
      return "nothing";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
  }
  return "an unknown type";
}

absl::Status WrongType(absl::string_view expected, const toml::node& node) {
  return absl::InvalidArgumentError(
      absl::StrCat("expected ", expected, ", got ", TypeName(node.type())));
}

std::string Quoted(absl::string_view s) { return absl::StrCat("\"", absl::CEscape(s), "\""); }

std::string QuotedList(absl::Span<const absl::string_view> names) {
  std::vector<std::string> quoted;
  for (absl::string_view n : names) quoted.push_back(Quoted(n));
  return absl::StrJoin(quoted, ", ");
}

// ---- value checks, shared by the file and annotations ----------------------

using StringCheck = std::function<absl::Status(absl::string_view)>;

absl::Status AnyString(absl::string_view) { return absl::OkStatus(); }

absl::Status NonEmpty(absl::string_view v) {
  if (v.empty()) return absl::InvalidArgumentError("must not be empty");
  return absl::OkStatus();
}

absl::Status AbsolutePath(absl::string_view v) {
  if (v.empty() || v[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("must be an absolute path, got ", Quoted(v)));
  }
  return absl::OkStatus();
}

absl::Status EmptyOrAbsolutePath(absl::string_view v) {
  if (v.empty()) return absl::OkStatus();
  return AbsolutePath(v);
}

absl::Status LogLevel(absl::string_view v) {
  for (absl::string_view l : kLogLevels) {
    if (v == l) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("invalid value ", Quoted(v), "; allowed: ", QuotedList(kLogLevels)));
}

absl::Status EmptyOrHttpUrl(absl::string_view v) {
  if (v.empty()) return absl::OkStatus();
  for (absl::string_view scheme : {"http://", "https://"}) {
    if (absl::StartsWith(v, scheme) && v.size() > scheme.size()) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("must be empty (no KBS) or an http:// or https:// URL, got ", Quoted(v)));
}

absl::Status QgsAddress(absl::string_view v) {
  if (!v.empty() && v[0] == '/') return absl::OkStatus();
  std::vector<absl::string_view> parts = absl::StrSplit(v, ':');
  uint32_t cid = 0;
  uint32_t port = 0;
  if (parts.size() == 3 && parts[0] == "vsock" && absl::SimpleAtoi(parts[1], &cid) &&
      absl::SimpleAtoi(parts[2], &port)) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "must be an absolute unix socket path or \"vsock:<cid>:<port>\", got ", Quoted(v)));
}

absl::Status RegistryHost(absl::string_view v) {
  if (v.empty() || absl::StrContains(v, "/") || absl::StrContains(v, " ")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "must be a registry \"host\" or \"host:port\" without a scheme, got ", Quoted(v)));
  }
  return absl::OkStatus();
}

absl::Status OverridableAnnotation(absl::string_view v) {
  if (std::find(Overridable().begin(), Overridable().end(), v) != Overridable().end()) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(Quoted(v), " cannot be overridden by a pod; ",
                   "overridable: ", absl::StrJoin(Overridable(), ", ")));
}

// ---- fields -----------------------------------------------------------------

// One key of the file. Both setters return a status whose message says what
// is wrong with the value; the caller adds where (file:line or annotation)
// and which key.
struct Field {
  std::string path;
  std::function<absl::Status(const toml::node&, Config&)> from_toml;
  std::function<absl::Status(absl::string_view, Config&)> from_string;
};

template <typename T>
using Accessor = T& (*)(Config&);

absl::Status CheckRange(int64_t v, int64_t min, int64_t max) {
  if (v < min || v > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("must be an integer from ", min, " to ", max, ", got ", v));
  }
  return absl::OkStatus();
}

Field IntField(std::string path, Accessor<int64_t> get, int64_t min, int64_t max) {
  return Field{std::move(path),
               [=](const toml::node& node, Config& c) -> absl::Status {
                 const auto* v = node.as_integer();
                 if (v == nullptr)
                   return WrongType(absl::StrCat("an integer from ", min, " to ", max), node);
                 RETURN_IF_ERROR(CheckRange(v->get(), min, max));
                 get(c) = v->get();
                 return absl::OkStatus();
               },
               [=](absl::string_view s, Config& c) -> absl::Status {
                 int64_t v = 0;
                 if (!absl::SimpleAtoi(s, &v)) {
                   return absl::InvalidArgumentError(absl::StrCat(
                       "must be an integer from ", min, " to ", max, ", got ", Quoted(s)));
                 }
                 RETURN_IF_ERROR(CheckRange(v, min, max));
                 get(c) = v;
                 return absl::OkStatus();
               }};
}

// A u64 given as a non-negative TOML integer (hex like 0x30000 is fine), with
// a check of the whole value.
Field U64Field(std::string path, Accessor<uint64_t> get,
               std::function<absl::Status(uint64_t)> check) {
  return Field{std::move(path),
               [=](const toml::node& node, Config& c) -> absl::Status {
                 const auto* v = node.as_integer();
                 if (v == nullptr) return WrongType("a non-negative integer", node);
                 if (v->get() < 0) {
                   return absl::InvalidArgumentError(
                       absl::StrCat("must be a non-negative integer, got ", v->get()));
                 }
                 RETURN_IF_ERROR(check(static_cast<uint64_t>(v->get())));
                 get(c) = static_cast<uint64_t>(v->get());
                 return absl::OkStatus();
               },
               [=](absl::string_view s, Config& c) -> absl::Status {
                 uint64_t v = 0;
                 bool ok = absl::StartsWithIgnoreCase(s, "0x")
                               ? absl::SimpleHexAtoi(s.substr(2), &v)
                               : absl::SimpleAtoi(s, &v);
                 if (!ok) {
                   return absl::InvalidArgumentError(
                       absl::StrCat("must be a non-negative integer, got ", Quoted(s)));
                 }
                 RETURN_IF_ERROR(check(v));
                 get(c) = v;
                 return absl::OkStatus();
               }};
}

Field BoolField(std::string path, Accessor<bool> get) {
  return Field{std::move(path),
               [=](const toml::node& node, Config& c) -> absl::Status {
                 const auto* v = node.as_boolean();
                 if (v == nullptr) return WrongType("true or false", node);
                 get(c) = v->get();
                 return absl::OkStatus();
               },
               [=](absl::string_view s, Config& c) -> absl::Status {
                 if (s == "true" || s == "false") {
                   get(c) = s == "true";
                   return absl::OkStatus();
                 }
                 return absl::InvalidArgumentError(
                     absl::StrCat("must be \"true\" or \"false\", got ", Quoted(s)));
               }};
}

Field StringField(std::string path, Accessor<std::string> get, StringCheck check) {
  return Field{std::move(path),
               [=](const toml::node& node, Config& c) -> absl::Status {
                 const auto* v = node.as_string();
                 if (v == nullptr) return WrongType("a string", node);
                 RETURN_IF_ERROR(check(v->get()));
                 get(c) = v->get();
                 return absl::OkStatus();
               },
               [=](absl::string_view s, Config& c) -> absl::Status {
                 RETURN_IF_ERROR(check(s));
                 get(c) = std::string(s);
                 return absl::OkStatus();
               }};
}

Field StringListField(std::string path, Accessor<std::vector<std::string>> get, StringCheck check) {
  return Field{std::move(path),
               [=](const toml::node& node, Config& c) -> absl::Status {
                 const auto* array = node.as_array();
                 if (array == nullptr) return WrongType("an array of strings", node);
                 std::vector<std::string> out;
                 for (size_t i = 0; i < array->size(); ++i) {
                   const toml::node& elem = *array->get(i);
                   const auto* s = elem.as_string();
                   absl::Status st = s == nullptr ? WrongType("a string", elem) : check(s->get());
                   if (!st.ok()) {
                     return absl::Status(
                         st.code(), absl::StrCat("element ", i, " (line ", elem.source().begin.line,
                                                 "): ", st.message()));
                   }
                   out.push_back(s->get());
                 }
                 get(c) = std::move(out);
                 return absl::OkStatus();
               },
               [=](absl::string_view s, Config& c) -> absl::Status {
                 // Comma-separated in an annotation.
                 std::vector<std::string> out;
                 for (absl::string_view item : absl::StrSplit(s, ',', absl::SkipWhitespace())) {
                   item = absl::StripAsciiWhitespace(item);
                   RETURN_IF_ERROR(check(item));
                   out.emplace_back(item);
                 }
                 get(c) = std::move(out);
                 return absl::OkStatus();
               }};
}

template <typename E>
struct EnumName {
  absl::string_view name;
  E value;
};

template <typename E, size_t N>
Field EnumField(std::string path, std::type_identity_t<Accessor<E>> get,
                const EnumName<E> (&names)[N]) {
  std::vector<EnumName<E>> table(std::begin(names), std::end(names));
  auto set = [table](absl::string_view s, Config& c, Accessor<E> g) -> absl::Status {
    std::vector<absl::string_view> allowed;
    for (const auto& n : table) {
      if (s == n.name) {
        g(c) = n.value;
        return absl::OkStatus();
      }
      allowed.push_back(n.name);
    }
    return absl::InvalidArgumentError(
        absl::StrCat("invalid value ", Quoted(s), "; allowed: ", QuotedList(allowed)));
  };
  return Field{std::move(path),
               [=](const toml::node& node, Config& c) -> absl::Status {
                 const auto* v = node.as_string();
                 if (v == nullptr) return WrongType("a string", node);
                 return set(v->get(), c, get);
               },
               [=](absl::string_view s, Config& c) { return set(s, c, get); }};
}

absl::Status SetDuration(absl::string_view s, absl::Duration& out) {
  absl::Duration d;
  if (!absl::ParseDuration(s, &d)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "must be a duration such as \"30s\", \"1m30s\" or \"500ms\", got ", Quoted(s)));
  }
  if (d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("must be a positive, finite duration, got ", Quoted(s)));
  }
  out = d;
  return absl::OkStatus();
}

Field DurationField(std::string path, Accessor<absl::Duration> get) {
  return Field{std::move(path),
               [=](const toml::node& node, Config& c) -> absl::Status {
                 const auto* v = node.as_string();
                 if (v == nullptr) return WrongType("a duration string such as \"30s\"", node);
                 return SetDuration(v->get(), get(c));
               },
               [=](absl::string_view s, Config& c) { return SetDuration(s, get(c)); }};
}

constexpr EnumName<HypervisorDriver> kDrivers[] = {{"qemu", HypervisorDriver::kQemu},
                                                   {"libvirt", HypervisorDriver::kLibvirt}};
constexpr EnumName<Accel> kAccels[] = {
    {"auto", Accel::kAuto}, {"kvm", Accel::kKvm}, {"tcg", Accel::kTcg}};
constexpr EnumName<TeeType> kTeeTypes[] = {
    {"none", TeeType::kNone}, {"snp", TeeType::kSnp}, {"tdx", TeeType::kTdx}};
constexpr EnumName<AgentChannel> kChannels[] = {{"auto", AgentChannel::kAuto},
                                                {"vsock", AgentChannel::kVsock},
                                                {"serial", AgentChannel::kSerial}};

absl::Status CheckSnpPolicy(uint64_t policy) {
  if ((policy & (uint64_t{1} << 17)) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bit 17 is reserved and must be set (e.g. 0x30000), got 0x", absl::Hex(policy)));
  }
  return absl::OkStatus();
}

// Hard limits, not tuning: they only reject values no VM could run with.
constexpr int64_t kMinMemoryMib = 128;
constexpr int64_t kMaxMemoryMib = int64_t{1} << 22;  // 4 TiB
constexpr int64_t kMaxVcpus = 288;                   // q35's limit

const std::vector<Field>& Fields() {
  static const std::vector<Field>* const fields = new std::vector<Field>{
      // [runtime]
      StringField(
          "runtime.log_level", [](Config & c) -> auto& { return c.runtime.log_level; }, LogLevel),
      StringField(
          "runtime.state_dir", [](Config & c) -> auto& { return c.runtime.state_dir; },
          AbsolutePath),
      StringListField(
          "runtime.annotation_allowlist",
          [](Config & c) -> auto& { return c.runtime.annotation_allowlist; },
          OverridableAnnotation),
      // [hypervisor]
      EnumField(
          "hypervisor.driver", [](Config & c) -> auto& { return c.hypervisor.driver; }, kDrivers),
      StringField(
          "hypervisor.qemu_path", [](Config & c) -> auto& { return c.hypervisor.qemu_path; },
          AbsolutePath),
      StringField(
          "hypervisor.libvirt_uri", [](Config & c) -> auto& { return c.hypervisor.libvirt_uri; },
          NonEmpty),
      StringField(
          "hypervisor.machine", [](Config & c) -> auto& { return c.hypervisor.machine; }, NonEmpty),
      EnumField(
          "hypervisor.accel", [](Config & c) -> auto& { return c.hypervisor.accel; }, kAccels),
      StringField(
          "hypervisor.cpu_model", [](Config & c) -> auto& { return c.hypervisor.cpu_model; },
          AnyString),
      IntField(
          "hypervisor.memory_mib", [](Config & c) -> auto& { return c.hypervisor.memory_mib; },
          kMinMemoryMib, kMaxMemoryMib),
      IntField(
          "hypervisor.pod_memory_overhead_mib",
          [](Config & c) -> auto& { return c.hypervisor.pod_memory_overhead_mib; }, 0,
          kMaxMemoryMib),
      IntField(
          "hypervisor.vcpus", [](Config & c) -> auto& { return c.hypervisor.vcpus; }, 1, kMaxVcpus),
      StringField(
          "hypervisor.kernel", [](Config & c) -> auto& { return c.hypervisor.kernel; },
          AbsolutePath),
      StringField(
          "hypervisor.initrd", [](Config & c) -> auto& { return c.hypervisor.initrd; },
          AbsolutePath),
      StringField(
          "hypervisor.kernel_params",
          [](Config & c) -> auto& { return c.hypervisor.kernel_params; }, AnyString),
      StringField(
          "hypervisor.firmware", [](Config & c) -> auto& { return c.hypervisor.firmware; },
          EmptyOrAbsolutePath),
      BoolField(
          "hypervisor.console_log", [](Config & c) -> auto& { return c.hypervisor.console_log; }),
      BoolField(
          "hypervisor.size_from_pod",
          [](Config & c) -> auto& { return c.hypervisor.size_from_pod; }),
      IntField(
          "hypervisor.tcg_tb_size_mib",
          [](Config & c) -> auto& { return c.hypervisor.tcg_tb_size_mib; }, 0, 4096),
      IntField(
          "hypervisor.console_log_max_bytes",
          [](Config & c) -> auto& { return c.hypervisor.console_log_max_bytes; }, 4096,
          int64_t{1} << 40),
      // [tee]
      EnumField(
          "tee.type", [](Config & c) -> auto& { return c.tee.type; }, kTeeTypes),
      StringField(
          "tee.simulated_snp_chain",
          [](Config & c) -> auto& { return c.tee.simulated_snp_chain; }, EmptyOrAbsolutePath),
      IntField(
          "tee.snp.cbitpos", [](Config & c) -> auto& { return c.tee.snp.cbitpos; }, 32, 63),
      IntField(
          "tee.snp.reduced_phys_bits",
          [](Config & c) -> auto& { return c.tee.snp.reduced_phys_bits; }, 1, 63),
      U64Field(
          "tee.snp.policy", [](Config & c) -> auto& { return c.tee.snp.policy; }, CheckSnpPolicy),
      BoolField(
          "tee.snp.kernel_hashes", [](Config & c) -> auto& { return c.tee.snp.kernel_hashes; }),
      StringField(
          "tee.tdx.quote_generation_socket",
          [](Config & c) -> auto& { return c.tee.tdx.quote_generation_socket; }, QgsAddress),
      BoolField(
          "tee.tdx.sept_ve_disable", [](Config & c) -> auto& { return c.tee.tdx.sept_ve_disable; }),
      // [agent]
      EnumField(
          "agent.channel", [](Config & c) -> auto& { return c.agent.channel; }, kChannels),
      IntField(
          "agent.vsock_port", [](Config & c) -> auto& { return c.agent.vsock_port; }, 1,
          int64_t{std::numeric_limits<uint32_t>::max()} - 1),
      DurationField(
          "agent.boot_timeout", [](Config & c) -> auto& { return c.agent.boot_timeout; }),
      DurationField(
          "agent.request_timeout", [](Config & c) -> auto& { return c.agent.request_timeout; }),
      DurationField(
          "agent.health_interval", [](Config & c) -> auto& { return c.agent.health_interval; }),
      DurationField(
          "agent.health_timeout", [](Config & c) -> auto& { return c.agent.health_timeout; }),
      StringField(
          "agent.log_level", [](Config & c) -> auto& { return c.agent.log_level; }, LogLevel),
      BoolField(
          "agent.allow_all_policy", [](Config & c) -> auto& { return c.agent.allow_all_policy; }),
      // [kbs]
      StringField(
          "kbs.url", [](Config & c) -> auto& { return c.kbs.url; }, EmptyOrHttpUrl),
      StringField(
          "kbs.ca_file", [](Config & c) -> auto& { return c.kbs.ca_file; }, EmptyOrAbsolutePath),
      // [image]
      DurationField(
          "image.pull_timeout", [](Config & c) -> auto& { return c.image.pull_timeout; }),
      IntField(
          "image.max_concurrent_downloads",
          [](Config & c) -> auto& { return c.image.max_concurrent_downloads; }, 1, 16),
      StringListField(
          "image.insecure_registries",
          [](Config & c) -> auto& { return c.image.insecure_registries; }, RegistryHost),
  };
  return *fields;
}

const Field* FindField(absl::string_view path) {
  for (const Field& f : Fields()) {
    if (f.path == path) return &f;
  }
  return nullptr;
}

bool IsSection(absl::string_view path) {
  return std::any_of(std::begin(kSections), std::end(kSections),
                     [&](absl::string_view s) { return path == s; });
}

// Keys and sub-tables directly under `section` ("" for the top level).
std::string KnownKeysIn(absl::string_view section) {
  std::vector<std::string> names;
  std::string prefix = section.empty() ? "" : absl::StrCat(section, ".");
  auto add = [&](absl::string_view path) {
    if (!absl::StartsWith(path, prefix)) return;
    absl::string_view rest = path.substr(prefix.size());
    if (!rest.empty() && !absl::StrContains(rest, '.')) names.emplace_back(rest);
  };
  for (absl::string_view s : kSections) add(s);
  for (const Field& f : Fields()) add(f.path);
  return absl::StrJoin(names, ", ");
}

// ---- parsing ----------------------------------------------------------------

std::string Where(absl::string_view source_name, const toml::source_region& region) {
  if (region.begin.line == 0) return std::string(source_name);
  return absl::StrCat(source_name, ":", region.begin.line, ":", region.begin.column);
}

// Key path -> "file:line:col" where the file set it, for cross-key checks.
using Locations = std::map<std::string, std::string>;

absl::Status Walk(const toml::table& table, const std::string& prefix,
                  absl::string_view source_name, Config& config, Locations& locations) {
  for (auto&& [key, node] : table) {
    const std::string path =
        prefix.empty() ? std::string(key.str()) : absl::StrCat(prefix, ".", std::string(key.str()));
    if (IsSection(path)) {
      if (!node.is_table()) {
        return absl::InvalidArgumentError(absl::StrCat(Where(source_name, node.source()), ": ",
                                                       path, ": expected a table [", path,
                                                       "], got ", TypeName(node.type())));
      }
      RETURN_IF_ERROR(Walk(*node.as_table(), path, source_name, config, locations));
      continue;
    }
    const Field* field = FindField(path);
    if (field == nullptr) {
      std::string section = prefix.empty() ? "the top level" : absl::StrCat("[", prefix, "]");
      return absl::InvalidArgumentError(absl::StrCat(Where(source_name, key.source()),
                                                     ": unknown key \"", path, "\"; known keys in ",
                                                     section, ": ", KnownKeysIn(prefix)));
    }
    std::string where = Where(source_name, node.source());
    absl::Status status = field->from_toml(node, config);
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat(where, ": ", path, ": ", status.message()));
    }
    locations[path] = std::move(where);
  }
  return absl::OkStatus();
}

// Checks that span keys. `where(path)` says where a key came from.
absl::Status CrossCheck(const Config& c,
                        const std::function<std::string(absl::string_view)>& where) {
  if (c.tee.type != TeeType::kNone) {
    const std::string tee = Quoted(TeeTypeName(c.tee.type));
    if (c.hypervisor.accel == Accel::kTcg) {
      return absl::InvalidArgumentError(absl::StrCat(
          where("hypervisor.accel"), ": hypervisor.accel: \"tcg\" cannot run a TEE (tee.type = ",
          tee, "); use \"kvm\" or \"auto\", or tee.type = \"none\" for the dev fallback"));
    }
    if (c.hypervisor.firmware.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where("hypervisor.firmware"), ": hypervisor.firmware: tee.type = ", tee,
                       " needs the path of an OVMF build for it (AmdSev for snp, TDVF for tdx)"));
    }
    if (!c.tee.simulated_snp_chain.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where("tee.simulated_snp_chain"), ": tee.simulated_snp_chain is for the dev fallback "
          "only (tee.type = \"none\"), not for tee.type = ", tee,
          ": remove tee.simulated_snp_chain"));
    }
  }
  if (!c.hypervisor.console_log) {
    return absl::InvalidArgumentError(absl::StrCat(
        where("hypervisor.console_log"),
        ": hypervisor.console_log = false is not supported: the shim reads the guest console to "
        "report a failed boot (the log is in runtime.state_dir and goes with the sandbox); "
        "remove the key"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> ParseTable(const toml::table& root, absl::string_view source_name) {
  Config config;
  Locations locations;
  RETURN_IF_ERROR(Walk(root, "", source_name, config, locations));
  RETURN_IF_ERROR(CrossCheck(config, [&](absl::string_view path) {
    auto it = locations.find(std::string(path));
    return it != locations.end() ? it->second : absl::StrCat(source_name, " (not set)");
  }));
  return config;
}

bool IsAbsent(int err) { return err == ENOENT || err == ENOTDIR; }

}  // namespace

Config DefaultConfig() { return Config{}; }

absl::StatusOr<Config> ParseConfig(absl::string_view text, absl::string_view source_name) {
  toml::table root;
  try {
    root = toml::parse(std::string_view(text.data(), text.size()), std::string(source_name));
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(source_name, e.source()), ": invalid TOML: ", std::string(e.description())));
  }
  return ParseTable(root, source_name);
}

absl::StatusOr<Config> LoadConfig(absl::string_view path) {
  const std::string p(path);
  UniqueFd fd(open(p.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoError(errno, "open configuration file ", p);
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return ErrnoError(errno, "stat configuration file ", p);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("configuration file ", p, " is not a regular file"));
  }
  if (static_cast<size_t>(st.st_size) > kMaxConfigBytes) {
    return absl::InvalidArgumentError(absl::StrCat("configuration file ", p, " is ", st.st_size,
                                                   " bytes; the limit is ", kMaxConfigBytes));
  }
  std::string text;
  char buf[8192];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "read configuration file ", p);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxConfigBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("configuration file ", p, " exceeds ", kMaxConfigBytes, " bytes"));
    }
  }
  return ParseConfig(text, p);
}

std::string SysconfConfigPath() { return absl::StrCat(CLOAK_SYSCONF_DIR, "/config.toml"); }
std::string DataDirConfigPath() { return absl::StrCat(CLOAK_DATA_DIR, "/config.toml"); }

absl::StatusOr<std::string> ResolveConfigPath(absl::string_view explicit_path,
                                              const std::vector<std::string>& search_path) {
  struct stat st {};
  if (!explicit_path.empty()) {
    const std::string p(explicit_path);
    if (stat(p.c_str(), &st) != 0) {
      return ErrnoError(errno, "configuration file ", p,
                        " (named by the runtime option ConfigPath)");
    }
    return p;
  }
  for (const std::string& p : search_path) {
    if (stat(p.c_str(), &st) == 0) return p;
    if (!IsAbsent(errno)) return ErrnoError(errno, "configuration file ", p);
  }
  return std::string();
}

absl::StatusOr<ConfigFile> LoadConfigFromSearchPath(absl::string_view explicit_path) {
  ASSIGN_OR_RETURN(std::string path,
                   ResolveConfigPath(explicit_path, {SysconfConfigPath(), DataDirConfigPath()}));
  ConfigFile file;
  if (path.empty()) {
    file.config = DefaultConfig();
    return file;
  }
  ASSIGN_OR_RETURN(file.config, LoadConfig(path));
  file.path = std::move(path);
  return file;
}

const std::vector<std::string>& ConfigKeys() {
  static const std::vector<std::string>* const keys = [] {
    auto* out = new std::vector<std::string>;
    for (const Field& f : Fields()) out->push_back(f.path);
    return out;
  }();
  return *keys;
}

const std::vector<std::string>& OverridableKeys() { return Overridable(); }

absl::StatusOr<Config> ApplyAnnotations(const Config& config,
                                        const std::map<std::string, std::string>& annotations) {
  Config out = config;
  const auto& allow = config.runtime.annotation_allowlist;
  for (const auto& [name, value] : annotations) {
    absl::string_view rest = name;
    if (!absl::ConsumePrefix(&rest, kAnnotationPrefix)) continue;
    // Only io.cloak.<section>.<key> is configuration; io.cloak.image,
    // io.cloak.policy, ... belong to others.
    size_t dot = rest.rfind('.');
    if (dot == absl::string_view::npos || !IsSection(rest.substr(0, dot))) continue;
    const Field* field = FindField(rest);
    if (field == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "annotation \"", name, "\": no configuration key \"", rest, "\"; known keys in [",
          rest.substr(0, dot), "]: ", KnownKeysIn(rest.substr(0, dot))));
    }
    const bool allowed =
        std::find(allow.begin(), allow.end(), name) != allow.end() &&
        std::find(Overridable().begin(), Overridable().end(), name) != Overridable().end();
    if (!allowed) {
      return absl::PermissionDeniedError(absl::StrCat(
          "annotation \"", name, "\" may not override ", rest,
          ": it is not on runtime.annotation_allowlist of the host configuration (allowed: ",
          allow.empty() ? "none" : absl::StrJoin(allow, ", "), ")"));
    }
    absl::Status status = field->from_string(value, out);
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("annotation \"", name, "\" = ", Quoted(value), ": ", status.message()));
    }
  }
  RETURN_IF_ERROR(CrossCheck(
      out, [](absl::string_view path) { return absl::StrCat("after annotations (", path, ")"); }));
  return out;
}

namespace {
template <typename E, size_t N>
absl::string_view NameOf(const EnumName<E> (&names)[N], E value) {
  for (const auto& n : names) {
    if (n.value == value) return n.name;
  }
  return "unknown";
}
}  // namespace

absl::string_view HypervisorDriverName(HypervisorDriver driver) { return NameOf(kDrivers, driver); }
absl::string_view AccelName(Accel accel) { return NameOf(kAccels, accel); }
absl::string_view TeeTypeName(TeeType type) { return NameOf(kTeeTypes, type); }
absl::string_view AgentChannelName(AgentChannel channel) { return NameOf(kChannels, channel); }

}  // namespace cloak::config
