#include "agent/policy.h"

namespace cloak::agent {

PolicyDecision AllowAllPolicy::Decide(absl::string_view /*rpc_name*/,
                                      const google::protobuf::Message& /*request*/) {
  return PolicyDecision::Allow("allow-all policy");
}

}  // namespace cloak::agent
