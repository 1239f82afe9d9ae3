// The policy document: parsing (JSON and YAML), its errors, the built-in
// default, string rules, the examples shipped in policy/examples, explain.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "policy/engine.h"
#include "policy/policy.h"
#include "tests/policy/specs.h"

namespace cloak::policy {
namespace {

using ::testing::HasSubstr;

struct BadDoc {
  const char* name;
  const char* text;
  const char* want;
};

class BadPolicyTest : public ::testing::TestWithParam<BadDoc> {};

TEST_P(BadPolicyTest, IsRefusedNamingTheKey) {
  absl::StatusOr<Policy> p = ParsePolicy(GetParam().text);
  ASSERT_FALSE(p.ok()) << GetParam().name;
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr(GetParam().want));
}

INSTANTIATE_TEST_SUITE_P(
    Documents, BadPolicyTest,
    ::testing::Values(
        BadDoc{"NoVersion", R"({"containers": []})", "version: is required"},
        BadDoc{"WrongVersion", R"({"version": "2"})", "\"2\" is not supported"},
        BadDoc{"UnknownTopKey", R"({"version": "1", "allow_all": true})", "allow_all: unknown key"},
        BadDoc{"UnknownRpc", R"({"version": "1", "rpcs": {"Exec": "allow"}})",
               "rpcs.Exec: not an agent RPC"},
        BadDoc{"BadAction", R"({"version": "1", "rpcs": {"ExecProcess": "maybe"}})",
               "rpcs.ExecProcess: must be \"allow\" or \"deny\""},
        BadDoc{"ContainerWithoutName", R"({"version": "1", "containers": [{}]})",
               "containers[0]: name is required"},
        BadDoc{"TypoInContainerKey", R"({"version": "1", "containers": [{"name": "a", "arg": []}]})",
               "containers[0].arg: unknown key"},
        BadDoc{"BadRegex",
               R"({"version": "1", "containers": [{"name": "a", "args": [{"regex": "("}]}]})",
               "containers[0].args[0]: bad regex"},
        BadDoc{"ArgsNotStrings", R"({"version": "1", "containers": [{"name": "a", "args": [1]}]})",
               "containers[0].args[0]: must be a string"},
        BadDoc{"DuplicateRule",
               R"({"version": "1", "containers": [{"name": "a"}, {"name": "a"}]})",
               "containers[1]: a second rule for container \"a\""},
        BadDoc{"BadDigest",
               R"({"version": "1", "containers": [{"name": "a", "image": {"digest": "md5:x"}}]})",
               "containers[0].image.digest: must be sha256:"},
        BadDoc{"EmptyExecArgv",
               R"({"version": "1", "containers": [{"name": "a", "exec": [{"argv": []}]}]})",
               "containers[0].exec[0]: argv must not be empty"},
        BadDoc{"BadSeccomp",
               R"({"version": "1", "containers": [{"name": "a", "seccomp": "maybe"}]})",
               "containers[0].seccomp"},
        BadDoc{"NegativeUid",
               R"({"version": "1", "containers": [{"name": "a", "user": {"uid": -1}}]})",
               "containers[0].user.uid: must be a non-negative integer"},
        BadDoc{"CopyWithoutSize", R"({"version": "1", "copy_files": [{"path": "/x"}]})",
               "copy_files[0]: path and max_bytes are required"},
        BadDoc{"NeitherJsonNorYaml", "{: [", "not JSON, and not YAML either"}),
    [](const ::testing::TestParamInfo<BadDoc>& i) { return i.param.name; });

struct MatchCase {
  const char* rule;  // JSON
  const char* value;
  bool want;
};

class StringMatchTest : public ::testing::TestWithParam<MatchCase> {};

TEST_P(StringMatchTest, MatchesTheWholeValue) {
  absl::StatusOr<StringMatch> m =
      StringMatch::FromJson(nlohmann::json::parse(GetParam().rule), "x");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->Matches(GetParam().value), GetParam().want) << GetParam().rule << " vs "
                                                            << GetParam().value;
}

INSTANTIATE_TEST_SUITE_P(
    Table, StringMatchTest,
    ::testing::Values(MatchCase{R"("/bin/sh")", "/bin/sh", true},
                      MatchCase{R"("/bin/sh")", "/bin/sh ", false},
                      MatchCase{R"("/bin/sh")", "/bin/s", false},
                      // Anchored at both ends: no partial matches.
                      MatchCase{R"({"regex": "sh"})", "/bin/sh", false},
                      MatchCase{R"({"regex": "/bin/.*"})", "/bin/sh", true},
                      MatchCase{R"({"regex": "/bin/.*"})", "/usr/bin/sh", false},
                      MatchCase{R"x({"regex": "LOG=(a|b)"})x", "LOG=a", true},
                      MatchCase{R"x({"regex": "LOG=(a|b)"})x", "LOG=ab", false},
                      MatchCase{R"({"regex": "a|b"})", "ab", false}));

TEST(PolicyParse, FullDocumentRoundTripsItsRules) {
  absl::StatusOr<Policy> p = ParsePolicy(policy_test::WebPodPolicy());
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->containers.size(), 4u);
  const ContainerRule& app = p->containers[2];
  EXPECT_EQ(app.name, "app");
  ASSERT_TRUE(app.args.has_value());
  EXPECT_EQ(app.args->size(), 3u);
  EXPECT_TRUE((*app.args)[2].is_regex());
  EXPECT_EQ(app.exec.size(), 2u);
  EXPECT_FALSE(app.exec[0].stdin);
  EXPECT_TRUE(app.exec[1].stdin);
  EXPECT_EQ(app.after, std::vector<std::string>{"setup"});
  EXPECT_EQ(app.max_instances, 1u);
  EXPECT_EQ(app.capabilities, StandardCapabilities());
  EXPECT_EQ(app.mounts.size(), StandardMounts().size());
  EXPECT_FALSE(p->containers[3].read_output);
  EXPECT_EQ(p->containers[0].max_instances, 1u);  // one sandbox per pod
  EXPECT_EQ(p->copy_files.size(), 1u);
  EXPECT_TRUE(p->pin_images);
}

