// What a verifier learned from one piece of evidence (Claims), and the
// reference values a caller may hold them against.
#ifndef CLOAK_KBS_VERIFY_CLAIMS_H_
#define CLOAK_KBS_VERIFY_CLAIMS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kbs/verify/openssl_util.h"
#include "nlohmann/json.hpp"

namespace cloak::kbs {

// TEE names as the Trustee protocol spells them (docs/formats.md, "KBS protocol").
inline constexpr char kTeeSnp[] = "snp";
inline constexpr char kTeeTdx[] = "tdx";
inline constexpr char kTeeSample[] = "sample";

struct Claims {
  std::string tee;  // kTeeSnp, kTeeTdx, kTeeSample
  // The report data exactly as the evidence carries it (64 bytes for SNP and
  // TDX, the raw digest for sample).
  Bytes report_data;
  // Measurement registers, name → lowercase hex. SNP: "measurement",
  // "host_data". TDX: "mrtd", "mrconfigid", "rtmr0".."rtmr3". Sample: none.
  std::map<std::string, std::string> measurements;
  // Lowercase hex of the init-data digest the TEE carries (SNP host_data,
  // TDX mrconfigid, sample "init_data"); empty when the evidence has none.
  std::string init_data_digest;
  // SNP policy DEBUG bit / TDX TDATTRIBUTES.DEBUG.
  bool debug = false;
  // True only when the evidence's signature chain was checked against a
  // configured root (false for sample and for unverified TDX quotes).
  bool signature_verified = false;
  // Free text for logs, e.g. "SEV-SNP Milan report v2, VCEK chain verified".
  std::string detail;
  // The root the signature chain ends at (docs/attestation.md, "Trust
  // anchors"): "AMD ARK-Milan (pinned) sha256:...", "Intel SGX Root CA
  // (pinned) sha256:...", "SIMULATED SP test root sha256:..." or "UNPINNED
  // root sha256:..." (only with the verifier's allow_unpinned_root); empty
  // when nothing was verified.
  std::string trust_anchor;
  // Evidence from Cloak's simulated SEV-SNP security processor (its TEST
  // chain, never AMD's). Policies refuse it unless allow_simulated.
  bool simulated = false;
  // SNP only: the report's VMPL, guest POLICY, product and REPORTED_TCB
  // components ("bootloader", "tee", "snp", "microcode", "fmc").
  std::optional<uint32_t> vmpl;
  std::optional<uint64_t> snp_policy;
  std::string product;  // "Milan", "Genoa", "Turin"
  std::map<std::string, uint32_t> tcb;
  // SNP only: the key that signed the report, "VCEK" or "VLEK".
  std::string signing_key;
  // TDX only: Intel's TCB status of the platform ("UpToDate",
  // "SWHardeningNeeded", "ConfigurationNeeded",
  // "ConfigurationAndSWHardeningNeeded", "OutOfDate",
  // "OutOfDateConfigurationNeeded", "Revoked"), evaluated from the
  // operator's collateral (kbs/verify/tdx_tcb.h); empty when none is loaded.
  std::string tcb_status;
  // TDX only: the advisories Intel lists for that TCB level.
  std::vector<std::string> advisory_ids;

  nlohmann::json ToJson() const;
  static absl::StatusOr<Claims> FromJson(const nlohmann::json& json);
};

// Reference values. Every listed item must match; empty lists check nothing.
struct ReferenceValues {
  // Claim name (as in Claims::measurements) → accepted hex values (any of).
  std::map<std::string, std::vector<std::string>> measurements;
  // Accepted init-data digests (hex, any of).
  std::vector<std::string> init_data_digests;
  bool allow_debug = false;
};

// OK, or PermissionDenied naming the first claim that does not match.
absl::Status CheckReferenceValues(const Claims& claims, const ReferenceValues& reference);

}  // namespace cloak::kbs

#endif  // CLOAK_KBS_VERIFY_CLAIMS_H_
