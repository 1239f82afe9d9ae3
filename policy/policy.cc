#include "policy/policy.h"
#include "policy/yaml.h"

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <limits>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/tee/resource_path.h"

namespace cloak::policy {

using nlohmann::json;

namespace {

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("policy: ", field, ": ", why));
}

absl::Status CheckKeys(const json& obj, absl::string_view field,
                       std::initializer_list<const char*> known) {
  if (!obj.is_object()) return Bad(field, "must be an object");
  for (const auto& [k, v] : obj.items()) {
    bool found = false;
    for (const char* n : known) found = found || k == n;
    if (!found) {
      std::vector<std::string> names(known.begin(), known.end());
      return Bad(absl::StrCat(field, field.empty() ? "" : ".", k),
                 absl::StrCat("unknown key (known: ", absl::StrJoin(names, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

const json* Get(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::StatusOr<std::string> GetString(const json& j, absl::string_view field) {
  if (!j.is_string()) return Bad(field, "must be a string");
  return j.get<std::string>();
}

absl::StatusOr<bool> GetBool(const json& j, absl::string_view field) {
  if (!j.is_boolean()) return Bad(field, "must be true or false");
  return j.get<bool>();
}

absl::StatusOr<uint64_t> GetUint(const json& j, absl::string_view field, uint64_t max) {
  if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<int64_t>() >= 0)) {
    return Bad(field, "must be a non-negative integer");
  }
  uint64_t v = j.get<uint64_t>();
  if (v > max) return Bad(field, absl::StrCat("must be at most ", max));
  return v;
}

absl::StatusOr<std::vector<std::string>> GetStrings(const json& j, absl::string_view field) {
  if (!j.is_array()) return Bad(field, "must be an array of strings");
  std::vector<std::string> out;
  for (size_t i = 0; i < j.size(); ++i) {
    ASSIGN_OR_RETURN(std::string s, GetString(j[i], absl::StrCat(field, "[", i, "]")));
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<std::vector<StringMatch>> GetMatches(const json& j, absl::string_view field) {
  if (!j.is_array()) return Bad(field, "must be an array of strings or {\"regex\": ...}");
  std::vector<StringMatch> out;
  for (size_t i = 0; i < j.size(); ++i) {
    ASSIGN_OR_RETURN(StringMatch m, StringMatch::FromJson(j[i], absl::StrCat(field, "[", i, "]")));
    out.push_back(std::move(m));
  }
  return out;
}

absl::StatusOr<std::map<std::string, StringMatch>> GetMatchMap(const json& j,
                                                               absl::string_view field) {
  if (!j.is_object()) return Bad(field, "must be an object of name: value rule");
  std::map<std::string, StringMatch> out;
  for (const auto& [k, v] : j.items()) {
    ASSIGN_OR_RETURN(StringMatch m, StringMatch::FromJson(v, absl::StrCat(field, ".", k)));
    out.emplace(k, std::move(m));
  }
  return out;
}

absl::StatusOr<MountRule> ParseMount(const json& j, absl::string_view field) {
  RETURN_IF_ERROR(CheckKeys(j, field, {"destination", "type", "source", "options", "required_options"}));
  MountRule m;
  const json* d = Get(j, "destination");
  if (d == nullptr) return Bad(field, "destination is required");
  ASSIGN_OR_RETURN(m.destination, StringMatch::FromJson(*d, absl::StrCat(field, ".destination")));
  if (const json* t = Get(j, "type")) {
    ASSIGN_OR_RETURN(m.type, StringMatch::FromJson(*t, absl::StrCat(field, ".type")));
  }
  if (const json* s = Get(j, "source")) {
    ASSIGN_OR_RETURN(m.source, StringMatch::FromJson(*s, absl::StrCat(field, ".source")));
  }
  if (const json* o = Get(j, "options")) {
    ASSIGN_OR_RETURN(m.options_allowed, GetStrings(*o, absl::StrCat(field, ".options")));
  }
  if (const json* o = Get(j, "required_options")) {
    ASSIGN_OR_RETURN(m.options_required, GetStrings(*o, absl::StrCat(field, ".required_options")));
  }
  return m;
}

// A clean absolute path in the container for a kbs_files entry: no "..",
// "." or empty component, not "/", not under /proc, /sys or /dev (the
// runtime's own mounts).
absl::Status CheckKbsFilePath(const std::string& path, absl::string_view field) {
  if (path.size() < 2 || path[0] != '/' || path.back() == '/') {
    return Bad(field, absl::StrCat("\"", path, "\" must be an absolute path to a file"));
  }
  if (path.size() > 4096 || path.find('\0') != std::string::npos) {
    return Bad(field, "must be at most 4096 bytes, without NUL");
  }
  for (absl::string_view part : absl::StrSplit(absl::string_view(path).substr(1), '/')) {
    if (part.empty() || part == "." || part == "..") {
      return Bad(field, absl::StrCat("\"", path, "\" is not a clean path (\"..\", \".\" or empty components)"));
    }
  }
  for (const char* prefix : {"/proc/", "/sys/", "/dev/"}) {
    if (absl::StartsWith(path, prefix)) {
      return Bad(field, absl::StrCat("\"", path, "\" is under ", prefix, ", which the runtime mounts"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<KbsFileRule>> ParseKbsFiles(const json& j, absl::string_view field) {
  if (!j.is_array()) return Bad(field, "must be an array of {\"resource\", \"path\"}");
  if (j.size() > kMaxKbsFiles) return Bad(field, absl::StrCat("at most ", kMaxKbsFiles, " entries"));
  std::vector<KbsFileRule> out;
  std::set<std::string> paths;
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string f = absl::StrCat(field, "[", i, "]");
    RETURN_IF_ERROR(CheckKeys(j[i], f, {"resource", "path"}));
    const json* r = Get(j[i], "resource");
    const json* p = Get(j[i], "path");
    if (r == nullptr || p == nullptr) return Bad(f, "resource and path are required");
    KbsFileRule rule;
    ASSIGN_OR_RETURN(rule.resource, GetString(*r, absl::StrCat(f, ".resource")));
    // kbs:///repo/type/tag, as CoCo writes resource URIs, is the same path.
    if (absl::StartsWith(rule.resource, "kbs:///")) rule.resource = rule.resource.substr(7);
    absl::StatusOr<tee::ResourcePath> parsed = tee::ParseResourcePath(rule.resource);
    if (!parsed.ok()) {
      return Bad(absl::StrCat(f, ".resource"),
                 absl::StrCat(parsed.status().message(), " (want repo/type/tag or kbs:///repo/type/tag)"));
    }
    ASSIGN_OR_RETURN(rule.path, GetString(*p, absl::StrCat(f, ".path")));
    RETURN_IF_ERROR(CheckKbsFilePath(rule.path, absl::StrCat(f, ".path")));
    if (!paths.insert(rule.path).second) {
      return Bad(absl::StrCat(f, ".path"), absl::StrCat("\"", rule.path, "\" is named twice"));
    }
    out.push_back(std::move(rule));
  }
  return out;
}

absl::StatusOr<ContainerRule> ParseContainer(const json& j, absl::string_view field) {
  RETURN_IF_ERROR(CheckKeys(
      j, field,
      {"name", "sandbox", "image", "args", "env", "env_deny", "working_dir", "user", "mounts",
       "standard_mounts", "capabilities", "privileged", "namespaces", "sysctls", "masked_paths",
       "readonly_paths", "annotations", "seccomp", "exec", "stdio", "after", "max_instances",
       "kbs_files"}));
  ContainerRule c;
  const json* name = Get(j, "name");
  if (name == nullptr) return Bad(field, "name is required (a container name or \"*\")");
  ASSIGN_OR_RETURN(c.name, GetString(*name, absl::StrCat(field, ".name")));
  if (c.name.empty()) return Bad(absl::StrCat(field, ".name"), "must not be empty");
  if (const json* v = Get(j, "sandbox")) {
    ASSIGN_OR_RETURN(c.sandbox, GetBool(*v, absl::StrCat(field, ".sandbox")));
  }
  // One pod, one sandbox; a named container once at a time.
  c.max_instances = c.name == "*" && !c.sandbox ? 0 : 1;
  if (const json* v = Get(j, "image")) {
    std::string f = absl::StrCat(field, ".image");
    ImageRule image;
    if (v->is_string()) {
      image.reference = StringMatch::Exact(v->get<std::string>());
    } else {
      RETURN_IF_ERROR(CheckKeys(*v, f, {"reference", "digest"}));
      if (const json* r = Get(*v, "reference")) {
        ASSIGN_OR_RETURN(image.reference, StringMatch::FromJson(*r, absl::StrCat(f, ".reference")));
      }
      if (const json* d = Get(*v, "digest")) {
        ASSIGN_OR_RETURN(image.digest, GetString(*d, absl::StrCat(f, ".digest")));
        if (!absl::StartsWith(image.digest, "sha256:") || image.digest.size() != 7 + 64) {
          return Bad(absl::StrCat(f, ".digest"), "must be sha256:<64 hex digits>");
        }
      }
    }
    c.image = std::move(image);
  }
  if (const json* v = Get(j, "args")) {
    ASSIGN_OR_RETURN(c.args, GetMatches(*v, absl::StrCat(field, ".args")));
  }
  if (const json* v = Get(j, "env")) {
    ASSIGN_OR_RETURN(c.env, GetMatches(*v, absl::StrCat(field, ".env")));
  }
  if (const json* v = Get(j, "env_deny")) {
    ASSIGN_OR_RETURN(c.env_deny, GetMatches(*v, absl::StrCat(field, ".env_deny")));
  }
  if (const json* v = Get(j, "working_dir")) {
    ASSIGN_OR_RETURN(c.working_dir, StringMatch::FromJson(*v, absl::StrCat(field, ".working_dir")));
  }
  if (const json* v = Get(j, "user")) {
    std::string f = absl::StrCat(field, ".user");
    RETURN_IF_ERROR(CheckKeys(*v, f, {"uid", "gid", "additional_gids"}));
    UserRule u;
    if (const json* x = Get(*v, "uid")) {
      ASSIGN_OR_RETURN(uint64_t id, GetUint(*x, absl::StrCat(f, ".uid"), 0xFFFFFFFEu));
      u.uid = static_cast<uint32_t>(id);
    }
    if (const json* x = Get(*v, "gid")) {
      ASSIGN_OR_RETURN(uint64_t id, GetUint(*x, absl::StrCat(f, ".gid"), 0xFFFFFFFEu));
      u.gid = static_cast<uint32_t>(id);
    }
    if (const json* x = Get(*v, "additional_gids")) {
      if (!x->is_array()) return Bad(absl::StrCat(f, ".additional_gids"), "must be an array");
      std::vector<uint32_t> gids;
      for (size_t i = 0; i < x->size(); ++i) {
        ASSIGN_OR_RETURN(uint64_t id, GetUint((*x)[i], absl::StrCat(f, ".additional_gids[", i, "]"),
                                              0xFFFFFFFEu));
        gids.push_back(static_cast<uint32_t>(id));
      }
      u.additional_gids = std::move(gids);
    }
    c.user = std::move(u);
  }
  bool standard_mounts = true;
  if (const json* v = Get(j, "standard_mounts")) {
    ASSIGN_OR_RETURN(standard_mounts, GetBool(*v, absl::StrCat(field, ".standard_mounts")));
  }
  if (standard_mounts) c.mounts = StandardMounts();
  if (const json* v = Get(j, "mounts")) {
    if (!v->is_array()) return Bad(absl::StrCat(field, ".mounts"), "must be an array");
    for (size_t i = 0; i < v->size(); ++i) {
      ASSIGN_OR_RETURN(MountRule m, ParseMount((*v)[i], absl::StrCat(field, ".mounts[", i, "]")));
      c.mounts.push_back(std::move(m));
    }
  }
  c.capabilities = StandardCapabilities();
  if (const json* v = Get(j, "capabilities")) {
    ASSIGN_OR_RETURN(c.capabilities, GetStrings(*v, absl::StrCat(field, ".capabilities")));
  }
  if (const json* v = Get(j, "privileged")) {
    ASSIGN_OR_RETURN(c.privileged, GetBool(*v, absl::StrCat(field, ".privileged")));
  }
  c.namespaces = StandardNamespaces();
  if (const json* v = Get(j, "namespaces")) {
    ASSIGN_OR_RETURN(c.namespaces, GetStrings(*v, absl::StrCat(field, ".namespaces")));
  }
  if (const json* v = Get(j, "sysctls")) {
    ASSIGN_OR_RETURN(c.sysctls, GetMatchMap(*v, absl::StrCat(field, ".sysctls")));
  }
  // Unset: nothing required of the request (CRI clients other than the
  // kubelet send none); the agent masks the runtime's default paths anyway
  // (agent/spec_builder.cc).
  if (const json* v = Get(j, "masked_paths")) {
    ASSIGN_OR_RETURN(c.masked_paths, GetStrings(*v, absl::StrCat(field, ".masked_paths")));
  }
  if (const json* v = Get(j, "readonly_paths")) {
    ASSIGN_OR_RETURN(c.readonly_paths, GetStrings(*v, absl::StrCat(field, ".readonly_paths")));
  }
  if (const json* v = Get(j, "annotations")) {
    ASSIGN_OR_RETURN(c.annotations, GetMatchMap(*v, absl::StrCat(field, ".annotations")));
  }
  if (const json* v = Get(j, "seccomp")) {
    ASSIGN_OR_RETURN(std::string s, GetString(*v, absl::StrCat(field, ".seccomp")));
    if (s != "required" && s != "any") {
      return Bad(absl::StrCat(field, ".seccomp"), "must be \"required\" or \"any\"");
    }
    c.seccomp_required = s == "required";
  }
  if (const json* v = Get(j, "exec")) {
    if (!v->is_array()) return Bad(absl::StrCat(field, ".exec"), "must be an array");
    for (size_t i = 0; i < v->size(); ++i) {
      std::string f = absl::StrCat(field, ".exec[", i, "]");
      const json& e = (*v)[i];
      ExecRule rule;
      if (e.is_array()) {
        ASSIGN_OR_RETURN(rule.argv, GetMatches(e, f));
      } else {
        RETURN_IF_ERROR(CheckKeys(e, f, {"argv", "stdin"}));
        const json* argv = Get(e, "argv");
        if (argv == nullptr) return Bad(f, "argv is required");
        ASSIGN_OR_RETURN(rule.argv, GetMatches(*argv, absl::StrCat(f, ".argv")));
        if (const json* s = Get(e, "stdin")) {
          ASSIGN_OR_RETURN(rule.stdin, GetBool(*s, absl::StrCat(f, ".stdin")));
        }
      }
      if (rule.argv.empty()) return Bad(f, "argv must not be empty");
      c.exec.push_back(std::move(rule));
    }
  }
  if (const json* v = Get(j, "stdio")) {
    std::string f = absl::StrCat(field, ".stdio");
    RETURN_IF_ERROR(CheckKeys(*v, f, {"read_output", "write_stdin"}));
    if (const json* x = Get(*v, "read_output")) {
      ASSIGN_OR_RETURN(c.read_output, GetBool(*x, absl::StrCat(f, ".read_output")));
    }
    if (const json* x = Get(*v, "write_stdin")) {
      ASSIGN_OR_RETURN(c.write_stdin, GetBool(*x, absl::StrCat(f, ".write_stdin")));
    }
  }
  if (const json* v = Get(j, "after")) {
    ASSIGN_OR_RETURN(c.after, GetStrings(*v, absl::StrCat(field, ".after")));
  }
  if (const json* v = Get(j, "max_instances")) {
    ASSIGN_OR_RETURN(uint64_t n, GetUint(*v, absl::StrCat(field, ".max_instances"), 1000));
    c.max_instances = static_cast<uint32_t>(n);
  }
  if (const json* v = Get(j, "kbs_files")) {
    ASSIGN_OR_RETURN(c.kbs_files, ParseKbsFiles(*v, absl::StrCat(field, ".kbs_files")));
    if (c.sandbox && !c.kbs_files.empty()) {
      return Bad(absl::StrCat(field, ".kbs_files"), "the sandbox (pause) container takes no files");
    }
  }
  return c;
}

json YamlNodeToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) out[kv.first.as<std::string>()] = YamlNodeToJson(kv.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& e : node) out.push_back(YamlNodeToJson(e));
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() == "!") return s;  // quoted: always a string
      if (s == "true" || s == "True" || s == "TRUE") return true;
      if (s == "false" || s == "False" || s == "FALSE") return false;
      if (s == "null" || s == "~" || s.empty()) return nullptr;
      bool digits = !s.empty() && s.size() < 19;
      for (char ch : s) digits = digits && ch >= '0' && ch <= '9';
      if (digits) return std::stoull(s);
      return s;
    }
    default:
      return nullptr;
  }
}

}  // namespace

StringMatch StringMatch::Exact(std::string s) {
  StringMatch m;
  m.text_ = std::move(s);
  return m;
}

absl::StatusOr<StringMatch> StringMatch::Regex(std::string pattern) {
  RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_shared<RE2>(pattern, options);
  if (!re->ok()) {
    return absl::InvalidArgumentError(absl::StrCat("bad regex /", pattern, "/: ", re->error()));
  }
  StringMatch m;
  m.text_ = std::move(pattern);
  m.regex_ = std::move(re);
  return m;
}

absl::StatusOr<StringMatch> StringMatch::FromJson(const json& j, absl::string_view field) {
  if (j.is_string()) return Exact(j.get<std::string>());
  if (j.is_object() && j.size() == 1 && j.contains("regex") && j["regex"].is_string()) {
    absl::StatusOr<StringMatch> m = Regex(j["regex"].get<std::string>());
    if (!m.ok()) return Bad(field, m.status().message());
    return m;
  }
  return Bad(field, "must be a string or {\"regex\": \"...\"}");
}

bool StringMatch::Matches(absl::string_view value) const {
  if (regex_ == nullptr) return value == text_;
  return RE2::FullMatch(re2::StringPiece(value.data(), value.size()), *regex_);
}

std::string StringMatch::Describe() const {
  // A policy string need not be UTF-8 (YAML passes bytes through); dump()
  // would throw on it, so invalid bytes print as U+FFFD.
  if (regex_ == nullptr) return json(text_).dump(-1, ' ', false, json::error_handler_t::replace);
  return absl::StrCat("regex /", text_, "/");
}

json StringMatch::ToJson() const {
  if (regex_ == nullptr) return text_;
  return json{{"regex", text_}};
}

const std::vector<std::string>& AgentRpcNames() {
  static const auto* names = new std::vector<std::string>{
      "Health",          "GetGuestDetails", "CreateSandbox",   "DestroySandbox",
      "GetAttestationStatus", "CreateContainer", "StartContainer", "RemoveContainer",
      "ExecProcess",     "SignalProcess",   "WaitProcess",     "ListProcesses",
      "PauseContainer",  "ResumeContainer", "StatsContainer",  "UpdateContainer",
      "ReadOutput",      "WriteStdin",      "CloseStdin",      "ResizeTty",
      "WatchOomEvents",  "SetPolicy",       "CopyFile"};
  return *names;
}

const std::vector<std::string>& RuntimeAnnotationPrefixes() {
  // What crun reads from a spec's annotations: run.oci.* (hooks output,
  // seccomp notify, mount context, keep_original_groups, handlers...),
  // module.wasm.image/ (its wasm handlers), org.criu. (CRIU config). The
  // agent itself reads no container annotation.
  static const auto* prefixes =
      new std::vector<std::string>{"run.oci.", "module.wasm.image/", "org.criu."};
  return *prefixes;
}

std::vector<MountRule> StandardMounts() {
  auto exact = [](const char* s) { return StringMatch::Exact(s); };
  auto regex = [](const char* s) { return *StringMatch::Regex(s); };
  std::vector<MountRule> m;
  auto add = [&m](StringMatch dest, std::optional<StringMatch> type,
                  std::optional<StringMatch> source) {
    MountRule r;
    r.destination = std::move(dest);
    r.type = std::move(type);
    r.source = std::move(source);
    m.push_back(std::move(r));
  };
  // containerd's default spec (ctr) and CRI's (docs/policy.md).
  add(exact("/proc"), exact("proc"), exact("proc"));
  add(exact("/dev"), exact("tmpfs"), exact("tmpfs"));
  add(exact("/dev/pts"), exact("devpts"), exact("devpts"));
  add(exact("/dev/shm"), exact("tmpfs"), exact("shm"));
  add(exact("/dev/mqueue"), exact("mqueue"), exact("mqueue"));
  add(exact("/sys"), exact("sysfs"), exact("sysfs"));
  add(exact("/sys/fs/cgroup"), exact("cgroup"), exact("cgroup"));
  add(exact("/run"), exact("tmpfs"), exact("tmpfs"));
  // CRI: the pod's shared /dev/shm and its hosts, hostname, resolv.conf,
  // kept by containerd (or kubelet) per sandbox; the agent writes its own.
  add(exact("/dev/shm"), exact("bind"), regex(R"(/.+/sandboxes/[0-9a-f]{64}/shm)"));
  add(exact("/etc/hosts"), exact("bind"),
      regex(R"(/.+/(sandboxes/[0-9a-f]{64}/hosts|pods/[0-9a-f-]{36}/etc-hosts))"));
  add(exact("/etc/hostname"), exact("bind"), regex(R"(/.+/sandboxes/[0-9a-f]{64}/hostname)"));
  add(exact("/etc/resolv.conf"), exact("bind"),
      regex(R"(/.+/sandboxes/[0-9a-f]{64}/resolv\.conf)"));
  add(exact("/dev/termination-log"), exact("bind"),
      regex(R"(/.+/pods/[0-9a-f-]{36}/containers/[^/]+/[^/]+)"));
  for (MountRule& r : m) {
    if (r.type->text() == "bind") r.options_allowed = std::vector<std::string>{
        "rbind", "bind", "ro", "rw", "rprivate", "private", "nosuid", "nodev", "noexec"};
  }
  return m;
}

const std::vector<std::string>& StandardCapabilities() {
  // containerd's default set (the agent grants exactly this set).
  static const auto* caps = new std::vector<std::string>{
      "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
      "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
      "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",    "CAP_AUDIT_WRITE"};
  return *caps;
}

const std::vector<std::string>& StandardNamespaces() {
  static const auto* ns =
      new std::vector<std::string>{"pid", "ipc", "uts", "mount", "network", "cgroup"};
  return *ns;
}

const std::vector<std::string>& RequiredMaskedPaths() {
  static const auto* p = new std::vector<std::string>{"/proc/kcore", "/proc/keys", "/sys/firmware"};
  return *p;
}

const std::vector<std::string>& RequiredReadonlyPaths() {
  static const auto* p = new std::vector<std::string>{"/proc/sys", "/proc/sysrq-trigger"};
  return *p;
}

absl::StatusOr<std::vector<json>> YamlDocuments(absl::string_view text) {
  try {
    std::vector<json> out;
    for (const YAML::Node& node : YAML::LoadAll(std::string(text))) {
      if (node.IsNull()) continue;
      out.push_back(YamlNodeToJson(node));
    }
    return out;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("not YAML: ", e.what()));
  }
}

namespace {

void Emit(YAML::Emitter& out, const json& j) {
  switch (j.type()) {
    case json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [k, v] : j.items()) {
        out << YAML::Key << k << YAML::Value;
        Emit(out, v);
      }
      out << YAML::EndMap;
      break;
    case json::value_t::array:
      out << YAML::BeginSeq;
      for (const json& v : j) Emit(out, v);
      out << YAML::EndSeq;
      break;
    case json::value_t::string: {
      const std::string& s = j.get_ref<const std::string&>();
      // Quote what a YAML reader would take for a number, bool or null.
      bool plain = !s.empty() && s.find_first_of(":#{}[],&*!|>'\"%@`\n-?") == std::string::npos &&
                   s.front() != ' ' && s.back() != ' ';
      if (plain) {
        try {
          json back = YamlNodeToJson(YAML::Load(s));
          plain = back.is_string() && back.get<std::string>() == s;
        } catch (const YAML::Exception&) {
          plain = false;
        }
      }
      if (plain) {
        out << s;
      } else {
        out << YAML::DoubleQuoted << s;
      }
      break;
    }
    case json::value_t::boolean:
      out << (j.get<bool>() ? "true" : "false");
      break;
    case json::value_t::null:
      out << YAML::Null;
      break;
    default:
      out << j.dump();
      break;
  }
}

}  // namespace

std::string ToYaml(const json& doc) {
  YAML::Emitter out;
  Emit(out, doc);
  return std::string(out.c_str()) + "\n";
}

absl::StatusOr<json> YamlToJson(absl::string_view text) {
  try {
    YAML::Node node = YAML::Load(std::string(text));
    return YamlNodeToJson(node);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("policy: not JSON, and not YAML either: ",
                                                   e.what()));
  }
}

absl::StatusOr<Policy> ParsePolicy(absl::string_view text) {
  if (text.size() > kMaxPolicyBytes) {
    return Bad("document", absl::StrCat("larger than ", kMaxPolicyBytes, " bytes"));
  }
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    ASSIGN_OR_RETURN(doc, YamlToJson(text));
  }
  return ParsePolicyJson(doc);
}

absl::StatusOr<Policy> ParsePolicyJson(const json& doc) {
  RETURN_IF_ERROR(CheckKeys(doc, "", {"version", "description", "rpcs", "containers", "pin_images",
                                      "copy_files", "image_signatures"}));
  Policy p;
  p.source = doc;
  const json* version = Get(doc, "version");
  if (version == nullptr) return Bad("version", "is required (\"1\")");
  ASSIGN_OR_RETURN(p.version, GetString(*version, "version"));
  if (p.version != kPolicyVersion) {
    return Bad("version", absl::StrCat("\"", p.version, "\" is not supported (want \"1\")"));
  }
  if (const json* v = Get(doc, "description")) {
    ASSIGN_OR_RETURN(p.description, GetString(*v, "description"));
  }
  if (const json* v = Get(doc, "rpcs")) {
    if (!v->is_object()) return Bad("rpcs", "must be an object of RPC name: \"allow\" | \"deny\"");
    const auto& names = AgentRpcNames();
    for (const auto& [k, a] : v->items()) {
      if (std::find(names.begin(), names.end(), k) == names.end()) {
        return Bad(absl::StrCat("rpcs.", k), absl::StrCat("not an agent RPC (known: ",
                                                          absl::StrJoin(names, ", "), ")"));
      }
      ASSIGN_OR_RETURN(std::string action, GetString(a, absl::StrCat("rpcs.", k)));
      if (action != "allow" && action != "deny") {
        return Bad(absl::StrCat("rpcs.", k), "must be \"allow\" or \"deny\"");
      }
      p.rpcs[k] = action == "allow" ? RpcAction::kAllow : RpcAction::kDeny;
    }
  }
  if (const json* v = Get(doc, "containers")) {
    if (!v->is_array()) return Bad("containers", "must be an array");
    std::set<std::string> names;
    for (size_t i = 0; i < v->size(); ++i) {
      std::string f = absl::StrCat("containers[", i, "]");
      ASSIGN_OR_RETURN(ContainerRule c, ParseContainer((*v)[i], f));
      std::string key = absl::StrCat(c.sandbox ? "sandbox:" : "", c.name);
      if (!names.insert(key).second) {
        return Bad(f, absl::StrCat("a second rule for container \"", c.name, "\""));
      }
      p.containers.push_back(std::move(c));
    }
  }
  if (const json* v = Get(doc, "pin_images")) {
    ASSIGN_OR_RETURN(p.pin_images, GetBool(*v, "pin_images"));
  }
  if (const json* v = Get(doc, "copy_files")) {
    if (!v->is_array()) return Bad("copy_files", "must be an array");
    for (size_t i = 0; i < v->size(); ++i) {
      std::string f = absl::StrCat("copy_files[", i, "]");
      RETURN_IF_ERROR(CheckKeys((*v)[i], f, {"path", "max_bytes"}));
      const json* path = Get((*v)[i], "path");
      const json* max = Get((*v)[i], "max_bytes");
      if (path == nullptr || max == nullptr) return Bad(f, "path and max_bytes are required");
      CopyRule r;
      ASSIGN_OR_RETURN(r.path, StringMatch::FromJson(*path, absl::StrCat(f, ".path")));
      ASSIGN_OR_RETURN(r.max_bytes, GetUint(*max, absl::StrCat(f, ".max_bytes"),
                                            std::numeric_limits<uint64_t>::max()));
      p.copy_files.push_back(std::move(r));
    }
  }
  if (const json* v = Get(doc, "image_signatures")) {
    ASSIGN_OR_RETURN(p.image_signatures, ParseImageSignatures(*v, "image_signatures"));
  }
  return p;
}

const char* DefaultPolicyJson() {
  return R"({
  "version": "1",
  "description": "built-in default: the pod runs as created; no exec, no stdin writes, no image change, no SetPolicy",
  "rpcs": {"ExecProcess": "deny", "WriteStdin": "deny", "SetPolicy": "deny"},
  "pin_images": true,
  "containers": [
    {"name": "*", "sandbox": true, "max_instances": 1},
    {"name": "*", "env_deny": [{"regex": "(LD_PRELOAD|LD_LIBRARY_PATH|LD_AUDIT)=.*"}],
     "mounts": [{"destination": {"regex": "/.+"}, "type": "bind",
                 "source": {"regex": "/.+/pods/[0-9a-f-]{36}/volume(s|-subpaths)/.+"}}],
     "stdio": {"read_output": true, "write_stdin": false}}
  ],
  "copy_files": [
    {"path": {"regex": "/run/cloak/sandbox/volumes/kubernetes\\.io~(configmap|secret|projected|downward-api)/[^/]+(/.+)?"},
     "max_bytes": 1048576}
  ]
})";
}

