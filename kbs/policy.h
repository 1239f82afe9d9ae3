// Key-release policy: which attested guests may receive a resource.
//
// A policy is a JSON document (docs/kbs.md):
//   {
//     "allowed_tees": ["snp", "tdx"],        // "sample" only if listed
//     "allow_debug": false,                  // debug guests refused by default
//     "allow_unverified": false,             // evidence whose signature was not checked
//     "reference_values": {"measurement": ["<hex>", ...], "mrtd": [...], ...},
//     "init_data_digests": ["<hex>", ...],
//     "allow_any_launch": false,             // SNP/TDX without a pinned launch
//     "allow_simulated": false,              // the simulated SP's TEST chain
//     "snp_vmpl": 0,                         // required VMPL of the report
//     "snp_min_tcb": {"milan": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}},
//     "snp_policy": {"smt": false, "migrate_ma": false, "single_socket": true},
//     "tdx_allowed_tcb_status": ["UpToDate", "SWHardeningNeeded"]
//   }
// Unknown keys are refused so a typo cannot silently weaken a policy. A
// policy that allows snp or tdx must pin the launch (a measurement reference
// value of that TEE, or an init-data digest) or say "allow_any_launch": true:
// otherwise any genuine guest, whatever the host booted, would get the key.
#ifndef CLOAK_KBS_POLICY_H_
#define CLOAK_KBS_POLICY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kbs/verify/claims.h"
#include "nlohmann/json.hpp"

namespace cloak::kbs {

// SNP guest POLICY bits a resource policy can require (FACTS of the report
// layout in docs/attestation.md): bit 16 SMT allowed, 18 migration agent
// allowed, 20 single socket required.
inline constexpr uint64_t kSnpPolicySmtBit = 1ull << 16;
inline constexpr uint64_t kSnpPolicyMigrateMaBit = 1ull << 18;
inline constexpr uint64_t kSnpPolicySingleSocketBit = 1ull << 20;

struct SnpTcbFloor {
  uint32_t bootloader = 0, tee = 0, snp = 0, microcode = 0, fmc = 0;
};

struct ResourcePolicy {
  std::vector<std::string> allowed_tees = {kTeeSnp, kTeeTdx};
  bool allow_unverified = false;
  bool allow_any_launch = false;
  bool allow_simulated = false;
  uint32_t snp_vmpl = 0;
  // Product ("milan", "genoa", "turin") → minimum REPORTED_TCB. A product
  // without an entry: every component at least 0 (docs/kbs.md says why).
  std::map<std::string, SnpTcbFloor> snp_min_tcb;
  // Required values of SNP guest POLICY bits ("smt", "migrate_ma",
  // "single_socket"); an absent name is not checked. Default: the migration
  // agent must not be allowed.
  std::map<std::string, bool> snp_policy = {{"migrate_ma", false}};
  // TDX TCB statuses accepted (Intel's names, kbs/verify/tdx_tcb.h). Empty:
  // not checked. Non-empty: a TDX claim must carry one of them, so the KBS
  // must have collateral loaded (--tdx-collateral-dir).
  std::vector<std::string> tdx_allowed_tcb_status;
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

// Adds reference values to a policy (`cloak-kbs admin
// import-reference-values`, docs/kbs.md). `doc` is what `cloak measure …
// --json` prints ({"tee", "reference_values": {name: [hex]}}), a list of
// those, or {"classes": {<runtime class>: <entry>}} as the guest-image build
// writes; an entry with "missing" (an input the build machine lacked) is
// refused with its reason. Each entry's TEE joins allowed_tees and its values
// are appended to the policy's lists (without duplicates). `current` unset:
// a new policy. `only_class` non-empty picks that class of a "classes"
// document (NotFound if it has none by that name). An entry marked
// "simulated": true (the simulated SP's value for a dev class) is imported
// only when picked by name, and then sets allow_simulated; otherwise it is
// refused, so a production policy never takes it by accident. Returns the
// merged policy, validated as set-policy would.
absl::StatusOr<ResourcePolicy> MergeReferenceValues(const ResourcePolicy* current,
                                                    const nlohmann::json& doc,
                                                    const std::string& only_class = "");

}  // namespace cloak::kbs

#endif  // CLOAK_KBS_POLICY_H_
