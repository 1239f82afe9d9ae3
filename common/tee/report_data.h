// Report-data binding of the Trustee KBS protocol 0.4.0
// (docs/attestation.md, "Report-data binding"): the guest puts
// SHA-384(JCS({"additional-evidence", "nonce", "tee-pubkey"})), zero-padded
// to 64 bytes, into the REPORT_DATA of its SNP report / TDX quote, and the
// key broker recomputes it from the attestation request. Pure.
#ifndef CLOAK_COMMON_TEE_REPORT_DATA_H_
#define CLOAK_COMMON_TEE_REPORT_DATA_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace cloak::tee {

inline constexpr size_t kReportDataSize = 64;

// The 48-byte SHA-384 of the canonical runtime data. InvalidArgument when
// `tee_pubkey` cannot be canonicalized (see canonical_json.h).
absl::StatusOr<std::string> RuntimeDataDigest(absl::string_view nonce,
                                              const nlohmann::json& tee_pubkey,
                                              absl::string_view additional_evidence = "");

// `digest` zero-padded (or truncated) to the 64-byte REPORT_DATA.
std::string ReportData64(absl::string_view digest);

}  // namespace cloak::tee

#endif  // CLOAK_COMMON_TEE_REPORT_DATA_H_
