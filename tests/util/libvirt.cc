#include "tests/util/libvirt.h"

#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/process.h"
#include "shim/hypervisor/libvirt/libvirt_connection.h"
#include "shim/shim_process.h"
#include "tests/util/host.h"

namespace cloak::testutil {
namespace {

namespace hv = ::cloak::shim::hypervisor;

constexpr char kVirtlogdSocket[] = "/run/libvirt/virtlogd-sock";
constexpr char kLibvirtdSocket[] = "/run/libvirt/libvirt-sock";

bool Serving(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

pid_t ReadPid(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  int pid = -1;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &pid)) return -1;
  return pid;
}

// Runs a daemon that forks itself (--daemon) and waits for its socket.
absl::StatusOr<pid_t> StartDaemon(const std::string& binary, const std::string& socket,
                                  const std::string& scratch) {
  const std::string pid_file = absl::StrCat(scratch, "/", binary, ".pid");
  const std::string log = absl::StrCat(scratch, "/", binary, ".out");
  int rc = RunToFile({binary, "--daemon", "--pid-file", pid_file}, log, absl::Seconds(30));
  if (rc != 0) {
    return absl::InternalError(absl::StrCat(binary, " --daemon failed (", rc, "): ", Slurp(log)));
  }
  for (int i = 0; i < 200 && !Serving(socket); ++i) absl::SleepFor(absl::Milliseconds(100));
  const pid_t pid = ReadPid(pid_file);
  if (!Serving(socket)) {
    if (pid > 1) ::kill(pid, SIGKILL);
    return absl::DeadlineExceededError(
        absl::StrCat(binary, " did not serve ", socket, " within 20 s: ", Slurp(log)));
  }
  return pid;
}

void StopDaemon(pid_t pid) {
  if (pid <= 1) return;
  ::kill(pid, SIGTERM);
  if (!shim::WaitForPidGone(pid, absl::Seconds(10))) {
    ::kill(pid, SIGKILL);
    shim::WaitForPidGone(pid, absl::Seconds(2));
  }
}

}  // namespace

std::string LibvirtDaemons::MissingPrerequisite() {
  if (::geteuid() != 0) return "needs root (libvirtd's system instance)";
  for (const char* tool : {"libvirtd", "virtlogd", "qemu-system-x86_64"}) {
    if (Which(tool).empty()) {
      return absl::StrCat(tool, " is not installed (scripts/install-deps installs "
                                "libvirt-daemon-system)");
    }
  }
  if (::getpwnam("libvirt-qemu") == nullptr) {
    return "user libvirt-qemu is missing (install libvirt-daemon-system)";
  }
  return "";
}

absl::StatusOr<std::unique_ptr<LibvirtDaemons>> LibvirtDaemons::Start(const std::string& scratch) {
  std::unique_ptr<LibvirtDaemons> d(new LibvirtDaemons());
  d->scratch_ = scratch;
  std::error_code ec;
  for (const char* dir : {"/var/log/libvirt", "/run/libvirt", "/run/libvirt/network"}) {
    std::filesystem::create_directories(dir, ec);
  }
  // libvirtd autostarts networks marked so once per boot, unless this
  // marker says it already did: the tests never want a host bridge.
  if (!std::filesystem::exists("/run/libvirt/network/autostarted")) {
    std::ofstream("/run/libvirt/network/autostarted");
  }
  if (!Serving(kVirtlogdSocket)) {
    absl::StatusOr<pid_t> pid = StartDaemon("virtlogd", kVirtlogdSocket, scratch);
    if (!pid.ok()) return pid.status();
    d->virtlogd_ = *pid;
  }
  if (!Serving(kLibvirtdSocket)) {
    absl::StatusOr<pid_t> pid = StartDaemon("libvirtd", kLibvirtdSocket, scratch);
    if (!pid.ok()) return pid.status();  // ~LibvirtDaemons stops virtlogd
    d->libvirtd_ = *pid;
  }
  // The QEMU driver probes QEMU at start: wait until it answers.
  absl::Status last;
  for (int i = 0; i < 100; ++i) {
    hv::LibvirtCapabilities caps = hv::ProbeLibvirt(d->uri_);
    if (caps.reachable && caps.tcg.available) return d;
    last = absl::UnavailableError(caps.reachable ? caps.tcg.error : caps.error);
    absl::SleepFor(absl::Milliseconds(200));
  }
  return absl::UnavailableError(
      absl::StrCat("libvirt at ", d->uri_, " offers no qemu domains: ", last.message()));
}

LibvirtDaemons::~LibvirtDaemons() {
  StopDaemon(libvirtd_);
  StopDaemon(virtlogd_);
}

std::vector<std::string> CloakDomainsUnder(const std::string& uri, const std::string& prefix) {
  std::vector<std::string> out;
  absl::StatusOr<std::vector<hv::CloakDomain>> domains = hv::ListCloakDomains(uri);
  if (!domains.ok()) return out;
  for (const hv::CloakDomain& d : *domains) {
    if (absl::StartsWith(d.metadata.state_dir, prefix)) out.push_back(d.name);
  }
  return out;
}

std::vector<pid_t> CloakDomainQemuPids(const std::string& uri, const std::string& prefix,
                                       const std::string& sandbox) {
  std::vector<pid_t> out;
  absl::StatusOr<std::vector<hv::CloakDomain>> domains = hv::ListCloakDomains(uri);
  if (!domains.ok()) return out;
  for (const hv::CloakDomain& d : *domains) {
    if (!absl::StartsWith(d.metadata.state_dir, prefix)) continue;
    if (!sandbox.empty() && !absl::StrContains(d.metadata.sandbox_id, sandbox)) continue;
    const pid_t pid = ReadPid(absl::StrCat("/run/libvirt/qemu/", d.name, ".pid"));
    if (pid > 1 && PidAlive(pid)) out.push_back(pid);
  }
  return out;
}

int DestroyCloakDomainsUnder(const std::string& uri, const std::string& prefix) {
  int n = 0;
  absl::StatusOr<std::vector<hv::CloakDomain>> domains = hv::ListCloakDomains(uri);
  if (!domains.ok()) return 0;
  for (const hv::CloakDomain& d : *domains) {
    if (!absl::StartsWith(d.metadata.state_dir, prefix)) continue;
    absl::StatusOr<std::vector<std::string>> gone =
        hv::DestroySandboxDomains(uri, d.metadata.sandbox_id);
    if (gone.ok()) n += static_cast<int>(gone->size());
  }
  return n;
}

}  // namespace cloak::testutil
