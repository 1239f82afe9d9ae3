// The GUIDed table at the end of an OVMF / TDVF image (docs/measurement.md,
// "Firmware footer table"): the table ends 32 bytes before the end of the
// image with a footer entry (u16 size, GUID 96b582de-...), and each entry
// before it is <data> <u16 size of the whole entry> <GUID>, walked from the
// end. SEV and TDX both find their launch metadata through it.
#ifndef CLOAK_COMMON_TEE_MEASURE_OVMF_H_
#define CLOAK_COMMON_TEE_MEASURE_OVMF_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::tee::measure {

// GUIDs as edk2 and QEMU name them.
inline constexpr char kOvmfTableFooterGuid[] = "96b582de-1fb2-45f7-baea-a366c55a082d";
inline constexpr char kSevHashTableRvGuid[] = "7255371f-3a3b-4b04-927b-1da6efa8d454";
inline constexpr char kSevEsResetBlockGuid[] = "00f771de-1a7e-4fcb-890e-68c77e2fb44e";
inline constexpr char kOvmfSevMetadataGuid[] = "dc886566-984a-4798-a75e-5585a7bf67cc";
inline constexpr char kTdxMetadataOffsetGuid[] = "e47a6535-984a-4798-865e-4685a7bf8ec2";

// The 16 bytes of a GUID as firmware stores it (first three fields
// little-endian, the rest as written). `text` must be a well-formed GUID.
std::string GuidToBytes(absl::string_view text);

// Entries of the footer table: GUID bytes → entry data (without the size
// and GUID trailer). InvalidArgument when the image has no footer table or
// an entry's size runs outside the table.
absl::StatusOr<std::map<std::string, std::string>> ParseFooterTable(absl::string_view image);

// Little-endian readers; the caller checks bounds.
uint16_t Le16(absl::string_view b, size_t off);
uint32_t Le32(absl::string_view b, size_t off);
uint64_t Le64(absl::string_view b, size_t off);
void PutLe16(std::string& b, size_t off, uint16_t v);
void PutLe32(std::string& b, size_t off, uint32_t v);
void PutLe64(std::string& b, size_t off, uint64_t v);

}  // namespace cloak::tee::measure

#endif  // CLOAK_COMMON_TEE_MEASURE_OVMF_H_
