// The Authenticode digest of a PE/COFF image (the hash UEFI's image
// verification and measured boot use, Microsoft "Windows Authenticode
// Portable Executable Signature Format"): the headers without the checksum
// field and the certificate-table directory entry, the sections in file
// order, then any trailing bytes that are not the certificate table.
#ifndef CLOAK_COMMON_TEE_MEASURE_PE_H_
#define CLOAK_COMMON_TEE_MEASURE_PE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::tee::measure {

// SHA-384 Authenticode digest (48 raw bytes). InvalidArgument when `image`
// is not a PE32/PE32+ file or a header points outside it.
absl::StatusOr<std::string> AuthenticodeSha384(absl::string_view image);

}  // namespace cloak::tee::measure

#endif  // CLOAK_COMMON_TEE_MEASURE_PE_H_
