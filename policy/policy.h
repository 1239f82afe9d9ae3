// The agent policy document (docs/policy.md): what the host may ask of a
// confidential pod's agent. Parsed from JSON (or YAML, converted to the same
// JSON tree) into the structures below; evaluated by policy/engine.h.
// Pure: parsing only, no I/O.
#ifndef CLOAK_POLICY_POLICY_H_
#define CLOAK_POLICY_POLICY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "policy/image_signatures.h"

namespace re2 {
class RE2;
}

namespace cloak::policy {

inline constexpr char kPolicyVersion[] = "1";
// The init-data [data] key that carries the policy (docs/policy.md).
inline constexpr char kInitDataPolicyKey[] = "policy.json";
// Largest policy document accepted.
inline constexpr size_t kMaxPolicyBytes = 1 << 20;
// Most kbs_files one container rule may name.
inline constexpr size_t kMaxKbsFiles = 32;

// A string rule: the exact text, or {"regex": "..."} matched against the
// whole value (RE2, anchored at both ends).
class StringMatch {
 public:
  static StringMatch Exact(std::string s);
  static absl::StatusOr<StringMatch> Regex(std::string pattern);
  // JSON: "text" or {"regex": "..."}; `field` names the key in errors.
  static absl::StatusOr<StringMatch> FromJson(const nlohmann::json& j, absl::string_view field);

  bool Matches(absl::string_view value) const;
  bool is_regex() const { return regex_ != nullptr; }
  const std::string& text() const { return text_; }
  // "\"/bin/sh\"" or "regex /bin/.*/".
  std::string Describe() const;
  nlohmann::json ToJson() const;

 private:
  std::string text_;  // the exact value, or the pattern
  std::shared_ptr<const re2::RE2> regex_;
};

enum class RpcAction { kAllow, kDeny };

struct MountRule {
  StringMatch destination;
  std::optional<StringMatch> type;    // unset: any type
  std::optional<StringMatch> source;  // unset: any source
  // Unset: any options. Set: every option of the mount must be listed.
  std::optional<std::vector<std::string>> options_allowed;
  // Options the mount must carry (e.g. "ro").
  std::vector<std::string> options_required;
};

struct ExecRule {
  // Exact length; element i must match argv[i].
  std::vector<StringMatch> argv;
  // The exec'd process may read stdin (kubectl exec -i).
  bool stdin = true;
};

struct UserRule {
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  // Unset: any; set: every additional gid must be listed.
  std::optional<std::vector<uint32_t>> additional_gids;
};

// A key broker resource the agent fetches after attestation and mounts into
// the container as a read-only file (docs/policy.md "kbs_files"): the
// secret never passes through the host.
struct KbsFileRule {
  std::string resource;  // "repo/type/tag" (common/tee/resource_path.h)
  std::string path;      // absolute, clean path in the container
};

struct ImageRule {
  // Either may be set; both set: both must hold.
  std::optional<StringMatch> reference;
  // "sha256:<hex>": the pulled manifest's digest must equal it (and a
  // reference pinned by digest must name it).
  std::string digest;
};

// What one container of the pod may be (docs/policy.md "containers").
struct ContainerRule {
  // The container's name (CRI annotation io.kubernetes.cri.container-name,
  // else the container id), or "*" for any name.
  std::string name;
  // Rule for the pod's sandbox (pause) container.
  bool sandbox = false;
  std::optional<ImageRule> image;              // unset: any image
  std::optional<std::vector<StringMatch>> args;  // unset: any args
  std::optional<std::vector<StringMatch>> env;   // unset: any env (env_deny still applies)
  std::vector<StringMatch> env_deny;
  std::optional<StringMatch> working_dir;
  std::optional<UserRule> user;
  std::vector<MountRule> mounts;
  std::vector<std::string> capabilities;
  bool privileged = false;
  std::vector<std::string> namespaces;
  std::map<std::string, StringMatch> sysctls;
  std::vector<std::string> masked_paths;    // must all be masked
  std::vector<std::string> readonly_paths;  // must all be read-only
  // Runtime-interpreted annotations (kRuntimeAnnotationPrefixes) allowed,
  // with the values they may take. Other annotations are free.
  std::map<std::string, StringMatch> annotations;
  // The spec must carry a seccomp profile whose default action is not
  // SCMP_ACT_ALLOW.
  bool seccomp_required = false;
  std::vector<ExecRule> exec;
  bool read_output = true;
  bool write_stdin = false;
  // Stateful: containers (by name) that must have exited 0 before this one
  // is created or started (init containers).
  std::vector<std::string> after;
  // Stateful: how many containers of this rule may exist at once; 0 means
  // no limit.
  uint32_t max_instances = 1;
  // Key broker resources mounted as files into the container.
  std::vector<KbsFileRule> kbs_files;
};

struct CopyRule {
  StringMatch path;
  uint64_t max_bytes = 0;
};

struct Policy {
  std::string version = kPolicyVersion;
  // Free text shown by `cloak policy explain` and in the agent's log.
  std::string description;
  // Per-RPC allow/deny; an RPC not listed is allowed (SetPolicy: denied).
  std::map<std::string, RpcAction> rpcs;
  std::vector<ContainerRule> containers;
  // Stateful: once a container name was created with an image, later
  // containers of that name must use the same image.
  bool pin_images = true;
  std::vector<CopyRule> copy_files;
  // Signatures the guest requires of the images it pulls ("image_signatures",
  // docs/policy.md "Image signatures"); null: none required.
  std::shared_ptr<const ImageSignaturePolicy> image_signatures;
  // True for the policy compiled into the agent.
  bool builtin_default = false;
  // The document as parsed (canonical JSON), for explain and logs.
  nlohmann::json source;
};

// Every agent RPC the policy can name (the AgentService methods).
const std::vector<std::string>& AgentRpcNames();
// Annotation key prefixes a runtime (crun) or the agent interprets.
const std::vector<std::string>& RuntimeAnnotationPrefixes();

// Parses a policy from JSON, or from YAML when the text is not JSON.
// InvalidArgument naming the key at fault ("containers[1].args[0]: ...").
// Unknown keys are errors: a typo must not silently allow more.
absl::StatusOr<Policy> ParsePolicy(absl::string_view text);
absl::StatusOr<Policy> ParsePolicyJson(const nlohmann::json& doc);

// YAML text → the same JSON tree (tests, `cloak policy`).
absl::StatusOr<nlohmann::json> YamlToJson(absl::string_view text);

// The built-in default (docs/policy.md "Default policy"): the pod may run
// as created; no exec, no stdin writes, no image change after create, no
// SetPolicy.
const Policy& DefaultPolicy();
const char* DefaultPolicyJson();

// The default per-container field rules used when a container rule does not
// set them: containerd's and CRI's standard mounts, the default
// capabilities, the standard namespaces, the masked and read-only paths.
std::vector<MountRule> StandardMounts();
const std::vector<std::string>& StandardCapabilities();
const std::vector<std::string>& StandardNamespaces();
const std::vector<std::string>& RequiredMaskedPaths();
const std::vector<std::string>& RequiredReadonlyPaths();

// Plain words: what `policy` allows (cloak policy explain).
std::string Explain(const Policy& policy);

}  // namespace cloak::policy

#endif  // CLOAK_POLICY_POLICY_H_
