#include "cli/cloak/policy_cmd.h"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "common/temp_dir.h"
#include "cloak/agent/v1/agent.pb.h"
#include "google/protobuf/util/json_util.h"
#include "policy/yaml.h"

namespace cloak::cli {

using nlohmann::json;
namespace v1 = agent::v1;

namespace {

// containerd's PATH for a spec whose image sets none.
constexpr char kContainerdPath[] =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const json* Get(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::vector<std::string> Strings(const json* j) {
  std::vector<std::string> out;
  if (j == nullptr || !j->is_array()) return out;
  for (const json& e : *j) out.push_back(e.is_string() ? e.get<std::string>() : e.dump());
  return out;
}

std::string RegexEscape(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\.+*?()|[]{}^$").find(c) != std::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// The image rule: the reference as written, in the forms the guest may be
// given it (a short Docker Hub name normalised; the host's 127.0.0.1 as the
// guest reaches it, 10.0.2.2 — shim/task_translate GuestImageReference).
json ImageRule(const std::string& image) {
  std::string re = RegexEscape(image);
  bool changed = false;
  if (image.rfind("127.0.0.1:", 0) == 0 || image.rfind("localhost:", 0) == 0) {
    re = absl::StrCat("(127\\.0\\.0\\.1|localhost|10\\.0\\.2\\.2)",
                      re.substr(re.find(':')));
    changed = true;
  }
  const std::string first = image.substr(0, image.find('/'));
  const bool has_registry = image.find('/') != std::string::npos &&
                            (first.find('.') != std::string::npos ||
                             first.find(':') != std::string::npos || first == "localhost");
  if (!has_registry) {
    re = absl::StrCat("(docker\\.io/)?",
                      image.find('/') == std::string::npos ? "(library/)?" : "", RegexEscape(image));
    changed = true;
  }
  if (image.find(':', image.rfind('/') == std::string::npos ? 0 : image.rfind('/')) ==
          std::string::npos &&
      image.find('@') == std::string::npos) {
    re = absl::StrCat(re, "(:latest)?");
    changed = true;
  }
  if (!changed) return image;
  return json{{"reference", {{"regex", re}}}};
}

json PodSpecOf(const json& doc, std::string* kind, std::string* name, json** meta_out,
               json& mutable_doc) {
  *kind = doc.value("kind", "");
  const json* meta = Get(doc, "metadata");
  *name = meta != nullptr ? meta->value("name", "") : "";
  json* target = nullptr;
  json spec;
  if (*kind == "Pod") {
    spec = doc.value("spec", json::object());
    target = &mutable_doc["metadata"];
  } else if (*kind == "Deployment" || *kind == "StatefulSet" || *kind == "DaemonSet" ||
             *kind == "Job" || *kind == "ReplicaSet") {
    const json* t = Get(doc, "spec") ? Get(*Get(doc, "spec"), "template") : nullptr;
    if (t != nullptr) spec = t->value("spec", json::object());
    target = &mutable_doc["spec"]["template"]["metadata"];
  } else if (*kind == "CronJob") {
    const json* jt = Get(doc, "spec") ? Get(*Get(doc, "spec"), "jobTemplate") : nullptr;
    const json* js = jt != nullptr ? Get(*jt, "spec") : nullptr;
    const json* t = js != nullptr ? Get(*js, "template") : nullptr;
    if (t != nullptr) spec = t->value("spec", json::object());
    target = &mutable_doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"];
  } else {
    return json();
  }
  if (meta_out != nullptr) *meta_out = target;
  return spec;
}

absl::StatusOr<json> ContainerRule(const json& c, const json& pod_spec, bool init,
                                   const std::vector<std::string>& after,
                                   const ImageConfigSource& images) {
  json rule = json::object();
  const std::string name = c.value("name", "");
  const std::string image = c.value("image", "");
  if (name.empty() || image.empty()) {
    return absl::InvalidArgumentError("a container without name or image");
  }
  ASSIGN_OR_RETURN(ImageConfig config, images(image));
  rule["name"] = name;
  rule["image"] = ImageRule(image);
  // Kubernetes: command replaces the entrypoint (and drops the image's Cmd),
  // args replace Cmd.
  std::vector<std::string> command = Strings(Get(c, "command"));
  std::vector<std::string> args = Strings(Get(c, "args"));
  std::vector<std::string> argv;
  if (Get(c, "command") != nullptr) {
    argv = command;
    argv.insert(argv.end(), args.begin(), args.end());
  } else {
    argv = config.entrypoint;
    const auto& tail = Get(c, "args") != nullptr ? args : config.cmd;
    argv.insert(argv.end(), tail.begin(), tail.end());
  }
  rule["args"] = argv;
  // Env: the image's, the container's (exact values; from a secret or a
  // field: any value of that name), what containerd and kubelet add.
  // containerd's own PATH too: `ctr run` without the image's config, and
  // containerd for an image that sets none, put it there.
  json env = json::array();
  for (const std::string& e : config.env) env.push_back(e);
  if (std::find(config.env.begin(), config.env.end(), kContainerdPath) == config.env.end()) {
    env.push_back(kContainerdPath);
  }
  if (const json* ce = Get(c, "env"); ce != nullptr && ce->is_array()) {
    for (const json& e : *ce) {
      const std::string k = e.value("name", "");
      if (k.empty()) continue;
      if (const json* v = Get(e, "value"); v != nullptr && v->is_string()) {
        env.push_back(absl::StrCat(k, "=", v->get<std::string>()));
      } else if (Get(e, "value") == nullptr && Get(e, "valueFrom") == nullptr) {
        env.push_back(absl::StrCat(k, "="));
      } else {
        env.push_back({{"regex", absl::StrCat(RegexEscape(k), "=.*")}});
      }
    }
  }
  env.push_back({{"regex", "HOSTNAME=[A-Za-z0-9.-]*"}});
  // Service links (enableServiceLinks) and the API server's address.
  env.push_back({{"regex", "KUBERNETES_(SERVICE|PORT)[A-Z0-9_]*=[A-Za-z0-9.:/_-]*"}});
  if (pod_spec.value("enableServiceLinks", true)) {
    env.push_back({{"regex", "[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT[A-Z0-9_]*|PORT[A-Z0-9_]*)=[A-Za-z0-9.:/_-]*"}});
  }
  rule["env"] = env;
  rule["env_deny"] = json::array({{{"regex", "(LD_PRELOAD|LD_LIBRARY_PATH|LD_AUDIT)=.*"}}});
  std::string wd = c.value("workingDir", "");
  if (wd.empty()) wd = config.working_dir;
  if (wd.empty()) wd = "/";
  rule["working_dir"] = wd;

  // securityContext: the pod's, then the container's.
  json user = json::object();
  json caps = json::array();
  bool privileged = false;
  for (const json* sc : {Get(pod_spec, "securityContext"), Get(c, "securityContext")}) {
    if (sc == nullptr) continue;
    if (const json* u = Get(*sc, "runAsUser"); u != nullptr && u->is_number_integer()) {
      user["uid"] = *u;
    }
    if (const json* g = Get(*sc, "runAsGroup"); g != nullptr && g->is_number_integer()) {
      user["gid"] = *g;
    }
    if (const json* p = Get(*sc, "privileged"); p != nullptr && p->is_boolean()) {
      privileged = p->get<bool>();
    }
    if (const json* cp = Get(*sc, "capabilities")) {
      for (std::string add : Strings(Get(*cp, "add"))) {
        if (add.rfind("CAP_", 0) != 0) add = absl::StrCat("CAP_", add);
        caps.push_back(add);
      }
    }
  }
  if (user.empty() && !config.user.empty()) {
    std::string u = config.user.substr(0, config.user.find(':'));
    if (!u.empty() && u.find_first_not_of("0123456789") == std::string::npos) {
      user["uid"] = std::stoul(u);
    }
  }
  if (!user.empty()) rule["user"] = user;
  if (privileged) rule["privileged"] = true;
  if (!caps.empty()) {
    json all = json(policy::StandardCapabilities());
    for (const json& cap : caps) all.push_back(cap);
    rule["capabilities"] = all;
  }
  if (const json* sc = Get(pod_spec, "securityContext")) {
    if (const json* sys = Get(*sc, "sysctls"); sys != nullptr && sys->is_array()) {
      json sysctls = json::object();
      for (const json& s : *sys) sysctls[s.value("name", "")] = s.value("value", "");
      rule["sysctls"] = sysctls;
    }
  }
  // Volumes: bound from kubelet's pod directory; the service-account token.
  json mounts = json::array();
  if (const json* vm = Get(c, "volumeMounts"); vm != nullptr && vm->is_array()) {
    for (const json& m : *vm) {
      json r = {{"destination", m.value("mountPath", "")},
                {"type", "bind"},
                {"source", {{"regex", "/.+/pods/[0-9a-f-]{36}/volume(s|-subpaths)/.+"}}}};
      if (m.value("readOnly", false)) r["required_options"] = json::array({"ro"});
      mounts.push_back(r);
    }
  }
  if (pod_spec.value("automountServiceAccountToken", true)) {
    mounts.push_back({{"destination", "/var/run/secrets/kubernetes.io/serviceaccount"},
                      {"type", "bind"},
                      {"source", {{"regex", "/.+/pods/[0-9a-f-]{36}/volumes/kubernetes\\.io~projected/.+"}}},
                      {"required_options", {"ro"}}});
  }
  if (!mounts.empty()) rule["mounts"] = mounts;
  // Exec: the kubelet's exec probes and lifecycle hooks, exactly.
  json exec = json::array();
  for (const char* probe : {"livenessProbe", "readinessProbe", "startupProbe"}) {
    const json* p = Get(c, probe);
    const json* e = p != nullptr ? Get(*p, "exec") : nullptr;
    if (e != nullptr && Get(*e, "command") != nullptr) {
      exec.push_back({{"argv", Strings(Get(*e, "command"))}, {"stdin", false}});
    }
  }
  if (const json* lc = Get(c, "lifecycle")) {
    for (const char* hook : {"postStart", "preStop"}) {
      const json* h = Get(*lc, hook);
      const json* e = h != nullptr ? Get(*h, "exec") : nullptr;
      if (e != nullptr && Get(*e, "command") != nullptr) {
        exec.push_back({{"argv", Strings(Get(*e, "command"))}, {"stdin", false}});
      }
    }
  }
  if (!exec.empty()) rule["exec"] = exec;
  rule["stdio"] = {{"read_output", true}, {"write_stdin", c.value("stdin", false)}};
  if (!after.empty()) rule["after"] = after;
  (void)init;
  return rule;
}

// The copies the shim makes of the pod's volumes (docs/cri.md "Volumes"):
// kubelet's plugin directory of each configMap, secret, downwardAPI and
// projected volume, by name, and the service-account token's projected
// volume (kube-api-access-<5 chars>). emptyDir needs none; hostPath gets
// none (the host would choose the content).
json CopyRules(const json& pod_spec) {
  constexpr uint64_t kMaxBytes = 1 << 20;  // kubelet's own limit for a configMap or secret
  const std::string root = "/run/cloak/sandbox/volumes/kubernetes\\.io~";
  json rules = json::array();
  if (const json* vols = Get(pod_spec, "volumes"); vols != nullptr && vols->is_array()) {
    for (const json& v : *vols) {
      const std::string name = v.value("name", "");
      if (name.empty()) continue;
      const char* kind = Get(v, "configMap") != nullptr     ? "configmap"
                         : Get(v, "secret") != nullptr      ? "secret"
                         : Get(v, "downwardAPI") != nullptr ? "downward-api"
                         : Get(v, "projected") != nullptr   ? "projected"
                                                            : nullptr;
      if (kind == nullptr) continue;
      rules.push_back({{"path", {{"regex", absl::StrCat(root, kind, "/", RegexEscape(name), "(/.+)?")}}},
                       {"max_bytes", kMaxBytes}});
    }
  }
  if (pod_spec.value("automountServiceAccountToken", true)) {
    rules.push_back(
        {{"path", {{"regex", absl::StrCat(root, "projected/kube-api-access-[a-z0-9]{5}(/.+)?")}}},
         {"max_bytes", kMaxBytes}});
  }
  return rules;
}

// The pod annotation kKbsFilesAnnotation (a JSON or YAML list of
// {"container", "resource", "path"}) → kbs_files of the named container
// rules. The agent never reads the annotation: it only tells `gen` what to
// write into the (measured) policy.
absl::Status AddKbsFiles(const std::string& workload, const json* annotations, json* containers) {
  const json* text = annotations != nullptr ? Get(*annotations, kKbsFilesAnnotation) : nullptr;
  if (text == nullptr) return absl::OkStatus();
  const std::string where = absl::StrCat(workload, ": annotation ", kKbsFilesAnnotation);
  if (!text->is_string()) return absl::InvalidArgumentError(absl::StrCat(where, " must be a string"));
  absl::StatusOr<std::vector<json>> docs = policy::YamlDocuments(text->get<std::string>());
  if (!docs.ok()) return Annotate(docs.status(), where);
  if (docs->size() != 1 || !(*docs)[0].is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, " must be a list of {container, resource, path} (resource: kbs:///repo/type/tag)"));
  }
  for (const json& e : (*docs)[0]) {
    const std::string name = e.is_object() ? e.value("container", "") : "";
    const std::string resource = e.is_object() ? e.value("resource", "") : "";
    const std::string path = e.is_object() ? e.value("path", "") : "";
    if (name.empty() || resource.empty() || path.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": an entry without container, resource or path: ", e.dump()));
    }
    json* rule = nullptr;
    for (json& c : *containers) {
      if (!c.value("sandbox", false) && c.value("name", "") == name) rule = &c;
    }
    if (rule == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": no container named \"", name, "\" in the pod"));
    }
    (*rule)["kbs_files"].push_back({{"resource", resource}, {"path", path}});
  }
  return absl::OkStatus();
}

