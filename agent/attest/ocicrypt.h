// ocicrypt layer decryption in the guest (docs/formats.md, "ocicrypt"): implements
// agent/image's LayerDecryptor for layers `<type>+encrypted` whose key is
// wrapped in JWE recipients (`org.opencontainers.image.enc.keys.jwe`, what
// `skopeo copy --encryption-key jwe:PUBKEY` writes), unwrapped with private
// keys released by the key broker. The layer cipher is ocicrypt's
// AES_256_CTR_HMAC_SHA256: the HMAC (from `enc.pubopts`) over the
// ciphertext and the plaintext digest (from the wrapped options) are both
// checked; decryption streams in fixed-size chunks.
#ifndef CLOAK_AGENT_ATTEST_OCICRYPT_H_
#define CLOAK_AGENT_ATTEST_OCICRYPT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/image/manifest.h"
#include "agent/image/puller.h"
#include "common/jose/jose.h"

namespace cloak::agent::attest {

inline constexpr char kEncKeysPrefix[] = "org.opencontainers.image.enc.keys.";
inline constexpr char kEncKeysJwe[] = "org.opencontainers.image.enc.keys.jwe";
inline constexpr char kEncPubOpts[] = "org.opencontainers.image.enc.pubopts";

// The keys a guest may unwrap layer keys with, and why others are missing.
struct KeySet {
  std::vector<jose::PrivateKey> keys;
  // One line per key that was not released (the KBS's reason).
  std::vector<std::string> refusals;
};

class KeySource {
 public:
  virtual ~KeySource() = default;
  // Called only when an encrypted layer needs a key. An error means no key
  // could be had at all (no init-data, attestation refused, KBS down).
  virtual absl::StatusOr<KeySet> ImageKeys() = 0;
};

// The unwrapped PrivateLayerBlockCipherOptions.
struct LayerKey {
  std::string symkey;  // 32 bytes
  std::string nonce;   // 16 bytes
  std::string digest;  // "sha256:<hex>" of the plaintext layer, may be empty
};

// Unwraps the layer key from `layer`'s JWE annotation with any of `keys`.
// FailedPrecondition naming the layer if no recipient opens (or the layer
// has no JWE recipients: its schemes are listed).
absl::StatusOr<LayerKey> UnwrapLayerKey(const image::Descriptor& layer,
                                        const std::vector<jose::PrivateKey>& keys);

// Decrypts `encrypted_path` into `plaintext_path` (streaming), checking the
// HMAC of `layer`'s pubopts and the plaintext digest. DataLoss on a
// mismatch (the output is removed).
absl::Status DecryptLayerFile(const image::Descriptor& layer, const LayerKey& key,
                              const std::string& encrypted_path, const std::string& plaintext_path);

class OcicryptDecryptor final : public image::LayerDecryptor {
 public:
  explicit OcicryptDecryptor(std::shared_ptr<KeySource> keys) : keys_(std::move(keys)) {}
  // FailedPrecondition (naming the layer digest and the KBS's reason) when
  // no key is available; DataLoss for a tampered layer.
  absl::StatusOr<std::string> Decrypt(const image::Descriptor& layer,
                                      const std::string& encrypted_path,
                                      const std::string& plaintext_path) override;

 private:
  std::shared_ptr<KeySource> keys_;
};

}  // namespace cloak::agent::attest

#endif  // CLOAK_AGENT_ATTEST_OCICRYPT_H_
