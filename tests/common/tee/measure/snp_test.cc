// Golden tests of the SEV-SNP launch digest: every vector of
// tests/testdata/snp-measure/vectors.json (digests the public
// sev-snp-measure tool computes for the two firmware fixtures beside it).
#include "common/tee/measure/snp.h"

#include <fstream>
#include <sstream>

#include "common/tee/measure/dev_firmware.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace cloak::tee::measure {
namespace {

std::string ReadTestdata(const std::string& name) {
  std::ifstream in(std::string(CLOAK_MEASURE_TESTDATA) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

nlohmann::json Vectors() { return nlohmann::json::parse(ReadTestdata("vectors.json")); }

SnpLaunchInput InputFor(const nlohmann::json& v) {
  SnpLaunchInput in;
  in.firmware = ReadTestdata(v["ovmf"].get<std::string>());
  if (v.contains("kernel") && !v["kernel"].is_null()) {
    // The vectors' kernel and initrd are empty files ("" = /dev/null).
    EXPECT_EQ(v["kernel"].get<std::string>(), "");
    std::optional<absl::string_view> initrd;
    if (!v["initrd"].is_null()) initrd = "";
    std::optional<std::string> append;
    if (!v["append"].is_null()) append = v["append"].get<std::string>();
    in.kernel_hashes = KernelHashesFromContents(
        "", initrd, append ? std::optional<absl::string_view>(*append) : std::nullopt);
  }
  in.vcpus = v.value("vcpus", 1u);
  in.vcpu_signature = *SnpVcpuSignature(v.value("cpu", std::string("EPYC-v4")));
  in.guest_features = std::stoull(v.value("guest_features", std::string("0x1")), nullptr, 16);
  return in;
}

TEST(SnpMeasure, ReproducesEveryPublicVector) {
  nlohmann::json vectors = Vectors();
  ASSERT_GE(vectors["vectors"].size(), 4u);
  for (const auto& v : vectors["vectors"]) {
    SCOPED_TRACE(v["name"].get<std::string>());
    absl::StatusOr<std::string> digest = ComputeSnpLaunchDigest(InputFor(v));
    ASSERT_TRUE(digest.ok()) << digest.status();
    EXPECT_EQ(HexEncode(*digest), v["launch_digest"].get<std::string>());
  }
}

TEST(SnpMeasure, FirmwarePagesDigest) {
  nlohmann::json vectors = Vectors();
  auto digest =
      ComputeSnpFirmwareDigest(ReadTestdata(vectors["ovmf_hash"]["ovmf"].get<std::string>()));
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(HexEncode(*digest),
            vectors["ovmf_hash"]["sha384_launch_digest_of_ovmf_pages"].get<std::string>());
}

TEST(SnpMeasure, RefusesKernelWithoutKernelHashesSection) {
  nlohmann::json vectors = Vectors();
  ASSERT_FALSE(vectors["must_fail"].empty());
  for (const auto& v : vectors["must_fail"]) {
    SCOPED_TRACE(v["name"].get<std::string>());
    absl::StatusOr<std::string> digest = ComputeSnpLaunchDigest(InputFor(v));
    ASSERT_FALSE(digest.ok());
    EXPECT_NE(digest.status().message().find("SNP_KERNEL_HASHES"), std::string::npos)
        << digest.status();
  }
}

TEST(SnpMeasure, EveryInputChangesTheDigest) {
  SnpLaunchInput base;
  base.firmware = ReadTestdata("ovmf_AmdSev_suffix.bin");
  base.kernel_hashes = KernelHashesFromContents("kernel", "initrd", "console=hvc0");
  base.vcpus = 2;
  base.vcpu_signature = *SnpVcpuSignature("EPYC-v4");
  base.guest_features = 0x1;
  const std::string reference = *ComputeSnpLaunchDigest(base);

  auto differs = [&](SnpLaunchInput in) {
    auto d = ComputeSnpLaunchDigest(in);
    return d.ok() && *d != reference;
  };
  SnpLaunchInput in = base;
  in.kernel_hashes = KernelHashesFromContents("kernel", "initrd", "console=hvc1");
  EXPECT_TRUE(differs(in)) << "command line";
  in = base;
  in.kernel_hashes = KernelHashesFromContents("kernel", "initrD", "console=hvc0");
  EXPECT_TRUE(differs(in)) << "initrd";
  in = base;
  in.kernel_hashes = KernelHashesFromContents("kerneL", "initrd", "console=hvc0");
  EXPECT_TRUE(differs(in)) << "kernel";
  in = base;
  in.vcpus = 3;
  EXPECT_TRUE(differs(in)) << "vcpus";
  in = base;
  in.vcpu_signature = *SnpVcpuSignature("EPYC-Milan");
  EXPECT_TRUE(differs(in)) << "vcpu type";
  in = base;
  in.guest_features = 0x21;
  EXPECT_TRUE(differs(in)) << "guest features";
  in = base;
  in.vmm = SnpVmmType::kEc2;
  EXPECT_TRUE(differs(in)) << "vmm type";
  // Any firmware byte, including one in the middle of the code.
  for (size_t off : {size_t{0}, size_t{0x800}, base.firmware.size() - 1}) {
    in = base;
    in.firmware[off] = static_cast<char>(in.firmware[off] ^ 1);
    auto d = ComputeSnpLaunchDigest(in);
    // A flipped byte may also break the metadata the parser needs; either
    // way the original digest must not come out.
    EXPECT_TRUE(!d.ok() || *d != reference) << "firmware byte " << off;
  }
}

TEST(SnpMeasure, HashesTableLayout) {
  SnpKernelHashes h = KernelHashesFromContents("", std::nullopt, std::nullopt);
  std::string table = SevHashesTable(h);
  ASSERT_EQ(table.size(), 176u);  // 168 padded to 16
  EXPECT_EQ(static_cast<uint8_t>(table[16]), 168);
  // cmdline entry first, carrying SHA-256("\0").
  EXPECT_EQ(table.substr(18 + 18, 32), Sha256(std::string(1, '\0')));
  // kernel entry last, SHA-256 of the empty file.
  EXPECT_EQ(table.substr(18 + 2 * 50 + 18, 32), Sha256(""));
}

TEST(SnpMeasure, RefusesBadInputsWithReasons) {
  SnpLaunchInput in;
  in.firmware = ReadTestdata("ovmf_AmdSev_suffix.bin");
  in.vcpu_signature = *SnpVcpuSignature("EPYC-v4");
  in.guest_features = 0x20;
  EXPECT_NE(ComputeSnpLaunchDigest(in).status().message().find("SNPActive"), std::string::npos);
  in.guest_features = 1;
  in.vcpus = 0;
  EXPECT_FALSE(ComputeSnpLaunchDigest(in).ok());
  in.vcpus = 1;
  in.firmware = std::string(4096, '\0');
  EXPECT_NE(ComputeSnpLaunchDigest(in).status().message().find("footer table"), std::string::npos);
  in.firmware = "short";
  EXPECT_FALSE(ComputeSnpLaunchDigest(in).ok());
  EXPECT_FALSE(SnpVcpuSignature("Skylake").ok());
  EXPECT_FALSE(ParseSnpVmmType("xen").ok());
  EXPECT_EQ(*SnpVcpuSignature("EPYC-v4"), 0x800f12u);
}

}  // namespace
}  // namespace cloak::tee::measure

namespace cloak::tee::measure {
namespace {

TEST(SnpMeasure, DevFirmwareGoesThroughTheRealMaths) {
  const std::string& fw = DevSevFirmware();
  ASSERT_EQ(fw.size(), 3u * 4096);
  auto parsed = ParseSevFirmware(fw);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->gpa, 0x100000000ull - fw.size());
  EXPECT_EQ(parsed->sev_es_reset_eip, 0xFFFFD100u);
  ASSERT_TRUE(parsed->hashes_table_gpa.has_value());
  EXPECT_EQ(*parsed->hashes_table_gpa, 0x805C00u);
  ASSERT_EQ(parsed->sections.size(), 4u);
  EXPECT_EQ(parsed->sections[3].type, SevSectionType::kSnpKernelHashes);

  SnpLaunchInput in;
  in.firmware = fw;
  in.kernel_hashes = KernelHashesFromContents("kernel", "initrd", "console=hvc0");
  in.vcpus = 2;
  in.vcpu_signature = *SnpVcpuSignature("EPYC-v4");
  auto a = ComputeSnpLaunchDigest(in);
  ASSERT_TRUE(a.ok()) << a.status();
  in.vcpus = 1;
  EXPECT_NE(*ComputeSnpLaunchDigest(in), *a);
  in.vcpus = 2;
  in.kernel_hashes = KernelHashesFromContents("kernel", "initrd", "console=hvc0 ");
  EXPECT_NE(*ComputeSnpLaunchDigest(in), *a);
  // Deterministic: the same bytes every time (the SP and `cloak measure`
  // agree).
  EXPECT_EQ(Sha256(DevSevFirmware()), Sha256(fw));
}

}  // namespace
}  // namespace cloak::tee::measure