absl::StatusOr<json> PolicyForPod(const std::string& workload, const json& pod_spec,
                                  const json* annotations, const ImageConfigSource& images) {
  json containers = json::array();
  containers.push_back({{"name", "*"}, {"sandbox", true}});
  std::vector<std::string> done;
  if (const json* ic = Get(pod_spec, "initContainers"); ic != nullptr && ic->is_array()) {
    for (const json& c : *ic) {
      absl::StatusOr<json> r = ContainerRule(c, pod_spec, true, done, images);
      if (!r.ok()) return Annotate(r.status(), absl::StrCat(workload, " init container"));
      containers.push_back(*r);
      done.push_back(c.value("name", ""));
    }
  }
  const json* cs = Get(pod_spec, "containers");
  if (cs == nullptr || !cs->is_array() || cs->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(workload, ": no containers"));
  }
  for (const json& c : *cs) {
    absl::StatusOr<json> r = ContainerRule(c, pod_spec, false, done, images);
    if (!r.ok()) return Annotate(r.status(), absl::StrCat(workload, " container"));
    containers.push_back(*r);
  }
  RETURN_IF_ERROR(AddKbsFiles(workload, annotations, &containers));
  json out = {{"version", "1"},
              {"description", absl::StrCat("generated by cloak policy gen for ", workload)},
              {"containers", containers}};
  json copies = CopyRules(pod_spec);
  if (!copies.empty()) out["copy_files"] = copies;
  return out;
}

