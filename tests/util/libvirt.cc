#include "tests/util/libvirt.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

// The user libvirt's system instance runs QEMU as: qemu.conf's `user`, else
// Debian's default.
std::string QemuUser() {
  static const std::regex kUser(R"re(^\s*user\s*=\s*"([^"]*)")re");
  std::ifstream in("/etc/libvirt/qemu.conf");
  std::string line, user = "libvirt-qemu";
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, kUser)) user = m[1];
  }
  return user;
}

// Whether `user` (with its groups) may open `path` read and write, by the
// file's mode bits: how libvirt decides whether KVM is usable for QEMU.
bool UserCanReadWrite(const std::string& user, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  const passwd* pw = ::getpwnam(user.c_str());
  if (pw == nullptr) return false;
  if (pw->pw_uid == 0) return true;
  if (pw->pw_uid == st.st_uid) return (st.st_mode & (S_IRUSR | S_IWUSR)) == (S_IRUSR | S_IWUSR);
  std::vector<gid_t> groups(64);
  int n = static_cast<int>(groups.size());
  if (::getgrouplist(user.c_str(), pw->pw_gid, groups.data(), &n) < 0) {
    groups.resize(static_cast<size_t>(n));
    (void)::getgrouplist(user.c_str(), pw->pw_gid, groups.data(), &n);
  }
  groups.resize(static_cast<size_t>(std::max(n, 0)));
  if (std::find(groups.begin(), groups.end(), st.st_gid) != groups.end()) {
    return (st.st_mode & (S_IRGRP | S_IWGRP)) == (S_IRGRP | S_IWGRP);
  }
  return (st.st_mode & (S_IROTH | S_IWOTH)) == (S_IROTH | S_IWOTH);
}

// Mounts a private copy of the mount table would hold for as long as
// libvirtd lives: other tests' overlays and network namespaces, and
// anything mounted below /tmp. libvirtd needs none of them.
std::vector<std::string> MountsToDrop() {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(Slurp("/proc/self/mounts"), '\n')) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() < 3 || absl::StrContains(f[1], "\\")) continue;  // escaped names: left alone
    if (f[2] == "overlay" || f[2] == "nsfs" || absl::StartsWith(f[1], "/tmp/")) {
      out.push_back(f[1]);
    }
  }
  return out;
}

