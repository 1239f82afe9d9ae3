// The one policy decision point of the agent: every RPC is put to a
// PolicyEngine before anything else happens, and a deny carries its reason
// back to the host as PermissionDenied (docs/policy.md).
#ifndef CLOAK_AGENT_POLICY_H_
#define CLOAK_AGENT_POLICY_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/message.h"
#include "policy/engine.h"

namespace cloak::agent {

struct PolicyDecision {
  bool allow = false;
  // Why: shown to the host on a deny and logged either way. Must not carry
  // secrets.
  std::string reason;

  static PolicyDecision Allow(std::string reason = "") { return {true, std::move(reason)}; }
  static PolicyDecision Deny(std::string reason) { return {false, std::move(reason)}; }
};

// Contract: Decide() is called concurrently from the RPC threads, with the
// bare RPC name ("CreateContainer") and the request exactly as received
// (before any validation). It must not block for long and must not throw.
// Observe() follows every call that succeeded, with its response (null for
// streams), so that a stateful policy sees the pod's history.
class PolicyEngine {
 public:
  virtual ~PolicyEngine() = default;
  virtual PolicyDecision Decide(absl::string_view rpc_name,
                                const google::protobuf::Message& request) = 0;
  virtual void Observe(absl::string_view /*rpc_name*/, const google::protobuf::Message& /*request*/,
                       const google::protobuf::Message* /*response*/) {}
  // After CreateContainer pulled the image: the digest the guest verified.
  virtual PolicyDecision CheckPulledImage(const v1::CreateContainerRequest& /*request*/,
                                          absl::string_view /*manifest_digest*/) {
    return PolicyDecision::Allow();
  }
  // The image signature rules in force (policy "image_signatures"), for the
  // image puller; null: no signature is required.
  virtual std::shared_ptr<const policy::ImageSignaturePolicy> ImageSignatures() { return nullptr; }
  // The key broker files the policy mounts into the container a
  // CreateContainer request makes (docs/policy.md "kbs_files"), once Decide
  // allowed it.
  virtual std::vector<policy::KbsFileRule> KbsFiles(const v1::CreateContainerRequest& /*request*/) {
    return {};
  }
  // SetPolicy, once Decide allowed it: replaces the policy in force.
  virtual absl::Status Replace(absl::string_view /*document*/) {
    return absl::FailedPreconditionError("this policy engine cannot be replaced");
  }
  // One line for the start-up log and GetGuestDetails.
  virtual std::string Describe() const = 0;
};

// Allows every request. Only when the runtime class asks for it through the
// measured kernel command line (cloak.policy=allow-all), and in tests.
class AllowAllPolicy final : public PolicyEngine {
 public:
  PolicyDecision Decide(absl::string_view rpc_name,
                        const google::protobuf::Message& request) override;
  std::string Describe() const override {
    return "ALLOW-ALL (runtime class opted out of the agent policy: the host may do anything)";
  }
};

// Reads the policy in a pod's init-data (the [data] key "policy.json").
// nullopt when the init-data is empty or carries no policy.
absl::StatusOr<std::optional<std::string>> PolicyFromInitData(absl::string_view initdata);

// The measured policy: the built-in default until CreateSandbox, then the
// policy the pod's init-data carries (or the default when it carries none).
// Thread-safe.
class MeasuredPolicy final : public PolicyEngine {
 public:
  MeasuredPolicy();

  PolicyDecision Decide(absl::string_view rpc_name,
                        const google::protobuf::Message& request) override;
  void Observe(absl::string_view rpc_name, const google::protobuf::Message& request,
               const google::protobuf::Message* response) override;
  PolicyDecision CheckPulledImage(const v1::CreateContainerRequest& request,
                                  absl::string_view manifest_digest) override;
  std::shared_ptr<const policy::ImageSignaturePolicy> ImageSignatures() override;
  std::vector<policy::KbsFileRule> KbsFiles(const v1::CreateContainerRequest& request) override;
  absl::Status Replace(absl::string_view document) override;
  std::string Describe() const override;

 private:
  // Loads the init-data's policy at the first CreateSandbox.
  absl::Status LoadFromInitData(absl::string_view initdata) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::unique_ptr<policy::Engine> engine_ ABSL_GUARDED_BY(mu_);
  policy::PodState state_ ABSL_GUARDED_BY(mu_);
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  std::string origin_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_POLICY_H_
