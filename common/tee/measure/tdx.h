// Intel TDX launch measurements computed from the launch inputs
// (docs/measurement.md, "TDX"):
//
// MRTD — the TDX module's SHA-384 over the build of the TD: for each page
// the VMM adds with TDH.MEM.PAGE.ADD a 128-byte record ("MEM.PAGE.ADD", GPA
// at byte 16), and for each 256-byte chunk extended with TDH.MR.EXTEND a
// 128-byte record ("MR.EXTEND", GPA at byte 16) followed by the chunk. The
// pages come from the TDVF image's TDX metadata (sections with their GPA,
// size, type and attributes; MR.EXTEND attribute = contents measured).
//
// RTMR1 / RTMR2 — what TDVF (OVMF IntelTdx) and the Linux EFI stub extend
// for a QEMU direct boot: the kernel's Authenticode digest and the boot
// events into RTMR1, the load options (command line) and the initrd into
// RTMR2. RTMR0 (TD HOB, ACPI tables, firmware configuration) depends on the
// VMM's memory layout and tables and is not predicted here.
#ifndef CLOAK_COMMON_TEE_MEASURE_TDX_H_
#define CLOAK_COMMON_TEE_MEASURE_TDX_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::tee::measure {

inline constexpr uint32_t kTdvfAttrMrExtend = 1u << 0;
inline constexpr uint32_t kTdvfAttrPageAug = 1u << 1;

// TDVF section types (TDX Virtual Firmware Design Guide, section 11).
enum TdvfSectionType : uint32_t {
  kTdvfBfv = 0,
  kTdvfCfv = 1,
  kTdvfTdHob = 2,
  kTdvfTempMem = 3,
  kTdvfPermMem = 4,
  kTdvfPayload = 5,
  kTdvfPayloadParam = 6,
};

struct TdvfSection {
  uint32_t data_offset = 0;
  uint32_t raw_data_size = 0;
  uint64_t memory_address = 0;
  uint64_t memory_data_size = 0;
  uint32_t type = 0;
  uint32_t attributes = 0;
};

// Finds the "TDVF" descriptor through the footer table entry
// e47a6535-... (its u32 = offset of the descriptor from the image's end)
// and parses its sections. InvalidArgument naming what is wrong.
absl::StatusOr<std::vector<TdvfSection>> ParseTdvfMetadata(absl::string_view image);

// How the VMM interleaves PAGE.ADD and MR.EXTEND within a section: Linux
// KVM (upstream, 6.16+) adds a page and extends it before the next page
// (single pass); earlier TDX KVM trees added all pages of a section first.
enum class MrtdPageOrder { kSinglePass, kTwoPass };
absl::StatusOr<MrtdPageOrder> ParseMrtdPageOrder(absl::string_view name);

absl::StatusOr<std::string> ComputeMrtd(absl::string_view image, MrtdPageOrder order);

// RTMR extension: SHA-384(old || digest).
std::string ExtendRtmr(absl::string_view rtmr, absl::string_view digest48);

struct TdxDirectBoot {
  std::string kernel;                 // bzImage as given to QEMU -kernel
  std::optional<std::string> initrd;  // -initrd
  std::string cmdline;                // -append
  uint64_t memory_mib = 2048;         // -m, for where QEMU places the initrd
  uint32_t acpi_data_size = 0x28000;  // QEMU's ACPI reservation below 4 GiB
};

// The kernel image as QEMU hands it to the firmware: setup header fields
// (loader type, heap end, command-line pointer, initrd address and size)
// filled in as QEMU's x86 Linux loader does.
absl::StatusOr<std::string> QemuPatchedKernel(const TdxDirectBoot& boot);

// The events of each register (48-byte digests, in order) and the values.
struct TdxRtmrs {
  std::vector<std::string> rtmr1_events;
  std::vector<std::string> rtmr2_events;
  std::string rtmr1;
  std::string rtmr2;
};
absl::StatusOr<TdxRtmrs> ComputeTdxDirectBootRtmrs(const TdxDirectBoot& boot);

}  // namespace cloak::tee::measure

#endif  // CLOAK_COMMON_TEE_MEASURE_TDX_H_
