// The libvirt domain XML of one sandbox VM: a pure function of VmConfig and
// the resolved accel and agent channel, golden-tested
// (tests/shim/hypervisor/testdata/*.xml) like the QEMU command line.
// docs/hypervisor.md shows the result for each TEE type.
//
// The domain carries Cloak's metadata element
//   <cloak:sandbox xmlns:cloak="https://cloak.io/xmlns/libvirt/domain/1"
//                  id="<sandbox id>" stateDir="<state dir>"/>
// so `containerd-shim-cloak-v2 delete` finds and destroys a domain whose
// shim was killed.
#ifndef CLOAK_SHIM_HYPERVISOR_LIBVIRT_DOMAIN_XML_H_
#define CLOAK_SHIM_HYPERVISOR_LIBVIRT_DOMAIN_XML_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "shim/hypervisor/vm_config.h"

namespace cloak::shim::hypervisor {

inline constexpr char kCloakMetadataUri[] = "https://cloak.io/xmlns/libvirt/domain/1";
inline constexpr char kCloakMetadataPrefix[] = "cloak";

// The MAC of QEMU's first NIC when none is given: the user-network NIC
// keeps it under libvirt too (the guest configures its network by MAC).
inline constexpr char kUserNetworkMac[] = "52:54:00:12:34:56";

// InvalidArgument for a bad config value (naming it). `accel` is kKvm or
// kTcg (domain type 'kvm' / 'qemu'), `channel` kVsock or kSerial.
absl::StatusOr<std::string> BuildDomainXml(const VmConfig& config, Accel accel,
                                           AgentChannel channel);

// What Cloak's metadata element says.
struct DomainMetadata {
  std::string sandbox_id;
  std::string state_dir;
};
// Parses the element as virDomainGetMetadata returns it (without its
// namespace declaration), or as the domain XML holds it. InvalidArgument if
// it is not a <sandbox> element with an id, or names another namespace.
absl::StatusOr<DomainMetadata> ParseDomainMetadata(absl::string_view element_xml);

// `text` with &, <, >, ' and " escaped for XML text and attribute values.
std::string XmlEscape(absl::string_view text);

}  // namespace cloak::shim::hypervisor

#endif  // CLOAK_SHIM_HYPERVISOR_LIBVIRT_DOMAIN_XML_H_
