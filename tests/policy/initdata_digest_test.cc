// The policy is measured: it is part of the init-data, whose digest the TEE
// evidence carries and a KBS key-release policy pins. One byte changed in
// the agent policy changes the digest, and the KBS then refuses the key.
#include "absl/strings/escaping.h"
#include "agent/attest/initdata.h"
#include "cli/cloak/policy_cmd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kbs/policy.h"

namespace cloak {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

std::string DigestHex(const std::string& initdata) {
  absl::StatusOr<agent::attest::InitData> parsed = agent::attest::ParseInitData(initdata);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? absl::BytesToHexString(parsed->digest) : "";
}

TEST(MeasuredPolicy, OneByteOfThePolicyChangesTheDigestAndTheKbsRefusesTheKey) {
  json policy = {{"version", "1"},
                 {"containers",
                  {{{"name", "app"}, {"args", {"/app"}}, {"exec", {{{"argv", {"/bin/check"}}}}}}}}};
  cli::InitDataOptions o;
  o.kbs_url = "http://10.0.2.2:8080";
  o.image_keys = {"default/key/app"};
  const std::string initdata = cli::InitDataWithPolicy(policy, o);
  absl::StatusOr<agent::attest::InitData> parsed = agent::attest::ParseInitData(initdata);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(json::parse(parsed->policy), policy) << "the agent reads back the same policy";
  const std::string digest = DigestHex(initdata);

  // One byte: "/bin/check" → "/bin/checl".
  json changed = policy;
  changed["containers"][0]["exec"][0]["argv"][0] = "/bin/checl";
  const std::string changed_digest = DigestHex(cli::InitDataWithPolicy(changed, o));
  ASSERT_NE(digest, changed_digest);

  absl::StatusOr<kbs::ResourcePolicy> release = kbs::ParseResourcePolicy(
      json{{"allowed_tees", {"sample"}}, {"allow_unverified", true}, {"init_data_digests", {digest}}}
          .dump());
  ASSERT_TRUE(release.ok()) << release.status();
  kbs::Claims claims;
  claims.tee = "sample";
  claims.init_data_digest = digest;
  kbs::PolicyDecision allowed = kbs::EvaluatePolicy(*release, claims);
  EXPECT_TRUE(allowed.allowed) << allowed.reason;
  claims.init_data_digest = changed_digest;
  kbs::PolicyDecision refused = kbs::EvaluatePolicy(*release, claims);
  EXPECT_FALSE(refused.allowed);
  EXPECT_THAT(refused.reason, HasSubstr("init-data"));
}

}  // namespace
}  // namespace cloak