std::string TomlString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppend(&out, "\\u00", absl::BytesToHexString(std::string(1, c)));
        } else {
          out.push_back(c);
        }
    }
  }
  return out + "\"";
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::unique_ptr<google::protobuf::Message>> RequestMessage(
    const std::string& rpc, const json& body, bool response) {
  const google::protobuf::ServiceDescriptor* service =
      v1::CreateContainerRequest::descriptor()->file()->FindServiceByName("AgentService");
  const google::protobuf::MethodDescriptor* m =
      service != nullptr ? service->FindMethodByName(rpc) : nullptr;
  if (m == nullptr) return absl::InvalidArgumentError(absl::StrCat("\"", rpc, "\" is not an agent RPC"));
  const google::protobuf::Descriptor* d = response ? m->output_type() : m->input_type();
  std::unique_ptr<google::protobuf::Message> msg(
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(d)->New());
  auto s = google::protobuf::util::JsonStringToMessage(body.is_null() ? "{}" : body.dump(), msg.get());
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(rpc, response ? " response" : " request",
                                                   ": ", std::string(s.message())));
  }
  return msg;
}

}  // namespace

absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("image config is not a JSON object");
  }
  const json* c = Get(j, "config");
  ImageConfig out;
  if (c == nullptr) return out;
  out.entrypoint = Strings(Get(*c, "Entrypoint"));
  out.cmd = Strings(Get(*c, "Cmd"));
  out.env = Strings(Get(*c, "Env"));
  out.working_dir = c->value("WorkingDir", "");
  out.user = c->value("User", "");
  return out;
}

