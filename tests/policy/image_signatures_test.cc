// policy/image_signatures.h: the "image_signatures" document and the scope
// an image falls under.
#include "policy/image_signatures.h"

#include "absl/strings/str_cat.h"
#include "common/tee/encoding.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "policy/policy.h"

namespace cloak::policy {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

// A P-256 public key (containers/image signature/fixtures/cosign.pub).
constexpr char kPub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFNLqFhf4fiN6o/glAuYnq2jYUeL0\n"
    "vRuLu/z39pmbVwS9ff5AYnlwaP9sxREajdLY9ynM6G1sy6AAmb7Z63TsLg==\n"
    "-----END PUBLIC KEY-----\n";
const std::string kDigest = "sha256:" + std::string(64, 'c');

json Doc() {
  return json{
      {"default", {{{"type", "reject"}}}},
      {"scopes",
       {{"reg:5000", {{{"type", "insecureAcceptAnything"}}}},
        {"reg:5000/team", {{{"type", "sigstoreSigned"}, {"keys", {kPub}}}}},
        {"reg:5000/team/app",
         {{{"type", "sigstoreSigned"},
           {"keyData", tee::Base64Encode(kPub)},
           {"signedIdentity", {{"type", "matchExact"}}}}}},
        {"reg:5000/team/app:debug", {{{"type", "reject"}}}},
        {"reg:5000/team/app@" + kDigest, {{{"type", "insecureAcceptAnything"}}}}}}};
}

TEST(ImageSignatures, ParsesContainersPolicyStyleRequirements) {
  auto p = ParseImageSignatures(Doc(), "image_signatures");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ((*p)->default_requirements.size(), 1u);
  EXPECT_EQ((*p)->default_requirements[0].type, SignatureRequirement::Type::kReject);
  const auto& team = (*p)->scopes.at("reg:5000/team")[0];
  EXPECT_EQ(team.type, SignatureRequirement::Type::kSigstoreSigned);
  EXPECT_EQ(team.public_keys_pem, std::vector<std::string>{kPub});
  EXPECT_EQ(team.signed_identity, SignedIdentity::kMatchRepoDigestOrExact);
  const auto& app = (*p)->scopes.at("reg:5000/team/app")[0];
  EXPECT_EQ(app.public_keys_pem, std::vector<std::string>{kPub});
  EXPECT_EQ(app.signed_identity, SignedIdentity::kMatchExact);
}

TEST(ImageSignatures, TheMostSpecificScopeWins) {
  auto p = ParseImageSignatures(Doc(), "image_signatures");
  ASSERT_TRUE(p.ok()) << p.status();
  struct Case {
    std::string repo, tag, digest, scope;
  } cases[] = {
      {"reg:5000/team/app", "v1", "", "reg:5000/team/app"},
      {"reg:5000/team/app", "debug", "", "reg:5000/team/app:debug"},
      {"reg:5000/team/app", "", kDigest, "reg:5000/team/app@" + kDigest},
      {"reg:5000/team/app", "", "sha256:" + std::string(64, 'd'), "reg:5000/team/app"},
      {"reg:5000/team/other", "v1", "", "reg:5000/team"},
      {"reg:5000/team/a/b/c", "v1", "", "reg:5000/team"},
      {"reg:5000/teamx", "v1", "", "reg:5000"},
      {"reg:5001/team/app", "v1", "", "default"},
      {"docker.io/library/busybox", "latest", "", "default"},
  };
  for (const Case& c : cases) {
    ScopedRequirements s = RequirementsFor(**p, c.repo, c.tag, c.digest);
    EXPECT_EQ(s.scope, c.scope) << c.repo << ":" << c.tag << "@" << c.digest;
    ASSERT_NE(s.requirements, nullptr);
  }
  EXPECT_TRUE(AcceptsAnything(*RequirementsFor(**p, "reg:5000/x", "1", "").requirements));
  EXPECT_FALSE(AcceptsAnything(*RequirementsFor(**p, "reg:5000/team/x", "1", "").requirements));
}

TEST(ImageSignatures, RefusesWhatWouldSilentlyWeakenIt) {
  struct Case {
    json doc;
    std::string why;
  } cases[] = {
      {json{{"scopes", json::object()}}, "needs \"default\""},
      {json{{"default", json::array()}}, "non-empty array"},
      {json{{"default", {{{"type", "signedBy"}}}}}, "\"signedBy\" is not supported"},
      {json{{"default", {{{"type", "reject"}}}}, {"extra", 1}}, "unknown key"},
      {json{{"default", {{{"type", "sigstoreSigned"}}}}}, "needs keyData or keys"},
      {json{{"default", {{{"type", "sigstoreSigned"}, {"keyPath", "/etc/key.pub"}}}}},
       "keys must travel in the policy"},
      {json{{"default", {{{"type", "sigstoreSigned"}, {"keys", {"not a key"}}}}}},
       "is not a PEM public key"},
      {json{{"default", {{{"type", "sigstoreSigned"}, {"keyData", "%%%"}}}}}, "is not base64"},
      {json{{"default",
             {{{"type", "sigstoreSigned"}, {"keys", {kPub}}, {"signedIdentity", {{"type", "remapIdentity"}}}}}}},
       "\"remapIdentity\" is not supported"},
      {json{{"default", {{{"type", "reject"}, {"keys", {kPub}}}}}}, "unknown key for type reject"},
      {json{{"default", {{{"type", "reject"}}}}, {"scopes", {{"*.example.com", {{{"type", "reject"}}}}}}},
       "no spaces or wildcards"},
      {json{{"default", {{{"type", "reject"}}}}, {"scopes", {{"https://reg/app", {{{"type", "reject"}}}}}}},
       "a scope is host"},
      {json{{"default", {{{"type", "reject"}}}}, {"scopes", {{"reg/app@sha256:12", {{{"type", "reject"}}}}}}},
       "@sha256:<64 lowercase hex digits>"},
  };
  for (const Case& c : cases) {
    auto p = ParseImageSignatures(c.doc, "image_signatures");
    ASSERT_FALSE(p.ok()) << c.doc.dump();
    EXPECT_TRUE(absl::IsInvalidArgument(p.status()));
    EXPECT_THAT(p.status().message(), HasSubstr(c.why)) << c.doc.dump();
  }
}

TEST(ImageSignatures, TravelsInThePolicyDocument) {
  json doc = {{"version", "1"}, {"containers", json::array()}, {"image_signatures", Doc()}};
  absl::StatusOr<Policy> p = ParsePolicyJson(doc);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_NE(p->image_signatures, nullptr);
  EXPECT_EQ(p->image_signatures->scopes.size(), 5u);
  std::string text = Explain(*p);
  EXPECT_THAT(text, HasSubstr("Image signatures (checked in the guest before any layer is fetched)"));
  EXPECT_THAT(text, HasSubstr("reg:5000/team: a sigstore signature by one of 1 key(s), identity "
                              "matchRepoDigestOrExact"));
  EXPECT_THAT(text, HasSubstr("any other image: never pulled"));
  // Without the key nothing is required, and the built-in default says so.
  EXPECT_EQ(DefaultPolicy().image_signatures, nullptr);
  EXPECT_THAT(Explain(DefaultPolicy()), HasSubstr("Image signatures: none required."));
  doc["image_signatures"]["default"] = json::array({{{"type", "sigstoreSigned"}}});
  EXPECT_THAT(ParsePolicyJson(doc).status().message(),
              HasSubstr("image_signatures.default[0]: sigstoreSigned needs keyData or keys"));
}

}  // namespace
}  // namespace cloak::policy
