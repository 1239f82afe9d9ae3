// `cloak policy gen --signature-key / --signature-default / --accept-unsigned`
// (cli/cloak/policy_signatures.h).
#include "cli/cloak/policy_signatures.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "policy/policy.h"

namespace cloak::cli {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

constexpr char kPub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFNLqFhf4fiN6o/glAuYnq2jYUeL0\n"
    "vRuLu/z39pmbVwS9ff5AYnlwaP9sxREajdLY9ynM6G1sy6AAmb7Z63TsLg==\n"
    "-----END PUBLIC KEY-----\n";
const std::string kDigest = "sha256:" + std::string(64, 'e');

TEST(PolicyGenSignatures, NormalisesNamesAsThePullerDoes) {
  EXPECT_EQ(NormalizeImageName("busybox"), "docker.io/library/busybox");
  EXPECT_EQ(NormalizeImageName("org/app"), "docker.io/org/app");
  EXPECT_EQ(NormalizeImageName("busybox@" + kDigest), "docker.io/library/busybox@" + kDigest);
  EXPECT_EQ(NormalizeImageName("127.0.0.1:5000/app"), "127.0.0.1:5000/app");
  EXPECT_EQ(NormalizeImageName("quay.io/org/app"), "quay.io/org/app");
  EXPECT_EQ(NormalizeImageName("quay.io"), "quay.io");
  EXPECT_EQ(NormalizeImageName("localhost/app"), "localhost/app");
}

TEST(PolicyGenSignatures, EmitsRulesThePolicyParserAccepts) {
  auto j = ImageSignaturesJson({{"127.0.0.1:5000/signed", {kPub}}}, "",
                               {"127.0.0.1:5000/pinned@" + kDigest});
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["default"], json::parse(R"([{"type":"reject"}])"));
  const json& signed_rule = (*j)["scopes"]["127.0.0.1:5000/signed"][0];
  EXPECT_EQ(signed_rule["type"], "sigstoreSigned");
  EXPECT_EQ(signed_rule["keys"][0], kPub);
  EXPECT_EQ(signed_rule["signedIdentity"]["type"], "matchRepoDigestOrExact");
  EXPECT_EQ((*j)["scopes"]["127.0.0.1:5000/pinned@" + kDigest][0]["type"],
            "insecureAcceptAnything");
  json doc = {{"version", "1"}, {"containers", json::array()}, {"image_signatures", *j}};
  auto p = policy::ParsePolicyJson(doc);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_NE(p->image_signatures, nullptr);

  auto accept = ImageSignaturesJson({{"quay.io/org", {kPub}}}, "accept", {});
  ASSERT_TRUE(accept.ok()) << accept.status();
  EXPECT_EQ((*accept)["default"][0]["type"], "insecureAcceptAnything");
}

TEST(PolicyGenSignatures, RefusesBadFlags) {
  EXPECT_THAT(ImageSignaturesJson({}, "maybe", {}).status().message(), HasSubstr("reject or accept"));
  EXPECT_THAT(ImageSignaturesJson({}, "", {"busybox:1"}).status().message(),
              HasSubstr("pinned by digest"));
  EXPECT_THAT(ImageSignaturesJson({{"reg/app", {"not a key"}}}, "", {}).status().message(),
              HasSubstr("is not a PEM public key"));
  SignatureGenOptions o;
  o.keys = {"no-equals-sign"};
  EXPECT_THAT(ImageSignaturesFromFlags(o).status().message(), HasSubstr("SCOPE=PEM_FILE"));
  o.keys = {"reg/app=/nonexistent/key.pub"};
  EXPECT_FALSE(ImageSignaturesFromFlags(o).ok());
}

}  // namespace
}  // namespace cloak::cli
