#include "kbs/verify/claims.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace cloak::kbs {

nlohmann::json Claims::ToJson() const {
  nlohmann::json j;
  j["tee"] = tee;
  j["report_data"] = tee::HexEncode(report_data);
  j["measurements"] = measurements;
  j["init_data_digest"] = init_data_digest;
  j["debug"] = debug;
  j["signature_verified"] = signature_verified;
  j["detail"] = detail;
  j["trust_anchor"] = trust_anchor;
  j["simulated"] = simulated;
  if (vmpl.has_value()) j["vmpl"] = *vmpl;
  if (snp_policy.has_value()) j["snp_policy"] = *snp_policy;
  if (!product.empty()) j["product"] = product;
  if (!tcb.empty()) j["tcb"] = tcb;
  if (!signing_key.empty()) j["signing_key"] = signing_key;
  if (!tcb_status.empty()) j["tcb_status"] = tcb_status;
  if (!advisory_ids.empty()) j["advisory_ids"] = advisory_ids;
  return j;
}

absl::StatusOr<Claims> Claims::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("claims: not a JSON object");
  Claims c;
  auto str = [&](const char* key, std::string* out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("claims: \"", key, "\" missing or not a string"));
    }
    *out = it->get<std::string>();
    return absl::OkStatus();
  };
  auto boolean = [&](const char* key, bool* out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || !it->is_boolean()) {
      return absl::InvalidArgumentError(absl::StrCat("claims: \"", key, "\" missing or not a bool"));
    }
    *out = it->get<bool>();
    return absl::OkStatus();
  };
  std::string rd_hex;
  RETURN_IF_ERROR(str("tee", &c.tee));
  RETURN_IF_ERROR(str("report_data", &rd_hex));
  ASSIGN_OR_RETURN(c.report_data, tee::HexDecode(rd_hex));
  RETURN_IF_ERROR(str("init_data_digest", &c.init_data_digest));
  RETURN_IF_ERROR(boolean("debug", &c.debug));
  RETURN_IF_ERROR(boolean("signature_verified", &c.signature_verified));
  RETURN_IF_ERROR(str("detail", &c.detail));
  // Fields added later: optional so that older serialized claims still load.
  if (auto it = j.find("trust_anchor"); it != j.end() && it->is_string()) {
    c.trust_anchor = it->get<std::string>();
  }
  if (auto it = j.find("simulated"); it != j.end()) {
    if (!it->is_boolean()) return absl::InvalidArgumentError("claims: \"simulated\" not a bool");
    c.simulated = it->get<bool>();
  }
  if (auto it = j.find("vmpl"); it != j.end() && it->is_number_unsigned()) {
    c.vmpl = it->get<uint32_t>();
  }
  if (auto it = j.find("snp_policy"); it != j.end() && it->is_number_unsigned()) {
    c.snp_policy = it->get<uint64_t>();
  }
  if (auto it = j.find("product"); it != j.end() && it->is_string()) {
    c.product = it->get<std::string>();
  }
  if (auto it = j.find("tcb"); it != j.end() && it->is_object()) {
    for (const auto& [name, value] : it->items()) {
      if (value.is_number_unsigned()) c.tcb[name] = value.get<uint32_t>();
    }
  }
  if (auto it = j.find("signing_key"); it != j.end() && it->is_string()) {
    c.signing_key = it->get<std::string>();
  }
  if (auto it = j.find("tcb_status"); it != j.end() && it->is_string()) {
    c.tcb_status = it->get<std::string>();
  }
  if (auto it = j.find("advisory_ids"); it != j.end() && it->is_array()) {
    for (const auto& id : *it) {
      if (id.is_string()) c.advisory_ids.push_back(id.get<std::string>());
    }
  }
  auto m = j.find("measurements");
  if (m == j.end() || !m->is_object()) {
    return absl::InvalidArgumentError("claims: \"measurements\" missing or not an object");
  }
  for (const auto& [name, value] : m->items()) {
    if (!value.is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("claims: measurement ", name, " not a string"));
    }
    c.measurements[name] = value.get<std::string>();
  }
  return c;
}

absl::Status CheckReferenceValues(const Claims& claims, const ReferenceValues& reference) {
  if (claims.debug && !reference.allow_debug) {
    return absl::PermissionDeniedError(
        absl::StrCat(claims.tee, " evidence says the guest runs with debug enabled, and debug "
                                 "guests are not allowed"));
  }
  for (const auto& [name, accepted] : reference.measurements) {
    if (accepted.empty()) continue;
    auto it = claims.measurements.find(name);
    if (it == claims.measurements.end()) {
      return absl::PermissionDeniedError(absl::StrCat(
          "reference value for \"", name, "\" is set but ", claims.tee,
          " evidence has no such measurement (it has: ",
          absl::StrJoin(claims.measurements, ", ",
                        [](std::string* out, const auto& kv) { out->append(kv.first); }),
          ")"));
    }
    bool match = std::any_of(accepted.begin(), accepted.end(), [&](const std::string& want) {
      return absl::AsciiStrToLower(want) == it->second;
    });
    if (!match) {
      return absl::PermissionDeniedError(absl::StrCat(name, " ", it->second,
                                                      " matches none of the ", accepted.size(),
                                                      " reference value(s)"));
    }
  }
  if (!reference.init_data_digests.empty()) {
    if (claims.init_data_digest.empty()) {
      return absl::PermissionDeniedError(absl::StrCat(
          "an init-data digest is required but the ", claims.tee, " evidence carries none"));
    }
    bool match = std::any_of(reference.init_data_digests.begin(),
                             reference.init_data_digests.end(), [&](const std::string& want) {
                               return absl::AsciiStrToLower(want) == claims.init_data_digest;
                             });
    if (!match) {
      return absl::PermissionDeniedError(absl::StrCat("init-data digest ", claims.init_data_digest,
                                                      " matches none of the ",
                                                      reference.init_data_digests.size(),
                                                      " reference value(s)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace cloak::kbs