TEST(PolicyParse, YamlIsTheSameDocument) {
  const char* yaml = R"(
version: "1"
rpcs:
  ExecProcess: allow
containers:
  - name: app
    args: ["/app", {regex: "--port=[0-9]+"}]
    env: ["PATH=/bin"]
    user: {uid: 1000}
    exec:
      - argv: ["/bin/check"]
        stdin: false
    stdio: {read_output: true, write_stdin: false}
)";
  absl::StatusOr<Policy> p = ParsePolicy(yaml);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->containers.size(), 1u);
  EXPECT_EQ(p->containers[0].user->uid, 1000u);
  EXPECT_TRUE((*p->containers[0].args)[1].Matches("--port=8080"));
  EXPECT_FALSE(p->containers[0].exec[0].stdin);
  EXPECT_EQ(p->rpcs.at("ExecProcess"), RpcAction::kAllow);
}

TEST(PolicyParse, YamlQuotedNumbersStayStrings) {
  absl::StatusOr<Policy> p = ParsePolicy(
      "version: \"1\"\ncontainers:\n  - name: a\n    args: [\"1\"]\n");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE((*p->containers[0].args)[0].Matches("1"));
}

TEST(DefaultPolicy, ParsesAndDeniesExecStdinAndSetPolicy) {
  const Policy& d = DefaultPolicy();
  EXPECT_TRUE(d.builtin_default);
  EXPECT_EQ(d.rpcs.at("ExecProcess"), RpcAction::kDeny);
  EXPECT_EQ(d.rpcs.at("WriteStdin"), RpcAction::kDeny);
  EXPECT_EQ(d.rpcs.at("SetPolicy"), RpcAction::kDeny);
  EXPECT_TRUE(d.pin_images);
  ASSERT_EQ(d.containers.size(), 2u);
  EXPECT_TRUE(d.containers[0].sandbox);
  EXPECT_EQ(d.containers[0].max_instances, 1u);
  EXPECT_FALSE(d.containers[1].write_stdin);
}

