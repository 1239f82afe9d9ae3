#include "shim/simulated_sp.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"
#include "shim/simsp/chain.h"
#include "shim/simsp/measurement.h"
#include "shim/simsp/server.h"

namespace cloak::shim {

struct SimulatedSpHost::State {
  std::unique_ptr<simsp::SimulatedSp> sp;
  std::string socket_path;
  std::string measurement_hex;
  std::thread thread;
};

absl::StatusOr<std::shared_ptr<SimulatedSpHost>> SimulatedSpHost::Start(
    const std::string& chain_dir, const std::string& socket_path, const std::string& kernel,
    const std::string& initrd, const std::string& cmdline, int vcpus, const std::string& firmware,
    const std::string& host_data) {
  absl::StatusOr<simsp::DevChain> chain = simsp::LoadDevChain(chain_dir);
  if (!chain.ok()) return Annotate(chain.status(), "tee.simulated_snp_chain");
  ASSIGN_OR_RETURN(std::string kernel_sha, tee::FileSha256(kernel));
  ASSIGN_OR_RETURN(std::string initrd_sha, tee::FileSha256(initrd));
  simsp::SimulatedLaunch launch;
  if (!firmware.empty()) {
    ASSIGN_OR_RETURN(launch.firmware, ReadFile(firmware));
  }
  launch.kernel_sha256 = kernel_sha;
  launch.initrd_sha256 = initrd_sha;
  launch.cmdline = cmdline;
  launch.vcpus = vcpus > 0 ? static_cast<uint32_t>(vcpus) : 1;
  ASSIGN_OR_RETURN(std::string measurement, simsp::SimulatedMeasurement(launch));
  simsp::SimulatedSpOptions options;
  options.measurement = measurement;
  options.host_data = host_data;
  ASSIGN_OR_RETURN(std::unique_ptr<simsp::SimulatedSp> sp,
                   simsp::SimulatedSp::Create(std::move(*chain), options));
  RETURN_IF_ERROR(sp->Listen(socket_path));
  auto state = std::make_unique<State>();
  state->sp = std::move(sp);
  state->socket_path = socket_path;
  state->measurement_hex = tee::HexEncode(measurement);
  simsp::SimulatedSp* raw = state->sp.get();
  state->thread = std::thread([raw, socket_path] {
    absl::Status served = raw->ServeUnixSocket(socket_path);
    if (!served.ok()) Logger("shim")->warn("simulated SNP SP: {}", served.ToString());
  });
  Logger("shim")->warn(
      "simulated SNP security processor on {} (DEVELOPMENT ONLY: TEST chain {}), "
      "measurement {} cmdline \"{}\" vcpus {} firmware {}",
      socket_path, chain_dir, state->measurement_hex, cmdline, launch.vcpus,
      firmware.empty() ? std::string("(synthetic dev firmware)") : firmware);
  return std::shared_ptr<SimulatedSpHost>(new SimulatedSpHost(std::move(state)));
}

SimulatedSpHost::SimulatedSpHost(std::unique_ptr<State> state) : state_(std::move(state)) {}

SimulatedSpHost::~SimulatedSpHost() {
  state_->sp->Stop();
  if (state_->thread.joinable()) state_->thread.join();
}

const std::string& SimulatedSpHost::measurement_hex() const { return state_->measurement_hex; }

}  // namespace cloak::shim
