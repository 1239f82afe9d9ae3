// `cloak measure snp|tdx`: the launch measurement a runtime class's guest
// will report, computed from its firmware, kernel, initrd, command line and
// vCPUs (docs/measurement.md). Prints the hex value, or with --json the
// reference values a KBS resource policy pins (docs/kbs.md).
#ifndef CLOAK_CLI_CLOAK_MEASURE_H_
#define CLOAK_CLI_CLOAK_MEASURE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "shim/config/config.h"

namespace CLI {
class App;
}

namespace cloak::cli {

struct SnpMeasureFlags {
  // A runtime class's config file (the shim's TOML): firmware, kernel,
  // initrd, command line and vCPUs come from it (SnpFlagsForClass).
  std::optional<std::string> config;
  std::string ovmf;
  // Measure over Cloak's synthetic firmware descriptor instead of --ovmf:
  // the value the simulated SP reports (docs/simulated-snp.md).
  bool dev_firmware = false;
  std::optional<std::string> kernel;
  std::optional<std::string> initrd;
  std::optional<std::string> append;
  uint32_t vcpus = 1;
  std::string vcpu_type = "EPYC-v4";
  std::string guest_features = "0x1";
  std::string vmm_type = "QEMU";
};

struct TdxMeasureFlags {
  std::optional<std::string> config;  // as SnpMeasureFlags::config
  std::string firmware;
  std::optional<std::string> kernel;
  std::optional<std::string> initrd;
  std::string append;
  uint64_t memory_mib = 2048;
  std::string page_order = "single-pass";
};

// The inputs of a runtime class's default launch, from its config alone:
// hypervisor.kernel / initrd / vcpus (/ memory_mib for TDX), the command
// line the shim builds (shim/hypervisor/guest_cmdline.h; agent.channel
// "auto" resolved with `host_has_vhost_vsock` as the shim does), and the
// firmware: hypervisor.firmware, or for tee.type "none" without one the
// synthetic descriptor the simulated SP measures. FailedPrecondition naming
// the key when the class cannot be measured (an SNP/TDX class without
// hypervisor.firmware; a TDX class asked for SNP and the reverse). Pure.
absl::StatusOr<SnpMeasureFlags> SnpFlagsForClass(const config::Config& config,
                                                 bool host_has_vhost_vsock);
absl::StatusOr<TdxMeasureFlags> TdxFlagsForClass(const config::Config& config,
                                                 bool host_has_vhost_vsock);

// reference-values.json, as the guest-image build writes it next to its
// manifest (docs/measurement.md, "Reference values from the build"): one
// entry per default runtime class of the installer (cloak-dev, cloak-snp,
// cloak-tdx) over the image's vmlinuz and initrd.img, in the format
// `cloak-kbs admin import-reference-values --class` reads. A class's
// default agent channel is "auto", so each entry lists the value for
// either channel (and both under "variants"). cloak-dev is the simulated
// SP's value ("simulated": true); a class whose firmware is not given (or
// not there) gets "missing" and the `cloak measure` command that computes
// it on the node.
struct ReferenceValuesInputs {
  std::string image_dir;                    // holds vmlinuz and initrd.img
  std::optional<std::string> snp_firmware;  // OVMF AmdSev build
  std::optional<std::string> tdx_firmware;  // TDVF
};
absl::StatusOr<nlohmann::json> BuildReferenceValues(const ReferenceValuesInputs& in);

// The reference-values document: {"tee", "reference_values": {name: [hex]},
// "inputs": {...}}. Errors name the file or flag at fault.
absl::StatusOr<nlohmann::json> MeasureSnp(const SnpMeasureFlags& flags);
absl::StatusOr<nlohmann::json> MeasureTdx(const TdxMeasureFlags& flags);

// Adds `measure` with its subcommands (snp, tdx, classes) to `app`; RunMeasure runs the
// parsed one (exit code as cli.h documents).
struct MeasureCommand {
  CLI::App* measure = nullptr;
  CLI::App* snp = nullptr;
  CLI::App* tdx = nullptr;
  CLI::App* classes = nullptr;
  SnpMeasureFlags snp_flags;
  TdxMeasureFlags tdx_flags;
  ReferenceValuesInputs classes_flags;
  std::string classes_out;
  bool json = false;
};
void AddMeasureCommand(CLI::App& app, MeasureCommand& cmd);
int RunMeasure(const MeasureCommand& cmd);

}  // namespace cloak::cli

#endif  // CLOAK_CLI_CLOAK_MEASURE_H_
