// Byte encodings every party of the attestation path shares: lowercase hex,
// base64 (standard, padded) and base64url (no padding, as JOSE writes it),
// and one strict decoder for each. Pure.
#ifndef CLOAK_COMMON_TEE_ENCODING_H_
#define CLOAK_COMMON_TEE_ENCODING_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::tee {

std::string HexEncode(absl::string_view bytes);  // lowercase
// Upper or lower case; InvalidArgument on odd length or a non-hex digit.
absl::StatusOr<std::string> HexDecode(absl::string_view hex);

std::string Base64Encode(absl::string_view bytes);     // standard alphabet, padded
std::string Base64UrlEncode(absl::string_view bytes);  // url-safe alphabet, no padding

enum class Base64Alphabet { kStandard, kUrlSafe, kEither };

// The strict decoder: only the alphabet asked for (kEither: the standard and
// the url-safe one, not mixed), padding optional but, when present, exactly
// right; no whitespace; the unused low bits of the last character must be
// zero (so one text decodes from one byte string only). InvalidArgument
// saying what is wrong.
absl::StatusOr<std::string> Base64Decode(absl::string_view text,
                                         Base64Alphabet alphabet = Base64Alphabet::kStandard);
inline absl::StatusOr<std::string> Base64UrlDecode(absl::string_view text) {
  return Base64Decode(text, Base64Alphabet::kUrlSafe);
}

}  // namespace cloak::tee

#endif  // CLOAK_COMMON_TEE_ENCODING_H_
