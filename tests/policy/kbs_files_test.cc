// The policy's kbs_files (docs/policy.md "kbs_files"): key broker resources a
// container rule mounts as files — parsed, refused when malformed, and
// handed out for the container rule a CreateContainer request matches.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "policy/engine.h"
#include "policy/policy.h"
#include "tests/policy/specs.h"

namespace cloak::policy {
namespace {

using ::testing::HasSubstr;
using policy_test::Create;
using policy_test::CriSandboxSpec;
using policy_test::CriSpec;

constexpr char kPolicy[] = R"({
  "version": "1",
  "containers": [
    {"name": "*", "sandbox": true},
    {"name": "app", "kbs_files": [
      {"resource": "default/secret/db-password", "path": "/etc/db/password"},
      {"resource": "kbs:///default/cert/tls", "path": "/run/tls/key.pem"}]},
    {"name": "*"}
  ]
})";

TEST(KbsFilesTest, ParsedWithKbsUrisNormalised) {
  absl::StatusOr<Policy> p = ParsePolicy(kPolicy);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->containers.size(), 3u);
  const std::vector<KbsFileRule>& files = p->containers[1].kbs_files;
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].resource, "default/secret/db-password");
  EXPECT_EQ(files[0].path, "/etc/db/password");
  EXPECT_EQ(files[1].resource, "default/cert/tls");
  EXPECT_EQ(files[1].path, "/run/tls/key.pem");
  EXPECT_THAT(Explain(*p), HasSubstr("file /etc/db/password: key broker resource "
                                     "default/secret/db-password, fetched in the guest after "
                                     "attestation"));
}

TEST(KbsFilesTest, GivenOnlyToTheMatchingContainer) {
  absl::StatusOr<Policy> p = ParsePolicy(kPolicy);
  ASSERT_TRUE(p.ok()) << p.status();
  Engine e(*std::move(p));
  std::vector<KbsFileRule> app =
      e.KbsFiles(Create("c1", "busybox", CriSpec("app", {"sh"}, {"PATH=/bin"})));
  ASSERT_EQ(app.size(), 2u);
  EXPECT_EQ(app[0].path, "/etc/db/password");
  EXPECT_TRUE(e.KbsFiles(Create("c2", "busybox", CriSpec("other", {"sh"}, {}))).empty());
  EXPECT_TRUE(e.KbsFiles(Create("s", "pause", CriSandboxSpec(), /*sandbox=*/true)).empty());
  // The built-in default mounts none.
  Engine d(DefaultPolicy());
  EXPECT_TRUE(d.KbsFiles(Create("c1", "busybox", CriSpec("app", {"sh"}, {}))).empty());
}

struct BadFiles {
  const char* name;
  const char* files;
  const char* want;
};

class BadKbsFilesTest : public ::testing::TestWithParam<BadFiles> {};

TEST_P(BadKbsFilesTest, IsRefusedNamingTheEntry) {
  const std::string doc = std::string(R"({"version": "1", "containers": [{"name": "app", "kbs_files": )") +
                          GetParam().files + "}]}";
  absl::StatusOr<Policy> p = ParsePolicy(doc);
  ASSERT_FALSE(p.ok()) << GetParam().name;
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr(GetParam().want));
}

INSTANTIATE_TEST_SUITE_P(
    Documents, BadKbsFilesTest,
    ::testing::Values(
        BadFiles{"NotAList", R"({"resource": "a/b/c"})", "kbs_files: must be an array"},
        BadFiles{"NoPath", R"([{"resource": "a/b/c"}])", "kbs_files[0]: resource and path are required"},
        BadFiles{"TypoKey", R"([{"resource": "a/b/c", "path": "/x", "mode": "0644"}])",
                 "kbs_files[0].mode: unknown key"},
        BadFiles{"TwoPartResource", R"([{"resource": "a/b", "path": "/x"}])",
                 "kbs_files[0].resource"},
        BadFiles{"DotDotResource", R"([{"resource": "a/../c", "path": "/x"}])",
                 "kbs_files[0].resource"},
        BadFiles{"RelativePath", R"([{"resource": "a/b/c", "path": "etc/x"}])",
                 "must be an absolute path to a file"},
        BadFiles{"RootPath", R"([{"resource": "a/b/c", "path": "/"}])",
                 "must be an absolute path to a file"},
        BadFiles{"DirPath", R"([{"resource": "a/b/c", "path": "/etc/"}])",
                 "must be an absolute path to a file"},
        BadFiles{"DotDotPath", R"([{"resource": "a/b/c", "path": "/etc/../x"}])",
                 "is not a clean path"},
        BadFiles{"ProcPath", R"([{"resource": "a/b/c", "path": "/proc/self/x"}])",
                 "is under /proc/"},
        BadFiles{"Twice",
                 R"([{"resource": "a/b/c", "path": "/x"}, {"resource": "a/b/d", "path": "/x"}])",
                 "kbs_files[1].path: \"/x\" is named twice"}),
    [](const ::testing::TestParamInfo<BadFiles>& p) { return p.param.name; });

TEST(KbsFilesTest, SandboxRuleTakesNone) {
  absl::StatusOr<Policy> p = ParsePolicy(
      R"({"version": "1", "containers": [{"name": "*", "sandbox": true,
          "kbs_files": [{"resource": "a/b/c", "path": "/x"}]}]})");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("sandbox (pause) container takes no files"));
}

}  // namespace
}  // namespace cloak::policy
