// shim/initdata: init-data from the pod annotations.
#include "shim/initdata.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::shim {
namespace {

using ::testing::HasSubstr;

TEST(InitDataTest, AbsentIsNone) {
  absl::StatusOr<std::optional<InitData>> d = InitDataFromAnnotations({{"io.cloak.image", "x"}});
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->has_value());
}

TEST(InitDataTest, DecodesPlainAndGzipAndTheKataName) {
  const std::string doc =
      "version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\nkbs_url = \"http://10.0.2.2:8080\"\n";
  const std::string want_hex = "ef26773e4ed2a8ad01dca59340533cdfff3e10e04d9946a77acb199a9f890f26";
  const std::string plain =
      "dmVyc2lvbiA9ICIwLjEuMCIKYWxnb3JpdGhtID0gInNoYTI1NiIKW2RhdGFdCmtic191cmwgPSAiaHR0cDovLzEwLj"
      "AuMi4yOjgwODAiCg==";
  const std::string gzipped =
      "H4sIAAAAAAAAAytLLSrOzM9TsFVQMtAz1DNQ4krMSc8vyizJyAWJFWckGpmaKXFFpySWJMZyZScVx5cW5YBkMkpKCq"
      "z09Q0N9Az0jPSMrCwMLICaAReZfphPAAAA";
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"io.cloak.initdata", plain},
           {"io.cloak.initdata", gzipped},
           {"io.katacontainers.config.hypervisor.cc_init_data", plain}}) {
    absl::StatusOr<std::optional<InitData>> d = InitDataFromAnnotations({{name, value}});
    ASSERT_TRUE(d.ok()) << d.status();
    ASSERT_TRUE(d->has_value());
    EXPECT_EQ((*d)->document, doc);
    EXPECT_EQ((*d)->algorithm, "sha256");
    EXPECT_EQ(absl::BytesToHexString((*d)->digest), want_hex);
  }
}

TEST(InitDataTest, RefusesBadValuesNamingTheAnnotation) {
  auto b64 = [](const std::string& s) { return absl::Base64Escape(s); };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"!!not base64!!", "not base64"},
      {"", "empty value"},
      {b64(std::string("\x1f\x8b\x08\x00garbage", 12)), "gzip"},
      {b64("version = \"0.1.0\"\nalgorithm = \n"), "not valid TOML"},
      {b64("version = \"9\"\nalgorithm = \"sha256\"\n"), "version must be"},
      {b64("version = \"0.1.0\"\nalgorithm = \"md5\"\n"), "algorithm must be"},
      {b64("version = \"0.1.0\"\nalgorithm = \"sha384\"\ndata = 3\n"), "data must be a table"},
      {b64(std::string(300 * 1024, '#')), "larger than"},
  };
  for (const auto& [value, want] : cases) {
    absl::StatusOr<std::optional<InitData>> d = InitDataFromAnnotations({{"io.cloak.initdata", value}});
    ASSERT_FALSE(d.ok()) << want;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(d.status().message(), HasSubstr("io.cloak.initdata")) << want;
    EXPECT_THAT(d.status().message(), HasSubstr(want)) << d.status();
  }
}

}  // namespace
}  // namespace cloak::shim
