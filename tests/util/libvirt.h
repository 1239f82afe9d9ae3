// libvirt's daemons for the tests of the libvirt driver, on a machine
// without systemd: virtlogd, then libvirtd (docs/hypervisor.md). A daemon
// already serving its socket is used as it is and left alone; the daemons
// this object started are stopped by pid when it goes, after the Cloak
// domains of the test (found by their metadata) are destroyed. Before
// libvirtd starts, libvirt's cache of QEMU's capabilities is made to hold
// where the host's /dev/kvm would keep it stale (tests/util/libvirt.cc,
// PrimeQemuCapabilities).
#ifndef CLOAK_TESTS_UTIL_LIBVIRT_H_
#define CLOAK_TESTS_UTIL_LIBVIRT_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cloak::testutil {

inline constexpr char kLibvirtTestUri[] = "qemu:///system";

class LibvirtDaemons {
 public:
  // Why the libvirt driver cannot be tested here ("" when it can): not
  // root, or libvirtd / virtlogd / the libvirt-qemu user missing.
  static std::string MissingPrerequisite();
  // Starts what is not running yet; `scratch` holds the pid files and logs.
  static absl::StatusOr<std::unique_ptr<LibvirtDaemons>> Start(const std::string& scratch);
  // Stops the daemons this object started (SIGTERM, then SIGKILL).
  ~LibvirtDaemons();
  LibvirtDaemons(const LibvirtDaemons&) = delete;
  LibvirtDaemons& operator=(const LibvirtDaemons&) = delete;

  const std::string& uri() const { return uri_; }
  // Whether this object started libvirtd (false: one was running).
  bool started_libvirtd() const { return libvirtd_ > 0; }

 private:
  LibvirtDaemons() = default;
  std::string uri_ = kLibvirtTestUri;
  std::string scratch_;
  pid_t virtlogd_ = -1;
  pid_t libvirtd_ = -1;
};

// Names of the running Cloak domains at `uri` whose sandbox state dir lies
// under `prefix` (a test's directory).
std::vector<std::string> CloakDomainsUnder(const std::string& uri, const std::string& prefix);
// Their QEMU pids (libvirt's pid files); only of sandbox ids containing
// `sandbox` when it is not empty.
std::vector<pid_t> CloakDomainQemuPids(const std::string& uri, const std::string& prefix,
                                       const std::string& sandbox = "");
// Destroys them; returns how many there were.
int DestroyCloakDomainsUnder(const std::string& uri, const std::string& prefix);

}  // namespace cloak::testutil

#endif  // CLOAK_TESTS_UTIL_LIBVIRT_H_
