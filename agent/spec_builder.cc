#include "agent/spec_builder.h"

#include <limits>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/ids.h"
#include "common/status_macros.h"
#include "policy/policy.h"

namespace cloak::agent {

using nlohmann::json;

namespace {

constexpr size_t kMaxArgs = 4096;
constexpr size_t kMaxEnv = 4096;
constexpr size_t kMaxString = 128 * 1024;
constexpr size_t kMaxPath = 4096;
constexpr size_t kMaxAdditionalGids = 256;
constexpr size_t kMaxRlimits = 32;
constexpr size_t kMaxAnnotations = 512;
constexpr size_t kMaxAnnotationKey = 1024;
constexpr size_t kMaxAnnotationValue = 64 * 1024;

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

bool HasNul(const std::string& s) { return s.find('\0') != std::string::npos; }

// Annotations crun acts on (crun(1), "Extensions to OCI"; the prefixes are
// the policy's, policy/policy.h): run.oci.* open files for hook output,
// send seccomp and pidfd descriptors to sockets, delegate cgroups, mount a
// cgroup v1 hierarchy, pick another handler.
bool IsRuntimeAnnotation(absl::string_view key) {
  for (const std::string& prefix : policy::RuntimeAnnotationPrefixes()) {
    if (absl::StartsWith(key, prefix)) return true;
  }
  return false;
}

// A hugetlb page size as the OCI spec writes it ("2MB", "1GB"); crun puts it
// into a cgroup file name.
bool IsPageSize(absl::string_view s) {
  size_t digits = 0;
  while (digits < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  if (digits == 0) return false;
  absl::string_view unit = s.substr(digits);
  return unit == "KB" || unit == "MB" || unit == "GB" || unit == "TB" || unit == "PB";
}

// A cpuset list ("0-3,6"): digits, commas and dashes only.
bool IsCpuList(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != ',' && c != '-') return false;
  }
  return true;
}

absl::StatusOr<std::string> GetString(const json& j, absl::string_view field, size_t max) {
  if (!j.is_string()) return Invalid(field, "must be a string");
  const std::string& s = j.get_ref<const std::string&>();
  if (s.size() > max) return Invalid(field, absl::StrCat("longer than ", max, " bytes"));
  if (HasNul(s)) return Invalid(field, "contains NUL");
  return s;
}

absl::StatusOr<uint64_t> GetUint(const json& j, absl::string_view field,
                                 uint64_t max = std::numeric_limits<uint64_t>::max()) {
  if (!j.is_number_integer() || (j.is_number_integer() && !j.is_number_unsigned() &&
                                 j.get<int64_t>() < 0)) {
    return Invalid(field, "must be a non-negative integer");
  }
  uint64_t v = j.get<uint64_t>();
  if (v > max) return Invalid(field, absl::StrCat("larger than ", max));
  return v;
}

absl::StatusOr<std::vector<std::string>> GetStringArray(const json& j, absl::string_view field,
                                                        size_t max_items) {
  if (j.is_null()) return std::vector<std::string>{};
  if (!j.is_array()) return Invalid(field, "must be an array of strings");
  if (j.size() > max_items) return Invalid(field, absl::StrCat("more than ", max_items, " entries"));
  std::vector<std::string> out;
  out.reserve(j.size());
  for (const json& e : j) {
    ASSIGN_OR_RETURN(std::string s, GetString(e, field, kMaxString));
    out.push_back(std::move(s));
  }
  return out;
}

const json* Find(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

const absl::flat_hash_set<std::string>& AllowedRlimits() {
  static const auto* s = new absl::flat_hash_set<std::string>{
      "RLIMIT_AS",     "RLIMIT_CORE",   "RLIMIT_CPU",        "RLIMIT_DATA",
      "RLIMIT_FSIZE",  "RLIMIT_LOCKS",  "RLIMIT_MEMLOCK",    "RLIMIT_MSGQUEUE",
      "RLIMIT_NICE",   "RLIMIT_NOFILE", "RLIMIT_NPROC",      "RLIMIT_RSS",
      "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK"};
  return *s;
}

json Mount(const char* destination, const char* type, const char* source,
           std::vector<std::string> options) {
  return json{{"destination", destination}, {"type", type}, {"source", source},
              {"options", std::move(options)}};
}

json DefaultMounts(const SpecOptions& options) {
  json mounts = json::array();
  mounts.push_back(Mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}));
  mounts.push_back(Mount("/dev", "tmpfs", "tmpfs",
                         {"nosuid", "strictatime", "mode=755", "size=65536k"}));
  mounts.push_back(Mount("/dev/pts", "devpts", "devpts",
                         {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                          "gid=5"}));
  mounts.push_back(Mount("/dev/shm", "tmpfs", "shm",
                         {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}));
  mounts.push_back(Mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}));
  mounts.push_back(Mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}));
  mounts.push_back(Mount("/sys/fs/cgroup", "cgroup", "cgroup",
                         {"nosuid", "noexec", "nodev", "relatime", "ro"}));
  if (!options.resolv_conf_path.empty()) {
    mounts.push_back(json{{"destination", "/etc/resolv.conf"},
                          {"type", "bind"},
                          {"source", options.resolv_conf_path},
                          {"options", {"rbind", "ro", "nosuid", "nodev", "noexec"}}});
  }
  return mounts;
}

