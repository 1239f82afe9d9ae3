#include "kbs/policy.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "kbs/verify/openssl_util.h"
#include "kbs/verify/tdx_tcb.h"

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

constexpr const char* kKnownKeys =
    "allowed_tees, allow_debug, allow_unverified, reference_values, init_data_digests, "
    "allow_any_launch, allow_simulated, snp_vmpl, snp_min_tcb, snp_policy, "
    "tdx_allowed_tcb_status";

// The reference values that pin a TEE's launch.
bool PinsLaunch(const ResourcePolicy& p, absl::string_view tee) {
  if (!p.reference.init_data_digests.empty()) return true;
  std::vector<std::string> names;
  if (tee == kTeeSnp) names = {"measurement", "host_data"};
  if (tee == kTeeTdx) names = {"mrtd", "mrconfigid", "rtmr0", "rtmr1", "rtmr2", "rtmr3"};
  for (const std::string& n : names) {
    auto it = p.reference.measurements.find(n);
    if (it != p.reference.measurements.end() && !it->second.empty()) {
      // host_data / mrconfigid carry the init-data digest.
      return true;
    }
  }
  return false;
}

absl::StatusOr<SnpTcbFloor> ParseTcbFloor(const nlohmann::json& j, const std::string& product) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "policy: snp_min_tcb.", product, " must be an object of bootloader/tee/snp/microcode/fmc"));
  }
  SnpTcbFloor f;
  for (const auto& [name, value] : j.items()) {
    if (!value.is_number_unsigned() || value.get<uint64_t>() > 255) {
      return absl::InvalidArgumentError(
          absl::StrCat("policy: snp_min_tcb.", product, ".", name, " must be 0..255"));
    }
    uint32_t v = value.get<uint32_t>();
    if (name == "bootloader") {
      f.bootloader = v;
    } else if (name == "tee") {
      f.tee = v;
    } else if (name == "snp") {
      f.snp = v;
    } else if (name == "microcode") {
      f.microcode = v;
    } else if (name == "fmc") {
      f.fmc = v;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("policy: snp_min_tcb.", product, " has unknown component \"", name,
                       "\" (known: bootloader, tee, snp, microcode, fmc)"));
    }
  }
  return f;
}

uint64_t SnpPolicyBit(const std::string& name) {
  if (name == "smt") return kSnpPolicySmtBit;
  if (name == "migrate_ma") return kSnpPolicyMigrateMaBit;
  if (name == "single_socket") return kSnpPolicySingleSocketBit;
  return 0;
}

}  // namespace

