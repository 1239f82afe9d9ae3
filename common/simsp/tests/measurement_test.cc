// The simulated launch measurement and the guest image manifest.
#include "common/simsp/measurement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "common/simsp/crypto.h"
#include "common/temp_dir.h"

namespace cloak::simsp {
namespace {

using ::testing::HasSubstr;

// The digests of build/guest-image/manifest.json at the time of writing.
constexpr char kManifest[] = R"({
  "schema": 1,
  "cmdline": "console=ttyS0 quiet panic=-1 cryptomgr.notests no_timer_check net.ifnames=0",
  "cmdline_sha256": "ee6d0911484f4ca60f6e53b37f1f9ce85eca89704a9d18214da35fb893faaa08",
  "vmlinuz": {"sha256": "391d229a7c641821b7414d001c090043d977e11daf865362d36ea832ccf0dd69", "size": 1},
  "initrd": {"sha256": "c268f368d54a4208f89211c7067e60268c477c0490f117112178a5219d90c52f", "size": 2}
})";

// Golden values computed independently (Python hashlib):
// sha384(b"cloak-simsp-measurement-v1\0" + kernel + initrd + cmdline digests).
constexpr char kImageMeasurement[] =
    "b44757a2e76e912d8a4f6868c8fc82f54d6250e9a66c0dd1badcbf7367059817ccf10c93d470c091c0125184d4902"
    "b4f";
constexpr char kWithTestParam[] =
    "b1566859cf1dbc2d9ac54070e5d3e126914cd5c266cd021a91428abce27c39044c985249f6953c0aab2bdf97098"
    "14c68";

TEST(MeasurementTest, MatchesTheDocumentedDefinition) {
  auto image = ParseManifest(kManifest);
  ASSERT_TRUE(image.ok()) << image.status();
  auto m = MeasurementFromManifest(*image, "");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->size(), 48u);
  EXPECT_EQ(tee::HexEncode(*m), kImageMeasurement);
  // The manifest's command line given explicitly: the same value.
  EXPECT_EQ(tee::HexEncode(*MeasurementFromManifest(*image, image->cmdline)), kImageMeasurement);
  // The shim appends a parameter: another measurement.
  auto appended = MeasurementFromManifest(*image, image->cmdline + " cloak.test=1");
  EXPECT_EQ(tee::HexEncode(*appended), kWithTestParam);
}

TEST(MeasurementTest, EachInputMovesIt) {
  std::string a(32, 'a'), b(32, 'b');
  std::string base = *SimulatedMeasurement(a, a, a);
  EXPECT_NE(*SimulatedMeasurement(b, a, a), base);
  EXPECT_NE(*SimulatedMeasurement(a, b, a), base);
  EXPECT_NE(*SimulatedMeasurement(a, a, b), base);
  // Order matters (kernel and initrd swapped).
  EXPECT_NE(*SimulatedMeasurement(a, b, a), *SimulatedMeasurement(b, a, a));
  EXPECT_THAT(SimulatedMeasurement("short", a, a).status().message(),
              HasSubstr("kernel digest must be a raw 32-byte SHA-256"));
  EXPECT_THAT(SimulatedMeasurement(a, a, std::string(48, 'c')).status().message(),
              HasSubstr("cmdline digest"));
}

TEST(MeasurementTest, BadManifestsAreRefused) {
  EXPECT_THAT(ParseManifest("not json").status().message(), HasSubstr("not a JSON object"));
  EXPECT_THAT(ParseManifest("{}").status().message(), HasSubstr("vmlinuz.sha256 missing"));
  std::string bad_kernel = kManifest;
  bad_kernel.replace(bad_kernel.find("391d"), 4, "zzzz");
  EXPECT_THAT(ParseManifest(bad_kernel).status().message(),
              HasSubstr("vmlinuz.sha256 is not a SHA-256"));
  std::string wrong_cmdline = kManifest;
  wrong_cmdline.replace(wrong_cmdline.find("quiet"), 5, "loud!");
  EXPECT_THAT(ParseManifest(wrong_cmdline).status().message(),
              HasSubstr("cmdline_sha256 is not the SHA-256 of cmdline"));
}

TEST(MeasurementTest, ReadsTheManifestFile) {
  auto dir = TempDir::Create("simsp-m-");
  ASSERT_TRUE(dir.ok());
  std::ofstream(dir->Join("manifest.json")) << kManifest;
  auto image = ReadManifest(dir->Join("manifest.json"));
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(tee::HexEncode(image->kernel_sha256),
            "391d229a7c641821b7414d001c090043d977e11daf865362d36ea832ccf0dd69");
  EXPECT_FALSE(ReadManifest(dir->Join("missing.json")).ok());
}

}  // namespace
}  // namespace cloak::simsp
