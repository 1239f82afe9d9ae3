#include "agent/image/signature.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/image/manifest.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tee/encoding.h"
#include "nlohmann/json.hpp"

namespace cloak::agent::image {

using nlohmann::json;

namespace {

absl::Status BadPayload(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("simple-signing payload: ", why));
}

// `obj` must have exactly `keys`.
absl::Status ExactKeys(const json& obj, absl::string_view field,
                       std::initializer_list<const char*> keys) {
  if (!obj.is_object()) return BadPayload(absl::StrCat(field, " is not an object"));
  for (const char* k : keys) {
    if (!obj.contains(k)) return BadPayload(absl::StrCat(field, " has no \"", k, "\""));
  }
  if (obj.size() != keys.size()) {
    for (const auto& [k, v] : obj.items()) {
      bool known = false;
      for (const char* n : keys) known = known || k == n;
      if (!known) return BadPayload(absl::StrCat(field, " has an unknown key \"", k, "\""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> StringAt(const json& obj, const char* key, absl::string_view field) {
  const json& v = obj.at(key);
  if (!v.is_string()) return BadPayload(absl::StrCat(field, ".", key, " is not a string"));
  return v.get<std::string>();
}

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// The repository name ("registry/path") a reference names, and whether it
// names only that (no tag, no digest) as written.
std::string RepositoryName(const Reference& r) { return absl::StrCat(r.registry, "/", r.repository); }

bool NameOnly(absl::string_view text) {
  if (absl::StrContains(text, "@")) return false;
  size_t slash = text.rfind('/');
  absl::string_view last = slash == absl::string_view::npos ? text : text.substr(slash + 1);
  return !absl::StrContains(last, ":");
}

std::string Quote(absl::string_view s) { return absl::StrCat("\"", s.substr(0, 256), "\""); }

}  // namespace

absl::StatusOr<SimpleSigningPayload> ParseSimpleSigningPayload(absl::string_view payload) {
  json doc = json::parse(payload.begin(), payload.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return BadPayload("not JSON");
  RETURN_IF_ERROR(ExactKeys(doc, "the document", {"critical", "optional"}));
  if (!doc["optional"].is_null() && !doc["optional"].is_object()) {
    return BadPayload("optional is neither an object nor null");
  }
  const json& critical = doc["critical"];
  RETURN_IF_ERROR(ExactKeys(critical, "critical", {"type", "image", "identity"}));
  ASSIGN_OR_RETURN(std::string type, StringAt(critical, "type", "critical"));
  if (type != kSigstoreSignatureType) {
    return BadPayload(absl::StrCat("critical.type ", Quote(type), " is not \"",
                                   kSigstoreSignatureType, "\""));
  }
  RETURN_IF_ERROR(ExactKeys(critical["image"], "critical.image", {"docker-manifest-digest"}));
  RETURN_IF_ERROR(
      ExactKeys(critical["identity"], "critical.identity", {"docker-reference"}));
  SimpleSigningPayload out;
  ASSIGN_OR_RETURN(out.manifest_digest,
                   StringAt(critical["image"], "docker-manifest-digest", "critical.image"));
  if (!IsValidSha256Digest(out.manifest_digest)) {
    return BadPayload(absl::StrCat("critical.image.docker-manifest-digest ",
                                   Quote(out.manifest_digest), " is not a sha256 digest"));
  }
  ASSIGN_OR_RETURN(out.docker_reference,
                   StringAt(critical["identity"], "docker-reference", "critical.identity"));
  return out;
}

absl::Status VerifySigstoreSignature(absl::string_view public_key_pem, absl::string_view payload,
                                     absl::string_view signature_base64) {
  absl::StatusOr<std::string> sig = tee::Base64Decode(signature_base64);
  if (!sig.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the signature annotation is not base64: ", sig.status().message()));
  }
  BIO* bio = BIO_new_mem_buf(public_key_pem.data(), static_cast<int>(public_key_pem.size()));
  if (bio == nullptr) return absl::ResourceExhaustedError("BIO_new_mem_buf");
  std::unique_ptr<EVP_PKEY, PkeyFree> key(PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  if (key == nullptr) return absl::InvalidArgumentError("the policy's key is not a PEM public key");
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) return absl::ResourceExhaustedError("EVP_MD_CTX_new");
  // SHA-256 for every key type sigstore uses (Ed25519 hashes internally).
  const bool ed25519 = EVP_PKEY_is_a(key.get(), "ED25519") == 1;
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, ed25519 ? nullptr : EVP_sha256(), nullptr,
                           key.get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the policy's ", EVP_PKEY_get0_type_name(key.get()),
                     " key cannot verify sigstore signatures"));
  }
  int ok = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig->data()),
                            sig->size(), reinterpret_cast<const unsigned char*>(payload.data()),
                            payload.size());
  if (ok != 1) return absl::PermissionDeniedError("the signature does not verify with the key");
  return absl::OkStatus();
}

absl::Status CheckSignedIdentity(policy::SignedIdentity rule, const Reference& image,
                                 absl::string_view signed_reference) {
  absl::StatusOr<Reference> signed_ref = ParseReference(signed_reference);
  if (!signed_ref.ok()) {
    return absl::PermissionDeniedError(absl::StrCat("its identity ", Quote(signed_reference),
                                                    " is not an image reference"));
  }
  const bool same_repository = RepositoryName(*signed_ref) == RepositoryName(image);
  const bool exact = !NameOnly(signed_reference) && signed_ref->String() == image.String();
  bool ok = false;
  switch (rule) {
    case policy::SignedIdentity::kMatchRepoDigestOrExact:
      ok = image.digest.empty() ? exact : same_repository;
      break;
    case policy::SignedIdentity::kMatchExact:
      ok = exact;
      break;
    case policy::SignedIdentity::kMatchRepository:
      ok = same_repository;
      break;
  }
  if (ok) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "its identity ", Quote(signed_reference), " does not satisfy signedIdentity ",
      policy::SignedIdentityName(rule), " for ", Quote(image.String())));
}