absl::StatusOr<std::vector<GeneratedPolicy>> GeneratePolicies(absl::string_view yaml_text,
                                                              const ImageConfigSource& images) {
  ASSIGN_OR_RETURN(std::vector<json> docs, policy::YamlDocuments(yaml_text));
  std::vector<GeneratedPolicy> out;
  for (size_t i = 0; i < docs.size(); ++i) {
    std::string kind, name;
    json scratch = docs[i];
    json* meta = nullptr;
    json pod = PodSpecOf(docs[i], &kind, &name, &meta, scratch);
    if (pod.is_null()) continue;  // a Service, a ConfigMap...
    std::string workload = absl::StrCat(kind, "/", name);
    const json* annotations = meta != nullptr ? Get(*meta, "annotations") : nullptr;
    ASSIGN_OR_RETURN(json p, PolicyForPod(workload, pod, annotations, images));
    absl::StatusOr<policy::Policy> check = policy::ParsePolicyJson(p);
    if (!check.ok()) return Annotate(check.status(), absl::StrCat(workload, ": generated policy"));
    out.push_back({workload, std::move(p)});
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(
        "no Pod, Deployment, StatefulSet, DaemonSet, Job or CronJob in the input");
  }
  return out;
}

std::string InitDataWithPolicy(const json& policy, const InitDataOptions& options) {
  std::string doc = "version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\n";
  if (!options.kbs_url.empty()) absl::StrAppend(&doc, "kbs_url = ", TomlString(options.kbs_url), "\n");
  if (!options.image_keys.empty()) {
    std::vector<std::string> keys;
    for (const std::string& k : options.image_keys) keys.push_back(TomlString(k));
    absl::StrAppend(&doc, "image_keys = [", absl::StrJoin(keys, ", "), "]\n");
  }
  absl::StrAppend(&doc, "\"policy.json\" = ", TomlString(policy.dump()), "\n");
  return doc;
}

