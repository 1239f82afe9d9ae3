// Key-release policy: which attested guests may receive a resource.
//
// A policy is a JSON document (docs/kbs.md):
//   {
//     "allowed_tees": ["snp", "tdx"],        // "sample" only if listed
//     "allow_debug": false,                  // debug guests refused by default
//     "allow_unverified": false,             // evidence whose signature was not checked
//     "reference_values": {"measurement": ["<hex>", ...], "mrtd": [...], ...},
//     "init_data_digests": ["<hex>", ...]
//   }
// Unknown keys are refused so a typo cannot silently weaken a policy.
#ifndef CLOAK_KBS_POLICY_H_
#define CLOAK_KBS_POLICY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kbs/verify/claims.h"
#include "nlohmann/json.hpp"

namespace cloak::kbs {

struct ResourcePolicy {
  std::vector<std::string> allowed_tees = {kTeeSnp, kTeeTdx};
  bool allow_unverified = false;
  // Holds measurements, init-data digests and allow_debug.
  ReferenceValues reference;

  nlohmann::json ToJson() const;
};

// InvalidArgument naming the offending key or value.
absl::StatusOr<ResourcePolicy> ParseResourcePolicy(absl::string_view json_text);

// A decision with its reason, both for allow and deny.
struct PolicyDecision {
  bool allowed = false;
  std::string reason;
};

PolicyDecision EvaluatePolicy(const ResourcePolicy& policy, const Claims& claims);

}  // namespace cloak::kbs

#endif  // CLOAK_KBS_POLICY_H_
