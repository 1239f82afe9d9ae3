// The simulated SP's launch measurement (docs/simulated-snp.md). A real SNP
// MEASUREMENT is the PSP's digest of the launch pages (docs/simulated-snp.md; OVMF,
// VMSAs, the kernel-hashes table); without a PSP we define our own 48-byte
// value over what a direct-boot kernel-hashes table commits to:
//
//   SHA-384( "cloak-simsp-measurement-v1" || 0x00 ||
//            SHA-256(kernel) || SHA-256(initrd) || SHA-256(final cmdline) )
//
// with the cmdline hashed as its bytes, without a trailing NUL. It moves
// when the kernel, the initrd or any kernel parameter changes, so a KBS
// policy pinning it still refuses a guest booted from another image.
#ifndef CLOAK_COMMON_SIMSP_MEASUREMENT_H_
#define CLOAK_COMMON_SIMSP_MEASUREMENT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::simsp {

inline constexpr char kMeasurementLabel[] = "cloak-simsp-measurement-v1";

// Each argument is a raw 32-byte SHA-256; InvalidArgument otherwise.
absl::StatusOr<std::string> SimulatedMeasurement(absl::string_view kernel_sha256,
                                                 absl::string_view initrd_sha256,
                                                 absl::string_view cmdline_sha256);

// What the measurement is computed from, as read from the guest image's
// manifest.json (docs/guest-image.md): "vmlinuz"."sha256",
// "initrd"."sha256" and "cmdline" / "cmdline_sha256".
struct ImageDigests {
  std::string kernel_sha256;   // 32 raw bytes
  std::string initrd_sha256;   // 32 raw bytes
  std::string cmdline;         // the image's own command line
  std::string cmdline_sha256;  // 32 raw bytes, of `cmdline`
};
absl::StatusOr<ImageDigests> ParseManifest(absl::string_view manifest_json);
absl::StatusOr<ImageDigests> ReadManifest(const std::string& path);

// The measurement of a guest booted from the manifest's kernel and initrd
// with `final_cmdline` (the shim appends parameters to the image's own
// command line, so the digest is taken over what QEMU really gets). An
// empty `final_cmdline` means the manifest's own command line.
absl::StatusOr<std::string> MeasurementFromManifest(const ImageDigests& image,
                                                    absl::string_view final_cmdline);

}  // namespace cloak::simsp

#endif  // CLOAK_COMMON_SIMSP_MEASUREMENT_H_
