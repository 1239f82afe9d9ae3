// JOSE pieces the KBS protocol needs (FACTS §D3, §D5): RFC 8785 canonical
// JSON, the tee-pubkey JWK, and the flattened JWE a resource is returned in.
#ifndef CLOAK_KBS_JOSE_H_
#define CLOAK_KBS_JOSE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kbs/verify/openssl_util.h"
#include "nlohmann/json.hpp"

namespace cloak::kbs {

// RFC 8785 (JCS) serialization: keys sorted, no whitespace, strings escaped
// as JCS requires. Numbers must be integers (InvalidArgument otherwise:
// nothing in the protocol carries others).
absl::StatusOr<std::string> CanonicalJson(const nlohmann::json& value);

// A client's tee-pubkey, reduced to its defined members (RSA: kty, alg, n,
// e; EC: kty, crv, alg, x, y) exactly as the server re-serializes it.
struct Jwk {
  nlohmann::json json;
};

// Validates a JWK: RSA with alg RSA-OAEP-256 or RSA1_5, or EC P-256/P-384/
// P-521 with alg ECDH-ES+A256KW; the key material must parse.
// InvalidArgument saying what is wrong.
absl::StatusOr<Jwk> ParseJwk(const nlohmann::json& json);

// The OpenSSL public key a JWK describes.
absl::StatusOr<PkeyPtr> JwkPublicKey(const Jwk& jwk);

// The JWK (with `alg`) for a public key: EC keys get ECDH-ES+A256KW, RSA
// keys RSA-OAEP-256. For clients and tests.
absl::StatusOr<Jwk> JwkFromPublicKey(EVP_PKEY* key);

// Encrypts `plaintext` to `recipient` as a flattened JWE JSON object
// {"protected","encrypted_key","iv","ciphertext","tag"}, enc A256GCM, alg
// the JWK's.
absl::StatusOr<nlohmann::json> EncryptJwe(absl::string_view plaintext, const Jwk& recipient);

// Decrypts a flattened JWE with the recipient's private key (RSA1_5,
// RSA-OAEP-256, ECDH-ES+A256KW; A256GCM). For clients and tests.
absl::StatusOr<Bytes> DecryptJwe(const nlohmann::json& jwe, EVP_PKEY* private_key);

}  // namespace cloak::kbs

#endif  // CLOAK_KBS_JOSE_H_
