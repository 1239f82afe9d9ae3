#include "policy/engine.h"

#include <sys/stat.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/volumes.h"

namespace cloak::policy {

using nlohmann::json;
namespace v1 = agent::v1;

namespace {

constexpr char kCriContainerName[] = "io.kubernetes.cri.container-name";
constexpr size_t kMaxSpecBytes = 1 << 20;

std::string Q(absl::string_view s) {
  // Quoted and escaped, cut at 200 bytes: a reason is one readable line.
  std::string v(s.substr(0, 200));
  std::string out = json(v).dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 200) out.insert(out.size() - 1, "...");
  return out;
}

json ParseSpec(absl::string_view text) {
  if (text.size() > kMaxSpecBytes) return json();
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return json();
  return j;
}

const json* Get(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::vector<std::string> Strings(const json* j) {
  std::vector<std::string> out;
  if (j == nullptr || !j->is_array()) return out;
  for (const json& e : *j) {
    if (e.is_string()) out.push_back(e.get<std::string>());
  }
  return out;
}

bool Contains(const std::vector<std::string>& v, absl::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string EnvKey(absl::string_view kv) { return std::string(kv.substr(0, kv.find('='))); }

bool IsRuntimeAnnotation(absl::string_view key) {
  for (const std::string& p : RuntimeAnnotationPrefixes()) {
    if (absl::StartsWith(key, p)) return true;
  }
  return false;
}

std::string ContainerLabel(const ContainerRule& rule, const std::string& name) {
  if (rule.sandbox) return absl::StrCat("sandbox container ", Q(name));
  return absl::StrCat("container ", Q(name));
}

// The checks a process (a container's init, or an exec) must pass: env,
// working dir, user.
std::string CheckProcess(const ContainerRule& rule, const std::string& label, const json& process,
                         bool check_args) {
  std::vector<std::string> args = Strings(Get(process, "args"));
  if (check_args && rule.args) {
    if (args.size() != rule.args->size()) {
      return absl::StrCat("process.args has ", args.size(), " entries, ", label, " allows ",
                          rule.args->size(), " (", Q(absl::StrJoin(args, " ")), ")");
    }
    for (size_t i = 0; i < args.size(); ++i) {
      if (!(*rule.args)[i].Matches(args[i])) {
        return absl::StrCat("process.args[", i, "] ", Q(args[i]), " does not match ",
                            (*rule.args)[i].Describe(), " of ", label);
      }
    }
  }
  if (const json* env = Get(process, "env"); env != nullptr && !env->is_array()) {
    return "process.env is not an array";
  }
  for (const std::string& kv : Strings(Get(process, "env"))) {
    for (const StringMatch& m : rule.env_deny) {
      if (m.Matches(kv)) {
        return absl::StrCat("process.env ", Q(EnvKey(kv)), " matches env_deny ", m.Describe(),
                            " of ", label);
      }
    }
    if (rule.env) {
      bool ok = false;
      for (const StringMatch& m : *rule.env) ok = ok || m.Matches(kv);
      if (!ok) {
        return absl::StrCat("process.env ", Q(EnvKey(kv)), " (with its value) matches no env rule of ",
                            label);
      }
    }
  }
  if (rule.working_dir) {
    std::string cwd = "/";
    if (const json* c = Get(process, "cwd"); c != nullptr && c->is_string() &&
                                               !c->get<std::string>().empty()) {
      cwd = c->get<std::string>();
    }
    if (!rule.working_dir->Matches(cwd)) {
      return absl::StrCat("process.cwd ", Q(cwd), " does not match ", rule.working_dir->Describe(),
                          " of ", label);
    }
  }
  if (rule.user) {
    const json* user = Get(process, "user");
    uint64_t uid = 0, gid = 0;
    std::vector<uint64_t> gids;
    if (user != nullptr) {
      if (const json* u = Get(*user, "uid"); u != nullptr && u->is_number_unsigned()) uid = *u;
      if (const json* g = Get(*user, "gid"); g != nullptr && g->is_number_unsigned()) gid = *g;
      if (const json* a = Get(*user, "additionalGids"); a != nullptr && a->is_array()) {
        for (const json& g : *a) {
          if (g.is_number_unsigned()) gids.push_back(g.get<uint64_t>());
        }
      }
    }
    if (rule.user->uid && uid != *rule.user->uid) {
      return absl::StrCat("process.user.uid ", uid, " is not ", *rule.user->uid, " of ", label);
    }
    if (rule.user->gid && gid != *rule.user->gid) {
      return absl::StrCat("process.user.gid ", gid, " is not ", *rule.user->gid, " of ", label);
    }
    if (rule.user->additional_gids) {
      for (uint64_t g : gids) {
        const auto& allowed = *rule.user->additional_gids;
        if (std::find(allowed.begin(), allowed.end(), g) == allowed.end()) {
          return absl::StrCat("process.user.additionalGids has ", g, ", not allowed for ", label);
        }
      }
    }
  }
  return "";
}

std::string CheckMount(const ContainerRule& rule, const std::string& label, const json& m,
                       size_t index) {
  auto str = [&m](const char* k) {
    const json* v = Get(m, k);
    return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
  };
  std::string dest = str("destination"), type = str("type"), source = str("source");
  std::vector<std::string> options = Strings(Get(m, "options"));
  // A mount whose destination no rule names gets the plain reason; one whose
  // destination is known gets the first field that differed.
  std::string first_mismatch;
  for (const MountRule& r : rule.mounts) {
    if (!r.destination.Matches(dest)) continue;
    if (r.type && !r.type->Matches(type)) {
      if (first_mismatch.empty()) {
        first_mismatch = absl::StrCat("mounts[", index, "] ", Q(dest), " type ", Q(type),
                                      " does not match ", r.type->Describe(), " of ", label);
      }
      continue;
    }
    if (r.source && !r.source->Matches(source)) {
      if (first_mismatch.empty()) {
        first_mismatch = absl::StrCat("mounts[", index, "] ", Q(dest), " source ", Q(source),
                                      " does not match ", r.source->Describe(), " of ", label);
      }
      continue;
    }
    std::string bad;
    if (r.options_allowed) {
      for (const std::string& o : options) {
        if (!Contains(*r.options_allowed, o)) {
          bad = absl::StrCat("mounts[", index, "] ", Q(dest), " option ", Q(o),
                             " is not allowed for ", label);
          break;
        }
      }
    }
    for (const std::string& o : r.options_required) {
      if (bad.empty() && !Contains(options, o)) {
        bad = absl::StrCat("mounts[", index, "] ", Q(dest), " lacks required option ", Q(o),
                           " of ", label);
      }
    }
    if (bad.empty()) return "";
    if (first_mismatch.empty()) first_mismatch = bad;
  }
  if (!first_mismatch.empty()) return first_mismatch;
  return absl::StrCat("mounts[", index, "] destination ", Q(dest), " (", type, " from ", Q(source),
                      ") matches no mount rule of ", label);
}

// CAP_SYS_ADMIN, devices or nothing masked: what "privileged" gives.
std::string PrivilegedBy(const json& spec) {
  const json* process = Get(spec, "process");
  if (const json* caps = process != nullptr ? Get(*process, "capabilities") : nullptr) {
    for (const char* set : {"bounding", "effective", "permitted", "inheritable", "ambient"}) {
      if (Contains(Strings(Get(*caps, set)), "CAP_SYS_ADMIN")) {
        return absl::StrCat("process.capabilities.", set, " has CAP_SYS_ADMIN");
      }
    }
  }
  const json* linux_spec = Get(spec, "linux");
  if (linux_spec != nullptr) {
    if (const json* d = Get(*linux_spec, "devices"); d != nullptr && d->is_array() && !d->empty()) {
      return absl::StrCat("linux.devices adds ", d->size(), " host device(s)");
    }
  }
  return "";
}

std::string CheckSpec(const ContainerRule& rule, const std::string& label, const json& spec) {
  const json* process = Get(spec, "process");
  if (process == nullptr || !process->is_object()) return "oci_spec_json has no process object";
  const json* linux_spec = Get(spec, "linux");
  static const json kEmpty = json::object();
  const json& lx = linux_spec != nullptr && linux_spec->is_object() ? *linux_spec : kEmpty;

  if (!rule.privileged) {
    std::string why = PrivilegedBy(spec);
    if (!why.empty()) return absl::StrCat("privileged: ", why, "; ", label, " is not privileged");
  }
  std::string err = CheckProcess(rule, label, *process, /*check_args=*/true);
  if (!err.empty()) return err;

  if (const json* caps = Get(*process, "capabilities"); caps != nullptr && !rule.privileged) {
    for (const char* set : {"bounding", "effective", "permitted", "inheritable", "ambient"}) {
      for (const std::string& c : Strings(Get(*caps, set))) {
        if (!Contains(rule.capabilities, c)) {
          return absl::StrCat("process.capabilities.", set, " ", Q(c), " is not among the ",
                              rule.capabilities.size(), " capabilities of ", label);
        }
      }
    }
  }

  if (const json* mounts = Get(spec, "mounts"); mounts != nullptr && mounts->is_array()) {
    for (size_t i = 0; i < mounts->size(); ++i) {
      err = CheckMount(rule, label, (*mounts)[i], i);
      if (!err.empty()) return err;
    }
  }

  if (const json* ns = Get(lx, "namespaces"); ns != nullptr && ns->is_array()) {
    for (const json& n : *ns) {
      const json* t = Get(n, "type");
      std::string type = t != nullptr && t->is_string() ? t->get<std::string>() : "";
      if (!Contains(rule.namespaces, type)) {
        return absl::StrCat("linux.namespaces ", Q(type), " is not allowed for ", label,
                            " (allowed: ", absl::StrJoin(rule.namespaces, ", "), ")");
      }
    }
  }

  if (const json* sysctl = Get(lx, "sysctl"); sysctl != nullptr && sysctl->is_object()) {
    for (const auto& [k, v] : sysctl->items()) {
      auto it = rule.sysctls.find(k);
      std::string value = v.is_string() ? v.get<std::string>() : v.dump();
      if (it == rule.sysctls.end()) {
        return absl::StrCat("linux.sysctl ", Q(k), " is not allowed for ", label);
      }
      if (!it->second.Matches(value)) {
        return absl::StrCat("linux.sysctl ", Q(k), " value ", Q(value), " does not match ",
                            it->second.Describe(), " of ", label);
      }
    }
  }

  if (!rule.privileged) {
    std::vector<std::string> masked = Strings(Get(lx, "maskedPaths"));
    for (const std::string& p : rule.masked_paths) {
      if (!Contains(masked, p)) {
        return absl::StrCat("linux.maskedPaths lacks ", Q(p), ", which ", label, " must mask");
      }
    }
    std::vector<std::string> ro = Strings(Get(lx, "readonlyPaths"));
    for (const std::string& p : rule.readonly_paths) {
      if (!Contains(ro, p)) {
        return absl::StrCat("linux.readonlyPaths lacks ", Q(p), ", which ", label,
                            " must keep read-only");
      }
    }
  }

  if (const json* a = Get(spec, "annotations"); a != nullptr && a->is_object()) {
    for (const auto& [k, v] : a->items()) {
      auto it = rule.annotations.find(k);
      std::string value = v.is_string() ? v.get<std::string>() : v.dump();
      if (it == rule.annotations.end()) {
        if (IsRuntimeAnnotation(k)) {
          return absl::StrCat("annotation ", Q(k), " is runtime-interpreted and not allowed for ",
                              label);
        }
        continue;
      }
      if (!it->second.Matches(value)) {
        return absl::StrCat("annotation ", Q(k), " value ", Q(value), " does not match ",
                            it->second.Describe(), " of ", label);
      }
    }
  }

  if (rule.seccomp_required) {
    const json* sc = Get(lx, "seccomp");
    const json* action = sc != nullptr ? Get(*sc, "defaultAction") : nullptr;
    if (action == nullptr || !action->is_string()) {
      return absl::StrCat("linux.seccomp is missing; ", label, " requires a seccomp profile");
    }
    if (action->get<std::string>() == "SCMP_ACT_ALLOW") {
      return absl::StrCat("linux.seccomp.defaultAction is SCMP_ACT_ALLOW; ", label,
                          " requires a restrictive seccomp profile");
    }
  }
  return "";
}

// "sha256:..." after '@' in a reference, or "".
std::string ReferenceDigest(absl::string_view ref) {
  size_t at = ref.rfind('@');
  return at == absl::string_view::npos ? "" : std::string(ref.substr(at + 1));
}

}  // namespace

std::string ContainerName(const v1::CreateContainerRequest& request) {
  json spec = ParseSpec(request.oci_spec_json());
  if (const json* a = Get(spec, "annotations")) {
    if (const json* n = Get(*a, kCriContainerName); n != nullptr && n->is_string() &&
                                                      !n->get<std::string>().empty()) {
      return n->get<std::string>();
    }
  }
  return request.container_id();
}

std::string Engine::Suffix() const {
  return policy_.builtin_default ? " (built-in default policy: the pod's init-data has no policy)"
                                 : "";
}

Decision Engine::CheckRpc(absl::string_view rpc) const {
  auto it = policy_.rpcs.find(std::string(rpc));
  RpcAction action = it != policy_.rpcs.end() ? it->second
                     : rpc == "SetPolicy"     ? RpcAction::kDeny
                                              : RpcAction::kAllow;
  if (action == RpcAction::kAllow) return Decision::Allow();
  return Decision::Deny(absl::StrCat("policy: ", rpc, " denied: rule rpcs.", rpc, " is \"deny\"",
                                     it == policy_.rpcs.end() ? " (the default)" : "", Suffix()));
}

const ContainerRule* Engine::FindRule(const std::string& name, bool sandbox) const {
  const ContainerRule* wildcard = nullptr;
  for (const ContainerRule& r : policy_.containers) {
    if (r.sandbox != sandbox) continue;
    if (r.name == name) return &r;
    if (r.name == "*" && wildcard == nullptr) wildcard = &r;
  }
  return wildcard;
}

std::vector<KbsFileRule> Engine::KbsFiles(const v1::CreateContainerRequest& request) const {
  const ContainerRule* rule = FindRule(ContainerName(request), request.sandbox_container());
  if (rule == nullptr) return {};
  return rule->kbs_files;
}

Decision Engine::Check(absl::string_view rpc, const google::protobuf::Message& request,
                       const PodState& state) const {
  Decision d = CheckRpc(rpc);
  if (!d.allow) return d;
  if (rpc == "CreateContainer") {
    return CheckCreate(static_cast<const v1::CreateContainerRequest&>(request), state);
  }
  if (rpc == "StartContainer") {
    return CheckStart(static_cast<const v1::StartContainerRequest&>(request), state);
  }
  if (rpc == "ExecProcess") {
    return CheckExec(static_cast<const v1::ExecProcessRequest&>(request), state);
  }
  if (rpc == "ReadOutput") {
    return CheckReadOutput(static_cast<const v1::ReadOutputRequest&>(request), state);
  }
  if (rpc == "WriteStdin") {
    const auto& r = static_cast<const v1::WriteStdinRequest&>(request);
    return CheckWriteStdin(r.container_id(), r.exec_id(), state);
  }
  if (rpc == "CopyFile") {
    if (request.GetDescriptor() != v1::CopyFileRequest::descriptor()) {
      return Decision::Deny("policy: copy denied: the request is not a CopyFileRequest");
    }
    return CheckCopy(static_cast<const v1::CopyFileRequest&>(request));
  }
  return Decision::Allow();
}

Decision Engine::CheckCreate(const v1::CreateContainerRequest& req, const PodState& state) const {
  auto deny = [this](const std::string& why) {
    return Decision::Deny(absl::StrCat("policy: create denied: ", why, Suffix()));
  };
  json spec = ParseSpec(req.oci_spec_json());
  if (!spec.is_object()) return deny("oci_spec_json is not a JSON object");
  const std::string name = ContainerName(req);
  const bool sandbox = req.sandbox_container();
  const ContainerRule* rule = FindRule(name, sandbox);
  if (rule == nullptr) {
    std::vector<std::string> names;
    for (const ContainerRule& r : policy_.containers) {
      if (r.sandbox == sandbox) names.push_back(Q(r.name));
    }
    return deny(absl::StrCat(sandbox ? "sandbox container " : "container ", Q(name),
                             " matches no container rule (the policy allows ",
                             names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
  }
  const std::string label = ContainerLabel(*rule, name);
  if (state.containers.contains(req.container_id())) {
    return deny(absl::StrCat("container id ", Q(req.container_id()), " exists already"));
  }
  // Set and count: how many of this rule are alive.
  if (rule->max_instances > 0) {
    uint32_t alive = 0;
    for (const auto& [id, c] : state.containers) {
      if (c.sandbox == sandbox && FindRule(c.name, c.sandbox) == rule &&
          (rule->name != "*" || c.name == name || sandbox)) {
        ++alive;
      }
    }
    if (alive >= rule->max_instances) {
      return deny(absl::StrCat(label, " exists already (max_instances ", rule->max_instances,
                               "): no extra containers"));
    }
  }
  // Order: init containers first, each exited 0.
  for (const std::string& before : rule->after) {
    if (!state.succeeded.contains(before)) {
      return deny(absl::StrCat(label, " may only be created after ", Q(before),
                               " exited with 0 (rule after)"));
    }
  }
  // Image.
  if (!sandbox || !req.image().empty()) {
    if (policy_.pin_images && !sandbox) {
      auto it = state.pinned_images.find(name);
      if (it != state.pinned_images.end() && it->second != req.image()) {
        return deny(absl::StrCat("image ", Q(req.image()), " of ", label,
                                 " differs from the image it was created with, ", Q(it->second),
                                 " (pin_images)"));
      }
    }
    if (rule->image) {
      if (rule->image->reference && !rule->image->reference->Matches(req.image())) {
        return deny(absl::StrCat("image ", Q(req.image()), " does not match ",
                                 rule->image->reference->Describe(), " of ", label));
      }
      std::string pinned = ReferenceDigest(req.image());
      if (!rule->image->digest.empty() && !pinned.empty() && pinned != rule->image->digest) {
        return deny(absl::StrCat("image ", Q(req.image()), " is pinned to another digest than ",
                                 rule->image->digest, " of ", label));
      }
    }
  }
  std::string err = CheckSpec(*rule, label, spec);
  if (!err.empty()) return deny(err);
  return Decision::Allow();
}

Decision Engine::CheckPulledImage(const v1::CreateContainerRequest& req,
                                  absl::string_view manifest_digest, const PodState&) const {
  const std::string name = ContainerName(req);
  const ContainerRule* rule = FindRule(name, req.sandbox_container());
  if (rule == nullptr || !rule->image || rule->image->digest.empty()) return Decision::Allow();
  if (manifest_digest == rule->image->digest) return Decision::Allow();
  return Decision::Deny(absl::StrCat("policy: create denied: image ", Q(req.image()),
                                     " resolved to ", Q(manifest_digest), ", not ",
                                     rule->image->digest, " of ", ContainerLabel(*rule, name),
                                     Suffix()));
}

Decision Engine::CheckStart(const v1::StartContainerRequest& req, const PodState& state) const {
  auto it = state.containers.find(req.container_id());
  if (it == state.containers.end()) return Decision::Allow();  // the agent answers NotFound
  const ContainerRule* rule = FindRule(it->second.name, it->second.sandbox);
  if (rule == nullptr) return Decision::Allow();
  for (const std::string& before : rule->after) {
    if (!state.succeeded.contains(before)) {
      return Decision::Deny(absl::StrCat("policy: start denied: ",
                                         ContainerLabel(*rule, it->second.name),
                                         " may only start after ", Q(before),
                                         " exited with 0 (rule after)", Suffix()));
    }
  }
  return Decision::Allow();
}

Decision Engine::MatchExec(const ContainerRule& rule, const std::string& name,
                           const std::string& process_json, const ExecRule** matched) const {
  const std::string label = ContainerLabel(rule, name);
  auto deny = [this](const std::string& why) {
    return Decision::Deny(absl::StrCat("policy: exec denied: ", why, Suffix()));
  };
  json process = ParseSpec(process_json);
  if (!process.is_object()) return deny("process_json is not a JSON object");
  std::vector<std::string> argv = Strings(Get(process, "args"));
  if (argv.empty()) return deny("process.args is empty");
  if (rule.exec.empty()) {
    return deny(absl::StrCat("argv[0] ", Q(argv[0]), ": ", label, " allows no exec"));
  }
  // The deepest argv position some rule still matched up to: that is the
  // field to name.
  size_t best = 0;
  for (const ExecRule& e : rule.exec) {
    size_t i = 0;
    while (i < argv.size() && i < e.argv.size() && e.argv[i].Matches(argv[i])) ++i;
    if (i == argv.size() && i == e.argv.size()) {
      std::string err = CheckProcess(rule, label, process, /*check_args=*/false);
      if (!err.empty()) return deny(err);
      *matched = &e;
      return Decision::Allow();
    }
    best = std::max(best, i);
  }
  if (best >= argv.size()) {
    return deny(absl::StrCat("argv ", Q(absl::StrJoin(argv, " ")), " (", argv.size(),
                             " args) matches no exec rule of ", label));
  }
  return deny(absl::StrCat("argv[", best, "] ", Q(argv[best]), " matches no exec rule of ", label));
}

Decision Engine::CheckExec(const v1::ExecProcessRequest& req, const PodState& state) const {
  auto it = state.containers.find(req.container_id());
  if (it == state.containers.end()) {
    return Decision::Deny(absl::StrCat("policy: exec denied: container ", Q(req.container_id()),
                                       " was not created under this policy", Suffix()));
  }
  const ContainerRule* rule = FindRule(it->second.name, it->second.sandbox);
  if (rule == nullptr) {
    return Decision::Deny(absl::StrCat("policy: exec denied: container ", Q(it->second.name),
                                       " matches no container rule", Suffix()));
  }
  const ExecRule* matched = nullptr;
  Decision d = MatchExec(*rule, it->second.name, req.process_json(), &matched);
  if (!d.allow) return d;
  if (req.stdio().stdin() && !matched->stdin) {
    return Decision::Deny(absl::StrCat("policy: exec denied: stdin is off for this exec rule of ",
                                       ContainerLabel(*rule, it->second.name), Suffix()));
  }
  return d;
}

Decision Engine::CheckReadOutput(const v1::ReadOutputRequest& req, const PodState& state) const {
  auto it = state.containers.find(req.container_id());
  if (it == state.containers.end()) return Decision::Allow();  // NotFound from the agent
  if (!req.exec_id().empty()) {
    if (it->second.execs.contains(req.exec_id())) return Decision::Allow();
    return Decision::Deny(absl::StrCat("policy: read output denied: exec ", Q(req.exec_id()),
                                       " of container ", Q(it->second.name),
                                       " was not allowed by an exec rule", Suffix()));
  }
  const ContainerRule* rule = FindRule(it->second.name, it->second.sandbox);
  if (rule != nullptr && rule->read_output) return Decision::Allow();
  return Decision::Deny(absl::StrCat("policy: read output denied: stdio.read_output is off for ",
                                     rule != nullptr ? ContainerLabel(*rule, it->second.name)
                                                     : Q(it->second.name),
                                     Suffix()));
}

Decision Engine::CheckWriteStdin(const std::string& container_id, const std::string& exec_id,
                                 const PodState& state) const {
  auto it = state.containers.find(container_id);
  if (it == state.containers.end()) {
    return Decision::Deny(absl::StrCat("policy: write stdin denied: container ", Q(container_id),
                                       " was not created under this policy", Suffix()));
  }
  if (!exec_id.empty()) {
    auto e = it->second.execs.find(exec_id);
    if (e != it->second.execs.end() && e->second) return Decision::Allow();
    return Decision::Deny(absl::StrCat("policy: write stdin denied: exec ", Q(exec_id),
                                       " of container ", Q(it->second.name),
                                       " has no stdin allowed by an exec rule", Suffix()));
  }
  const ContainerRule* rule = FindRule(it->second.name, it->second.sandbox);
  if (rule != nullptr && rule->write_stdin) return Decision::Allow();
  return Decision::Deny(absl::StrCat("policy: write stdin denied: stdio.write_stdin is off for ",
                                     rule != nullptr ? ContainerLabel(*rule, it->second.name)
                                                     : Q(it->second.name),
                                     Suffix()));
}

Decision Engine::CheckCopyFile(absl::string_view path, uint64_t size) const {
  Decision d = CheckRpc("CopyFile");
  if (!d.allow) return d;
  for (const CopyRule& r : policy_.copy_files) {
    if (!r.path.Matches(path)) continue;
    if (size <= r.max_bytes) return Decision::Allow();
    return Decision::Deny(absl::StrCat("policy: copy denied: ", size, " bytes to ", Q(path),
                                       " exceed max_bytes ", r.max_bytes, " of copy rule ",
                                       r.path.Describe(), Suffix()));
  }
  return Decision::Deny(absl::StrCat("policy: copy denied: destination ", Q(path),
                                     " matches no copy_files rule", Suffix()));
}

Decision Engine::CheckCopy(const v1::CopyFileRequest& req) const {
  Decision d = CheckRpc("CopyFile");
  if (!d.allow) return d;
  auto deny = [this](const std::string& why) {
    return Decision::Deny(absl::StrCat("policy: copy denied: ", why, Suffix()));
  };
  const std::string& path = req.path();
  if (path.size() > kMaxGuestPathBytes) {
    return deny(absl::StrCat("path is ", path.size(), " bytes, longer than ", kMaxGuestPathBytes));
  }
  if (!IsCleanAbsolutePath(path)) {
    return deny(absl::StrCat("path ", Q(path),
                             " is not a clean absolute path (\"..\", \".\" or empty components)"));
  }
  const std::string root = absl::StrCat(kGuestVolumeRoot, "/");
  if (!absl::StartsWith(path, root)) {
    return deny(absl::StrCat("path ", Q(path), " is outside the guest volume directory ",
                             kGuestVolumeRoot));
  }
  // <root>/<kind>/<name>: the volume the entry belongs to.
  std::vector<absl::string_view> parts =
      absl::StrSplit(absl::string_view(path).substr(root.size()), '/');
  if (parts.size() < 2) {
    return deny(absl::StrCat("path ", Q(path), " names no volume (<kind>/<name> under ",
                             kGuestVolumeRoot, ")"));
  }
  const std::string volume_dir = absl::StrCat(root, parts[0], "/", parts[1]);
  if (parts[0] == kEmptyDirVolumeKind) {
    return deny(absl::StrCat("path ", Q(path), " is in an emptyDir volume, which the guest keeps "
                             "in its own memory and the host may not fill"));
  }
  if (req.remove()) return CheckCopyFile(path, 0);
  const uint32_t type = req.file_mode() & S_IFMT;
  if (type != S_IFREG && type != S_IFDIR && type != S_IFLNK) {
    return deny(absl::StrCat("file_mode ", absl::StrFormat("0%o", req.file_mode()), " of ", Q(path),
                             " is not a regular file, directory or symlink"));
  }
  if ((req.file_mode() & ~static_cast<uint32_t>(S_IFMT)) > 07777) {
    return deny(absl::StrCat("file_mode of ", Q(path), " has bits beyond 07777"));
  }
  if (type == S_IFDIR && !req.data().empty()) {
    return deny(absl::StrCat("directory ", Q(path), " carries data"));
  }
  if (type == S_IFLNK) {
    std::optional<std::string> resolved = ResolveSymlinkLexically(path, req.data());
    if (!resolved || (*resolved != volume_dir && !absl::StartsWith(*resolved, volume_dir + "/"))) {
      return deny(absl::StrCat("symlink ", Q(path), " -> ", Q(req.data()),
                               " points outside its volume ", Q(volume_dir),
                               " (targets must be relative and stay inside)"));
    }
  }
  return CheckCopyFile(path, req.data().size());
}

void Engine::Record(absl::string_view rpc, const google::protobuf::Message& request,
                    const google::protobuf::Message* response, PodState* state) const {
  if (rpc == "CreateContainer") {
    const auto& req = static_cast<const v1::CreateContainerRequest&>(request);
    PodState::Container c;
    c.name = ContainerName(req);
    c.sandbox = req.sandbox_container();
    c.image = req.image();
    if (!c.sandbox && !c.image.empty()) state->pinned_images.emplace(c.name, c.image);
    state->containers[req.container_id()] = std::move(c);
  } else if (rpc == "StartContainer") {
    const auto& req = static_cast<const v1::StartContainerRequest&>(request);
    auto it = state->containers.find(req.container_id());
    if (it != state->containers.end()) it->second.started = true;
  } else if (rpc == "WaitProcess" && response != nullptr) {
    const auto& req = static_cast<const v1::WaitProcessRequest&>(request);
    const auto& resp = static_cast<const v1::WaitProcessResponse&>(*response);
    auto it = state->containers.find(req.container_id());
    if (it != state->containers.end() && req.exec_id().empty()) {
      it->second.exited = true;
      it->second.exit_status = resp.exit_status();
      if (resp.exit_status() == 0) state->succeeded.insert(it->second.name);
    }
  } else if (rpc == "RemoveContainer") {
    const auto& req = static_cast<const v1::RemoveContainerRequest&>(request);
    state->containers.erase(req.container_id());
  } else if (rpc == "ExecProcess") {
    const auto& req = static_cast<const v1::ExecProcessRequest&>(request);
    auto it = state->containers.find(req.container_id());
    if (it == state->containers.end()) return;
    const ContainerRule* rule = FindRule(it->second.name, it->second.sandbox);
    const ExecRule* matched = nullptr;
    bool stdin_ok = true;
    if (rule != nullptr && MatchExec(*rule, it->second.name, req.process_json(), &matched).allow) {
      stdin_ok = matched->stdin;
    }
    PodState::Container& c = it->second;
    if (c.execs.insert_or_assign(req.exec_id(), stdin_ok).second) c.exec_order.push_back(req.exec_id());
    while (c.exec_order.size() > PodState::kMaxExecsRemembered) {
      c.execs.erase(c.exec_order.front());
      c.exec_order.pop_front();
    }
  } else if (rpc == "DestroySandbox") {
    state->containers.clear();
  }
}

}  // namespace cloak::policy
