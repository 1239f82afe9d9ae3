// agent/image/signature.h: simple-signing payloads, sigstore signatures
// (public vectors and keys made by tests/util/sigstore_key.h), signed
// identities and the decision over a scope's requirements.
#include "agent/image/signature.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "absl/strings/str_cat.h"
#include "common/tee/encoding.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/sigstore_key.h"

namespace cloak::agent::image {
namespace {

using ::testing::HasSubstr;
using policy::SignatureRequirement;
using policy::SignedIdentity;

// containers/image signature/fixtures/cosign.pub and two signatures by its
// key from signature/internal/sigstore_payload_test.go (made by cosign):
// over the bytes "&" and "{}".
constexpr char kCosignPub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFNLqFhf4fiN6o/glAuYnq2jYUeL0\n"
    "vRuLu/z39pmbVwS9ff5AYnlwaP9sxREajdLY9ynM6G1sy6AAmb7Z63TsLg==\n"
    "-----END PUBLIC KEY-----\n";
constexpr char kSigOverAmpersand[] =
    "MEUCIARnnxZQPALBfqkB4aNAYXad79Qs6VehcrgIeZ8p7I2FAiEAzq2HXwXlz1iJeh+ucUR3L0zpjynQk6Rk0+/gXYp49RU=";
constexpr char kSigOverBraces[] =
    "MEUCIQDkySOBGxastVP0+koTA33NH5hXjwosFau4rxTPN6g48QIgb7eWKkGqfEpHMM3aT4xiqyP/170jEkdFuciuwN4mux4=";

const std::string kDigest = "sha256:" + std::string(64, 'a');
const std::string kOtherDigest = "sha256:" + std::string(64, 'b');

Reference Ref(const std::string& text) {
  absl::StatusOr<Reference> r = ParseReference(text);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : Reference{};
}

TEST(VerifySigstoreSignature, AcceptsCosignMadeSignaturesOverTheExactBytes) {
  EXPECT_TRUE(VerifySigstoreSignature(kCosignPub, "&", kSigOverAmpersand).ok());
  EXPECT_TRUE(VerifySigstoreSignature(kCosignPub, "{}", kSigOverBraces).ok());
  absl::Status swapped = VerifySigstoreSignature(kCosignPub, "&", kSigOverBraces);
  EXPECT_TRUE(absl::IsPermissionDenied(swapped)) << swapped;
  EXPECT_TRUE(absl::IsPermissionDenied(VerifySigstoreSignature(kCosignPub, "& ", kSigOverAmpersand)));
  EXPECT_TRUE(absl::IsInvalidArgument(VerifySigstoreSignature(kCosignPub, "&", "not base64!")));
  EXPECT_TRUE(absl::IsInvalidArgument(VerifySigstoreSignature("no key", "&", kSigOverAmpersand)));
  // Extra padding, as containers/image refuses it.
  EXPECT_FALSE(VerifySigstoreSignature(kCosignPub, "&", absl::StrCat(kSigOverAmpersand, "=")).ok());
}

TEST(VerifySigstoreSignature, AnotherKeyDoesNotVerify) {
  absl::StatusOr<testutil::SigstoreKeyPair> other = testutil::MakeSigstoreKeyPair("p");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_TRUE(absl::IsPermissionDenied(
      VerifySigstoreSignature(other->public_pem, "&", kSigOverAmpersand)));
}

// A key of another type, its public PEM and a signature over `payload` as
// sigstore makes them (SHA-256; Ed25519 over the raw bytes).
struct OtherKey {
  std::string public_pem, signature_base64;
};
OtherKey SignWith(EVP_PKEY* key, const std::string& payload, bool prehash) {
  OtherKey out;
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  out.public_pem.assign(data, static_cast<size_t>(len));
  BIO_free(bio);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t n = 0;
  EVP_DigestSignInit(ctx, nullptr, prehash ? EVP_sha256() : nullptr, nullptr, key);
  EVP_DigestSign(ctx, nullptr, &n, reinterpret_cast<const unsigned char*>(payload.data()),
                 payload.size());
  std::string sig(n, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &n,
                 reinterpret_cast<const unsigned char*>(payload.data()), payload.size());
  sig.resize(n);
  EVP_MD_CTX_free(ctx);
  out.signature_base64 = tee::Base64Encode(sig);
  return out;
}

TEST(VerifySigstoreSignature, TakesP384RsaAndEd25519KeysToo) {
  const std::string payload = "payload bytes";
  struct Case {
    const char* name;
    EVP_PKEY* key;
    bool prehash;
  } cases[] = {
      {"P-384", EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"), true},
      {"RSA-2048", EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}), true},
      {"Ed25519", EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), false},
  };
  for (Case& c : cases) {
    ASSERT_NE(c.key, nullptr) << c.name;
    OtherKey k = SignWith(c.key, payload, c.prehash);
    EXPECT_TRUE(VerifySigstoreSignature(k.public_pem, payload, k.signature_base64).ok()) << c.name;
    EXPECT_TRUE(absl::IsPermissionDenied(
        VerifySigstoreSignature(k.public_pem, payload + "x", k.signature_base64)))
        << c.name;
    EVP_PKEY_free(c.key);
  }
}