std::string SigstoreAttachmentTag(absl::string_view manifest_digest) {
  std::string tag(manifest_digest);
  if (size_t colon = tag.find(':'); colon != std::string::npos) tag[colon] = '-';
  return absl::StrCat(tag, ".sig");
}

absl::StatusOr<std::vector<SigstoreSignature>> ReadSigstoreAttachment(
    absl::string_view manifest_json,
    const std::function<absl::StatusOr<std::string>(const Descriptor&)>& fetch) {
  ASSIGN_OR_RETURN(ImageManifest m, ParseImageManifest(manifest_json, "sigstore attachment"));
  std::vector<SigstoreSignature> out;
  for (const Descriptor& layer : m.layers) {
    if (layer.media_type != kSimpleSigningMediaType) continue;
    if (out.size() == kMaxSignatures) {
      return absl::ResourceExhaustedError(
          absl::StrCat("sigstore attachment: more than ", kMaxSignatures, " signatures"));
    }
    auto annotation = layer.annotations.find(kCosignSignatureAnnotation);
    if (annotation == layer.annotations.end()) {
      return absl::InvalidArgumentError(absl::StrCat("sigstore attachment: layer ", layer.digest,
                                                     " has no ", kCosignSignatureAnnotation,
                                                     " annotation"));
    }
    if (layer.size > kMaxPayloadBytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "sigstore attachment: payload ", layer.digest, " is ", layer.size,
          " bytes, more than the limit of ", kMaxPayloadBytes));
    }
    ASSIGN_OR_RETURN(std::string payload, fetch(layer));
    out.push_back({std::move(payload), annotation->second});
  }
  return out;
}

