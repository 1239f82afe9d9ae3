// LibvirtHypervisor: runs one sandbox VM as a transient libvirt domain
// (virDomainCreateXML) named after the sandbox. libvirtd spawns and owns
// QEMU; the shim follows the domain through lifecycle events delivered on
// libvirt's event loop thread (libvirt_connection.h), never by polling.
//
// The domain carries Cloak's metadata (domain_xml.h) and its URI is
// written to <state dir>/libvirt-uri, so `delete` can destroy a domain
// whose shim was killed.
#ifndef CLOAK_SHIM_HYPERVISOR_LIBVIRT_LIBVIRT_HYPERVISOR_H_
#define CLOAK_SHIM_HYPERVISOR_LIBVIRT_LIBVIRT_HYPERVISOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "shim/hypervisor/host_capabilities.h"
#include "shim/hypervisor/hypervisor.h"
#include "shim/hypervisor/libvirt/domain_caps.h"
#include "shim/hypervisor/libvirt/libvirt_connection.h"
#include "shim/hypervisor/vm_config.h"

struct _virDomain;

namespace cloak::shim::hypervisor {

// File in the sandbox state dir naming the libvirt URI of its domain.
inline constexpr char kLibvirtUriFile[] = "libvirt-uri";

class LibvirtHypervisor final : public Hypervisor {
 public:
  // Checks the TEE against libvirt's own capabilities (a clear refusal
  // naming the libvirt version when it cannot launch it), resolves accel
  // against libvirt's domain types and the agent channel against the host,
  // checks that kernel, initrd and firmware exist, and builds the domain
  // XML. Nothing is started.
  static absl::StatusOr<std::unique_ptr<Hypervisor>> Create(const VmConfig& config,
                                                            const LibvirtCapabilities& libvirt,
                                                            const HostCapabilities& host);
  ~LibvirtHypervisor() override;

  void SetEventCallback(VmEventCallback callback) override;
  absl::Status Start(absl::Time deadline) override;
  absl::StatusOr<ExitInfo> Stop(absl::Duration grace) override;
  absl::StatusOr<ExitInfo> Wait(absl::Time deadline) override;
  absl::Status Pause(absl::Time deadline) override;
  absl::Status Resume(absl::Time deadline) override;
  pid_t Pid() const override;
  absl::StatusOr<VmStatus> Status(absl::Time deadline) override;
  std::string ConsoleTail(int lines) const override;
  transport::AgentAddress Agent() const override { return agent_; }
  std::vector<std::string> CommandLine() const override { return {xml_}; }

  // What lifecycle events report, shared with libvirt's event thread (it
  // may outlive this object by one callback).
  struct Shared;

 private:
  LibvirtHypervisor(VmConfig config, std::string xml, transport::AgentAddress agent);
  absl::Status DestroyDomain(bool graceful);

  const VmConfig config_;
  const std::string xml_;
  const transport::AgentAddress agent_;
  std::shared_ptr<Shared> shared_;

  // Serialises Start / Stop / Pause / Resume / Status.
  absl::Mutex op_mu_;
  std::unique_ptr<LibvirtConnection> conn_ ABSL_GUARDED_BY(op_mu_);
  ::_virDomain* dom_ ABSL_GUARDED_BY(op_mu_) = nullptr;
  int lifecycle_callback_ ABSL_GUARDED_BY(op_mu_) = -1;
};

}  // namespace cloak::shim::hypervisor

#endif  // CLOAK_SHIM_HYPERVISOR_LIBVIRT_LIBVIRT_HYPERVISOR_H_