// Runs `argv` (a daemon that forks itself) in a mount namespace of its own
// in which /dev/kvm is `placeholder`, an empty file; waits for the
// foreground process. Its exit code, or -1 if it could not run in time.
int RunWithoutKvm(const std::vector<std::string>& argv, const std::string& placeholder,
                  const std::string& log) {
  // Everything the child needs is made before fork: it only makes system
  // calls (this process has threads).
  const std::vector<std::string> drop = MountsToDrop();
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out < 0 || null < 0) {
    if (out >= 0) ::close(out);
    if (null >= 0) ::close(null);
    return -1;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    auto fail = [](const char* what) {
      (void)!::write(2, what, std::strlen(what));
      ::_exit(126);
    };
    ::dup2(null, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    if (::unshare(CLONE_NEWNS) != 0) fail("unshare(CLONE_NEWNS) failed\n");
    // Nothing mounted here reaches the host's mount table.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      fail("making / private failed\n");
    }
    for (auto it = drop.rbegin(); it != drop.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
    if (::mount(placeholder.c_str(), "/dev/kvm", nullptr, MS_BIND, nullptr) != 0) {
      fail("bind-mounting the placeholder over /dev/kvm failed\n");
    }
    ::execv(args[0], args.data());
    fail("exec failed\n");
  }
  ::close(out);
  ::close(null);
  if (pid < 0) return -1;
  int status = 0;
  for (int i = 0; i < 300; ++i) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (r < 0) return -1;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

// Runs a daemon that forks itself (--daemon) and waits for its socket.
// With a `kvm_placeholder`, in a mount namespace where that hides /dev/kvm.
absl::StatusOr<pid_t> StartDaemon(const std::string& binary, const std::string& socket,
                                  const std::string& scratch,
                                  const std::string& kvm_placeholder = "") {
  const std::string pid_file = absl::StrCat(scratch, "/", binary, ".pid");
  const std::string log = absl::StrCat(scratch, "/", binary, ".out");
  const std::vector<std::string> argv = {Which(binary), "--daemon", "--pid-file", pid_file};
  const int rc = kvm_placeholder.empty() ? RunToFile(argv, log, absl::Seconds(30))
                                         : RunWithoutKvm(argv, kvm_placeholder, log);
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

std::string Ms(absl::Duration d) {
  return absl::FormatDuration(absl::Trunc(d, absl::Milliseconds(1)));
}

// Waits until libvirt at `uri` offers qemu (TCG) domains: its QEMU driver
// has probed QEMU. How long that took.
absl::StatusOr<absl::Duration> WaitForQemuDomains(const std::string& uri) {
  const absl::Time start = absl::Now();
  absl::Status last;
  for (int i = 0; i < 300; ++i) {
    hv::LibvirtCapabilities caps = hv::ProbeLibvirt(uri);
    if (caps.reachable && caps.tcg.available) return absl::Now() - start;
    last = absl::UnavailableError(caps.reachable ? caps.tcg.error : caps.error);
    absl::SleepFor(absl::Milliseconds(200));
  }
  return absl::UnavailableError(
      absl::StrCat("libvirt at ", uri, " offers no qemu domains: ", last.message()));
}

// libvirt keeps each QEMU binary's probed capabilities in
// /var/cache/libvirt/qemu/capabilities and trusts an entry only while KVM
// is as usable for its QEMU user as it was at the probe. Where /dev/kvm
// exists but that user may not open it (no udev to give it to group kvm:
// root-only 0600, as on these machines), libvirtd's QEMU probe still
// reports KVM while its check for the user says no, so every lookup drops
// the entry and probes QEMU again: at start, for each domain capabilities
// query and several times for each domain start, seconds each
// (docs/hypervisor.md). libvirt offers no kvm domains there either way.
// So before the test's libvirtd starts, a libvirtd that sees /dev/kvm as an
// empty file (a mount namespace of its own) probes QEMU once and writes an
// entry without KVM, which the real daemon then keeps trusting. A daemon
// started in that namespace cannot run domains itself (libvirt cannot carry
// a file mount over /dev/kvm into a domain's /dev), hence the two steps.
// Returns what it did for the log ("" when nothing was needed).
absl::StatusOr<std::string> PrimeQemuCapabilities(const std::string& uri,
                                                  const std::string& scratch) {
  const std::string user = QemuUser();
  if (!Exists("/dev/kvm") || UserCanReadWrite(user, "/dev/kvm")) return std::string();
  const absl::Time start = absl::Now();
  const std::string placeholder = absl::StrCat(scratch, "/no-kvm");
  std::ofstream(placeholder).close();
  ::chmod(placeholder.c_str(), 0);
  absl::StatusOr<pid_t> pid = StartDaemon("libvirtd", kLibvirtdSocket, scratch, placeholder);
  if (!pid.ok()) return pid.status();
  absl::StatusOr<absl::Duration> ready = WaitForQemuDomains(uri);
  StopDaemon(*pid);
  if (!ready.ok()) return ready.status();
  return absl::StrCat(", QEMU capabilities cached without KVM (", user,
                      " may not open /dev/kvm) in ", Ms(absl::Now() - start));
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
  const absl::Time t0 = absl::Now();
  if (!Serving(kVirtlogdSocket)) {
    absl::StatusOr<pid_t> pid = StartDaemon("virtlogd", kVirtlogdSocket, scratch);
    if (!pid.ok()) return pid.status();
    d->virtlogd_ = *pid;
  }
  const absl::Time t1 = absl::Now();
  std::string prime_note;
  if (!Serving(kLibvirtdSocket)) {
    absl::StatusOr<std::string> primed = PrimeQemuCapabilities(d->uri_, scratch);
    if (!primed.ok()) return primed.status();  // ~LibvirtDaemons stops virtlogd
    prime_note = *primed;
  }
  const absl::Time t2 = absl::Now();
  if (!Serving(kLibvirtdSocket)) {
    absl::StatusOr<pid_t> pid = StartDaemon("libvirtd", kLibvirtdSocket, scratch);
    if (!pid.ok()) return pid.status();
    d->libvirtd_ = *pid;
  }
  const absl::Time t3 = absl::Now();
  absl::StatusOr<absl::Duration> ready = WaitForQemuDomains(d->uri_);
  if (!ready.ok()) return ready.status();
  std::cerr << "libvirt daemons: virtlogd " << (d->virtlogd_ > 0 ? "started" : "running") << " ("
            << Ms(t1 - t0) << ")" << prime_note << ", libvirtd "
            << (d->libvirtd_ > 0 ? "started" : "running") << " (" << Ms(t3 - t2)
            << "), qemu domains offered after " << Ms(*ready) << "\n";
  return d;
}

LibvirtDaemons::~LibvirtDaemons() {
  const absl::Time t = absl::Now();
  StopDaemon(libvirtd_);
  StopDaemon(virtlogd_);
  if (libvirtd_ > 0 || virtlogd_ > 0) {
    std::cerr << "libvirt daemons: stopped in "
              << absl::FormatDuration(absl::Trunc(absl::Now() - t, absl::Milliseconds(1)))
              << "\n";
  }
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