absl::StatusOr<std::string> AnnotateWorkloads(absl::string_view yaml_text,
                                              const std::vector<GeneratedPolicy>& policies,
                                              const InitDataOptions& options) {
  ASSIGN_OR_RETURN(std::vector<json> docs, policy::YamlDocuments(yaml_text));
  std::string out;
  size_t next = 0;
  for (json& doc : docs) {
    std::string kind, name;
    json* meta = nullptr;
    json copy = doc;
    json pod = PodSpecOf(copy, &kind, &name, &meta, doc);
    if (!pod.is_null()) {
      if (next >= policies.size()) return absl::InternalError("fewer policies than workloads");
      (*meta)["annotations"][kInitDataAnnotation] =
          absl::Base64Escape(InitDataWithPolicy(policies[next++].policy, options));
    }
    if (!out.empty()) out += "---\n";
    out += policy::ToYaml(doc);
  }
  return out;
}

absl::StatusOr<policy::Decision> TestRecordedRequest(const policy::Policy& p,
                                                     absl::string_view request_json) {
  json r = json::parse(request_json.begin(), request_json.end(), nullptr, false);
  if (r.is_discarded() || !r.is_object()) {
    return absl::InvalidArgumentError("the request file is not a JSON object");
  }
  policy::Engine engine(p);
  policy::PodState state;
  if (const json* h = Get(r, "history"); h != nullptr) {
    if (!h->is_array()) return absl::InvalidArgumentError("history must be an array");
    for (size_t i = 0; i < h->size(); ++i) {
      const json& call = (*h)[i];
      const std::string rpc = call.value("rpc", "");
      ASSIGN_OR_RETURN(auto req, RequestMessage(rpc, call.value("request", json()), false));
      std::unique_ptr<google::protobuf::Message> resp;
      if (Get(call, "response") != nullptr) {
        ASSIGN_OR_RETURN(resp, RequestMessage(rpc, call["response"], true));
      }
      policy::Decision d = engine.Check(rpc, *req, state);
      if (!d.allow) {
        return absl::FailedPreconditionError(
            absl::StrCat("history[", i, "] (", rpc, ") is itself denied: ", d.reason));
      }
      engine.Record(rpc, *req, resp.get(), &state);
    }
  }
  const std::string rpc = r.value("rpc", "");
  ASSIGN_OR_RETURN(auto req, RequestMessage(rpc, r.value("request", json()), false));
  return engine.Check(rpc, *req, state);
}

