#include "policy/image_signatures.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/tee/encoding.h"

namespace cloak::policy {

using nlohmann::json;

namespace {

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("policy: ", field, ": ", why));
}

// Every PEM block of `pem` must be a public key OpenSSL reads.
absl::Status CheckPublicKeys(const std::string& pem, absl::string_view field) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return absl::ResourceExhaustedError("BIO_new_mem_buf");
  int keys = 0;
  while (true) {
    EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
    if (key == nullptr) break;
    EVP_PKEY_free(key);
    ++keys;
  }
  BIO_free(bio);
  if (keys == 0) {
    return Bad(field, "is not a PEM public key (\"-----BEGIN PUBLIC KEY-----\", as "
                      "`cosign public-key` or `openssl pkey -pubout` write it)");
  }
  return absl::OkStatus();
}

absl::StatusOr<SignedIdentity> ParseIdentity(const json& j, absl::string_view field) {
  if (!j.is_object()) return Bad(field, "must be an object {\"type\": ...}");
  for (const auto& [k, v] : j.items()) {
    if (k != "type") return Bad(absl::StrCat(field, ".", k), "unknown key (known: type)");
  }
  auto it = j.find("type");
  if (it == j.end() || !it->is_string()) return Bad(field, "needs a \"type\" string");
  const std::string t = it->get<std::string>();
  if (t == "matchRepoDigestOrExact") return SignedIdentity::kMatchRepoDigestOrExact;
  if (t == "matchExact") return SignedIdentity::kMatchExact;
  if (t == "matchRepository") return SignedIdentity::kMatchRepository;
  return Bad(absl::StrCat(field, ".type"),
             absl::StrCat("\"", t, "\" is not supported (matchRepoDigestOrExact, matchExact, "
                                   "matchRepository)"));
}

absl::StatusOr<SignatureRequirement> ParseRequirement(const json& j, absl::string_view field) {
  if (!j.is_object()) return Bad(field, "must be an object {\"type\": ...}");
  auto type = j.find("type");
  if (type == j.end() || !type->is_string()) return Bad(field, "needs a \"type\" string");
  const std::string t = type->get<std::string>();
  SignatureRequirement r;
  std::vector<std::string> known = {"type"};
  if (t == "insecureAcceptAnything") {
    r.type = SignatureRequirement::Type::kInsecureAcceptAnything;
  } else if (t == "reject") {
    r.type = SignatureRequirement::Type::kReject;
  } else if (t == "sigstoreSigned") {
    r.type = SignatureRequirement::Type::kSigstoreSigned;
    known = {"type", "keyData", "keys", "signedIdentity"};
  } else {
    return Bad(absl::StrCat(field, ".type"),
               absl::StrCat("\"", t, "\" is not supported (insecureAcceptAnything, reject, "
                                     "sigstoreSigned)"));
  }
  for (const auto& [k, v] : j.items()) {
    if (std::find(known.begin(), known.end(), k) != known.end()) continue;
    if (k == "keyPath" || k == "keyPaths") {
      return Bad(absl::StrCat(field, ".", k),
                 "keys must travel in the policy (which the launch measures), not name a file: "
                 "use keyData (base64 of the PEM) or keys (PEM strings)");
    }
    return Bad(absl::StrCat(field, ".", k),
               absl::StrCat("unknown key for type ", t));
  }
  if (r.type != SignatureRequirement::Type::kSigstoreSigned) return r;
  if (auto it = j.find("keyData"); it != j.end()) {
    std::string f = absl::StrCat(field, ".keyData");
    if (!it->is_string()) return Bad(f, "must be a string (base64 of a PEM public key)");
    absl::StatusOr<std::string> pem = tee::Base64Decode(it->get<std::string>());
    if (!pem.ok()) return Bad(f, absl::StrCat("is not base64: ", pem.status().message()));
    RETURN_IF_ERROR(CheckPublicKeys(*pem, f));
    r.public_keys_pem.push_back(*std::move(pem));
  }
  if (auto it = j.find("keys"); it != j.end()) {
    std::string f = absl::StrCat(field, ".keys");
    if (!it->is_array()) return Bad(f, "must be an array of PEM public keys");
    for (size_t i = 0; i < it->size(); ++i) {
      std::string fi = absl::StrCat(f, "[", i, "]");
      if (!(*it)[i].is_string()) return Bad(fi, "must be a PEM string");
      std::string pem = (*it)[i].get<std::string>();
      RETURN_IF_ERROR(CheckPublicKeys(pem, fi));
      r.public_keys_pem.push_back(std::move(pem));
    }
  }
  if (r.public_keys_pem.empty()) {
    return Bad(field, "sigstoreSigned needs keyData or keys (the public keys signatures must "
                      "verify with)");
  }
  if (auto it = j.find("signedIdentity"); it != j.end()) {
    ASSIGN_OR_RETURN(r.signed_identity, ParseIdentity(*it, absl::StrCat(field, ".signedIdentity")));
  }
  return r;
}

absl::StatusOr<std::vector<SignatureRequirement>> ParseRequirements(const json& j,
                                                                    absl::string_view field) {
  if (!j.is_array() || j.empty()) {
    return Bad(field, "must be a non-empty array of requirements (all must hold)");
  }
  std::vector<SignatureRequirement> out;
  for (size_t i = 0; i < j.size(); ++i) {
    ASSIGN_OR_RETURN(SignatureRequirement r, ParseRequirement(j[i], absl::StrCat(field, "[", i, "]")));
    out.push_back(std::move(r));
  }
  return out;
}

