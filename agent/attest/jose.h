// JOSE for the guest: the ephemeral tee key pair and its JWK (FACTS.md §D5),
// private keys from PEM (image keys released by the KBS), and JWE decryption
// in flattened and general JSON serialization (the KBS resource response and
// ocicrypt's `enc.keys.jwe` recipients, §E4). OpenSSL 3.
#ifndef CLOAK_AGENT_ATTEST_JOSE_H_
#define CLOAK_AGENT_ATTEST_JOSE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

typedef struct evp_pkey_st EVP_PKEY;

namespace cloak::agent::attest {

// A private key (RSA or EC P-256/P-384/P-521). Copies share the key.
class PrivateKey {
 public:
  // PEM as `openssl genrsa` / `genpkey` / `ecparam -genkey` write it
  // (PKCS#8, PKCS#1 RSA or SEC1 EC). InvalidArgument otherwise; the message
  // never contains key material.
  static absl::StatusOr<PrivateKey> FromPem(absl::string_view pem);
  // A fresh EC P-256 key pair (the tee key: ECDH-ES+A256KW, as
  // guest-components uses by default).
  static absl::StatusOr<PrivateKey> GenerateEcP256();

  // The public half as a JWK with only its defined members — EC: kty, crv,
  // alg ("ECDH-ES+A256KW"), x, y; RSA: kty, alg ("RSA-OAEP-256"), n, e — so
  // the KBS re-serializes it to the same bytes (FACTS.md §D3).
  absl::StatusOr<nlohmann::json> PublicJwk() const;
  // "RSA-2048", "EC P-256"...: for messages.
  std::string Describe() const;
  EVP_PKEY* get() const { return key_.get(); }

 private:
  explicit PrivateKey(std::shared_ptr<EVP_PKEY> key) : key_(std::move(key)) {}
  std::shared_ptr<EVP_PKEY> key_;
};

// Decrypts `jwe` (flattened `{"protected","encrypted_key","iv","ciphertext",
// "tag"}` or general `{"protected","recipients":[{"header","encrypted_key"}],
// ...}`) with `key`. Key management: RSA-OAEP, RSA-OAEP-256, RSA1_5,
// ECDH-ES+A128KW/A192KW/A256KW; content: A128GCM/A192GCM/A256GCM with AAD
// the received `protected` string. Tries every recipient whose algorithm
// fits the key. InvalidArgument for a malformed JWE or an unsupported
// algorithm; PermissionDenied when no recipient opens with this key.
absl::StatusOr<std::string> DecryptJwe(const nlohmann::json& jwe, const PrivateKey& key);
absl::StatusOr<std::string> DecryptJweText(absl::string_view jwe_json, const PrivateKey& key);

}  // namespace cloak::agent::attest

#endif  // CLOAK_AGENT_ATTEST_JOSE_H_