ImageConfigSource SkopeoImageConfig(bool tls_verify) {
  return [tls_verify](const std::string& image) -> absl::StatusOr<ImageConfig> {
    ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("cloak-policy-gen-"));
    SpawnOptions o;
    o.stdout_path = dir.Join("config.json");
    o.stderr_path = dir.Join("stderr");
    std::string ref = image.find("://") == std::string::npos ? absl::StrCat("docker://", image) : image;
    ASSIGN_OR_RETURN(Subprocess p,
                     Subprocess::Spawn({"skopeo", "inspect", "--config",
                                        absl::StrCat("--tls-verify=", tls_verify ? "true" : "false"),
                                        ref},
                                       o));
    ASSIGN_OR_RETURN(ExitInfo exit, p.Wait(absl::Seconds(120)));
    if (exit.exit_code != 0) {
      absl::StatusOr<std::string> err = ReadFile(dir.Join("stderr"));
      return absl::UnavailableError(absl::StrCat("skopeo inspect --config ", ref, ": ",
                                                 err.ok() ? *err : "failed"));
    }
    ASSIGN_OR_RETURN(std::string text, ReadFile(dir.Join("config.json")));
    return ParseImageConfig(text);
  };
}

int RunPolicyGen(const std::vector<std::string>& inputs, const std::string& output,
                 const std::string& annotate, const std::string& initdata_out,
                 const InitDataOptions& initdata, bool tls_verify,
                 const SignatureGenOptions& signatures) {
  auto fail = [](const absl::Status& s) {
    std::cerr << "cloak policy gen: " << s.message() << "\n";
    return 1;
  };
  ImageConfigSource images = SkopeoImageConfig(tls_verify);
  std::string all;
  for (const std::string& in : inputs) {
    absl::StatusOr<std::string> text = in == "-" ? [] {
      std::stringstream ss;
      ss << std::cin.rdbuf();
      return absl::StatusOr<std::string>(ss.str());
    }()
                                                 : ReadFile(in);
    if (!text.ok()) return fail(text.status());
    if (!all.empty()) all += "\n---\n";
    all += *text;
  }
  absl::StatusOr<std::vector<GeneratedPolicy>> policies = GeneratePolicies(all, images);
  if (!policies.ok()) return fail(policies.status());
  if (!signatures.empty()) {
    absl::StatusOr<json> rules = ImageSignaturesFromFlags(signatures);
    if (!rules.ok()) return fail(rules.status());
    for (GeneratedPolicy& g : *policies) g.policy["image_signatures"] = *rules;
  }
  json result;
  if (policies->size() == 1) {
    result = (*policies)[0].policy;
  } else {
    result = json::object();
    for (const GeneratedPolicy& g : *policies) result[g.workload] = g.policy;
  }
  // kbs_files need a key broker in the init-data (docs/policy.md).
  if ((!initdata_out.empty() || !annotate.empty()) && initdata.kbs_url.empty()) {
    for (const GeneratedPolicy& g : *policies) {
      for (const json& c : g.policy.value("containers", json::array())) {
        if (c.contains("kbs_files")) {
          std::cerr << "cloak policy gen: warning: " << g.workload << " container \""
                    << c.value("name", "") << "\" has kbs_files, but no --kbs-url was given: "
                    << "its containers will fail to get them\n";
        }
      }
    }
  }
  std::string text = result.dump(2) + "\n";
  if (output.empty() || output == "-") {
    std::cout << text;
  } else {
    std::ofstream(output) << text;
  }
  if (!initdata_out.empty()) {
    if (policies->size() != 1) {
      return fail(absl::InvalidArgumentError(absl::StrCat(
          "--initdata needs exactly one workload, the input has ", policies->size())));
    }
    std::ofstream(initdata_out) << InitDataWithPolicy((*policies)[0].policy, initdata);
  }
  if (!annotate.empty()) {
    absl::StatusOr<std::string> annotated = AnnotateWorkloads(all, *policies, initdata);
    if (!annotated.ok()) return fail(annotated.status());
    if (annotate == "-") {
      std::cout << *annotated;
    } else {
      std::ofstream(annotate) << *annotated;
      std::cerr << "wrote " << annotate << " (" << policies->size() << " workload(s) annotated with "
                << kInitDataAnnotation << ")\n";
    }
  }
  return 0;
}

