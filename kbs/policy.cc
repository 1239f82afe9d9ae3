#include "kbs/policy.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "kbs/verify/openssl_util.h"

namespace cloak::kbs {
namespace {

absl::StatusOr<std::vector<std::string>> StringList(const nlohmann::json& j,
                                                    absl::string_view what, bool hex) {
  if (!j.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat("policy: ", what, " must be a list of strings"));
  }
  std::vector<std::string> out;
  for (const auto& item : j) {
    if (!item.is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("policy: ", what, " must hold strings"));
    }
    std::string s = item.get<std::string>();
    if (hex) {
      if (s.empty() || !tee::HexDecode(s).ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("policy: ", what, " value \"", s, "\" is not hex"));
      }
      s = absl::AsciiStrToLower(s);
    }
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<bool> Bool(const nlohmann::json& j, absl::string_view what) {
  if (!j.is_boolean()) return absl::InvalidArgumentError(absl::StrCat("policy: ", what, " must be true or false"));
  return j.get<bool>();
}

}  // namespace

nlohmann::json ResourcePolicy::ToJson() const {
  return nlohmann::json{{"allowed_tees", allowed_tees},
                        {"allow_debug", reference.allow_debug},
                        {"allow_unverified", allow_unverified},
                        {"reference_values", reference.measurements},
                        {"init_data_digests", reference.init_data_digests}};
}

absl::StatusOr<ResourcePolicy> ParseResourcePolicy(absl::string_view json_text) {
  nlohmann::json j = nlohmann::json::parse(json_text.begin(), json_text.end(), nullptr,
                                           /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("policy: not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("policy: must be a JSON object");
  ResourcePolicy policy;
  for (const auto& [key, value] : j.items()) {
    if (key == "allowed_tees") {
      ASSIGN_OR_RETURN(policy.allowed_tees, StringList(value, key, false));
      for (const std::string& tee : policy.allowed_tees) {
        if (tee != kTeeSnp && tee != kTeeTdx && tee != kTeeSample) {
          return absl::InvalidArgumentError(absl::StrCat(
              "policy: allowed_tees entry \"", tee, "\" is not snp, tdx or sample"));
        }
      }
    } else if (key == "allow_debug") {
      ASSIGN_OR_RETURN(policy.reference.allow_debug, Bool(value, key));
    } else if (key == "allow_unverified") {
      ASSIGN_OR_RETURN(policy.allow_unverified, Bool(value, key));
    } else if (key == "reference_values") {
      if (!value.is_object()) {
        return absl::InvalidArgumentError(
            "policy: reference_values must map a measurement name to a list of hex values");
      }
      for (const auto& [name, list] : value.items()) {
        ASSIGN_OR_RETURN(policy.reference.measurements[name],
                         StringList(list, absl::StrCat("reference_values.", name), true));
      }
    } else if (key == "init_data_digests") {
      ASSIGN_OR_RETURN(policy.reference.init_data_digests, StringList(value, key, true));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "policy: unknown key \"", key,
          "\" (known: allowed_tees, allow_debug, allow_unverified, reference_values, "
          "init_data_digests)"));
    }
  }
  return policy;
}

PolicyDecision EvaluatePolicy(const ResourcePolicy& policy, const Claims& claims) {
  if (std::find(policy.allowed_tees.begin(), policy.allowed_tees.end(), claims.tee) ==
      policy.allowed_tees.end()) {
    return {false, absl::StrCat("evidence type \"", claims.tee,
                                "\" is not allowed by this resource's policy (allowed: ",
                                absl::StrJoin(policy.allowed_tees, ", "), ")")};
  }
  if (!claims.signature_verified && claims.tee != kTeeSample && !policy.allow_unverified) {
    return {false, absl::StrCat(claims.tee,
                                " evidence was accepted without a verified signature chain, and "
                                "this policy does not set allow_unverified")};
  }
  absl::Status reference = CheckReferenceValues(claims, policy.reference);
  if (!reference.ok()) return {false, std::string(reference.message())};
  return {true, absl::StrCat("allowed: ", claims.tee, " evidence matches the policy")};
}

}  // namespace cloak::kbs