const Policy& DefaultPolicy() {
  static const Policy* p = [] {
    absl::StatusOr<Policy> parsed = ParsePolicy(DefaultPolicyJson());
    auto* out = new Policy(std::move(parsed).value());
    out->builtin_default = true;
    return out;
  }();
  return *p;
}

namespace {

std::string Matches(const std::vector<StringMatch>& v) {
  std::vector<std::string> parts;
  for (const StringMatch& m : v) parts.push_back(m.Describe());
  return absl::StrJoin(parts, " ");
}

}  // namespace

std::string Explain(const Policy& p) {
  std::string out;
  absl::StrAppend(&out, p.builtin_default ? "Built-in default policy" : "Policy", " (version ",
                  p.version, ")\n");
  if (!p.description.empty()) absl::StrAppend(&out, "  ", p.description, "\n");
  std::vector<std::string> denied;
  for (const auto& [rpc, action] : p.rpcs) {
    if (action == RpcAction::kDeny) denied.push_back(rpc);
  }
  if (!p.rpcs.contains("SetPolicy")) denied.push_back("SetPolicy");
  absl::StrAppend(&out, "RPCs the host may never call: ",
                  denied.empty() ? "none" : absl::StrJoin(denied, ", "), "\n");
  absl::StrAppend(&out, p.pin_images ? "A container name keeps the image it was first created with.\n"
                                     : "Images may change when a container is re-created.\n");
  if (p.containers.empty()) absl::StrAppend(&out, "No container may be created.\n");
  for (const ContainerRule& c : p.containers) {
    absl::StrAppend(&out, "\n", c.sandbox ? "Sandbox (pause) container" : "Container", " ",
                    c.name == "*" ? "of any name" : absl::StrCat("\"", c.name, "\""), ":\n");
    if (c.max_instances > 0) {
      absl::StrAppend(&out, "  at most ", c.max_instances, " at a time\n");
    }
    if (!c.after.empty()) {
      absl::StrAppend(&out, "  only after ", absl::StrJoin(c.after, ", "), " exited with 0\n");
    }
    if (!c.image) {
      absl::StrAppend(&out, "  image: any\n");
    } else {
      if (c.image->reference) absl::StrAppend(&out, "  image: ", c.image->reference->Describe(), "\n");
      if (!c.image->digest.empty()) absl::StrAppend(&out, "  image digest: ", c.image->digest, "\n");
    }
    absl::StrAppend(&out, "  command: ", c.args ? Matches(*c.args) : "any", "\n");
    absl::StrAppend(&out, "  environment: ", c.env ? absl::StrCat("only ", Matches(*c.env)) : "any");
    if (!c.env_deny.empty()) absl::StrAppend(&out, ", never ", Matches(c.env_deny));
    absl::StrAppend(&out, "\n");
    if (c.working_dir) absl::StrAppend(&out, "  working dir: ", c.working_dir->Describe(), "\n");
    if (c.user) {
      absl::StrAppend(&out, "  user: uid ", c.user->uid ? absl::StrCat(*c.user->uid) : "any",
                      ", gid ", c.user->gid ? absl::StrCat(*c.user->gid) : "any", "\n");
    }
    absl::StrAppend(&out, "  capabilities at most: ", absl::StrJoin(c.capabilities, " "), "\n");
    absl::StrAppend(&out, "  privileged: ", c.privileged ? "allowed" : "no", "\n");
    absl::StrAppend(&out, "  mounts: ", c.mounts.size(), " allowed destinations (");
    std::vector<std::string> dests;
    for (const MountRule& m : c.mounts) dests.push_back(m.destination.Describe());
    absl::StrAppend(&out, absl::StrJoin(dests, " "), ")\n");
    if (!c.sysctls.empty()) {
      std::vector<std::string> s;
      for (const auto& [k, v] : c.sysctls) s.push_back(absl::StrCat(k, "=", v.Describe()));
      absl::StrAppend(&out, "  sysctls: ", absl::StrJoin(s, " "), "\n");
    }
    if (!c.annotations.empty()) {
      std::vector<std::string> s;
      for (const auto& [k, v] : c.annotations) s.push_back(absl::StrCat(k, "=", v.Describe()));
      absl::StrAppend(&out, "  runtime annotations: ", absl::StrJoin(s, " "), "\n");
    } else {
      absl::StrAppend(&out, "  runtime annotations: none\n");
    }
    if (c.seccomp_required) absl::StrAppend(&out, "  seccomp profile required\n");
    if (c.exec.empty()) {
      absl::StrAppend(&out, "  exec: nothing\n");
    } else {
      for (const ExecRule& e : c.exec) {
        absl::StrAppend(&out, "  exec: ", Matches(e.argv), e.stdin ? "" : " (no stdin)", "\n");
      }
    }
    absl::StrAppend(&out, "  host reads its output: ", c.read_output ? "yes" : "no",
                    "; host writes its stdin: ", c.write_stdin ? "yes" : "no", "\n");
    for (const KbsFileRule& f : c.kbs_files) {
      absl::StrAppend(&out, "  file ", f.path, ": key broker resource ", f.resource,
                      ", fetched in the guest after attestation (read-only, 0400)\n");
    }
  }
  if (!p.copy_files.empty()) {
    absl::StrAppend(&out, "\nFile copies into the guest:\n");
    for (const CopyRule& r : p.copy_files) {
      absl::StrAppend(&out, "  ", r.path.Describe(), " up to ", r.max_bytes, " bytes\n");
    }
  }
  absl::StrAppend(&out, "\n", ExplainImageSignatures(p.image_signatures.get()));
  return out;
}

}  // namespace cloak::policy
