#include "shim/hypervisor/libvirt/libvirt_connection.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <cstdlib>
#include <thread>

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace cloak::shim::hypervisor {
namespace {

void QuietErrors(void*, virErrorPtr) {}

void RunEventLoop() {
  while (true) {
    if (virEventRunDefaultImpl() < 0) {
      Logger("hypervisor")->error("libvirt event loop: {}", LibvirtLastError());
    }
  }
}

std::string TakeString(char* s) {
  if (s == nullptr) return "";
  std::string out(s);
  std::free(s);
  return out;
}

DomainCapabilities ProbeDomainCaps(virConnectPtr conn, const char* virttype,
                                   const std::string& machine) {
  DomainCapabilities caps;
  char* xml = virConnectGetDomainCapabilities(conn, nullptr, "x86_64", machine.c_str(),
                                              virttype, 0);
  if (xml == nullptr) {
    caps.error = LibvirtLastError();
    return caps;
  }
  absl::StatusOr<DomainCapabilities> parsed = ParseDomainCapabilities(TakeString(xml));
  if (!parsed.ok()) {
    caps.error = std::string(parsed.status().message());
    return caps;
  }
  return *parsed;
}

}  // namespace

absl::Status EnsureLibvirtEventLoop() {
  static absl::once_flag once;
  static absl::Status* status = new absl::Status();
  absl::call_once(once, [] {
    virSetErrorFunc(nullptr, QuietErrors);
    if (virInitialize() < 0) {
      *status = absl::InternalError(absl::StrCat("libvirt: initialize: ", LibvirtLastError()));
      return;
    }
    if (virEventRegisterDefaultImpl() < 0) {
      *status = absl::InternalError(
          absl::StrCat("libvirt: register the default event loop: ", LibvirtLastError()));
      return;
    }
    // Runs for the life of the process: libvirt's default event loop cannot
    // be unregistered once connections use it.
    std::thread(RunEventLoop).detach();
  });
  return *status;
}

std::string LibvirtLastError() {
  const char* message = virGetLastErrorMessage();
  return message != nullptr ? message : "unknown libvirt error";
}

absl::StatusOr<std::unique_ptr<LibvirtConnection>> LibvirtConnection::Open(const std::string& uri) {
  RETURN_IF_ERROR(EnsureLibvirtEventLoop());
  virConnectPtr conn = virConnectOpen(uri.c_str());
  if (conn == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "connect to libvirt at ", uri, ": ", LibvirtLastError(),
        " (is libvirtd running? see docs/hypervisor.md, or set hypervisor.libvirt_uri)"));
  }
  // Notice a dead daemon within ~15 s even when idle.
  (void)virConnectSetKeepAlive(conn, 5, 3);
  return std::unique_ptr<LibvirtConnection>(new LibvirtConnection(conn, uri));
}

LibvirtConnection::~LibvirtConnection() {
  if (conn_ != nullptr) virConnectClose(conn_);
}

LibvirtCapabilities ProbeLibvirt(const std::string& uri, const std::string& machine) {
  LibvirtCapabilities caps;
  caps.uri = uri;
  absl::StatusOr<std::unique_ptr<LibvirtConnection>> conn = LibvirtConnection::Open(uri);
  if (!conn.ok()) {
    caps.error = std::string(conn.status().message());
    return caps;
  }
  caps.reachable = true;
  unsigned long lib = 0, hv = 0;
  if (virConnectGetLibVersion((*conn)->get(), &lib) == 0) {
    caps.version = LibvirtVersionFromNumber(lib);
  }
  if (virConnectGetVersion((*conn)->get(), &hv) == 0) {
    caps.hypervisor_version = LibvirtVersionFromNumber(hv);
  }
  caps.kvm = ProbeDomainCaps((*conn)->get(), "kvm", machine);
  caps.tcg = ProbeDomainCaps((*conn)->get(), "qemu", machine);
  return caps;
}

absl::StatusOr<std::vector<CloakDomain>> ListCloakDomains(const std::string& uri) {
  ASSIGN_OR_RETURN(std::unique_ptr<LibvirtConnection> conn, LibvirtConnection::Open(uri));
  virDomainPtr* domains = nullptr;
  const int n = virConnectListAllDomains(conn->get(), &domains, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  if (n < 0) {
    return absl::InternalError(absl::StrCat("libvirt at ", uri, ": list domains: ",
                                            LibvirtLastError()));
  }
  std::vector<CloakDomain> out;
  for (int i = 0; i < n; ++i) {
    char* meta = virDomainGetMetadata(domains[i], VIR_DOMAIN_METADATA_ELEMENT, kCloakMetadataUri,
                                      VIR_DOMAIN_AFFECT_LIVE);
    if (meta != nullptr) {
      absl::StatusOr<DomainMetadata> m = ParseDomainMetadata(TakeString(meta));
      const char* name = virDomainGetName(domains[i]);
      if (m.ok()) out.push_back({.name = name != nullptr ? name : "", .metadata = *m});
    }
    virDomainFree(domains[i]);
  }
  std::free(domains);
  return out;
}

absl::StatusOr<std::vector<std::string>> DestroySandboxDomains(const std::string& uri,
                                                               const std::string& sandbox_id) {
  ASSIGN_OR_RETURN(std::vector<CloakDomain> domains, ListCloakDomains(uri));
  ASSIGN_OR_RETURN(std::unique_ptr<LibvirtConnection> conn, LibvirtConnection::Open(uri));
  std::vector<std::string> destroyed;
  for (const CloakDomain& d : domains) {
    if (d.metadata.sandbox_id != sandbox_id) continue;
    virDomainPtr dom = virDomainLookupByName(conn->get(), d.name.c_str());
    if (dom == nullptr) continue;  // gone meanwhile
    const int rc = virDomainDestroy(dom);
    const std::string error = rc < 0 ? LibvirtLastError() : "";
    virDomainFree(dom);
    if (rc < 0) {
      return absl::InternalError(
          absl::StrCat("libvirt at ", uri, ": destroy domain ", d.name, ": ", error));
    }
    destroyed.push_back(d.name);
  }
  return destroyed;
}

}  // namespace cloak::shim::hypervisor
