// Pod networking for a sandbox that CRI gave a network namespace (CNI).
//
// The VM's NIC is wired into the pod's namespace the way Kata's "tcfilter"
// model does it: for every interface CNI configured there (a veth), the
// shim creates a tap device in that namespace and two tc redirect filters,
// veth ingress → tap egress and tap ingress → veth egress. QEMU gets the
// tap's fd; the guest NIC takes the veth's MAC, and the agent gives it the
// veth's addresses and the namespace's routes. The pod's IP then answers
// from inside the VM, and the guest reaches whatever the pod network
// reaches. Nothing is configured on the host's own namespace.
//
// With the libvirt driver QEMU is libvirtd's child in the host's namespace
// and libvirt opens the tap by name there, so the tap cannot be created in
// the pod's namespace and passed by fd. Instead (TapMode::kByName) the shim
// creates a persistent tap with a per-sandbox name in the host's namespace,
// libvirt attaches QEMU to it, and then MoveTapsIntoPod moves the tap (its
// queue stays attached to QEMU) into the pod's namespace and wires the tc
// redirects there. The tap sits unwired and down in the host's namespace
// only between domain creation and that move (docs/networking.md).
#ifndef CLOAK_SHIM_POD_NETWORK_H_
#define CLOAK_SHIM_POD_NETWORK_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/fd.h"
#include "common/netlink/netlink.h"
#include "shim/hypervisor/vm_config.h"
#include "shim/sandbox.h"

namespace cloak::shim {

class PodNetworkAttachment {
 public:
  // Reads the namespace at `netns_path`, makes one tap per interface that
  // carries an address and wires it with tc. FailedPrecondition when the
  // namespace has no such interface (CNI did not run, or failed). Whatever
  // was set up is undone on error.
  enum class TapMode {
    kFd,      // tap made and wired in the pod's namespace; the VMM gets the fd
    kByName,  // persistent tap made in the host's namespace, moved in later
  };
  static absl::StatusOr<std::unique_ptr<PodNetworkAttachment>> Attach(
      const std::string& netns_path, const std::string& sandbox_id, TapMode mode = TapMode::kFd);

  // kByName: moves every tap into the pod's namespace, brings it up and
  // wires the tc redirects (VmConfig::after_launch). Idempotent.
  absl::Status MoveTapsIntoPod();
  // Detach().
  ~PodNetworkAttachment();
  PodNetworkAttachment(const PodNetworkAttachment&) = delete;
  PodNetworkAttachment& operator=(const PodNetworkAttachment&) = delete;

  // Removes the tc filters from the pod's interfaces and closes the taps
  // (a tap vanishes with its last fd, i.e. once QEMU has exited too;
  // persistent kByName taps are deleted). A namespace that is already gone
  // is fine. Idempotent.
  void Detach();

  const netlink::PodNetwork& network() const { return network_; }
  // For VmConfig.taps: the fds stay owned by this object.
  std::vector<hypervisor::VmConfig::TapNic> Taps() const;
  // For SandboxOptions: the interfaces and routes the agent configures.
  std::vector<GuestInterface> GuestInterfaces() const;
  std::vector<GuestRoute> GuestRoutes() const;

 private:
  PodNetworkAttachment(std::string netns_path, std::string sandbox_id, TapMode mode)
      : netns_path_(std::move(netns_path)), sandbox_id_(std::move(sandbox_id)), mode_(mode) {}

  std::string netns_path_;
  std::string sandbox_id_;
  TapMode mode_;
  netlink::PodNetwork network_;
  struct Tap {
    std::string name;
    int pod_index = 0;  // the pod interface it is wired to
    int tap_index = 0;
    UniqueFd fd;       // kFd
    bool in_pod = false;  // kByName: moved into the pod's namespace
  };
  std::vector<Tap> taps_;
  bool detached_ = false;
};

// Pure: the host-namespace name of a kByName tap: "cl" + 8 hex digits of
// the sandbox id's hash + "t" + index, unique per sandbox and short enough
// for IFNAMSIZ.
std::string HostTapName(const std::string& sandbox_id, size_t index);

// Deletes kByName taps of `sandbox_id` left in the host's namespace (a
// shim killed between creating them and moving them). For `delete`.
void RemoveHostTaps(const std::string& sandbox_id);

// Pure: the resolv.conf lines the guest takes from a pod's resolv.conf
// (nameserver, search, domain, options; comments and anything else
// dropped), at most 64 lines of at most 512 bytes.
std::vector<std::string> ResolvConfLines(absl::string_view text);

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_POD_NETWORK_H_