nlohmann::json ResourcePolicy::ToJson() const {
  nlohmann::json tcb = nlohmann::json::object();
  for (const auto& [product, f] : snp_min_tcb) {
    tcb[product] = {{"bootloader", f.bootloader},
                    {"tee", f.tee},
                    {"snp", f.snp},
                    {"microcode", f.microcode},
                    {"fmc", f.fmc}};
  }
  return nlohmann::json{{"allowed_tees", allowed_tees},
                        {"allow_debug", reference.allow_debug},
                        {"allow_unverified", allow_unverified},
                        {"allow_any_launch", allow_any_launch},
                        {"allow_simulated", allow_simulated},
                        {"reference_values", reference.measurements},
                        {"init_data_digests", reference.init_data_digests},
                        {"snp_vmpl", snp_vmpl},
                        {"snp_min_tcb", tcb},
                        {"snp_policy", snp_policy},
                        {"tdx_allowed_tcb_status", tdx_allowed_tcb_status}};
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
    } else if (key == "allow_any_launch") {
      ASSIGN_OR_RETURN(policy.allow_any_launch, Bool(value, key));
    } else if (key == "allow_simulated") {
      ASSIGN_OR_RETURN(policy.allow_simulated, Bool(value, key));
    } else if (key == "snp_vmpl") {
      if (!value.is_number_unsigned() || value.get<uint64_t>() > 3) {
        return absl::InvalidArgumentError("policy: snp_vmpl must be 0..3");
      }
      policy.snp_vmpl = value.get<uint32_t>();
    } else if (key == "snp_min_tcb") {
      if (!value.is_object()) {
        return absl::InvalidArgumentError(
            "policy: snp_min_tcb must map a product (milan, genoa, turin) to a minimum TCB");
      }
      for (const auto& [product, floor] : value.items()) {
        std::string p = absl::AsciiStrToLower(product);
        if (p != "milan" && p != "genoa" && p != "turin") {
          return absl::InvalidArgumentError(absl::StrCat("policy: snp_min_tcb product \"", product,
                                                         "\" is not milan, genoa or turin"));
        }
        ASSIGN_OR_RETURN(policy.snp_min_tcb[p], ParseTcbFloor(floor, p));
      }
    } else if (key == "snp_policy") {
      if (!value.is_object()) {
        return absl::InvalidArgumentError(
            "policy: snp_policy must map smt / migrate_ma / single_socket to true or false");
      }
      policy.snp_policy.clear();
      for (const auto& [bit, want] : value.items()) {
        if (SnpPolicyBit(bit) == 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "policy: snp_policy bit \"", bit, "\" is not smt, migrate_ma or single_socket"));
        }
        ASSIGN_OR_RETURN(policy.snp_policy[bit], Bool(want, absl::StrCat("snp_policy.", bit)));
      }
    } else if (key == "tdx_allowed_tcb_status") {
      ASSIGN_OR_RETURN(policy.tdx_allowed_tcb_status, StringList(value, key, false));
      for (const std::string& status : policy.tdx_allowed_tcb_status) {
        if (!IsTdxTcbStatus(status)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "policy: tdx_allowed_tcb_status entry \"", status, "\" is not one of Intel's ",
              "TCB statuses (UpToDate, SWHardeningNeeded, ConfigurationNeeded, "
              "ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded)"));
        }
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("policy: unknown key \"", key, "\" (known: ", kKnownKeys, ")"));
    }
  }
  if (!policy.allow_any_launch) {
    for (const std::string& tee : policy.allowed_tees) {
      if ((tee == kTeeSnp || tee == kTeeTdx) && !PinsLaunch(policy, tee)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "policy: it allows ", tee, " evidence but pins neither a launch measurement (",
            tee == kTeeSnp ? "reference_values.measurement" : "reference_values.mrtd / rtmr*",
            ") nor an init-data digest (init_data_digests), so any genuine guest the host boots "
            "would get the key. Pin the value `cloak measure ",
            tee, "` prints, or set \"allow_any_launch\": true to accept any launch explicitly"));
      }
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
  if (claims.simulated && !policy.allow_simulated) {
    return {false,
            absl::StrCat(claims.tee, " evidence comes from Cloak's SIMULATED security processor (",
                         claims.trust_anchor,
                         "), not real hardware, and this policy does not set allow_simulated")};
  }
  if (claims.tee == kTeeSnp) {
    if (claims.vmpl.has_value() && *claims.vmpl != policy.snp_vmpl) {
      return {false, absl::StrCat("SEV-SNP report was requested at VMPL ", *claims.vmpl,
                                  "; this policy requires VMPL ", policy.snp_vmpl)};
    }
    if (claims.snp_policy.has_value()) {
      for (const auto& [bit, want] : policy.snp_policy) {
        const bool have = (*claims.snp_policy & SnpPolicyBit(bit)) != 0;
        if (have != want) {
          return {false, absl::StrCat("SEV-SNP guest policy 0x", absl::Hex(*claims.snp_policy),
                                      " has ", bit, " ", have ? "set" : "clear",
                                      "; this policy requires it ", want ? "set" : "clear")};
        }
      }
    }
    auto floor = policy.snp_min_tcb.find(absl::AsciiStrToLower(claims.product));
    if (floor != policy.snp_min_tcb.end()) {
      const SnpTcbFloor& f = floor->second;
      for (auto [name, min] : {std::pair<const char*, uint32_t>{"bootloader", f.bootloader},
                               {"tee", f.tee},
                               {"snp", f.snp},
                               {"microcode", f.microcode},
                               {"fmc", f.fmc}}) {
        auto it = claims.tcb.find(name);
        const uint32_t have = it == claims.tcb.end() ? 0 : it->second;
        if (have < min) {
          return {false, absl::StrCat("SEV-SNP ", claims.product, " REPORTED_TCB ", name, " ", have,
                                      " is below this policy's minimum ", min)};
        }
      }
    }
  }
  if (claims.tee == kTeeTdx && !policy.tdx_allowed_tcb_status.empty()) {
    const auto& allowed = policy.tdx_allowed_tcb_status;
    if (claims.tcb_status.empty()) {
      return {false, "TDX TCB status was not evaluated (cloak-kbs has no --tdx-collateral-dir), "
                     "and this policy requires one of tdx_allowed_tcb_status"};
    }
    if (std::find(allowed.begin(), allowed.end(), claims.tcb_status) == allowed.end()) {
      return {false, absl::StrCat("TDX TCB status ", claims.tcb_status,
                                  " is not in this policy's tdx_allowed_tcb_status (",
                                  absl::StrJoin(allowed, ", "), ")")};
    }
  }
  absl::Status reference = CheckReferenceValues(claims, policy.reference);
  if (!reference.ok()) return {false, std::string(reference.message())};
  return {true, absl::StrCat("allowed: ", claims.tee, " evidence matches the policy",
                             claims.trust_anchor.empty() ? "" : " (root ", claims.trust_anchor,
                             claims.trust_anchor.empty() ? "" : ")")};
}