json DeviceRule(bool allow, const char* type, int64_t major, int64_t minor, const char* access) {
  json rule{{"allow", allow}, {"access", access}};
  if (type != nullptr) rule["type"] = type;
  if (major >= 0) rule["major"] = major;
  if (minor >= 0) rule["minor"] = minor;
  return rule;
}

// Deny everything, then allow the devices every container needs.
json DefaultDeviceRules() {
  json rules = json::array();
  rules.push_back(DeviceRule(false, nullptr, -1, -1, "rwm"));
  rules.push_back(DeviceRule(true, "c", 1, 3, "rwm"));    // null
  rules.push_back(DeviceRule(true, "c", 1, 5, "rwm"));    // zero
  rules.push_back(DeviceRule(true, "c", 1, 7, "rwm"));    // full
  rules.push_back(DeviceRule(true, "c", 1, 8, "rwm"));    // random
  rules.push_back(DeviceRule(true, "c", 1, 9, "rwm"));    // urandom
  rules.push_back(DeviceRule(true, "c", 5, 0, "rwm"));    // tty
  rules.push_back(DeviceRule(true, "c", 5, 2, "rwm"));    // ptmx
  rules.push_back(DeviceRule(true, "c", 136, -1, "rwm"));  // pts/*
  return rules;
}

// Copies `key` of `in` into `out` if present and of the right kind.
enum class Kind { kUint, kInt, kBool, kString, kArray };

absl::Status CopyTyped(const json& in, json* out, const char* key, Kind kind,
                       absl::string_view prefix) {
  const json* v = Find(in, key);
  if (v == nullptr) return absl::OkStatus();
  std::string field = absl::StrCat(prefix, ".", key);
  switch (kind) {
    case Kind::kUint: {
      ASSIGN_OR_RETURN(uint64_t u, GetUint(*v, field));
      (*out)[key] = u;
      break;
    }
    case Kind::kInt:
      if (!v->is_number_integer()) return Invalid(field, "must be an integer");
      (*out)[key] = *v;
      break;
    case Kind::kBool:
      if (!v->is_boolean()) return Invalid(field, "must be a boolean");
      (*out)[key] = *v;
      break;
    case Kind::kString: {
      ASSIGN_OR_RETURN(std::string s, GetString(*v, field, 1024));
      (*out)[key] = s;
      break;
    }
    case Kind::kArray:
      if (!v->is_array() || v->size() > 256) return Invalid(field, "must be an array (≤256)");
      (*out)[key] = *v;
      break;
  }
  return absl::OkStatus();
}

