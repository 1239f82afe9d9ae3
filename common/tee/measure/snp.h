// The SEV-SNP launch digest (MEASUREMENT of the attestation report) that
// the PSP computes for a QEMU direct-boot guest, computed from the launch
// inputs with the semantics of the public sev-snp-measure tool
// (docs/measurement.md, "SEV-SNP"):
//
//   LD = 48 zero bytes; for each page the VMM adds, LD = SHA-384(PAGE_INFO)
//   with PAGE_INFO = LD || CONTENTS || u16 0x70 || PAGE_TYPE || IS_IMI ||
//   VMPL3..1 perms || reserved || u64 GPA.
//
// Pages, in order: the firmware image below 4 GiB (NORMAL); the firmware's
// SEV metadata sections (zero, secrets, CPUID, the kernel-hashes table page,
// SVSM CAA); one VMSA page per vCPU.
#ifndef CLOAK_COMMON_TEE_MEASURE_SNP_H_
#define CLOAK_COMMON_TEE_MEASURE_SNP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::tee::measure {

inline constexpr size_t kSnpDigestSize = 48;

// SEV metadata section types (edk2 OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm).
enum class SevSectionType : uint32_t {
  kSnpSecMem = 1,
  kSnpSecrets = 2,
  kCpuid = 3,
  kSvsmCaa = 4,
  kSnpKernelHashes = 0x10,
};

struct SevMetadataSection {
  uint32_t gpa = 0;
  uint32_t size = 0;
  SevSectionType type = SevSectionType::kSnpSecMem;
};

// What the SNP launch needs from an OVMF image.
struct SevFirmware {
  uint64_t gpa = 0;                          // 4 GiB - image size
  uint32_t sev_es_reset_eip = 0;             // AP entry point; 0 if the image has none
  std::optional<uint32_t> hashes_table_gpa;  // SEV_HASH_TABLE_RV_GUID entry
  std::vector<SevMetadataSection> sections;
};

// Parses the footer table and the "ASEV" metadata. InvalidArgument naming
// what is malformed or missing (no SEV-ES reset block, unknown section type).
absl::StatusOr<SevFirmware> ParseSevFirmware(absl::string_view image);

// The three SHA-256 digests QEMU's kernel-hashes table carries.
struct SnpKernelHashes {
  std::string kernel_sha256;   // 32 raw bytes
  std::string initrd_sha256;   // 32 raw bytes (of an empty initrd when none)
  std::string cmdline_sha256;  // 32 raw bytes of the command line plus its NUL
};
// From the files' contents; `initrd` unset = no initrd, `append` unset = "".
SnpKernelHashes KernelHashesFromContents(absl::string_view kernel,
                                         std::optional<absl::string_view> initrd,
                                         std::optional<absl::string_view> append);

// The table as QEMU writes it: header GUID, u16 length, then cmdline,
// initrd and kernel entries (GUID, u16 length, SHA-256), padded to 16 bytes.
std::string SevHashesTable(const SnpKernelHashes& hashes);

enum class SnpVmmType { kQemu = 1, kEc2 = 2 };
absl::StatusOr<SnpVmmType> ParseSnpVmmType(absl::string_view name);  // "QEMU", "ec2"
absl::string_view SnpVmmTypeName(SnpVmmType type);

// The CPUID Fn0000_0001_EAX signature of a QEMU -cpu model (EPYC-v4 ...).
absl::StatusOr<uint32_t> SnpVcpuSignature(absl::string_view vcpu_type);
std::vector<std::string> SnpVcpuTypes();

struct SnpLaunchInput {
  std::string firmware;  // the whole OVMF image (QEMU -bios)
  // Direct boot with kernel-hashes=on; unset = no kernel given.
  std::optional<SnpKernelHashes> kernel_hashes;
  uint32_t vcpus = 1;
  uint32_t vcpu_signature = 0;
  uint64_t guest_features = 0x1;  // VMSA SEV_FEATURES
  SnpVmmType vmm = SnpVmmType::kQemu;
};

// The 48-byte launch digest. InvalidArgument / FailedPrecondition naming the
// input at fault (for example a kernel given to firmware without an
// SNP_KERNEL_HASHES section).
absl::StatusOr<std::string> ComputeSnpLaunchDigest(const SnpLaunchInput& input);

// The digest after the firmware pages alone (sev-snp-measure's "OVMF hash").
absl::StatusOr<std::string> ComputeSnpFirmwareDigest(absl::string_view firmware);

// One VMSA page (4096 bytes) as QEMU/KVM set it up at launch.
std::string SnpVmsaPage(uint64_t eip, uint64_t guest_features, uint32_t vcpu_signature,
                        SnpVmmType vmm);

}  // namespace cloak::tee::measure

#endif  // CLOAK_COMMON_TEE_MEASURE_SNP_H_