TEST(ParseSimpleSigningPayload, ReadsWhatContainersImageAndCosignWrite) {
  auto p = ParseSimpleSigningPayload(testutil::SimpleSigningPayload("127.0.0.1:5000/a:1", kDigest));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->docker_reference, "127.0.0.1:5000/a:1");
  EXPECT_EQ(p->manifest_digest, kDigest);
  // cosign writes "optional": null.
  auto c = ParseSimpleSigningPayload(absl::StrCat(
      R"({"critical":{"identity":{"docker-reference":"192.168.64.2:5000/cosign-signed-multi"},)",
      R"("image":{"docker-manifest-digest":")", kDigest,
      R"("},"type":"cosign container image signature"},"optional":null})"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->docker_reference, "192.168.64.2:5000/cosign-signed-multi");
}

TEST(ParseSimpleSigningPayload, IsStrictAboutTheCriticalPart) {
  const std::string img = absl::StrCat(R"("image":{"docker-manifest-digest":")", kDigest, R"("})");
  const std::string id = R"("identity":{"docker-reference":"r/a:1"})";
  const std::string type = R"("type":"cosign container image signature")";
  struct Case {
    std::string payload;
    std::string why;
  } cases[] = {
      {"&", "not JSON"},
      {"[]", "not an object"},
      {absl::StrCat(R"({"critical":{)", id, ",", img, ",", type, "}}"), "no \"optional\""},
      {absl::StrCat(R"({"critical":{)", id, ",", img, ",", type, R"(},"optional":{},"x":1})"),
       "unknown key \"x\""},
      {absl::StrCat(R"({"critical":{)", id, ",", img, ",", type, R"(},"optional":1})"),
       "neither an object nor null"},
      {absl::StrCat(R"({"critical":{)", id, ",", img, R"(},"optional":{}})"), "no \"type\""},
      {absl::StrCat(R"({"critical":{)", id, ",", img, ",", type, R"(,"x":1},"optional":{}})"),
       "unknown key \"x\""},
      {absl::StrCat(R"({"critical":{)", id, ",", img, R"(,"type":"atomic container signature"},"optional":{}})"),
       "is not \"cosign container image signature\""},
      {absl::StrCat(R"({"critical":{)", id, R"(,"image":{"docker-manifest-digest":"sha256:12"},)",
                    type, R"(},"optional":{}})"),
       "not a sha256 digest"},
      {absl::StrCat(R"({"critical":{"identity":{},)", img, ",", type, R"(},"optional":{}})"),
       "no \"docker-reference\""},
      {absl::StrCat(R"({"critical":{"identity":{"docker-reference":1},)", img, ",", type,
                    R"(},"optional":{}})"),
       "not a string"},
  };
  for (const Case& c : cases) {
    auto p = ParseSimpleSigningPayload(c.payload);
    ASSERT_FALSE(p.ok()) << c.payload;
    EXPECT_THAT(p.status().message(), HasSubstr(c.why)) << c.payload;
  }
}

