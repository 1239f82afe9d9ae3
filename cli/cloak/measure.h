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

namespace CLI {
class App;
}

namespace cloak::cli {

struct SnpMeasureFlags {
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
  std::string firmware;
  std::optional<std::string> kernel;
  std::optional<std::string> initrd;
  std::string append;
  uint64_t memory_mib = 2048;
  std::string page_order = "single-pass";
};

// The reference-values document: {"tee", "reference_values": {name: [hex]},
// "inputs": {...}}. Errors name the file or flag at fault.
absl::StatusOr<nlohmann::json> MeasureSnp(const SnpMeasureFlags& flags);
absl::StatusOr<nlohmann::json> MeasureTdx(const TdxMeasureFlags& flags);

// Adds `measure` with its two subcommands to `app`; RunMeasure runs the
// parsed one (exit code as cli.h documents).
struct MeasureCommand {
  CLI::App* measure = nullptr;
  CLI::App* snp = nullptr;
  CLI::App* tdx = nullptr;
  SnpMeasureFlags snp_flags;
  TdxMeasureFlags tdx_flags;
  bool json = false;
};
void AddMeasureCommand(CLI::App& app, MeasureCommand& cmd);
int RunMeasure(const MeasureCommand& cmd);

}  // namespace cloak::cli

#endif  // CLOAK_CLI_CLOAK_MEASURE_H_
