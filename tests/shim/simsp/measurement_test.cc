// The simulated launch measurement and the guest image manifest.
#include "shim/simsp/measurement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "shim/simsp/crypto.h"
#include "common/tee/measure/dev_firmware.h"
#include "common/tee/measure/snp.h"
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

SimulatedLaunch Launch(char kernel, char initrd, const std::string& cmdline, uint32_t vcpus) {
  SimulatedLaunch l;
  l.kernel_sha256 = std::string(32, kernel);
  l.initrd_sha256 = std::string(32, initrd);
  l.cmdline = cmdline;
  l.vcpus = vcpus;
  return l;
}

// The simulated SP measures with the real SEV-SNP launch digest: the same
// value `cloak measure snp --dev-firmware` computes (EPYC-v4, guest
// features 0x1, QEMU, the command line hashed with its NUL).
TEST(MeasurementTest, IsTheSnpLaunchDigestOverTheSyntheticFirmware) {
  auto image = ParseManifest(kManifest);
  ASSERT_TRUE(image.ok()) << image.status();
  auto m = MeasurementFromManifest(*image, "", 2);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->size(), 48u);
  namespace tm = cloak::tee::measure;
  tm::SnpLaunchInput in;
  in.firmware = tm::DevSevFirmware();
  in.kernel_hashes = tm::SnpKernelHashes{image->kernel_sha256, image->initrd_sha256,
                                         tee::Sha256(image->cmdline + std::string(1, '\0'))};
  in.vcpus = 2;
  in.vcpu_signature = *tm::SnpVcpuSignature("EPYC-v4");
  in.guest_features = 1;
  EXPECT_EQ(tee::HexEncode(*m), tee::HexEncode(*tm::ComputeSnpLaunchDigest(in)));
  // The manifest's command line given explicitly: the same value.
  EXPECT_EQ(*MeasurementFromManifest(*image, image->cmdline, 2), *m);
  // The shim appends a parameter, or runs another vCPU count: another one.
  EXPECT_NE(*MeasurementFromManifest(*image, image->cmdline + " cloak.test=1", 2), *m);
  EXPECT_NE(*MeasurementFromManifest(*image, "", 1), *m);
  // A configured firmware file replaces the synthetic descriptor.
  std::string other_fw = tm::DevSevFirmware();
  other_fw[10] ^= 1;
  EXPECT_NE(*MeasurementFromManifest(*image, "", 2, other_fw), *m);
}

TEST(MeasurementTest, EachInputMovesIt) {
  std::string base = *SimulatedMeasurement(Launch('a', 'a', "x", 1));
  EXPECT_NE(*SimulatedMeasurement(Launch('b', 'a', "x", 1)), base);
  EXPECT_NE(*SimulatedMeasurement(Launch('a', 'b', "x", 1)), base);
  EXPECT_NE(*SimulatedMeasurement(Launch('a', 'a', "y", 1)), base);
  EXPECT_NE(*SimulatedMeasurement(Launch('a', 'a', "x", 3)), base);
  // Order matters (kernel and initrd swapped).
  EXPECT_NE(*SimulatedMeasurement(Launch('a', 'b', "x", 1)),
            *SimulatedMeasurement(Launch('b', 'a', "x", 1)));
  SimulatedLaunch bad = Launch('a', 'a', "x", 1);
  bad.kernel_sha256 = "short";
  EXPECT_THAT(SimulatedMeasurement(bad).status().message(),
              HasSubstr("kernel digest must be a raw 32-byte SHA-256"));
  EXPECT_FALSE(SimulatedMeasurement(Launch('a', 'a', "x", 0)).ok());
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