absl::Status CheckScope(const std::string& scope, absl::string_view field) {
  if (scope.empty() || scope.front() == '/' || scope.back() == '/' ||
      absl::StrContains(scope, "://") || absl::StrContains(scope, "//")) {
    return Bad(field, "a scope is host[:port][/namespace.../repository][:tag|@sha256:<hex>]");
  }
  for (char c : scope) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) || c == '*') {
      return Bad(field, "a scope has no spaces or wildcards");
    }
  }
  if (size_t at = scope.find('@'); at != std::string::npos) {
    absl::string_view d = absl::string_view(scope).substr(at + 1);
    bool hex = d.size() == 7 + 64 && absl::StartsWith(d, "sha256:");
    for (char c : d.substr(std::min<size_t>(7, d.size()))) {
      hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    }
    if (!hex) return Bad(field, "a digest in a scope is @sha256:<64 lowercase hex digits>");
  }
  return absl::OkStatus();
}

}  // namespace

const char* SignedIdentityName(SignedIdentity identity) {
  switch (identity) {
    case SignedIdentity::kMatchRepoDigestOrExact:
      return "matchRepoDigestOrExact";
    case SignedIdentity::kMatchExact:
      return "matchExact";
    case SignedIdentity::kMatchRepository:
      return "matchRepository";
  }
  return "?";
}

ScopedRequirements RequirementsFor(const ImageSignaturePolicy& policy, absl::string_view repository,
                                   absl::string_view tag, absl::string_view digest) {
  std::vector<std::string> candidates;
  if (!digest.empty()) candidates.push_back(absl::StrCat(repository, "@", digest));
  if (!tag.empty()) candidates.push_back(absl::StrCat(repository, ":", tag));
  std::string name(repository);
  while (!name.empty()) {
    candidates.push_back(name);
    size_t slash = name.rfind('/');
    if (slash == std::string::npos) break;
    name.resize(slash);
  }
  for (const std::string& c : candidates) {
    auto it = policy.scopes.find(c);
    if (it != policy.scopes.end()) return {it->first, &it->second};
  }
  return {"default", &policy.default_requirements};
}

namespace {

std::string DescribeRequirements(const std::vector<SignatureRequirement>& reqs) {
  std::vector<std::string> parts;
  for (const SignatureRequirement& r : reqs) {
    switch (r.type) {
      case SignatureRequirement::Type::kInsecureAcceptAnything:
        parts.push_back("no signature needed");
        break;
      case SignatureRequirement::Type::kReject:
        parts.push_back("never pulled");
        break;
      case SignatureRequirement::Type::kSigstoreSigned:
        parts.push_back(absl::StrCat("a sigstore signature by one of ", r.public_keys_pem.size(),
                                     " key(s), identity ", SignedIdentityName(r.signed_identity)));
        break;
    }
  }
  return absl::StrJoin(parts, " and ");
}

}  // namespace

std::string ExplainImageSignatures(const ImageSignaturePolicy* policy) {
  if (policy == nullptr) return "Image signatures: none required.\n";
  std::string out = "Image signatures (checked in the guest before any layer is fetched):\n";
  for (const auto& [scope, reqs] : policy->scopes) {
    absl::StrAppend(&out, "  ", scope, ": ", DescribeRequirements(reqs), "\n");
  }
  absl::StrAppend(&out, "  any other image: ", DescribeRequirements(policy->default_requirements),
                  "\n");
  return out;
}

bool AcceptsAnything(const std::vector<SignatureRequirement>& requirements) {
  for (const SignatureRequirement& r : requirements) {
    if (r.type != SignatureRequirement::Type::kInsecureAcceptAnything) return false;
  }
  return true;
}

absl::StatusOr<std::shared_ptr<const ImageSignaturePolicy>> ParseImageSignatures(
    const json& j, absl::string_view field) {
  if (!j.is_object()) return Bad(field, "must be an object {\"default\": [...], \"scopes\": {...}}");
  auto p = std::make_shared<ImageSignaturePolicy>();
  bool have_default = false;
  for (const auto& [k, v] : j.items()) {
    std::string f = absl::StrCat(field, ".", k);
    if (k == "default") {
      ASSIGN_OR_RETURN(p->default_requirements, ParseRequirements(v, f));
      have_default = true;
    } else if (k == "scopes") {
      if (!v.is_object()) return Bad(f, "must be an object of scope: [requirements]");
      for (const auto& [scope, reqs] : v.items()) {
        std::string fs = absl::StrCat(f, "[\"", scope, "\"]");
        RETURN_IF_ERROR(CheckScope(scope, fs));
        ASSIGN_OR_RETURN(p->scopes[scope], ParseRequirements(reqs, fs));
      }
    } else {
      return Bad(f, "unknown key (known: default, scopes)");
    }
  }
  if (!have_default) {
    return Bad(field, "needs \"default\" (e.g. [{\"type\": \"reject\"}] or "
                      "[{\"type\": \"insecureAcceptAnything\"}]) for images no scope names");
  }
  return std::shared_ptr<const ImageSignaturePolicy>(std::move(p));
}

}  // namespace cloak::policy
