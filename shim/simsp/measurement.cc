#include "shim/simsp/measurement.h"

#include "absl/strings/str_cat.h"
#include "shim/simsp/crypto.h"
#include "common/status_macros.h"
#include "common/tee/digest.h"
#include "common/tee/measure/dev_firmware.h"
#include "common/tee/measure/snp.h"
#include "nlohmann/json.hpp"

namespace cloak::simsp {
namespace {

absl::StatusOr<std::string> Digest32(const nlohmann::json* j, absl::string_view what) {
  if (j == nullptr || !j->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("guest image manifest: ", what, " missing or not a string"));
  }
  auto raw = tee::HexDecode(j->get<std::string>());
  if (!raw.ok() || raw->size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("guest image manifest: ", what, " is not a SHA-256 in hex"));
  }
  return *raw;
}

const nlohmann::json* Find(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

}  // namespace

absl::StatusOr<std::string> SimulatedMeasurement(const SimulatedLaunch& launch) {
  for (auto [digest, what] :
       {std::pair{&launch.kernel_sha256, "kernel"}, std::pair{&launch.initrd_sha256, "initrd"}}) {
    if (digest->size() != 32) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " digest must be a raw 32-byte SHA-256, got ", digest->size(), " bytes"));
    }
  }
  namespace m = cloak::tee::measure;
  m::SnpLaunchInput input;
  input.firmware = launch.firmware.empty() ? m::DevSevFirmware() : launch.firmware;
  std::string cmdline = launch.cmdline;
  cmdline += '\0';  // QEMU hashes the command line with its NUL
  input.kernel_hashes = m::SnpKernelHashes{.kernel_sha256 = launch.kernel_sha256,
                                           .initrd_sha256 = launch.initrd_sha256,
                                           .cmdline_sha256 = tee::Sha256(cmdline)};
  input.vcpus = launch.vcpus;
  ASSIGN_OR_RETURN(input.vcpu_signature, m::SnpVcpuSignature(kSimulatedVcpuType));
  input.guest_features = kSimulatedGuestFeatures;
  input.vmm = m::SnpVmmType::kQemu;
  return m::ComputeSnpLaunchDigest(input);
}

absl::StatusOr<ImageDigests> ParseManifest(absl::string_view manifest_json) {
  nlohmann::json j = nlohmann::json::parse(manifest_json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError("guest image manifest: not a JSON object");
  ImageDigests out;
  const nlohmann::json* kernel = Find(j, "vmlinuz");
  const nlohmann::json* initrd = Find(j, "initrd");
  ASSIGN_OR_RETURN(out.kernel_sha256,
                   Digest32(kernel ? Find(*kernel, "sha256") : nullptr, "vmlinuz.sha256"));
  ASSIGN_OR_RETURN(out.initrd_sha256,
                   Digest32(initrd ? Find(*initrd, "sha256") : nullptr, "initrd.sha256"));
  ASSIGN_OR_RETURN(out.cmdline_sha256, Digest32(Find(j, "cmdline_sha256"), "cmdline_sha256"));
  const nlohmann::json* cmdline = Find(j, "cmdline");
  if (cmdline == nullptr || !cmdline->is_string()) {
    return absl::InvalidArgumentError("guest image manifest: cmdline missing or not a string");
  }
  out.cmdline = cmdline->get<std::string>();
  if (tee::Sha256(out.cmdline) != out.cmdline_sha256) {
    return absl::InvalidArgumentError(
        "guest image manifest: cmdline_sha256 is not the SHA-256 of cmdline");
  }
  return out;
}

absl::StatusOr<ImageDigests> ReadManifest(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto parsed = ParseManifest(text);
  if (!parsed.ok()) return Annotate(parsed.status(), path);
  return parsed;
}

absl::StatusOr<std::string> MeasurementFromManifest(const ImageDigests& image,
                                                    absl::string_view final_cmdline, uint32_t vcpus,
                                                    const std::string& firmware) {
  SimulatedLaunch launch;
  launch.firmware = firmware;
  launch.kernel_sha256 = image.kernel_sha256;
  launch.initrd_sha256 = image.initrd_sha256;
  launch.cmdline = final_cmdline.empty() ? image.cmdline : std::string(final_cmdline);
  launch.vcpus = vcpus;
  return SimulatedMeasurement(launch);
}

}  // namespace cloak::simsp