TEST(CheckSignedIdentity, FollowsContainersPolicySemantics) {
  struct Case {
    SignedIdentity rule;
    std::string image;
    std::string signed_ref;
    bool ok;
  } cases[] = {
      // matchRepoDigestOrExact: by tag → exact; by digest → same repository.
      {SignedIdentity::kMatchRepoDigestOrExact, "reg:5000/app:v1", "reg:5000/app:v1", true},
      {SignedIdentity::kMatchRepoDigestOrExact, "reg:5000/app:v1", "reg:5000/app:v2", false},
      {SignedIdentity::kMatchRepoDigestOrExact, "reg:5000/app:v1", "reg:5000/other:v1", false},
      {SignedIdentity::kMatchRepoDigestOrExact, "reg:5000/app:v1", "reg:5000/app", false},
      {SignedIdentity::kMatchRepoDigestOrExact, "reg:5000/app@" + kDigest, "reg:5000/app:v1", true},
      {SignedIdentity::kMatchRepoDigestOrExact, "reg:5000/app@" + kDigest, "reg:5000/app", true},
      {SignedIdentity::kMatchRepoDigestOrExact, "reg:5000/app@" + kDigest, "evil:5000/app:v1", false},
      // Normalised as Docker does.
      {SignedIdentity::kMatchRepoDigestOrExact, "busybox:1", "docker.io/library/busybox:1", true},
      // matchExact.
      {SignedIdentity::kMatchExact, "reg:5000/app:v1", "reg:5000/app:v1", true},
      {SignedIdentity::kMatchExact, "reg:5000/app@" + kDigest, "reg:5000/app:v1", false},
      {SignedIdentity::kMatchExact, "reg:5000/app@" + kDigest, "reg:5000/app@" + kDigest, true},
      {SignedIdentity::kMatchExact, "reg:5000/app:latest", "reg:5000/app", false},
      // matchRepository.
      {SignedIdentity::kMatchRepository, "reg:5000/app:v1", "reg:5000/app:v9", true},
      {SignedIdentity::kMatchRepository, "reg:5000/app:v1", "reg:5000/app", true},
      {SignedIdentity::kMatchRepository, "reg:5000/app:v1", "reg:5000/app2:v1", false},
      // Not a reference at all.
      {SignedIdentity::kMatchRepository, "reg:5000/app:v1", "UPPER/Case", false},
  };
  for (const Case& c : cases) {
    absl::Status s = CheckSignedIdentity(c.rule, Ref(c.image), c.signed_ref);
    EXPECT_EQ(s.ok(), c.ok) << policy::SignedIdentityName(c.rule) << " " << c.image << " vs "
                            << c.signed_ref << ": " << s;
    if (!c.ok) {
      EXPECT_TRUE(absl::IsPermissionDenied(s));
    }
  }
}

TEST(SigstoreAttachmentTag, IsTheDigestWithADash) {
  EXPECT_EQ(SigstoreAttachmentTag(kDigest), "sha256-" + std::string(64, 'a') + ".sig");
}

TEST(ReadSigstoreAttachment, ReadsSimpleSigningLayersAndSkipsOthers) {
  const std::string d1 = "sha256:" + std::string(64, '1');
  const std::string d2 = "sha256:" + std::string(64, '2');
  const std::string manifest = absl::StrCat(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)",
      R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")", d1,
      R"(","size":2},"layers":[)",
      R"({"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":")", d1,
      R"(","size":3,"annotations":{"dev.cosignproject.cosign/signature":"SIG1"}},)",
      R"({"mediaType":"application/vnd.example.other","digest":")", d2, R"(","size":3}]})");
  std::vector<std::string> fetched;
  auto sigs = ReadSigstoreAttachment(manifest, [&](const Descriptor& d) {
    fetched.push_back(d.digest);
    return absl::StatusOr<std::string>("abc");
  });
  ASSERT_TRUE(sigs.ok()) << sigs.status();
  ASSERT_EQ(sigs->size(), 1u);
  EXPECT_EQ((*sigs)[0].payload, "abc");
  EXPECT_EQ((*sigs)[0].signature_base64, "SIG1");
  EXPECT_EQ(fetched, std::vector<std::string>{d1});

  std::string no_annotation = manifest;
  no_annotation.replace(no_annotation.find("dev.cosignproject.cosign/signature"), 34, "x");
  auto bad = ReadSigstoreAttachment(no_annotation, [](const Descriptor&) {
    return absl::StatusOr<std::string>("abc");
  });
  EXPECT_FALSE(bad.ok());
}

class EvaluateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto k = testutil::MakeSigstoreKeyPair("p");
    ASSERT_TRUE(k.ok()) << k.status();
    key_ = *k;
    auto o = testutil::MakeSigstoreKeyPair("p");
    ASSERT_TRUE(o.ok()) << o.status();
    other_ = *o;
    req_.type = SignatureRequirement::Type::kSigstoreSigned;
    req_.public_keys_pem = {key_.public_pem};
  }

  SigstoreSignature Sign(const testutil::SigstoreKeyPair& key, const std::string& ref,
                         const std::string& digest) {
    SigstoreSignature s;
    s.payload = testutil::SimpleSigningPayload(ref, digest);
    auto sig = testutil::SignPayload(key.private_der, s.payload);
    EXPECT_TRUE(sig.ok()) << sig.status();
    s.signature_base64 = sig.ok() ? *sig : "";
    return s;
  }

  absl::Status Evaluate(const std::vector<SignatureRequirement>& reqs, const std::string& image,
                        absl::StatusOr<std::vector<SigstoreSignature>> sigs, int* calls = nullptr) {
    policy::ScopedRequirements scoped{"reg:5000/app", &reqs};
    return EvaluateSignatureRequirements(scoped, Ref(image), kDigest, [&, calls] {
      if (calls != nullptr) ++*calls;
      return sigs;
    });
  }

  testutil::SigstoreKeyPair key_, other_;
  SignatureRequirement req_;
};

