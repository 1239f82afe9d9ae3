// Small crypto and encoding helpers of the guest's attestation code
// (OpenSSL 3): digests, base64 (standard and url-safe), hex, RFC 8785 JSON
// canonicalization for the ASCII data the KBS protocol hashes. Pure.
#ifndef CLOAK_AGENT_ATTEST_CRYPTO_H_
#define CLOAK_AGENT_ATTEST_CRYPTO_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace cloak::agent::attest {

enum class HashAlgorithm { kSha256, kSha384, kSha512 };

// "sha256" | "sha384" | "sha512"; InvalidArgument otherwise.
absl::StatusOr<HashAlgorithm> ParseHashAlgorithm(absl::string_view name);
absl::string_view HashAlgorithmName(HashAlgorithm algorithm);

// Raw digest bytes.
std::string Hash(HashAlgorithm algorithm, absl::string_view data);
inline std::string Sha256(absl::string_view data) { return Hash(HashAlgorithm::kSha256, data); }
inline std::string Sha384(absl::string_view data) { return Hash(HashAlgorithm::kSha384, data); }

std::string HexEncode(absl::string_view bytes);

// Standard alphabet with padding (what Go's []byte JSON and the KBS nonce use).
std::string Base64Encode(absl::string_view bytes);
// Accepts the standard and the url-safe alphabet, with or without padding.
// InvalidArgument on anything else.
absl::StatusOr<std::string> Base64Decode(absl::string_view text);
// url-safe alphabet, no padding (JOSE).
std::string Base64UrlEncode(absl::string_view bytes);

// RFC 8785 form of `value`: object keys sorted, no whitespace. Exact for the
// strings and integers the KBS protocol carries (nlohmann's object type is
// sorted and its escaping matches JCS for those).
std::string Jcs(const nlohmann::json& value);

// Constant-time comparison of equal-length strings (false when lengths differ).
bool SecureEquals(absl::string_view a, absl::string_view b);

}  // namespace cloak::agent::attest

#endif  // CLOAK_AGENT_ATTEST_CRYPTO_H_
