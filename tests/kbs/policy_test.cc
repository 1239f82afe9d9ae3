// Key-release policy: parsing and decisions (with their reasons).
#include "kbs/policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "kbs/store.h"

namespace cloak::kbs {
namespace {

using ::testing::HasSubstr;

Claims SnpClaims() {
  Claims c;
  c.tee = "snp";
  c.signature_verified = true;
  c.vmpl = 0;
  c.snp_policy = 0x30000;  // SMT allowed, reserved bit 17
  c.product = "Milan";
  c.tcb = {{"bootloader", 3}, {"tee", 0}, {"snp", 8}, {"microcode", 115}};
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

constexpr char kAnyLaunch[] = R"({"allow_any_launch": true})";

TEST(PolicyTest, DefaultsAllowVerifiedSnpAndTdxOnly) {
  auto policy = ParseResourcePolicy(kAnyLaunch);
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
  auto policy = ParseResourcePolicy(kAnyLaunch);
  PolicyDecision d = EvaluatePolicy(*policy, debug);
  EXPECT_FALSE(d.allowed);
  EXPECT_THAT(d.reason, HasSubstr("debug"));
  policy = ParseResourcePolicy(R"({"allow_debug": true, "allow_any_launch": true})");
  EXPECT_TRUE(EvaluatePolicy(*policy, debug).allowed);
}

TEST(PolicyTest, UnverifiedEvidenceNeedsAllowUnverified) {
  Claims tdx;
  tdx.tee = "tdx";
  tdx.signature_verified = false;
  auto policy = ParseResourcePolicy(kAnyLaunch);
  PolicyDecision d = EvaluatePolicy(*policy, tdx);
  EXPECT_FALSE(d.allowed);
  EXPECT_THAT(d.reason, HasSubstr("allow_unverified"));
  policy = ParseResourcePolicy(R"({"allow_unverified": true, "allow_any_launch": true})");
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
  auto mrtd =
      ParseResourcePolicy(R"({"reference_values": {"mrtd": ["00"]}, "allow_any_launch": true})");
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

TEST(PolicyTest, SnpOrTdxPolicyMustPinTheLaunch) {
  for (const char* unpinned :
       {"{}", R"({"allowed_tees": ["snp"]})",
        R"({"allowed_tees": ["tdx"], "reference_values": {"measurement": ["ab"]}})",
        R"({"allowed_tees": ["snp"], "reference_values": {"mrtd": ["ab"]}})"}) {
    auto p = ParseResourcePolicy(unpinned);
    ASSERT_FALSE(p.ok()) << unpinned;
    EXPECT_THAT(p.status().message(), HasSubstr("allow_any_launch")) << unpinned;
    EXPECT_THAT(p.status().message(), HasSubstr("cloak measure")) << unpinned;
  }
  for (const char* pinned :
       {R"({"allowed_tees": ["snp"], "reference_values": {"measurement": ["ab"]}})",
        R"({"allowed_tees": ["tdx"], "reference_values": {"mrtd": ["ab"]}})",
        R"({"allowed_tees": ["snp", "tdx"], "init_data_digests": ["ab"]})",
        R"({"allowed_tees": ["sample"]})", R"({"allow_any_launch": true})"}) {
    EXPECT_TRUE(ParseResourcePolicy(pinned).ok()) << pinned;
  }
  // The store refuses to keep an unpinned policy.
  auto dir = std::filesystem::temp_directory_path() / "kbs-policy-test-store";
  std::filesystem::remove_all(dir);
  auto store = ResourceStore::Open(dir.string());
  ASSERT_TRUE(store.ok());
  EXPECT_FALSE(store->SetPolicy(nullptr, R"({"allowed_tees": ["snp"]})").ok());
  EXPECT_TRUE(
      store->SetPolicy(nullptr, R"({"allowed_tees": ["snp"], "allow_any_launch": true})").ok());
  std::filesystem::remove_all(dir);
}

TEST(PolicyTest, SimulatedEvidenceNeedsAllowSimulated) {
  Claims sim = SnpClaims();
  sim.simulated = true;
  sim.trust_anchor = "SIMULATED SP test root sha256:00";
  auto policy = ParseResourcePolicy(kAnyLaunch);
  PolicyDecision d = EvaluatePolicy(*policy, sim);
  EXPECT_FALSE(d.allowed);
  EXPECT_THAT(d.reason, HasSubstr("SIMULATED"));
  EXPECT_THAT(d.reason, HasSubstr("allow_simulated"));
  policy = ParseResourcePolicy(R"({"allow_any_launch": true, "allow_simulated": true})");
  EXPECT_TRUE(EvaluatePolicy(*policy, sim).allowed);
}

TEST(PolicyTest, SnpVmplPolicyBitsAndMinimumTcb) {
  auto policy = ParseResourcePolicy(kAnyLaunch);
  Claims c = SnpClaims();
  c.vmpl = 1;
  PolicyDecision d = EvaluatePolicy(*policy, c);
  EXPECT_FALSE(d.allowed);
  EXPECT_THAT(d.reason, HasSubstr("VMPL 1"));
  policy = ParseResourcePolicy(R"({"allow_any_launch": true, "snp_vmpl": 1})");
  EXPECT_TRUE(EvaluatePolicy(*policy, c).allowed);

  // Default: the migration agent must not be allowed.
  c = SnpClaims();
  c.snp_policy = 0x30000 | kSnpPolicyMigrateMaBit;
  d = EvaluatePolicy(*ParseResourcePolicy(kAnyLaunch), c);
  EXPECT_FALSE(d.allowed);
  EXPECT_THAT(d.reason, HasSubstr("migrate_ma set"));
  // SMT and single socket on request.
  c = SnpClaims();
  policy = ParseResourcePolicy(R"({"allow_any_launch": true, "snp_policy": {"smt": false}})");
  EXPECT_THAT(EvaluatePolicy(*policy, c).reason, HasSubstr("smt set"));
  policy =
      ParseResourcePolicy(R"({"allow_any_launch": true, "snp_policy": {"single_socket": true}})");
  EXPECT_THAT(EvaluatePolicy(*policy, c).reason, HasSubstr("single_socket clear"));
  c.snp_policy = 0x30000 | kSnpPolicySingleSocketBit;
  EXPECT_TRUE(EvaluatePolicy(*policy, c).allowed);

  c = SnpClaims();
  policy = ParseResourcePolicy(
      R"({"allow_any_launch": true, "snp_min_tcb": {"Milan": {"snp": 9, "microcode": 100}}})");
  ASSERT_TRUE(policy.ok()) << policy.status();
  d = EvaluatePolicy(*policy, c);
  EXPECT_FALSE(d.allowed);
  EXPECT_THAT(d.reason, HasSubstr("snp 8 is below this policy's minimum 9"));
  policy = ParseResourcePolicy(
      R"({"allow_any_launch": true, "snp_min_tcb": {"genoa": {"snp": 99}, "milan": {"snp": 8}}})");
  EXPECT_TRUE(EvaluatePolicy(*policy, c).allowed);
  EXPECT_FALSE(
      ParseResourcePolicy(R"({"snp_min_tcb": {"rome": {}}, "allow_any_launch": true})").ok());
  EXPECT_FALSE(
      ParseResourcePolicy(R"({"snp_policy": {"debug": true}, "allow_any_launch": true})").ok());
  EXPECT_FALSE(ParseResourcePolicy(R"({"snp_vmpl": 4, "allow_any_launch": true})").ok());
}

TEST(PolicyTest, RoundTripsThroughJson) {
  auto policy = ParseResourcePolicy(
      R"({"allowed_tees": ["sample", "snp"], "allow_debug": true, "allow_unverified": true,
          "reference_values": {"measurement": ["AB"]}, "init_data_digests": ["cd"],
          "allow_simulated": true, "snp_vmpl": 2, "snp_min_tcb": {"turin": {"fmc": 1}},
          "snp_policy": {"smt": false}})");
  ASSERT_TRUE(policy.ok());
  auto again = ParseResourcePolicy(policy->ToJson().dump());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ToJson(), policy->ToJson());
  EXPECT_EQ(again->reference.measurements.at("measurement")[0], "ab");
}

TEST(PolicyTest, ImportsReferenceValuesFromCloakMeasure) {
  // What `cloak measure snp --json` prints.
  auto doc = nlohmann::json::parse(R"({"tee": "snp", "reference_values": {"measurement": ["AB12"]},
                                       "inputs": {"vcpus": 1}})");
  auto fresh = MergeReferenceValues(nullptr, doc);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->allowed_tees, std::vector<std::string>{"snp"});
  EXPECT_EQ(fresh->reference.measurements.at("measurement"), std::vector<std::string>{"ab12"});
  EXPECT_FALSE(fresh->allow_any_launch);

