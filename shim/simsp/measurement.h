// The simulated SP's launch measurement (docs/simulated-snp.md): the real
// SEV-SNP launch digest (common/tee/measure/snp.h, docs/measurement.md)
// computed over what the VM actually launches — the kernel, initrd and final
// command line in the kernel-hashes table, one VMSA per vCPU (vCPU type
// EPYC-v4, guest features 0x1, QEMU) — and over the firmware file when one
// is configured, else over Cloak's synthetic firmware descriptor
// (common/tee/measure/dev_firmware.h). `cloak measure snp --dev-firmware`
// prints the same value, so a dev KBS policy pins a computed value.
#ifndef CLOAK_SHIM_SIMSP_MEASUREMENT_H_
#define CLOAK_SHIM_SIMSP_MEASUREMENT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::simsp {

inline constexpr char kSimulatedVcpuType[] = "EPYC-v4";
inline constexpr uint64_t kSimulatedGuestFeatures = 0x1;

struct SimulatedLaunch {
  std::string firmware;       // the image's bytes; empty: the synthetic descriptor
  std::string kernel_sha256;  // 32 raw bytes
  std::string initrd_sha256;  // 32 raw bytes
  std::string cmdline;        // the final command line (-append)
  uint32_t vcpus = 1;
};

// InvalidArgument when a digest is not 32 bytes or the vCPU count is 0.
absl::StatusOr<std::string> SimulatedMeasurement(const SimulatedLaunch& launch);

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
// command line, so the digest is taken over what QEMU really gets) and
// `vcpus`, over `firmware` (empty: the synthetic descriptor). An empty
// `final_cmdline` means the manifest's own command line.
absl::StatusOr<std::string> MeasurementFromManifest(const ImageDigests& image,
                                                    absl::string_view final_cmdline,
                                                    uint32_t vcpus = 1,
                                                    const std::string& firmware = "");

}  // namespace cloak::simsp

#endif  // CLOAK_SHIM_SIMSP_MEASUREMENT_H_
