// RFC 8785 JSON Canonicalization Scheme (JCS): the one serializer whose
// bytes the guest and the key broker both hash (docs/attestation.md,
// "Report-data binding"). Pure.
//
//  - objects: members sorted by their names compared as UTF-16 code units,
//    no whitespace anywhere;
//  - strings: UTF-8 as is, except '"', '\\' and U+0000..U+001F, which are
//    escaped (\b \t \n \f \r, else \u00xx with lowercase hex);
//  - numbers: IEEE-754 doubles written as ECMAScript's Number.toString
//    does (shortest round-trip digits; plain notation for 1e-6 <= |x| <
//    1e21, else d.ddde±x); integers are converted to doubles first; NaN and
//    infinities are refused;
//  - literals: null, true, false.
#ifndef CLOAK_COMMON_TEE_CANONICAL_JSON_H_
#define CLOAK_COMMON_TEE_CANONICAL_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace cloak::tee {

// InvalidArgument for strings or names that are not UTF-8, NaN or infinity,
// and binary values (not JSON).
absl::StatusOr<std::string> CanonicalJson(const nlohmann::json& value);

// Parses `json_text` and canonicalizes it. InvalidArgument when it is not JSON.
absl::StatusOr<std::string> CanonicalizeJsonText(absl::string_view json_text);

// One double as RFC 8785 writes it ("1e+30", "0.002", "-5e-324").
// InvalidArgument for NaN and infinities.
absl::StatusOr<std::string> CanonicalNumber(double value);

}  // namespace cloak::tee

#endif  // CLOAK_COMMON_TEE_CANONICAL_JSON_H_
