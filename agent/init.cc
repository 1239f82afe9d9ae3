#include "agent/init.h"

#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/fd.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/status_macros.h"

namespace cloak::agent {

namespace {

std::shared_ptr<spdlog::logger> Log() { return Logger("init"); }

absl::Status MountOne(const char* source, const char* target, const char* type,
                      unsigned long flags, const char* data, bool optional = false) {
  ::mkdir(target, 0755);
  if (::mount(source, target, type, flags, data) != 0) {
    if (errno == EBUSY) return absl::OkStatus();  // already mounted
    absl::Status s = ErrnoError(errno, "mount ", type, " on ", target);
    if (optional) {
      Log()->info("{}", s.ToString());
      return absl::OkStatus();
    }
    return s;
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& DefaultModules() {
  static const auto* modules = new std::vector<std::string>{
      "vsock", "vmw_vsock_virtio_transport", "virtio_net", "virtio_balloon", "overlay", "configfs",
      "tsm", "sev-guest", "tdx-guest"};
  return *modules;
}

bool IsOptionalModule(absl::string_view name) {
  return name == "tsm" || name == "sev-guest" || name == "sev_guest" || name == "tdx-guest" ||
         name == "tdx_guest";
}

absl::StatusOr<KernelCmdline> ParseKernelCmdline(absl::string_view cmdline) {
  KernelCmdline out;
  bool modules_set = false;
  for (absl::string_view word : absl::StrSplit(cmdline, absl::ByAnyChar(" \t\n"), absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(word, absl::MaxSplits('=', 1));
    const absl::string_view key = kv.first;
    const absl::string_view value = kv.second;
    if (key == "cloak.channel") {
      if (value != "serial" && value != "vsock" && value != "auto") {
        return absl::InvalidArgumentError("cloak.channel must be serial, vsock or auto");
      }
      out.channel = std::string(value);
    } else if (key == "cloak.port") {
      uint32_t port = 0;
      if (!absl::SimpleAtoi(value, &port) || port == 0) {
        return absl::InvalidArgumentError("cloak.port must be a positive integer");
      }
      out.port = port;
    } else if (key == "cloak.log") {
      if (value != "trace" && value != "debug" && value != "info" && value != "warn" &&
          value != "error" && value != "off") {
        return absl::InvalidArgumentError(
            "cloak.log must be trace, debug, info, warn, error or off");
      }
      out.log_level = std::string(value);
    } else if (key == "cloak.insecure_registries") {
      for (absl::string_view r : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        for (char c : r) {
          if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != ':' &&
              c != '[' && c != ']') {
            return absl::InvalidArgumentError("cloak.insecure_registries holds a bad host:port");
          }
        }
        out.insecure_registries.emplace_back(r);
      }
    } else if (key == "cloak.max_downloads") {
      int n = 0;
      if (!absl::SimpleAtoi(value, &n) || n < 1 || n > 16) {
        return absl::InvalidArgumentError("cloak.max_downloads must be an integer from 1 to 16");
      }
      out.max_downloads = n;
    } else if (key == "cloak.policy") {
      if (value != "enforce" && value != "allow-all") {
        return absl::InvalidArgumentError("cloak.policy must be enforce or allow-all");
      }
      out.policy = std::string(value);
    } else if (key == "cloak.tee") {
      if (value != "none" && value != "snp" && value != "tdx") {
        return absl::InvalidArgumentError("cloak.tee must be none, snp or tdx");
      }
      out.tee = std::string(value);
    } else if (key == "cloak.modules") {
      modules_set = true;
      out.modules.clear();
      for (absl::string_view m : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        for (char c : m) {
          if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
            return absl::InvalidArgumentError("cloak.modules holds a bad module name");
          }
        }
        out.modules.emplace_back(m);
      }
    }
  }
  if (!modules_set) out.modules = DefaultModules();
  return out;
}

absl::Status MountEssentials() {
  const unsigned long kNoSuidExecDev = MS_NOSUID | MS_NOEXEC | MS_NODEV;
  RETURN_IF_ERROR(MountOne("proc", "/proc", "proc", kNoSuidExecDev, nullptr));
  RETURN_IF_ERROR(MountOne("sysfs", "/sys", "sysfs", kNoSuidExecDev, nullptr));
  RETURN_IF_ERROR(MountOne("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"));
  // Logs go to the console from here on.
  int console = ::open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (console >= 0) {
    for (int fd = 0; fd < 3; ++fd) ::dup2(console, fd);
    if (console > 2) ::close(console);
  }
  RETURN_IF_ERROR(MountOne("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                           "newinstance,ptmxmode=0666,mode=0620,gid=5"));
  if (::access("/dev/ptmx", F_OK) != 0) ::symlink("pts/ptmx", "/dev/ptmx");
  RETURN_IF_ERROR(MountOne("shm", "/dev/shm", "tmpfs", kNoSuidExecDev, "mode=1777"));
  RETURN_IF_ERROR(MountOne("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"));
  RETURN_IF_ERROR(MountOne("cgroup2", "/sys/fs/cgroup", "cgroup2", kNoSuidExecDev, nullptr));
  for (const char* controller : {"+cpu", "+memory", "+pids", "+io", "+cpuset"}) {
    UniqueFd fd(::open("/sys/fs/cgroup/cgroup.subtree_control", O_WRONLY | O_CLOEXEC));
    if (!fd || !WriteAll(fd.get(), controller).ok()) {
      Log()->info("cgroup controller {} not enabled", controller + 1);
    }
  }
  ::setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 0);
  return absl::OkStatus();
}

void LoadModulesAndConfigfs(const std::vector<std::string>& modules) {
  // Runs before the Reaper starts, so waiting here races with nobody.
  for (const std::string& m : modules) {
    absl::StatusOr<Subprocess> p = Subprocess::Spawn({"modprobe", m});
    absl::StatusOr<ExitInfo> exit =
        p.ok() ? p->Wait(absl::Seconds(10)) : absl::StatusOr<ExitInfo>(p.status());
    if (exit.ok() && exit->exit_code == 0) {
      Log()->debug("module {} loaded", m);
    } else if (IsOptionalModule(m)) {
      Log()->info("module {} not loaded (expected outside that TEE)", m);
    } else {
      Log()->warn("module {} not loaded: {}", m,
                  exit.ok() ? absl::StrCat("modprobe exit ", exit->exit_code)
                            : exit.status().ToString());
    }
  }
  (void)MountOne("configfs", "/sys/kernel/config", "configfs", MS_NOSUID | MS_NOEXEC | MS_NODEV,
                 nullptr, /*optional=*/true);
}

absl::Status LoopbackUp() {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return ErrnoError(errno, "socket");
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof(ifr));
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) != 0) return ErrnoError(errno, "SIOCGIFFLAGS lo");
  ifr.ifr_flags |= IFF_UP;
  if (::ioctl(s.get(), SIOCSIFFLAGS, &ifr) != 0) return ErrnoError(errno, "SIOCSIFFLAGS lo");
  return absl::OkStatus();
}

void PowerOff() {
  Log()->info("powering off");
  Log()->flush();
  ::sync();
  ::reboot(RB_POWER_OFF);
  Log()->error("reboot(RB_POWER_OFF): {}", std::strerror(errno));
}

}  // namespace cloak::agent
