// Image signatures, verified in the guest before anything but the image's
// manifest is fetched (docs/policy.md "Image signatures"). The signatures
// are sigstore's, as `skopeo copy --sign-by-sigstore-private-key` (with
// registries.d `use-sigstore-attachments: true`) and cosign store them: an
// OCI manifest tagged "sha256-<hex>.sig" in the image's repository, each
// layer a simple-signing JSON payload whose annotation
// "dev.cosignproject.cosign/signature" is the base64 signature over the
// payload's bytes (SHA-256; ECDSA, RSA PKCS#1 v1.5 or Ed25519 keys).
// The requirements come from the agent policy (policy/image_signatures.h).
#ifndef CLOAK_AGENT_IMAGE_SIGNATURE_H_
#define CLOAK_AGENT_IMAGE_SIGNATURE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/image/reference.h"
#include "agent/image/registry_client.h"
#include "policy/image_signatures.h"

namespace cloak::agent::image {

inline constexpr char kSimpleSigningMediaType[] = "application/vnd.dev.cosign.simplesigning.v1+json";
inline constexpr char kCosignSignatureAnnotation[] = "dev.cosignproject.cosign/signature";
inline constexpr char kSigstoreSignatureType[] = "cosign container image signature";
// Bounds on what a registry may hand the guest as signatures.
inline constexpr size_t kMaxSignatures = 64;
inline constexpr int64_t kMaxPayloadBytes = 64 << 10;

// The critical part of a simple-signing payload.
struct SimpleSigningPayload {
  std::string docker_reference;  // critical.identity.docker-reference, as signed
  std::string manifest_digest;   // critical.image.docker-manifest-digest
};

// Strict, as containers/image reads it: exactly "critical" and "optional"
// (an object or null) at the top; "critical" exactly "type" (the sigstore
// type), "image" (exactly "docker-manifest-digest", a sha256 digest) and
// "identity" (exactly "docker-reference"). InvalidArgument saying what is
// wrong. Pure.
absl::StatusOr<SimpleSigningPayload> ParseSimpleSigningPayload(absl::string_view payload);

// Whether `signature_base64` is a signature over `payload` by the PEM
// public key. PermissionDenied when it does not verify, InvalidArgument for
// a malformed signature or key. Pure.
absl::Status VerifySigstoreSignature(absl::string_view public_key_pem, absl::string_view payload,
                                     absl::string_view signature_base64);

// Whether the identity a signature claims satisfies `rule` for the image
// pulled as `image`. PermissionDenied saying why not. Pure.
absl::Status CheckSignedIdentity(policy::SignedIdentity rule, const Reference& image,
                                 absl::string_view signed_reference);

// "sha256-<hex>.sig": the tag of a manifest's sigstore attachment.
std::string SigstoreAttachmentTag(absl::string_view manifest_digest);

struct SigstoreSignature {
  std::string payload;
  std::string signature_base64;
};

// The signatures in an attachment manifest's JSON; `fetch` reads a layer
// (already verified against its digest). Layers of other media types are
// skipped. InvalidArgument for a malformed attachment.
absl::StatusOr<std::vector<SigstoreSignature>> ReadSigstoreAttachment(
    absl::string_view manifest_json,
    const std::function<absl::StatusOr<std::string>(const Descriptor&)>& fetch);

// One signature against one sigstoreSigned requirement: it verifies with
// one of the keys, signs `manifest_digest` and claims an identity the
// requirement accepts for `image`. Pure.
absl::Status CheckSigstoreSignature(const policy::SignatureRequirement& requirement,
                                    const Reference& image, absl::string_view manifest_digest,
                                    const SigstoreSignature& signature);

// The whole decision for one image: `requirements` (all must hold) with the
// signatures `signatures` returns (called at most once, only when a
// requirement needs them; NotFound from it means "no signatures").
// PermissionDenied naming the scope and the reason.
absl::Status EvaluateSignatureRequirements(
    const policy::ScopedRequirements& requirements, const Reference& image,
    absl::string_view manifest_digest,
    const std::function<absl::StatusOr<std::vector<SigstoreSignature>>()>& signatures);

// EvaluateSignatureRequirements for `image`, whose (top-level) manifest has
// `manifest_digest`, under `policy`, fetching the attachment through
// `client`. OK without a request when the image's scope accepts anything.
absl::Status VerifyImageSignatures(const policy::ImageSignaturePolicy& policy,
                                   const Reference& image, absl::string_view manifest_digest,
                                   RegistryClient& client);

}  // namespace cloak::agent::image

#endif  // CLOAK_AGENT_IMAGE_SIGNATURE_H_
