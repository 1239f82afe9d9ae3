// `cloak policy gen|explain|test` (docs/policy.md): the pure cores. `gen`
// turns Kubernetes workloads (Pod, Deployment, StatefulSet, DaemonSet, Job,
// CronJob; multi-document YAML) plus each image's config into an agent
// policy and the init-data that carries it; `test` replays a recorded agent
// request (with the calls before it) against a policy.
#ifndef CLOAK_CLI_CLOAK_POLICY_CMD_H_
#define CLOAK_CLI_CLOAK_POLICY_CMD_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cli/cloak/policy_signatures.h"
#include "nlohmann/json.hpp"
#include "policy/engine.h"

namespace cloak::cli {

inline constexpr char kInitDataAnnotation[] = "io.cloak.initdata";
// Pod (template) annotation read by `gen` only: key broker resources to
// mount as files, a JSON or YAML list of
// {"container": name, "resource": "kbs:///repo/type/tag", "path": "/abs/path"}
// (docs/policy.md "kbs_files").
inline constexpr char kKbsFilesAnnotation[] = "io.cloak.kbs-files";

// The parts of an OCI image config `gen` needs (skopeo inspect --config).
struct ImageConfig {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string working_dir;
  std::string user;
};
// Parses `skopeo inspect --config` output (an OCI image config).
absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view json_text);

using ImageConfigSource = std::function<absl::StatusOr<ImageConfig>(const std::string& image)>;

// Reads an image's config from its registry with `skopeo inspect --config`.
ImageConfigSource SkopeoImageConfig(bool tls_verify);

// One workload found in the YAML: its kind/name and its generated policy.
struct GeneratedPolicy {
  std::string workload;  // "Deployment/web"
  nlohmann::json policy;
};

// Pure: every workload of `yaml_text` (multi-document) → its policy.
// InvalidArgument naming the document for YAML that is not a workload list.
absl::StatusOr<std::vector<GeneratedPolicy>> GeneratePolicies(absl::string_view yaml_text,
                                                              const ImageConfigSource& images);

struct InitDataOptions {
  std::string kbs_url;
  std::vector<std::string> image_keys;
};
// The init-data TOML (agent/attest/initdata.h) whose [data] "policy.json"
// is `policy`.
std::string InitDataWithPolicy(const nlohmann::json& policy, const InitDataOptions& options);

// `yaml_text` with each workload's pod template annotated with
// io.cloak.initdata = base64(init-data of its policy).
absl::StatusOr<std::string> AnnotateWorkloads(absl::string_view yaml_text,
                                              const std::vector<GeneratedPolicy>& policies,
                                              const InitDataOptions& options);

// A recorded request: {"rpc": "...", "request": {proto JSON}, "history":
// [{"rpc", "request", "response"}...]}. The history is replayed (each call
// must be allowed) before the request is decided.
absl::StatusOr<policy::Decision> TestRecordedRequest(const policy::Policy& policy,
                                                     absl::string_view request_json);

// Command entry points (flags parsed by cli.cc). Exit codes: 0 allowed /
// done, 1 error, 3 (test) denied.
int RunPolicyGen(const std::vector<std::string>& inputs, const std::string& output,
                 const std::string& annotate, const std::string& initdata_out,
                 const InitDataOptions& initdata, bool tls_verify,
                 const SignatureGenOptions& signatures = {});
int RunPolicyExplain(const std::string& path);
int RunPolicyTest(const std::string& policy_path, const std::string& request_path);

}  // namespace cloak::cli

#endif  // CLOAK_CLI_CLOAK_POLICY_CMD_H_