TEST(DefaultPolicy, EveryRpcHasAnAnswer) {
  Engine e(DefaultPolicy());
  PodState state;
  for (const std::string& rpc : AgentRpcNames()) {
    agent::v1::HealthRequest none;
    if (rpc == "CreateContainer" || rpc == "StartContainer" || rpc == "ExecProcess" ||
        rpc == "ReadOutput" || rpc == "WriteStdin") {
      continue;  // field checks: hostile_host_test.cc
    }
    Decision d = e.Check(rpc, none, state);
    bool denied = rpc == "SetPolicy" || rpc == "CopyFile";
    EXPECT_EQ(d.allow, !denied) << rpc << ": " << d.reason;
  }
}

std::string Slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Examples, EveryShippedExampleParses) {
  const std::filesystem::path dir = std::filesystem::path(CLOAK_SOURCE_DIR) / "policy/examples";
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string ext = entry.path().extension().string();
    if (ext != ".json" && ext != ".yaml") continue;
    absl::StatusOr<Policy> p = ParsePolicy(Slurp(entry.path()));
    EXPECT_TRUE(p.ok()) << entry.path() << ": " << p.status();
    ++n;
  }
  EXPECT_GE(n, 2);
}

TEST(Examples, BuiltinDefaultJsonIsTheCompiledDefault) {
  const std::filesystem::path file =
      std::filesystem::path(CLOAK_SOURCE_DIR) / "policy/examples/builtin-default.json";
  EXPECT_EQ(nlohmann::json::parse(Slurp(file)), nlohmann::json::parse(DefaultPolicyJson()))
      << file << " is out of date: regenerate it from DefaultPolicyJson()";
}

TEST(Explain, SaysWhatIsAllowedInPlainWords) {
  absl::StatusOr<Policy> p = ParsePolicy(policy_test::WebPodPolicy());
  ASSERT_TRUE(p.ok());
  std::string text = Explain(*p);
  EXPECT_THAT(text, HasSubstr("Container \"app\":"));
  EXPECT_THAT(text, HasSubstr("only after setup exited with 0"));
  EXPECT_THAT(text, HasSubstr("exec: \"/bin/check\" \"--ready\" (no stdin)"));
  EXPECT_THAT(text, HasSubstr("host reads its output: no"));
  EXPECT_THAT(text, HasSubstr("RPCs the host may never call: SetPolicy"));
  std::string d = Explain(DefaultPolicy());
  EXPECT_THAT(d, HasSubstr("Built-in default policy"));
  EXPECT_THAT(d, HasSubstr("exec: nothing"));
}

// Found by tests/fuzz/policy_fuzz: YAML passes non-UTF-8 bytes through into
// a rule's string, and describing that rule (Explain, and the engine's denial
// reasons in the agent) threw nlohmann::json's type_error 316, which ends
// the process. Invalid bytes now print as U+FFFD.
TEST(Explain, RuleWithBytesThatAreNotUtf8) {
  absl::StatusOr<Policy> p = ParsePolicy(
      "version: \"1\"\ncontainers:\n  - name: app\n    args: [\"/bin/\xff\xfe" "app\"]\n");
  ASSERT_TRUE(p.ok()) << p.status();
  std::string text;
  ASSERT_NO_THROW(text = Explain(*p));
  EXPECT_THAT(text, HasSubstr("\"/bin/\xef\xbf\xbd\xef\xbf\xbd" "app\""));
}

}  // namespace
}  // namespace cloak::policy