absl::StatusOr<ResourcePolicy> MergeReferenceValues(const ResourcePolicy* current,
                                                    const nlohmann::json& doc,
                                                    const std::string& only_class) {
  std::vector<std::pair<std::string, nlohmann::json>> entries;
  if (!only_class.empty()) {
    if (!doc.is_object() || !doc.contains("classes") || !doc["classes"].is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "reference values: --class ", only_class,
          " wants a document with a \"classes\" object (the guest-image build's "
          "reference-values.json)"));
    }
    auto it = doc["classes"].find(only_class);
    if (it == doc["classes"].end()) {
      std::vector<std::string> names;
      for (const auto& [name, e] : doc["classes"].items()) names.push_back(name);
      return absl::NotFoundError(absl::StrCat("reference values: no class \"", only_class,
                                              "\" (the document has: ",
                                              absl::StrJoin(names, ", "), ")"));
    }
    entries.emplace_back(only_class, *it);
  } else if (doc.is_array()) {
    for (const auto& e : doc) entries.emplace_back("", e);
  } else if (doc.is_object() && doc.contains("classes")) {
    const nlohmann::json& classes = doc["classes"];
    if (classes.is_object()) {
      for (const auto& [name, e] : classes.items()) entries.emplace_back(name, e);
    } else if (classes.is_array()) {
      for (const auto& e : classes) entries.emplace_back("", e);
    } else {
      return absl::InvalidArgumentError(
          "reference values: \"classes\" must be an object or a list");
    }
  } else if (doc.is_object()) {
    entries.emplace_back("", doc);
  } else {
    return absl::InvalidArgumentError("reference values: want a JSON object or list");
  }
  if (entries.empty()) return absl::InvalidArgumentError("reference values: no entries");

  nlohmann::json merged = current != nullptr
                              ? current->ToJson()
                              : nlohmann::json{{"allowed_tees", nlohmann::json::array()}};
  for (const auto& [name, e] : entries) {
    const std::string what = name.empty() ? "entry" : absl::StrCat("class ", name);
    if (!e.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat("reference values: ", what, " is not an object"));
    }
    if (auto missing = e.find("missing"); missing != e.end() && !missing->is_null()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "reference values: ", what, " was not computed (missing: ", missing->dump(),
          "); compute it on a node that has that input with `cloak measure` and import that"));
    }
    if (auto sim = e.find("simulated"); sim != e.end() && *sim == true) {
      if (only_class.empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "reference values: ", what, " holds the simulated SP's value (a dev class); import it "
            "only on a dev KBS, by name: --class ", name.empty() ? "<name>" : name));
      }
    }
    auto tee = e.find("tee");
    auto values = e.find("reference_values");
    if (tee == e.end() || !tee->is_string() || values == e.end() || !values->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "reference values: ", what, " wants \"tee\" and a \"reference_values\" object"));
    }
    const std::string t = tee->get<std::string>();
    if (t != kTeeSnp && t != kTeeTdx) {
      return absl::InvalidArgumentError(
          absl::StrCat("reference values: ", what, " has tee \"", t, "\" (want snp or tdx)"));
    }
    auto& tees = merged["allowed_tees"];
    if (std::find(tees.begin(), tees.end(), t) == tees.end()) tees.push_back(t);
    for (const auto& [key, list] : values->items()) {
      if (!list.is_array()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "reference values: ", what, ": reference_values.", key, " must be a list"));
      }
      auto& target = merged["reference_values"][key];
      if (target.is_null()) target = nlohmann::json::array();
      for (const auto& v : list) {
        if (!v.is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "reference values: ", what, ": reference_values.", key, " must hold strings"));
        }
        const std::string hex = absl::AsciiStrToLower(v.get<std::string>());
        if (std::find(target.begin(), target.end(), hex) == target.end()) target.push_back(hex);
      }
    }
  }
  if (!only_class.empty()) {
    const nlohmann::json& e = entries.front().second;
    if (auto sim = e.find("simulated"); sim != e.end() && *sim == true) {
      merged["allow_simulated"] = true;
    }
  }
  return ParseResourcePolicy(merged.dump());
}

}  // namespace cloak::kbs
