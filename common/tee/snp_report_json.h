// The SEV-SNP report as JSON evidence carries it (docs/formats.md,
// "Evidence"): standard base64 of the 1184 bytes (cloak-kbs's own form), a
// byte array, or the virtee `sev` crate's serde object, which Trustee's
// attester sends and Trustee's verifier expects. Shared by the agent (which
// sends the sev form) and cloak-kbs (which takes every form).
#ifndef CLOAK_COMMON_TEE_SNP_REPORT_JSON_H_
#define CLOAK_COMMON_TEE_SNP_REPORT_JSON_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace cloak::tee {

// Rebuilds the raw report from any of the three forms. The sev object's
// field names of sev 4 and later ("key_info", "current": {major, minor,
// build}) and of earlier releases ("_author_key_en", "current_build", …) are
// both read. InvalidArgument naming the field.
absl::StatusOr<std::string> SnpReportFromJson(const nlohmann::json& report);

// The raw 1184-byte report as the sev crate (6.x) serializes its
// AttestationReport: numbers, byte arrays, TCB objects, {r, s} of 72 bytes.
nlohmann::json SnpReportToSevJson(absl::string_view raw);

// A JSON array of bytes (0..255), of `want_size` elements unless 0.
absl::StatusOr<std::string> JsonByteArray(const nlohmann::json& j, absl::string_view what,
                                          size_t want_size);
// Bytes as a JSON byte array (serde's Vec<u8>) or a standard base64 string.
absl::StatusOr<std::string> JsonBytes(const nlohmann::json& j, absl::string_view what);
// `bytes` as a JSON array of numbers (serde's Vec<u8>).
nlohmann::json JsonByteArrayOf(absl::string_view bytes);

}  // namespace cloak::tee

#endif  // CLOAK_COMMON_TEE_SNP_REPORT_JSON_H_