TEST_F(EvaluateTest, ACorrectSignatureIsAccepted) {
  EXPECT_TRUE(Evaluate({req_}, "reg:5000/app:v1",
                       std::vector<SigstoreSignature>{Sign(key_, "reg:5000/app:v1", kDigest)})
                  .ok());
  // One good signature among bad ones is enough.
  EXPECT_TRUE(Evaluate({req_}, "reg:5000/app:v1",
                       std::vector<SigstoreSignature>{Sign(other_, "reg:5000/app:v1", kDigest),
                                                      Sign(key_, "reg:5000/app:v1", kDigest)})
                  .ok());
}

TEST_F(EvaluateTest, RefusesNamingTheReason) {
  struct Case {
    std::string name;
    absl::StatusOr<std::vector<SigstoreSignature>> sigs;
    std::string why;
  } cases[] = {
      {"unsigned", absl::NotFoundError("image not resolved: HTTP 404"), "the image has none"},
      {"empty attachment", std::vector<SigstoreSignature>{}, "the image has none"},
      {"wrong key", std::vector<SigstoreSignature>{Sign(other_, "reg:5000/app:v1", kDigest)},
       "does not verify with the policy's key"},
      {"wrong digest", std::vector<SigstoreSignature>{Sign(key_, "reg:5000/app:v1", kOtherDigest)},
       "it signs manifest " + kOtherDigest + ", not this image's " + kDigest},
      {"wrong identity", std::vector<SigstoreSignature>{Sign(key_, "reg:5000/evil:v1", kDigest)},
       "does not satisfy signedIdentity matchRepoDigestOrExact"},
      {"unreadable", absl::UnavailableError("connection refused"), "cannot be read"},
  };
  for (Case& c : cases) {
    absl::Status s = Evaluate({req_}, "reg:5000/app:v1", c.sigs);
    ASSERT_TRUE(absl::IsPermissionDenied(s)) << c.name << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(c.why)) << c.name;
    EXPECT_THAT(s.message(), HasSubstr("image signature policy: reg:5000/app:v1")) << c.name;
    EXPECT_THAT(s.message(), HasSubstr("scope \"reg:5000/app\"")) << c.name;
  }
}

TEST_F(EvaluateTest, RejectAndAcceptAnythingNeedNoSignatures) {
  SignatureRequirement reject;
  reject.type = SignatureRequirement::Type::kReject;
  SignatureRequirement accept;
  accept.type = SignatureRequirement::Type::kInsecureAcceptAnything;
  int calls = 0;
  absl::Status s = Evaluate({reject}, "reg:5000/app:v1", std::vector<SigstoreSignature>{}, &calls);
  EXPECT_TRUE(absl::IsPermissionDenied(s));
  EXPECT_THAT(s.message(), HasSubstr("type reject"));
  EXPECT_TRUE(Evaluate({accept}, "reg:5000/app:v1", absl::NotFoundError("none"), &calls).ok());
  EXPECT_EQ(calls, 0);
  // Every requirement must hold; the signatures are read once.
  SignatureRequirement second = req_;
  second.public_keys_pem = {other_.public_pem};
  s = Evaluate({req_, second}, "reg:5000/app:v1",
               std::vector<SigstoreSignature>{Sign(key_, "reg:5000/app:v1", kDigest)}, &calls);
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_EQ(calls, 1);
}

TEST_F(EvaluateTest, ADigestReferenceAcceptsAnyTagOfItsRepository) {
  EXPECT_TRUE(Evaluate({req_}, "reg:5000/app@" + kDigest,
                       std::vector<SigstoreSignature>{Sign(key_, "reg:5000/app:v1", kDigest)})
                  .ok());
  SignatureRequirement exact = req_;
  exact.signed_identity = SignedIdentity::kMatchExact;
  EXPECT_FALSE(Evaluate({exact}, "reg:5000/app@" + kDigest,
                        std::vector<SigstoreSignature>{Sign(key_, "reg:5000/app:v1", kDigest)})
                   .ok());
}

}  // namespace
}  // namespace cloak::agent::image
