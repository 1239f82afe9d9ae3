// The one policy decision point of the agent: every RPC is put to a
// PolicyEngine before anything else happens, and a deny carries its reason
// back to the host as PermissionDenied.
#ifndef CLOAK_AGENT_POLICY_H_
#define CLOAK_AGENT_POLICY_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

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
class PolicyEngine {
 public:
  virtual ~PolicyEngine() = default;
  virtual PolicyDecision Decide(absl::string_view rpc_name,
                                const google::protobuf::Message& request) = 0;
  // One line for the start-up log.
  virtual std::string Describe() const = 0;
};

// Allows every request. The default until a policy is configured.
class AllowAllPolicy final : public PolicyEngine {
 public:
  PolicyDecision Decide(absl::string_view rpc_name,
                        const google::protobuf::Message& request) override;
  std::string Describe() const override { return "allow-all (no policy configured)"; }
};

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_POLICY_H_
