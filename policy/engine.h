// Evaluating agent requests against a Policy (docs/policy.md). The Engine is
// pure: Check() reads the request and a PodState and answers allow or deny
// with a reason; the agent applies Record() to its PodState once a call has
// succeeded, which is how the stateful rules (container set, count and
// order, image pinning, allowed exec ids) see the pod's history.
#ifndef CLOAK_POLICY_ENGINE_H_
#define CLOAK_POLICY_ENGINE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "cloak/agent/v1/agent.pb.h"
#include "google/protobuf/message.h"
#include "policy/policy.h"

namespace cloak::policy {

struct Decision {
  bool allow = false;
  // On a deny: "policy: <what> denied: <rule and field>" — what the host
  // sees. Never carries secrets: only values the host sent and the policy
  // (which the host holds too).
  std::string reason;

  static Decision Allow() { return {true, ""}; }
  static Decision Deny(std::string reason) { return {false, std::move(reason)}; }
};

// What the agent has seen of the pod, in the order it happened.
struct PodState {
  struct Container {
    std::string name;
    bool sandbox = false;
    std::string image;
    bool started = false;
    bool exited = false;
    int32_t exit_status = 0;
    // Exec ids allowed by an exec rule → whether that rule lets stdin in;
    // the newest kMaxExecsRemembered, oldest first in exec_order.
    std::map<std::string, bool> execs;
    std::deque<std::string> exec_order;
  };
  // Probes exec every few seconds for the life of a pod: the state keeps
  // only the latest ones.
  static constexpr size_t kMaxExecsRemembered = 1024;
  // By container id.
  std::map<std::string, Container> containers;
  // Container name → the image it was first created with (pin_images).
  std::map<std::string, std::string> pinned_images;
  // Names of containers that exited 0 at some point (init containers are
  // removed after they finish; their success is remembered).
  std::set<std::string> succeeded;
};

// The container name a CreateContainer request claims: the CRI annotation
// io.kubernetes.cri.container-name of its spec, else its container id.
std::string ContainerName(const agent::v1::CreateContainerRequest& request);

class Engine {
 public:
  explicit Engine(Policy policy) : policy_(std::move(policy)) {}

  const Policy& policy() const { return policy_; }

  // Pure. `rpc` is the bare method name ("ExecProcess"); `request` the
  // message as received.
  Decision Check(absl::string_view rpc, const google::protobuf::Message& request,
                 const PodState& state) const;

  // After the guest pulled the image: the manifest digest it verified must
  // be the one the container's rule pins.
  Decision CheckPulledImage(const agent::v1::CreateContainerRequest& request,
                            absl::string_view manifest_digest, const PodState& state) const;

  // The key broker files (rule "kbs_files") of the container rule a
  // CreateContainer request matches; empty when it matches none. Pure.
  std::vector<KbsFileRule> KbsFiles(const agent::v1::CreateContainerRequest& request) const;

  // A file copy into the guest (rule "copy_files").
  Decision CheckCopyFile(absl::string_view path, uint64_t size) const;
  // A CopyFile request: the path must be a clean absolute path under the
  // guest volume root (common/volumes.h), a symlink's target must stay in
  // its volume, and the path and size must satisfy a copy_files rule.
  Decision CheckCopy(const agent::v1::CopyFileRequest& req) const;

  // Applies a call that succeeded (response may be null) to `state`.
  void Record(absl::string_view rpc, const google::protobuf::Message& request,
              const google::protobuf::Message* response, PodState* state) const;

 private:
  Decision CheckRpc(absl::string_view rpc) const;
  Decision CheckCreate(const agent::v1::CreateContainerRequest& req, const PodState& state) const;
  Decision CheckStart(const agent::v1::StartContainerRequest& req, const PodState& state) const;
  Decision CheckExec(const agent::v1::ExecProcessRequest& req, const PodState& state) const;
  Decision CheckReadOutput(const agent::v1::ReadOutputRequest& req, const PodState& state) const;
  Decision CheckWriteStdin(const std::string& container_id, const std::string& exec_id,
                           const PodState& state) const;
  const ContainerRule* FindRule(const std::string& name, bool sandbox) const;
  // The exec rule `process_json` satisfies, or a deny.
  Decision MatchExec(const ContainerRule& rule, const std::string& name,
                     const std::string& process_json, const ExecRule** matched) const;
  std::string Suffix() const;

  Policy policy_;
};

}  // namespace cloak::policy

#endif  // CLOAK_POLICY_ENGINE_H_
