// The AMD SEV-SNP ATTESTATION_REPORT: its layout (docs/formats.md, "SEV-SNP
// attestation report") and the one parser the agent, the key broker and the
// simulated SP use. Pure.
#ifndef CLOAK_COMMON_TEE_SNP_REPORT_H_
#define CLOAK_COMMON_TEE_SNP_REPORT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::tee {

// Layout: every field little-endian at a fixed offset.
inline constexpr size_t kSnpReportSize = 0x4A0;  // 1184
inline constexpr size_t kSnpSignedSize = 0x2A0;  // bytes 0x000-0x29F are signed
inline constexpr size_t kSnpVersionOffset = 0x000;
inline constexpr size_t kSnpGuestSvnOffset = 0x004;
inline constexpr size_t kSnpPolicyOffset = 0x008;
inline constexpr size_t kSnpFamilyIdOffset = 0x010;  // 16
inline constexpr size_t kSnpImageIdOffset = 0x020;   // 16
inline constexpr size_t kSnpVmplOffset = 0x030;
inline constexpr size_t kSnpSignatureAlgoOffset = 0x034;
inline constexpr size_t kSnpCurrentTcbOffset = 0x038;
inline constexpr size_t kSnpPlatformInfoOffset = 0x040;
inline constexpr size_t kSnpKeyInfoOffset = 0x048;
inline constexpr size_t kSnpReportDataOffset = 0x050;       // 64
inline constexpr size_t kSnpMeasurementOffset = 0x090;      // 48
inline constexpr size_t kSnpHostDataOffset = 0x0C0;         // 32
inline constexpr size_t kSnpIdKeyDigestOffset = 0x0E0;      // 48
inline constexpr size_t kSnpAuthorKeyDigestOffset = 0x110;  // 48
inline constexpr size_t kSnpReportIdOffset = 0x140;         // 32
inline constexpr size_t kSnpReportIdMaOffset = 0x160;       // 32
inline constexpr size_t kSnpReportedTcbOffset = 0x180;
inline constexpr size_t kSnpCpuidFamilyOffset = 0x188;  // version 3 and later
inline constexpr size_t kSnpCpuidModelOffset = 0x189;
inline constexpr size_t kSnpCpuidSteppingOffset = 0x18A;
inline constexpr size_t kSnpChipIdOffset = 0x1A0;  // 64
inline constexpr size_t kSnpCommittedTcbOffset = 0x1E0;
inline constexpr size_t kSnpCurrentVersionOffset = 0x1E8;    // build, minor, major
inline constexpr size_t kSnpCommittedVersionOffset = 0x1EC;  // build, minor, major
inline constexpr size_t kSnpLaunchTcbOffset = 0x1F0;
inline constexpr size_t kSnpSignatureROffset = 0x2A0;  // 72, little-endian
inline constexpr size_t kSnpSignatureSOffset = 0x2E8;  // 72, little-endian
inline constexpr size_t kSnpSignatureComponentSize = 72;

inline constexpr size_t kSnpReportDataSize = 64;
inline constexpr size_t kSnpMeasurementSize = 48;
inline constexpr size_t kSnpHostDataSize = 32;
inline constexpr size_t kSnpChipIdSize = 64;

inline constexpr uint32_t kSnpSignatureAlgoEcdsaP384 = 1;
inline constexpr uint64_t kSnpPolicyDebugBit = 1ull << 19;
inline constexpr uint64_t kSnpPolicyReservedBit = 1ull << 17;

struct SnpReport {
  uint32_t version = 0;
  uint32_t guest_svn = 0;
  uint64_t policy = 0;
  uint32_t vmpl = 0;
  uint32_t signature_algo = 0;
  uint64_t current_tcb = 0;
  uint64_t platform_info = 0;
  uint32_t key_info = 0;
  std::string report_data;  // 64
  std::string measurement;  // 48
  std::string host_data;    // 32
  std::string id_key_digest;
  std::string author_key_digest;
  uint64_t reported_tcb = 0;
  uint8_t cpuid_fam_id = 0;  // v3+
  uint8_t cpuid_mod_id = 0;
  std::string chip_id;  // 64
  uint64_t committed_tcb = 0;
  uint64_t launch_tcb = 0;
  std::string signed_bytes;  // 0x000-0x29F
  std::string sig_r_be;      // 48 bytes, big-endian
  std::string sig_s_be;

  bool debug() const { return (policy & kSnpPolicyDebugBit) != 0; }
  // KEY_INFO bits 4:2: 0 VCEK, 1 VLEK, 7 none.
  uint32_t signing_key() const { return (key_info >> 2) & 7; }
  bool mask_chip_id() const { return (key_info & 2) != 0; }
};

// Parses the 1184-byte report. InvalidArgument on a wrong size, an
// unsupported version (2..5 accepted) or signature algorithm.
absl::StatusOr<SnpReport> ParseSnpReport(absl::string_view raw);

// The product lines, named as AMD's certificates name them ("SEV-Milan").
enum class SnpProduct { kMilan, kGenoa, kTurin };
absl::string_view SnpProductName(SnpProduct product);  // "Milan", ...
// "milan"/"Milan" → kMilan; InvalidArgument otherwise.
absl::StatusOr<SnpProduct> ParseSnpProduct(absl::string_view name);

// TCB_VERSION components (docs/formats.md); fmc is zero before Turin.
struct SnpTcb {
  uint8_t fmc = 0;
  uint8_t bootloader = 0;
  uint8_t tee = 0;
  uint8_t snp = 0;
  uint8_t microcode = 0;
  std::string ToString() const;  // "bl=3 tee=0 snp=8 ucode=115" (+ fmc on Turin)
};
// The raw u64 as the report carries it: Milan/Genoa and Turin lay it out
// differently.
SnpTcb DecodeSnpTcb(uint64_t raw, SnpProduct product);
uint64_t EncodeSnpTcb(const SnpTcb& tcb, SnpProduct product);

}  // namespace cloak::tee

#endif  // CLOAK_COMMON_TEE_SNP_REPORT_H_
