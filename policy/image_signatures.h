// The policy's image signature rules (docs/policy.md "Image signatures"):
// containers-policy.json's docker-transport semantics for the images the
// guest pulls. Scopes map a registry, namespace, repository or full
// reference to a list of requirements that must all hold; the most specific
// scope that matches an image wins, else "default". Pure: parsing and
// lookup; agent/image/signature.h verifies.
#ifndef CLOAK_POLICY_IMAGE_SIGNATURES_H_
#define CLOAK_POLICY_IMAGE_SIGNATURES_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace cloak::policy {

// How the identity a signature claims (critical.identity.docker-reference)
// must relate to the image reference being pulled.
enum class SignedIdentity {
  // Default. A reference by digest: same repository; by tag: the same
  // repository and tag.
  kMatchRepoDigestOrExact,
  // The very same reference (repository and tag, or repository and digest).
  kMatchExact,
  // The same repository, whatever the tag.
  kMatchRepository,
};

struct SignatureRequirement {
  enum class Type {
    kInsecureAcceptAnything,  // "insecureAcceptAnything": no signature needed
    kReject,                  // "reject": never pulled
    kSigstoreSigned,          // "sigstoreSigned": a sigstore signature by one of `public_keys_pem`
  };
  Type type = Type::kReject;
  // kSigstoreSigned: PEM public keys (PKIX "PUBLIC KEY"; ECDSA, RSA or
  // Ed25519); a signature by any of them is enough.
  std::vector<std::string> public_keys_pem;
  SignedIdentity signed_identity = SignedIdentity::kMatchRepoDigestOrExact;
};

struct ImageSignaturePolicy {
  // Requirements for images no scope matches. Required in the document.
  std::vector<SignatureRequirement> default_requirements;
  // Scope → requirements. A scope is "host[:port]", "host[:port]/namespace…",
  // "host[:port]/repository", or a full reference with ":tag" or
  // "@sha256:<hex>" (an image pinned by digest).
  std::map<std::string, std::vector<SignatureRequirement>> scopes;
};

// Requirements in force for one image, and the scope that chose them.
struct ScopedRequirements {
  std::string scope;  // the scope key, or "default"
  const std::vector<SignatureRequirement>* requirements = nullptr;
};

// `repository` is the normalised "registry/path" (docker.io/library/busybox),
// `tag` and `digest` as in the reference (either may be empty). The most
// specific matching scope: the reference with its digest, with its tag,
// the repository, each enclosing namespace, the registry; else default.
ScopedRequirements RequirementsFor(const ImageSignaturePolicy& policy, absl::string_view repository,
                                   absl::string_view tag, absl::string_view digest);

// True when every requirement is insecureAcceptAnything (nothing to check).
bool AcceptsAnything(const std::vector<SignatureRequirement>& requirements);

// Parses the policy's "image_signatures" object. InvalidArgument naming the
// key at fault; a public key that is not a PEM public key OpenSSL can read
// is an error here, not at pull time.
absl::StatusOr<std::shared_ptr<const ImageSignaturePolicy>> ParseImageSignatures(
    const nlohmann::json& j, absl::string_view field);

const char* SignedIdentityName(SignedIdentity identity);

// Plain words for `cloak policy explain`; `policy` may be null (none).
std::string ExplainImageSignatures(const ImageSignaturePolicy* policy);

}  // namespace cloak::policy

#endif  // CLOAK_POLICY_IMAGE_SIGNATURES_H_
