// Development only: the simulated SNP security processor of one sandbox
// (shim/simsp, docs/simulated-snp.md). It listens on a unix socket before
// QEMU starts; QEMU connects and offers it to the guest as the
// virtio-serial port `cloak.sp`, where the agent asks it for reports. The
// reports carry the measurement of what this sandbox really launched
// (kernel, initrd, final command line) and the pod's init-data digest as
// HOST_DATA, signed by the TEST chain a dev key broker is configured to
// trust.
#ifndef CLOAK_SHIM_SIMULATED_SP_H_
#define CLOAK_SHIM_SIMULATED_SP_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace cloak::shim {

class SimulatedSpHost {
 public:
  // Loads the chain in `chain_dir`, computes the measurement (the SEV-SNP
  // launch digest, docs/simulated-snp.md) from the files, `cmdline`, `vcpus`
  // and `firmware` (empty: the synthetic descriptor), listens on
  // `socket_path` and serves in a thread. `host_data` is 32 bytes or empty
  // (zeros).
  static absl::StatusOr<std::shared_ptr<SimulatedSpHost>> Start(
      const std::string& chain_dir, const std::string& socket_path, const std::string& kernel,
      const std::string& initrd, const std::string& cmdline, int vcpus, const std::string& firmware,
      const std::string& host_data);
  // Stops serving and joins the thread.
  ~SimulatedSpHost();
  SimulatedSpHost(const SimulatedSpHost&) = delete;
  SimulatedSpHost& operator=(const SimulatedSpHost&) = delete;

  // The launch measurement the reports carry, hex (for logs and policies).
  const std::string& measurement_hex() const;

 private:
  struct State;
  explicit SimulatedSpHost(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_SIMULATED_SP_H_