  // Merged into an existing policy: its settings stay, values accumulate.
  auto current = ParseResourcePolicy(
      R"({"allowed_tees": ["sample"], "init_data_digests": ["cd"], "allow_debug": true})");
  ASSERT_TRUE(current.ok());
  auto classes = nlohmann::json::parse(R"({"classes": {
      "cloak-snp": {"tee": "snp", "reference_values": {"measurement": ["ab12", "ef"]}},
      "cloak-tdx": {"tee": "tdx", "reference_values": {"mrtd": ["01"], "rtmr1": ["02"]}}}})");
  auto merged = MergeReferenceValues(&*current, classes);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->allowed_tees, (std::vector<std::string>{"sample", "snp", "tdx"}));
  EXPECT_EQ(merged->reference.measurements.at("measurement"),
            (std::vector<std::string>{"ab12", "ef"}));
  EXPECT_EQ(merged->reference.measurements.at("rtmr1"), std::vector<std::string>{"02"});
  EXPECT_TRUE(merged->reference.allow_debug);
  EXPECT_EQ(merged->reference.init_data_digests, std::vector<std::string>{"cd"});

  // An entry the build could not compute names what it lacked.
  auto missing = MergeReferenceValues(
      nullptr,
      nlohmann::json::parse(
          R"({"classes": {"cloak-snp": {"tee": "snp", "missing": "OVMF AmdSev firmware"}}})"));
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("OVMF AmdSev firmware"));
  EXPECT_THAT(missing.status().message(), HasSubstr("cloak measure"));
  EXPECT_FALSE(MergeReferenceValues(nullptr, nlohmann::json::parse(R"({"tee": "sgx",
      "reference_values": {}})"))
                   .ok());
  // Values that pin nothing for the TEE are refused like set-policy would.
  EXPECT_THAT(MergeReferenceValues(
                  nullptr, nlohmann::json::parse(
                               R"({"tee": "tdx", "reference_values": {"measurement": ["ab"]}})"))
                  .status()
                  .message(),
              HasSubstr("allow_any_launch"));
}