int RunPolicyExplain(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) {
    std::cerr << "cloak policy explain: " << text.status().message() << "\n";
    return 1;
  }
  absl::StatusOr<policy::Policy> p = policy::ParsePolicy(*text);
  if (!p.ok()) {
    std::cerr << "cloak policy explain: " << path << ": " << p.status().message() << "\n";
    return 1;
  }
  std::cout << policy::Explain(*p);
  return 0;
}

int RunPolicyTest(const std::string& policy_path, const std::string& request_path) {
  absl::StatusOr<std::string> ptext = ReadFile(policy_path);
  absl::StatusOr<std::string> rtext = ReadFile(request_path);
  if (!ptext.ok() || !rtext.ok()) {
    std::cerr << "cloak policy test: "
              << (!ptext.ok() ? ptext.status().message() : rtext.status().message()) << "\n";
    return 1;
  }
  absl::StatusOr<policy::Policy> p = policy::ParsePolicy(*ptext);
  if (!p.ok()) {
    std::cerr << "cloak policy test: " << policy_path << ": " << p.status().message() << "\n";
    return 1;
  }
  absl::StatusOr<policy::Decision> d = TestRecordedRequest(*p, *rtext);
  if (!d.ok()) {
    std::cerr << "cloak policy test: " << request_path << ": " << d.status().message() << "\n";
    return 1;
  }
  if (d->allow) {
    std::cout << "allowed\n";
    return 0;
  }
  std::cout << "denied: " << d->reason << "\n";
  return 3;
}

}  // namespace cloak::cli
