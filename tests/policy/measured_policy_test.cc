// The agent's decision point (agent/policy.h MeasuredPolicy) without a VM:
// the built-in default before CreateSandbox, the policy of the pod's
// init-data from CreateSandbox on, fail-closed on a bad policy, SetPolicy
// only when the policy in force allows it, and the pod state it keeps
// through Observe().
#include "agent/policy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace cloak::agent {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

std::string InitData(const std::string& policy) {
  std::string doc = "version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\n";
  if (!policy.empty()) doc += "\"policy.json\" = '''\n" + policy + "\n'''\n";
  return doc;
}

v1::CreateSandboxRequest Sandbox(const std::string& initdata) {
  v1::CreateSandboxRequest r;
  r.set_sandbox_id("s");
  r.set_initdata(initdata);
  return r;
}

v1::CreateContainerRequest Container(const std::string& id, const std::vector<std::string>& args) {
  v1::CreateContainerRequest r;
  r.set_container_id(id);
  r.set_image("registry.example/app:1");
  json spec = {{"process", {{"args", args}, {"env", {"PATH=/bin"}}, {"cwd", "/"}}},
               {"linux",
                {{"maskedPaths", {"/proc/kcore", "/proc/keys", "/sys/firmware"}},
                 {"readonlyPaths", {"/proc/sys", "/proc/sysrq-trigger"}}}}};
  r.set_oci_spec_json(spec.dump());
  return r;
}

v1::ExecProcessRequest Exec(const std::string& id, const std::vector<std::string>& argv) {
  v1::ExecProcessRequest r;
  r.set_container_id(id);
  r.set_exec_id("e");
  r.set_process_json(json{{"args", argv}, {"env", {"PATH=/bin"}}}.dump());
  return r;
}

constexpr char kPolicy[] = R"({"version": "1", "rpcs": {"SetPolicy": "allow"},
  "containers": [{"name": "app", "args": ["/app"], "exec": [["/bin/check"]]}]})";

TEST(MeasuredPolicy, DefaultBeforeTheSandboxAndWithoutAPolicy) {
  MeasuredPolicy p;
  EXPECT_THAT(p.Describe(), HasSubstr("built-in default"));
  EXPECT_TRUE(p.Decide("Health", v1::HealthRequest()).allow);
  ASSERT_TRUE(p.Decide("CreateSandbox", Sandbox(InitData(""))).allow);
  EXPECT_THAT(p.Describe(), HasSubstr("init-data carries no policy"));
  v1::CreateContainerRequest c = Container("c1", {"sh"});
  ASSERT_TRUE(p.Decide("CreateContainer", c).allow);
  p.Observe("CreateContainer", c, nullptr);
  PolicyDecision d = p.Decide("ExecProcess", Exec("c1", {"/bin/sh"}));
  EXPECT_FALSE(d.allow);
  EXPECT_THAT(d.reason, HasSubstr("rpcs.ExecProcess is \"deny\" (built-in default policy"));
  EXPECT_FALSE(p.Decide("SetPolicy", v1::SetPolicyRequest()).allow);
}

TEST(MeasuredPolicy, PolicyOfTheInitDataFromCreateSandboxOn) {
  MeasuredPolicy p;
  ASSERT_TRUE(p.Decide("CreateSandbox", Sandbox(InitData(kPolicy))).allow);
  EXPECT_THAT(p.Describe(), HasSubstr("init-data \"policy.json\""));
  v1::CreateContainerRequest c = Container("app", {"/app"});
  ASSERT_TRUE(p.Decide("CreateContainer", c).allow);
  p.Observe("CreateContainer", c, nullptr);
  EXPECT_TRUE(p.Decide("ExecProcess", Exec("app", {"/bin/check"})).allow);
  PolicyDecision d = p.Decide("ExecProcess", Exec("app", {"/bin/sh"}));
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.reason,
            R"(policy: exec denied: argv[0] "/bin/sh" matches no exec rule of container "app")");
  // The policy cannot be swapped by a second CreateSandbox.
  ASSERT_TRUE(p.Decide("CreateSandbox", Sandbox(InitData(""))).allow);
  EXPECT_FALSE(p.Decide("ExecProcess", Exec("app", {"/bin/sh"})).allow);
  EXPECT_THAT(p.Describe(), HasSubstr("init-data \"policy.json\""));
}

TEST(MeasuredPolicy, AnInvalidPolicyOrInitDataRefusesTheSandbox) {
  MeasuredPolicy bad_policy;
  PolicyDecision d =
      bad_policy.Decide("CreateSandbox", Sandbox(InitData(R"({"version": "1", "allow": 1})")));
  EXPECT_FALSE(d.allow);
  EXPECT_THAT(d.reason, HasSubstr("the policy in the pod's init-data is invalid"));
  EXPECT_THAT(d.reason, HasSubstr("allow: unknown key"));
  MeasuredPolicy bad_initdata;
  d = bad_initdata.Decide("CreateSandbox", Sandbox("this is = not [toml"));
  EXPECT_FALSE(d.allow);
  EXPECT_THAT(d.reason, HasSubstr("init-data cannot be read"));
}

TEST(MeasuredPolicy, SetPolicyOnlyWhenThePolicyInForceAllowsIt) {
  MeasuredPolicy p;
  ASSERT_TRUE(p.Decide("CreateSandbox", Sandbox(InitData(kPolicy))).allow);
  ASSERT_TRUE(p.Decide("SetPolicy", v1::SetPolicyRequest()).allow);
  EXPECT_FALSE(p.Replace("{not a policy").ok());
  ASSERT_TRUE(p.Replace(R"({"version": "1", "containers": [{"name": "*"}]})").ok());
  EXPECT_THAT(p.Describe(), HasSubstr("SetPolicy"));
  // The new policy does not allow SetPolicy: the door is shut behind it.
  PolicyDecision d = p.Decide("SetPolicy", v1::SetPolicyRequest());
  EXPECT_FALSE(d.allow);
  EXPECT_THAT(d.reason, HasSubstr("rpcs.SetPolicy is \"deny\""));
}

TEST(MeasuredPolicy, PulledImageDigestIsChecked) {
  MeasuredPolicy p;
  ASSERT_TRUE(p.Decide("CreateSandbox", Sandbox(InitData(R"({"version": "1", "containers": [
    {"name": "app", "image": {"digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}]})")))
                  .allow);
  v1::CreateContainerRequest c = Container("app", {"/app"});
  EXPECT_TRUE(p.CheckPulledImage(c, "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").allow);
  PolicyDecision d =
      p.CheckPulledImage(c, "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
  EXPECT_FALSE(d.allow);
  EXPECT_THAT(d.reason, HasSubstr("resolved to \"sha256:bbbb"));
}

}  // namespace
}  // namespace cloak::agent
