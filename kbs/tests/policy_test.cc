// Key-release policy: parsing and decisions (with their reasons).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kbs/policy.h"
#include "kbs/store.h"

namespace cloak::kbs {
namespace {

using ::testing::HasSubstr;

Claims SnpClaims() {
  Claims c;
  c.tee = "snp";
  c.signature_verified = true;
  c.measurements = {{"measurement", std::string(96, 'a')}, {"host_data", std::string(64, 'b')}};
  c.init_data_digest = std::string(64, 'b');
  return c;
}

Claims SampleClaims() {
  Claims c;
  c.tee = "sample";
  c.init_data_digest = "cd";
  return c;
}

TEST(PolicyTest, DefaultsAllowVerifiedSnpAndTdxOnly) {
  auto policy = ParseResourcePolicy("{}");
  ASSERT_TRUE(policy.ok());
  EXPECT_TRUE(EvaluatePolicy(*policy, SnpClaims()).allowed);
  PolicyDecision sample = EvaluatePolicy(*policy, SampleClaims());
  EXPECT_FALSE(sample.allowed);
  EXPECT_THAT(sample.reason, HasSubstr("evidence type \"sample\" is not allowed"));
}

TEST(PolicyTest, SampleOnlyWhenExplicitlyAllowed) {
  auto policy = ParseResourcePolicy(R"({"allowed_tees": ["sample"]})");
  ASSERT_TRUE(policy.ok());
  EXPECT_TRUE(EvaluatePolicy(*policy, SampleClaims()).allowed);
  EXPECT_FALSE(EvaluatePolicy(*policy, SnpClaims()).allowed);
}

TEST(PolicyTest, DebugIsForbiddenUnlessAllowed) {
  Claims debug = SnpClaims();
  debug.debug = true;
  auto policy = ParseResourcePolicy("{}");
  PolicyDecision d = EvaluatePolicy(*policy, debug);
  EXPECT_FALSE(d.allowed);
  EXPECT_THAT(d.reason, HasSubstr("debug"));
  policy = ParseResourcePolicy(R"({"allow_debug": true})");
  EXPECT_TRUE(EvaluatePolicy(*policy, debug).allowed);
}

TEST(PolicyTest, UnverifiedEvidenceNeedsAllowUnverified) {
  Claims tdx;
  tdx.tee = "tdx";
  tdx.signature_verified = false;
  auto policy = ParseResourcePolicy("{}");
  PolicyDecision d = EvaluatePolicy(*policy, tdx);
  EXPECT_FALSE(d.allowed);
  EXPECT_THAT(d.reason, HasSubstr("allow_unverified"));
  policy = ParseResourcePolicy(R"({"allow_unverified": true})");
  EXPECT_TRUE(EvaluatePolicy(*policy, tdx).allowed);
}

TEST(PolicyTest, MeasurementsAndInitDataMustMatch) {
  auto policy = ParseResourcePolicy(absl::StrCat(R"({"reference_values": {"measurement": [")",
                                                 std::string(96, 'A'), R"("]},
      "init_data_digests": [")", std::string(64, 'b'), R"("]})"));
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(EvaluatePolicy(*policy, SnpClaims()).allowed);  // hex compared case-blind
  Claims other = SnpClaims();
  other.measurements["measurement"] = std::string(96, 'c');
  PolicyDecision d = EvaluatePolicy(*policy, other);
  EXPECT_FALSE(d.allowed);
  EXPECT_THAT(d.reason, HasSubstr("measurement cccc"));
  other = SnpClaims();
  other.init_data_digest = std::string(64, 'e');
  d = EvaluatePolicy(*policy, other);
  EXPECT_FALSE(d.allowed);
  EXPECT_THAT(d.reason, HasSubstr("init-data digest eeee"));
  auto mrtd = ParseResourcePolicy(R"({"reference_values": {"mrtd": ["00"]}})");
  d = EvaluatePolicy(*mrtd, SnpClaims());
  EXPECT_THAT(d.reason, HasSubstr("has no such measurement"));
}

TEST(PolicyTest, RefusesMalformedPolicies) {
  EXPECT_THAT(ParseResourcePolicy("{").status().message(), HasSubstr("not valid JSON"));
  EXPECT_THAT(ParseResourcePolicy("[]").status().message(), HasSubstr("JSON object"));
  EXPECT_THAT(ParseResourcePolicy(R"({"allow_sample": true})").status().message(),
              HasSubstr("unknown key \"allow_sample\""));
  EXPECT_THAT(ParseResourcePolicy(R"({"allowed_tees": ["sgx"]})").status().message(),
              HasSubstr("\"sgx\""));
  EXPECT_THAT(ParseResourcePolicy(R"({"allow_debug": "no"})").status().message(),
              HasSubstr("true or false"));
  EXPECT_THAT(ParseResourcePolicy(R"({"init_data_digests": ["xyz"]})").status().message(),
              HasSubstr("not hex"));
  EXPECT_THAT(ParseResourcePolicy(R"({"reference_values": {"mrtd": "00"}})").status().message(),
              HasSubstr("list of strings"));
}

TEST(PolicyTest, RoundTripsThroughJson) {
  auto policy = ParseResourcePolicy(
      R"({"allowed_tees": ["sample", "snp"], "allow_debug": true, "allow_unverified": true,
          "reference_values": {"measurement": ["AB"]}, "init_data_digests": ["cd"]})");
  ASSERT_TRUE(policy.ok());
  auto again = ParseResourcePolicy(policy->ToJson().dump());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ToJson(), policy->ToJson());
  EXPECT_EQ(again->reference.measurements.at("measurement")[0], "ab");
}

TEST(ResourcePathTest, AcceptsOnlySafePaths) {
  auto p = ParseResourcePath("default/key/image-1.key");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->repo, "default");
  EXPECT_EQ(p->ToString(), "default/key/image-1.key");
  for (const char* bad : {"", "a/b", "a/b/c/d", "../b/c", "a/./c", "a//c", "a/b/c d", "a/b/%2e",
                          "a/b/"}) {
    EXPECT_EQ(ParseResourcePath(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace cloak::kbs
