// `cloak initdata`: the values an operator puts into key-release policies
// are the ones the shim binds and the key broker checks (common/tee).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli/cloak/cli.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"

namespace cloak::cli {
namespace {

TEST(InitDataSummaryTest, DigestFieldsAndAnnotation) {
  const std::string doc = "version = \"0.1.0\"\nalgorithm = \"sha256\"\n";
  absl::StatusOr<nlohmann::json> s = InitDataSummary(doc);
  ASSERT_TRUE(s.ok()) << s.status();
  const std::string digest = tee::HexEncode(tee::Sha256(doc));
  EXPECT_EQ((*s)["algorithm"], "sha256");
  EXPECT_EQ((*s)["digest"], digest);
  EXPECT_EQ((*s)["snp_host_data"], digest);
  EXPECT_EQ((*s)["tdx_mrconfigid"], digest + std::string(32, '0'));
  EXPECT_EQ((*s)["annotation"], "io.cloak.initdata=" + tee::Base64Encode(doc));

  absl::StatusOr<nlohmann::json> sha384 =
      InitDataSummary("version = \"0.1.0\"\nalgorithm = \"sha384\"\n");
  ASSERT_TRUE(sha384.ok());
  EXPECT_EQ((*sha384)["snp_host_data"].get<std::string>().size(), 64u);
  EXPECT_EQ((*sha384)["tdx_mrconfigid"], (*sha384)["digest"]);
}

TEST(InitDataSummaryTest, RefusesWhatTheShimRefuses) {
  EXPECT_THAT(InitDataSummary("version = \"0.1.0\"\n").status().message(),
              ::testing::HasSubstr("algorithm must be"));
}

}  // namespace
}  // namespace cloak::cli