TEST(PolicyTest, ImportsOneClassOfTheBuildsReferenceValues) {
  auto doc = nlohmann::json::parse(R"({"classes": {
      "cloak-dev": {"tee": "snp", "simulated": true, "reference_values": {"measurement": ["aa", "bb"]}},
      "cloak-snp": {"tee": "snp", "missing": "hypervisor.firmware: the OVMF AmdSev build"},
      "cloak-tdx": {"tee": "tdx", "reference_values": {"mrtd": ["01"], "rtmr1": ["02"], "rtmr2": ["03"]}}}})");
  // The simulated dev value only by name, and then with allow_simulated.
  auto dev = MergeReferenceValues(nullptr, doc, "cloak-dev");
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_TRUE(dev->allow_simulated);
  EXPECT_EQ(dev->reference.measurements.at("measurement"), (std::vector<std::string>{"aa", "bb"}));
  auto tdx = MergeReferenceValues(nullptr, doc, "cloak-tdx");
  ASSERT_TRUE(tdx.ok()) << tdx.status();
  EXPECT_FALSE(tdx->allow_simulated);
  EXPECT_EQ(tdx->allowed_tees, std::vector<std::string>{"tdx"});
  // The whole document: refused (a missing class, a simulated one).
  EXPECT_FALSE(MergeReferenceValues(nullptr, doc).ok());
  doc["classes"].erase("cloak-snp");
  auto all = MergeReferenceValues(nullptr, doc);
  ASSERT_FALSE(all.ok());
  EXPECT_THAT(all.status().message(), HasSubstr("--class cloak-dev"));
  auto snp = MergeReferenceValues(nullptr, nlohmann::json::parse(
      R"({"classes": {"cloak-snp": {"tee": "snp", "missing": "hypervisor.firmware"}}})"), "cloak-snp");
  EXPECT_THAT(snp.status().message(), HasSubstr("hypervisor.firmware"));
  auto nope = MergeReferenceValues(nullptr, doc, "cloak-nope");
  EXPECT_EQ(nope.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(nope.status().message(), HasSubstr("cloak-dev"));
  EXPECT_FALSE(MergeReferenceValues(nullptr, nlohmann::json::parse(R"({"tee": "snp"})"), "x").ok());
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