absl::Status CheckSigstoreSignature(const policy::SignatureRequirement& requirement,
                                    const Reference& image, absl::string_view manifest_digest,
                                    const SigstoreSignature& signature) {
  absl::Status crypto = absl::PermissionDeniedError("no key");
  for (const std::string& key : requirement.public_keys_pem) {
    crypto = VerifySigstoreSignature(key, signature.payload, signature.signature_base64);
    if (crypto.ok()) break;
  }
  if (!crypto.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("it does not verify with the policy's key",
                     requirement.public_keys_pem.size() == 1 ? "" : "s", " (wrong key? ",
                     crypto.message(), ")"));
  }
  // Only a payload the key signed is read.
  absl::StatusOr<SimpleSigningPayload> payload = ParseSimpleSigningPayload(signature.payload);
  if (!payload.ok()) return absl::PermissionDeniedError(payload.status().message());
  if (payload->manifest_digest != manifest_digest) {
    return absl::PermissionDeniedError(absl::StrCat("it signs manifest ", payload->manifest_digest,
                                                    ", not this image's ", manifest_digest));
  }
  return CheckSignedIdentity(requirement.signed_identity, image, payload->docker_reference);
}

absl::Status EvaluateSignatureRequirements(
    const policy::ScopedRequirements& scoped, const Reference& image,
    absl::string_view manifest_digest,
    const std::function<absl::StatusOr<std::vector<SigstoreSignature>>()>& signatures) {
  auto refuse = [&](absl::string_view why) {
    return absl::PermissionDeniedError(absl::StrCat(
        "image signature policy: ", image.String(), " (manifest ", manifest_digest,
        ") refused under scope ", Quote(scoped.scope), ": ", why));
  };
  std::optional<std::vector<SigstoreSignature>> fetched;
  for (const policy::SignatureRequirement& r : *scoped.requirements) {
    switch (r.type) {
      case policy::SignatureRequirement::Type::kInsecureAcceptAnything:
        continue;
      case policy::SignatureRequirement::Type::kReject:
        return refuse("the policy rejects every image of this scope (type reject)");
      case policy::SignatureRequirement::Type::kSigstoreSigned:
        break;
    }
    if (!fetched.has_value()) {
      absl::StatusOr<std::vector<SigstoreSignature>> got = signatures();
      if (absl::IsNotFound(got.status())) {
        fetched.emplace();
      } else if (!got.ok()) {
        return refuse(absl::StrCat("its signatures cannot be read: ", got.status().message()));
      } else {
        fetched = *std::move(got);
      }
    }
    if (fetched->empty()) {
      return refuse(absl::StrCat("a sigstore signature is required and the image has none (no ",
                                 SigstoreAttachmentTag(manifest_digest),
                                 " attachment with a simple-signing layer in its repository)"));
    }
    std::vector<std::string> why;
    bool accepted = false;
    for (size_t i = 0; i < fetched->size() && !accepted; ++i) {
      absl::Status s = CheckSigstoreSignature(r, image, manifest_digest, (*fetched)[i]);
      if (s.ok()) {
        accepted = true;
      } else {
        why.push_back(absl::StrCat("signature ", i + 1, "/", fetched->size(), ": ", s.message()));
      }
    }
    if (!accepted) {
      return refuse(absl::StrCat("no signature is accepted: ", absl::StrJoin(why, "; ")));
    }
  }
  return absl::OkStatus();
}

absl::Status VerifyImageSignatures(const policy::ImageSignaturePolicy& policy,
                                   const Reference& image, absl::string_view manifest_digest,
                                   RegistryClient& client) {
  policy::ScopedRequirements scoped =
      policy::RequirementsFor(policy, RepositoryName(image), image.tag, image.digest);
  if (policy::AcceptsAnything(*scoped.requirements)) return absl::OkStatus();
  auto fetch = [&]() -> absl::StatusOr<std::vector<SigstoreSignature>> {
    ASSIGN_OR_RETURN(FetchedManifest attachment,
                     client.GetManifest(SigstoreAttachmentTag(manifest_digest)));
    return ReadSigstoreAttachment(attachment.body, [&](const Descriptor& layer) {
      return client.GetBlob(layer, "signature payload", kMaxPayloadBytes);
    });
  };
  absl::Status s = EvaluateSignatureRequirements(scoped, image, manifest_digest, fetch);
  if (s.ok()) {
    Logger("image")->info("pull {}: signature accepted under scope \"{}\"", image.String(),
                          scoped.scope);
  }
  return s;
}

}  // namespace cloak::agent::image
