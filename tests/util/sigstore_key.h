// Test keys for sigstore image signatures (docs/policy.md "Image
// signatures"). skopeo signs with `--sign-by-sigstore-private-key` but
// cannot make a key, and Debian 12 has no cosign: this writes an ECDSA P-256
// key pair in sigstore's formats — the public key as a PKIX PEM ("PUBLIC
// KEY"), the private key as "ENCRYPTED SIGSTORE PRIVATE KEY" (format in
// docs/policy.md "Test keys"). Test code only: it links libsodium for
// NaCl secretbox, which nothing in the product uses.
#ifndef CLOAK_TESTS_UTIL_SIGSTORE_KEY_H_
#define CLOAK_TESTS_UTIL_SIGSTORE_KEY_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::testutil {

struct SigstoreKeyPair {
  std::string private_pem;  // "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----..."
  std::string public_pem;   // "-----BEGIN PUBLIC KEY-----..."
  std::string private_der;  // the same private key, PKCS#8 DER, in the clear
};

// A fresh P-256 key, its private half encrypted under `passphrase`.
absl::StatusOr<SigstoreKeyPair> MakeSigstoreKeyPair(absl::string_view passphrase);

// The encrypted-key JSON document ({"kdf": {"name": "scrypt", ...},
// "cipher": {"name": "nacl/secretbox", ...}, "ciphertext": ...}) around
// `plaintext`, and back. Scrypt N=32768 r=8 p=1 (the parameters every
// sigstore version reads), 32-byte salt, 24-byte nonce.
absl::StatusOr<std::string> EncryptSigstoreKey(absl::string_view plaintext,
                                               absl::string_view passphrase);
absl::StatusOr<std::string> DecryptSigstoreKey(absl::string_view document,
                                               absl::string_view passphrase);

// The simple-signing payload containers/image writes for a sigstore
// signature: {"critical": {"identity": {"docker-reference": ...}, "image":
// {"docker-manifest-digest": ...}, "type": "cosign container image
// signature"}, "optional": {"creator": ..., "timestamp": ...}}.
std::string SimpleSigningPayload(absl::string_view docker_reference,
                                 absl::string_view manifest_digest);

// base64 ECDSA-SHA256 (DER) signature over `payload` by the PKCS#8 key.
absl::StatusOr<std::string> SignPayload(absl::string_view private_der, absl::string_view payload);

// Pushes a sigstore attachment — an OCI manifest tagged
// "sha256-<hex>.sig" in `repository` (host:port/path) whose layers are the
// payloads, each annotated with its signature — with skopeo, over plain
// HTTP. `work_dir` receives the OCI layout. Returns skopeo's output on
// failure.
struct SignatureLayer {
  std::string payload;
  std::string signature_base64;
};
absl::Status PushSigstoreAttachment(const std::string& work_dir, const std::string& repository,
                                    absl::string_view manifest_digest,
                                    const std::vector<SignatureLayer>& layers);

}  // namespace cloak::testutil

#endif  // CLOAK_TESTS_UTIL_SIGSTORE_KEY_H_
