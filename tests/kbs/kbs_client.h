// The client half of the KBS protocol, as the tests drive it: a TEE key
// pair, and sample evidence bound to a nonce and that key (docs/attestation.md).
#ifndef CLOAK_KBS_TESTS_KBS_CLIENT_H_
#define CLOAK_KBS_TESTS_KBS_CLIENT_H_

#include <optional>
#include <string>

#include "common/jose/jose.h"
#include "common/tee/report_data.h"
#include "kbs/service.h"
#include "nlohmann/json.hpp"

namespace cloak::kbs::testing {

struct TeeKey {
  PkeyPtr key;
  Jwk jwk;
};

// "P-256" / "P-384" EC keys (ECDH-ES+A256KW) or "RSA" (RSA-OAEP-256).
inline TeeKey MakeTeeKey(const std::string& kind = "P-256") {
  TeeKey k;
  k.key.reset(kind == "RSA" ? EVP_RSA_gen(2048) : EVP_EC_gen(kind.c_str()));
  k.jwk = *jose::ParsePublicJwk(*jose::PrivateKey::FromEvp(k.key.get())->PublicJwk());
  return k;
}

// Opens a resource JWE with the tee key, as a client does.
inline absl::StatusOr<std::string> DecryptJwe(const nlohmann::json& jwe, EVP_PKEY* key) {
  absl::StatusOr<jose::PrivateKey> private_key = jose::PrivateKey::FromEvp(key);
  if (!private_key.ok()) return private_key.status();
  return jose::DecryptJwe(jwe, *private_key);
}

inline nlohmann::json AuthRequest(const std::string& tee = "sample",
                                  const std::string& version = kProtocolVersion) {
  return {{"version", version},
          {"tee", tee},
          {"extra-params",
           {{"supported-hash-algorithms", {"sha256", "sha384", "sha512"}}}}};
}

// A protocol-0.4.0 Attestation carrying sample evidence. `bound_jwk` is the
// key the evidence binds (normally the one sent); `init_data` the init-data
// body, whose SHA-384 the evidence then carries unless `evidence_init_digest`
// says otherwise.
inline nlohmann::json SampleAttestation(const std::string& nonce, const Jwk& sent_jwk,
                                        const Jwk* bound_jwk = nullptr,
                                        std::optional<std::string> init_data = std::nullopt,
                                        std::optional<std::string> evidence_init_digest =
                                            std::nullopt) {
  const Jwk& bound = bound_jwk != nullptr ? *bound_jwk : sent_jwk;
  Bytes digest = *tee::RuntimeDataDigest(nonce, bound.json, "");
  nlohmann::json evidence = {{"svn", "1"}, {"report_data", tee::Base64Encode(digest)}};
  if (evidence_init_digest.has_value()) {
    evidence["init_data"] = *evidence_init_digest;
  } else if (init_data.has_value()) {
    evidence["init_data"] = tee::HexEncode(tee::Sha384(*init_data));
  }
  nlohmann::json init = nullptr;
  if (init_data.has_value()) init = {{"format", "toml"}, {"body", *init_data}};
  return {{"init-data", init},
          {"runtime-data", {{"nonce", nonce}, {"tee-pubkey", sent_jwk.json}}},
          {"tee-evidence", {{"primary_evidence", evidence}, {"additional_evidence", ""}}}};
}

}  // namespace cloak::kbs::testing

#endif  // CLOAK_KBS_TESTS_KBS_CLIENT_H_
