// JOSE for Cloak over libjose (Debian libjose-dev): the guest's tee key and
// its JWK, JWE decryption in the agent (the key broker's resource responses
// and ocicrypt's `enc.keys.jwe` recipients), JWE encryption and HS256
// tokens in the key broker. One implementation for both ends
// (docs/attestation.md, "JOSE").
//
// Algorithms: key management ECDH-ES+A128KW/A192KW/A256KW, RSA1_5 (libjose)
// and RSA-OAEP, RSA-OAEP-256 (libjose 11 does not register these with
// OpenSSL 3, so the content key is wrapped/unwrapped here with OpenSSL's
// RSA-OAEP and the rest stays libjose's); content A128GCM/A192GCM/A256GCM;
// signatures HS256.
#ifndef CLOAK_COMMON_JOSE_JOSE_H_
#define CLOAK_COMMON_JOSE_JOSE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

typedef struct evp_pkey_st EVP_PKEY;

namespace cloak::jose {

inline constexpr char kAlgEcdhEsA256kw[] = "ECDH-ES+A256KW";
inline constexpr char kAlgRsaOaep[] = "RSA-OAEP";
inline constexpr char kAlgRsaOaep256[] = "RSA-OAEP-256";
inline constexpr char kAlgRsa15[] = "RSA1_5";
inline constexpr char kEncA256gcm[] = "A256GCM";

// A private key (RSA or EC P-256/P-384/P-521). Copies share the key.
class PrivateKey {
 public:
  // PEM as `openssl genrsa` / `genpkey` / `ecparam -genkey` write it
  // (PKCS#8, PKCS#1 RSA or SEC1 EC). InvalidArgument otherwise; the message
  // never contains key material.
  static absl::StatusOr<PrivateKey> FromPem(absl::string_view pem);
  // Shares `key` (takes a reference of its own). RSA or EC only.
  static absl::StatusOr<PrivateKey> FromEvp(EVP_PKEY* key);
  // A fresh EC key pair on "P-256", "P-384" or "P-521" (the tee key:
  // ECDH-ES+A256KW on P-256, as guest-components uses by default).
  static absl::StatusOr<PrivateKey> GenerateEc(absl::string_view curve = "P-256");

  // The public half as a JWK with only its defined members — EC: kty, crv,
  // alg ("ECDH-ES+A256KW"), x, y; RSA: kty, alg ("RSA-OAEP-256"), n, e — so
  // the key broker re-serializes it to the same bytes.
  absl::StatusOr<nlohmann::json> PublicJwk() const;
  // "RSA-2048", "EC P-256"...: for messages.
  std::string Describe() const;
  EVP_PKEY* get() const { return key_.get(); }

 private:
  explicit PrivateKey(std::shared_ptr<EVP_PKEY> key) : key_(std::move(key)) {}
  std::shared_ptr<EVP_PKEY> key_;
};

// A validated public JWK, reduced to its defined members (RSA: kty, alg, n,
// e; EC: kty, crv, alg, x, y) exactly as the key broker re-serializes it.
struct PublicJwk {
  nlohmann::json json;
};

// Validates a client's tee-pubkey: RSA (>= 2048 bits) with alg RSA-OAEP-256
// or RSA1_5, or EC P-256/P-384/P-521 with alg ECDH-ES+A256KW; the key
// material must parse (a point on its curve). InvalidArgument saying what
// is wrong, prefixed "tee-pubkey".
absl::StatusOr<PublicJwk> ParsePublicJwk(const nlohmann::json& json);

// Encrypts `plaintext` to `recipient` as a flattened JWE JSON object
// {"protected","encrypted_key","iv","ciphertext","tag"}: enc A256GCM, alg
// the JWK's, and every header member (alg, enc, epk) in the protected
// header, as Trustee's clients expect.
absl::StatusOr<nlohmann::json> EncryptJwe(absl::string_view plaintext, const PublicJwk& recipient);

// Decrypts `jwe` (flattened or general JSON serialization) with `key`,
// trying every recipient whose algorithm fits the key. InvalidArgument for
// a malformed JWE or an unsupported algorithm; PermissionDenied when no
// recipient opens with this key or the content does not authenticate.
absl::StatusOr<std::string> DecryptJwe(const nlohmann::json& jwe, const PrivateKey& key);
absl::StatusOr<std::string> DecryptJweText(absl::string_view jwe_json, const PrivateKey& key);

// A compact JWS {"alg":"HS256","typ":"JWT"} over `payload` with `key`
// (at least 32 bytes, RFC 7518 §3.2).
absl::StatusOr<std::string> SignHs256(absl::string_view payload, absl::string_view key);
// The payload of a compact HS256 JWS made with `key`. Unauthenticated for
// anything else (not compact JWS, another alg, a bad signature).
absl::StatusOr<std::string> VerifyHs256(absl::string_view token, absl::string_view key);

}  // namespace cloak::jose

#endif  // CLOAK_COMMON_JOSE_JOSE_H_