// Checks every element of an array of objects has only numeric fields.
absl::Status CheckNumericObjects(const json& arr, absl::string_view field) {
  if (!arr.is_array()) return absl::OkStatus();
  for (const json& e : arr) {
    if (!e.is_object()) return Invalid(field, "entries must be objects");
    for (const auto& [k, v] : e.items()) {
      if (!v.is_number_integer() && !v.is_string()) {
        return Invalid(field, absl::StrCat("entry field ", k, " must be a number"));
      }
      if (v.is_string() && v.get_ref<const std::string&>().size() > 64) {
        return Invalid(field, "entry string too long");
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<json> ParseJson(absl::string_view what, absl::string_view text) {
  if (text.size() > kMaxSpecBytes) {
    return Invalid(what, absl::StrCat("larger than ", kMaxSpecBytes, " bytes"));
  }
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Invalid(what, "not valid JSON");
  return j;
}

std::string DumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

const std::vector<std::string>& DefaultCapabilities() {
  static const auto* caps = new std::vector<std::string>{
      "CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
      "CAP_MKNOD",  "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
      "CAP_SETFCAP", "CAP_SETPCAP",     "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",   "CAP_AUDIT_WRITE"};
  return *caps;
}

const std::vector<std::string>& DefaultMaskedPaths() {
  static const auto* paths = new std::vector<std::string>{
      "/proc/acpi",        "/proc/asound",       "/proc/kcore",       "/proc/keys",
      "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
      "/proc/scsi",        "/sys/firmware",      "/sys/devices/virtual/powercap"};
  return *paths;
}

const std::vector<std::string>& DefaultReadonlyPaths() {
  static const auto* paths = new std::vector<std::string>{
      "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"};
  return *paths;
}

absl::StatusOr<json> SanitizeProcess(const json& process, const SpecOptions& options) {
  if (!process.is_object()) return Invalid("process", "must be an object");
  json out = json::object();

  std::vector<std::string> args;
  if (const json* a = Find(process, "args")) {
    ASSIGN_OR_RETURN(args, GetStringArray(*a, "process.args", kMaxArgs));
  }
  if (args.empty() && !options.allow_empty_args) return Invalid("process.args", "is empty");
  out["args"] = args;

  std::vector<std::string> env;
  if (const json* e = Find(process, "env")) {
    ASSIGN_OR_RETURN(env, GetStringArray(*e, "process.env", kMaxEnv));
  }
  for (const std::string& kv : env) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Invalid("process.env", "entries must be KEY=VALUE");
    }
  }
  out["env"] = env;

  std::string cwd;
  if (const json* c = Find(process, "cwd")) {
    ASSIGN_OR_RETURN(cwd, GetString(*c, "process.cwd", kMaxPath));
  }
  if (cwd.empty()) cwd.push_back('/');
  if (cwd.front() != '/') return Invalid("process.cwd", "must be absolute");
  out["cwd"] = cwd;

  json user{{"uid", 0}, {"gid", 0}};
  if (const json* u = Find(process, "user")) {
    if (!u->is_object()) return Invalid("process.user", "must be an object");
    if (const json* v = Find(*u, "uid")) {
      ASSIGN_OR_RETURN(uint64_t uid, GetUint(*v, "process.user.uid", 0xFFFFFFFEu));
      user["uid"] = uid;
    }
    if (const json* v = Find(*u, "gid")) {
      ASSIGN_OR_RETURN(uint64_t gid, GetUint(*v, "process.user.gid", 0xFFFFFFFEu));
      user["gid"] = gid;
    }
    if (const json* v = Find(*u, "umask")) {
      ASSIGN_OR_RETURN(uint64_t umask, GetUint(*v, "process.user.umask", 0777));
      user["umask"] = umask;
    }
    if (const json* v = Find(*u, "additionalGids")) {
      if (!v->is_array() || v->size() > kMaxAdditionalGids) {
        return Invalid("process.user.additionalGids", "must be an array (≤256)");
      }
      json gids = json::array();
      for (const json& g : *v) {
        ASSIGN_OR_RETURN(uint64_t gid, GetUint(g, "process.user.additionalGids", 0xFFFFFFFEu));
        gids.push_back(gid);
      }
      if (!gids.empty()) user["additionalGids"] = gids;
    }
  }
  out["user"] = user;

  out["terminal"] = options.terminal;
  if (options.terminal && options.console_width > 0 && options.console_height > 0) {
    out["consoleSize"] = {{"height", options.console_height}, {"width", options.console_width}};
  }

  if (const json* r = Find(process, "rlimits")) {
    if (!r->is_array() || r->size() > kMaxRlimits) {
      return Invalid("process.rlimits", "must be an array (≤32)");
    }
    json rlimits = json::array();
    for (const json& rl : *r) {
      if (!rl.is_object()) return Invalid("process.rlimits", "entries must be objects");
      const json* type = Find(rl, "type");
      if (type == nullptr) return Invalid("process.rlimits", "entry without type");
      ASSIGN_OR_RETURN(std::string t, GetString(*type, "process.rlimits.type", 32));
      if (!AllowedRlimits().contains(t)) return Invalid("process.rlimits.type", "unknown rlimit");
      const json* hard = Find(rl, "hard");
      const json* soft = Find(rl, "soft");
      if (hard == nullptr || soft == nullptr) {
        return Invalid("process.rlimits", "entries need hard and soft");
      }
      ASSIGN_OR_RETURN(uint64_t h, GetUint(*hard, "process.rlimits.hard"));
      ASSIGN_OR_RETURN(uint64_t s, GetUint(*soft, "process.rlimits.soft"));
      if (s > h) return Invalid("process.rlimits", "soft above hard");
      rlimits.push_back({{"type", t}, {"hard", h}, {"soft", s}});
    }
    out["rlimits"] = rlimits;
  }

  bool no_new_privileges = false;
  if (const json* n = Find(process, "noNewPrivileges")) {
    if (!n->is_boolean()) return Invalid("process.noNewPrivileges", "must be a boolean");
    no_new_privileges = n->get<bool>();
  }
  out["noNewPrivileges"] = no_new_privileges;

  const auto& caps = DefaultCapabilities();
  out["capabilities"] = {{"bounding", caps}, {"effective", caps}, {"permitted", caps}};
  return out;
}

absl::StatusOr<json> SanitizeResources(const json& resources) {
  json out = json::object();
  if (resources.is_null()) return out;
  if (!resources.is_object()) return Invalid("linux.resources", "must be an object");

  if (const json* m = Find(resources, "memory")) {
    if (!m->is_object()) return Invalid("linux.resources.memory", "must be an object");
    json mem = json::object();
    for (const char* k : {"limit", "reservation", "swap"}) {
      RETURN_IF_ERROR(CopyTyped(*m, &mem, k, Kind::kInt, "linux.resources.memory"));
    }
    RETURN_IF_ERROR(CopyTyped(*m, &mem, "swappiness", Kind::kUint, "linux.resources.memory"));
    RETURN_IF_ERROR(CopyTyped(*m, &mem, "disableOOMKiller", Kind::kBool, "linux.resources.memory"));
    if (!mem.empty()) out["memory"] = mem;
  }
  if (const json* c = Find(resources, "cpu")) {
    if (!c->is_object()) return Invalid("linux.resources.cpu", "must be an object");
    json cpu = json::object();
    RETURN_IF_ERROR(CopyTyped(*c, &cpu, "shares", Kind::kUint, "linux.resources.cpu"));
    RETURN_IF_ERROR(CopyTyped(*c, &cpu, "quota", Kind::kInt, "linux.resources.cpu"));
    RETURN_IF_ERROR(CopyTyped(*c, &cpu, "period", Kind::kUint, "linux.resources.cpu"));
    RETURN_IF_ERROR(CopyTyped(*c, &cpu, "cpus", Kind::kString, "linux.resources.cpu"));
    RETURN_IF_ERROR(CopyTyped(*c, &cpu, "mems", Kind::kString, "linux.resources.cpu"));
    RETURN_IF_ERROR(CopyTyped(*c, &cpu, "idle", Kind::kInt, "linux.resources.cpu"));
    for (const char* k : {"cpus", "mems"}) {
      if (cpu.contains(k) && !IsCpuList(cpu[k].get_ref<const std::string&>())) {
        return Invalid(absl::StrCat("linux.resources.cpu.", k),
                       "must be a list of numbers and ranges like \"0-3,6\"");
      }
    }
    if (!cpu.empty()) out["cpu"] = cpu;
  }
  if (const json* p = Find(resources, "pids")) {
    if (!p->is_object()) return Invalid("linux.resources.pids", "must be an object");
    json pids = json::object();
    RETURN_IF_ERROR(CopyTyped(*p, &pids, "limit", Kind::kInt, "linux.resources.pids"));
    if (!pids.empty()) out["pids"] = pids;
  }
  if (const json* b = Find(resources, "blockIO")) {
    if (!b->is_object()) return Invalid("linux.resources.blockIO", "must be an object");
    json bio = json::object();
    RETURN_IF_ERROR(CopyTyped(*b, &bio, "weight", Kind::kUint, "linux.resources.blockIO"));
    RETURN_IF_ERROR(CopyTyped(*b, &bio, "leafWeight", Kind::kUint, "linux.resources.blockIO"));
    for (const char* k : {"weightDevice", "throttleReadBpsDevice", "throttleWriteBpsDevice",
                          "throttleReadIOPSDevice", "throttleWriteIOPSDevice"}) {
      RETURN_IF_ERROR(CopyTyped(*b, &bio, k, Kind::kArray, "linux.resources.blockIO"));
      if (bio.contains(k)) {
        RETURN_IF_ERROR(CheckNumericObjects(bio[k], absl::StrCat("linux.resources.blockIO.", k)));
      }
    }
    if (!bio.empty()) out["blockIO"] = bio;
  }
  if (const json* h = Find(resources, "hugepageLimits")) {
    if (!h->is_array() || h->size() > 16) {
      return Invalid("linux.resources.hugepageLimits", "must be an array (≤16)");
    }
    json limits = json::array();
    for (const json& e : *h) {
      if (!e.is_object()) return Invalid("linux.resources.hugepageLimits", "entries must be objects");
      const json* size = Find(e, "pageSize");
      const json* limit = Find(e, "limit");
      if (size == nullptr || limit == nullptr) {
        return Invalid("linux.resources.hugepageLimits", "entries need pageSize and limit");
      }
      ASSIGN_OR_RETURN(std::string ps, GetString(*size, "linux.resources.hugepageLimits.pageSize", 16));
      if (!IsPageSize(ps)) {
        return Invalid("linux.resources.hugepageLimits.pageSize",
                       "must be a number and KB, MB, GB, TB or PB, like \"2MB\"");
      }
      ASSIGN_OR_RETURN(uint64_t l, GetUint(*limit, "linux.resources.hugepageLimits.limit"));
      limits.push_back({{"pageSize", ps}, {"limit", l}});
    }
    out["hugepageLimits"] = limits;
  }
  return out;
}

absl::StatusOr<json> BuildContainerSpec(absl::string_view host_spec_json,
                                        const SpecOptions& options) {
  if (options.rootfs_dir.empty() || options.rootfs_dir.front() != '/') {
    return absl::InternalError("rootfs_dir must be an absolute path");
  }
  ASSIGN_OR_RETURN(json host, ParseJson("oci_spec_json", host_spec_json));
  if (!host.is_object()) return Invalid("oci_spec_json", "must be a JSON object");

  json spec = json::object();
  spec["ociVersion"] = "1.0.2";

  const json* process = Find(host, "process");
  if (process == nullptr) return Invalid("process", "missing");
  ASSIGN_OR_RETURN(spec["process"], SanitizeProcess(*process, options));

  bool readonly = false;
  if (const json* root = Find(host, "root")) {
    if (const json* ro = Find(*root, "readonly"); ro != nullptr && ro->is_boolean()) {
      readonly = ro->get<bool>();
    }
  }
  spec["root"] = {{"path", options.rootfs_dir}, {"readonly", readonly}};

  if (const json* h = Find(host, "hostname")) {
    ASSIGN_OR_RETURN(std::string hostname, GetString(*h, "hostname", 64));
    if (!hostname.empty()) {
      RETURN_IF_ERROR(ValidateHostname(hostname));
      spec["hostname"] = hostname;
    }
  }

  if (const json* a = Find(host, "annotations")) {
    if (!a->is_object()) return Invalid("annotations", "must be an object");
    if (a->size() > kMaxAnnotations) return Invalid("annotations", "too many entries");
    json annotations = json::object();
    for (const auto& [k, v] : a->items()) {
      if (k.size() > kMaxAnnotationKey || HasNul(k)) return Invalid("annotations", "bad key");
      ASSIGN_OR_RETURN(std::string value, GetString(v, "annotations value", kMaxAnnotationValue));
      if (IsRuntimeAnnotation(k) && !options.keep_runtime_annotations) continue;
      annotations[k] = value;
    }
    if (!annotations.empty()) spec["annotations"] = annotations;
  }

  spec["mounts"] = DefaultMounts(options);

  json resources = json::object();
  if (const json* linux_host = Find(host, "linux")) {
    if (const json* r = Find(*linux_host, "resources")) {
      ASSIGN_OR_RETURN(resources, SanitizeResources(*r));
    }
  }
  resources["devices"] = DefaultDeviceRules();

  json linux_spec = json::object();
  linux_spec["namespaces"] = json::array({{{"type", "pid"}},
                                          {{"type", "ipc"}},
                                          {{"type", "uts"}},
                                          {{"type", "mount"}}});
  linux_spec["cgroupsPath"] = options.cgroups_path;
  linux_spec["resources"] = resources;
  linux_spec["maskedPaths"] = DefaultMaskedPaths();
  linux_spec["readonlyPaths"] = DefaultReadonlyPaths();
  spec["linux"] = linux_spec;
  return spec;
}

}  // namespace cloak::agent
