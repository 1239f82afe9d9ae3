// The thin shell around libvirt's C API that the libvirt driver, `delete`
// and `cloak check` share: the process-wide event loop, connections, the
// capability probe, and finding Cloak's domains by their metadata.
#ifndef CLOAK_SHIM_HYPERVISOR_LIBVIRT_LIBVIRT_CONNECTION_H_
#define CLOAK_SHIM_HYPERVISOR_LIBVIRT_LIBVIRT_CONNECTION_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shim/hypervisor/libvirt/domain_caps.h"
#include "shim/hypervisor/libvirt/domain_xml.h"

struct _virConnect;

namespace cloak::shim::hypervisor {

// Registers libvirt's default event loop implementation and runs it on a
// thread of its own (virEventRegisterDefaultImpl + virEventRunDefaultImpl),
// once per process, before any connection is opened: domain lifecycle
// events and keepalives are delivered on that thread. Also keeps libvirt
// from printing its errors on stderr (they come back in statuses).
absl::Status EnsureLibvirtEventLoop();

// libvirt's last error on this thread, e.g. "Failed to connect socket to
// '/run/libvirt/libvirt-sock': No such file or directory".
std::string LibvirtLastError();

class LibvirtConnection {
 public:
  // Unavailable (naming the URI and libvirt's words) when the daemon cannot
  // be reached.
  static absl::StatusOr<std::unique_ptr<LibvirtConnection>> Open(const std::string& uri);
  ~LibvirtConnection();
  LibvirtConnection(const LibvirtConnection&) = delete;
  LibvirtConnection& operator=(const LibvirtConnection&) = delete;

  _virConnect* get() const { return conn_; }
  const std::string& uri() const { return uri_; }

 private:
  LibvirtConnection(_virConnect* conn, std::string uri) : conn_(conn), uri_(std::move(uri)) {}
  _virConnect* conn_;
  std::string uri_;
};

// Never fails: an unreachable daemon reads as !reachable with the reason.
// `machine` is the machine type the domains use (q35).
LibvirtCapabilities ProbeLibvirt(const std::string& uri, const std::string& machine = "q35");

struct CloakDomain {
  std::string name;
  DomainMetadata metadata;
};
// Running domains at `uri` that carry Cloak's metadata element.
absl::StatusOr<std::vector<CloakDomain>> ListCloakDomains(const std::string& uri);

// Destroys every running domain at `uri` whose metadata names `sandbox_id`;
// returns their names. For `delete` after a shim died.
absl::StatusOr<std::vector<std::string>> DestroySandboxDomains(const std::string& uri,
                                                               const std::string& sandbox_id);

}  // namespace cloak::shim::hypervisor

#endif  // CLOAK_SHIM_HYPERVISOR_LIBVIRT_LIBVIRT_CONNECTION_H_
