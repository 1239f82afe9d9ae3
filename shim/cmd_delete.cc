// `containerd-shim-cloak-v2 ... delete` (docs/shim.md, "Contract: delete"): runs after every
// task's ttrpc connection closes — on normal teardown too — and after a
// shim died. Idempotent; must finish within containerd's 5 s cleanup
// timeout; prints the binary DeleteResponse and exits 0.
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/logging.h"
#include "shim/bundle.h"
#include "shim/commands.h"
#include "shim/hypervisor/libvirt/libvirt_connection.h"
#include "shim/hypervisor/libvirt/libvirt_hypervisor.h"
#include "shim/pod_network.h"
#include "shim/sandbox_factory.h"
#include "shim/shim_process.h"
#include "shim/task_translate.h"

namespace cloak::shim {
namespace {

constexpr absl::Duration kDaemonTermGrace = absl::Seconds(2);
constexpr absl::Duration kKillWait = absl::Seconds(1);

void Warn(const std::string& message) {
  // stderr of delete is logged by containerd as "cleanup warnings".
  std::fprintf(stderr, "%s delete: %s\n", kShimBinaryName, message.c_str());
}

// Stops what is left of a sandbox whose shim could not clean up.
void CleanSandboxState(const std::string& state_dir) {
  std::error_code ec;
  if (state_dir.empty() || !std::filesystem::exists(state_dir, ec)) return;
  // The daemon first: it owns the VM and knows how to stop it.
  pid_t shim = ReadPidFile(state_dir + "/shim.pid");
  if (shim > 1 && shim != ::getpid() && ProcessMatches(shim, kShimBinaryName, "")) {
    ::kill(shim, SIGTERM);
    if (!WaitForPidGone(shim, kDaemonTermGrace)) {
      Warn(absl::StrCat("shim daemon ", shim, " ignored SIGTERM; killing it"));
      ::kill(shim, SIGKILL);
      WaitForPidGone(shim, kKillWait);
    }
  }
  const std::string sandbox_id = std::filesystem::path(state_dir).filename().string();
  // A libvirt domain: found by Cloak's metadata element, destroyed through
  // libvirt (its QEMU is libvirtd's child, not ours).
  absl::StatusOr<std::string> uri =
      ReadFile(absl::StrCat(state_dir, "/", hypervisor::kLibvirtUriFile), 4096);
  if (uri.ok()) {
    absl::StatusOr<std::vector<std::string>> destroyed = hypervisor::DestroySandboxDomains(
        std::string(absl::StripAsciiWhitespace(*uri)), sandbox_id);
    if (!destroyed.ok()) {
      Warn(destroyed.status().ToString());
    } else {
      for (const std::string& name : *destroyed) {
        Warn(absl::StrCat("destroyed the leftover libvirt domain ", name));
      }
    }
    RemoveHostTaps(sandbox_id);
  }
  // Then the VM, by pid, only if that pid is still our QEMU for this state.
  pid_t vmm = ReadPidFile(state_dir + "/vmm.pid");
  if (vmm > 1 && ProcessMatches(vmm, "qemu-system-x86_64", state_dir)) {
    ::kill(vmm, SIGKILL);
    if (!WaitForPidGone(vmm, kKillWait)) Warn(absl::StrCat("QEMU ", vmm, " did not go away"));
  }
  std::filesystem::remove_all(state_dir, ec);
  if (ec) Warn(absl::StrCat("remove ", state_dir, ": ", ec.message()));
}

void Delete(const ShimFlags& flags, const std::string& bundle) {
  absl::StatusOr<PodInfo> pod = ReadPodInfo(bundle, flags.id);
  const bool is_sandbox = !pod.ok() || pod->is_sandbox;
  if (is_sandbox) {
    absl::StatusOr<std::string> state =
        ReadFile(absl::StrCat(bundle, "/", kBundleStateDirFile), 4096);
    if (state.ok()) CleanSandboxState(std::string(absl::StripAsciiWhitespace(*state)));
  }
  // A socket nobody serves any more: the one the bundle's address file
  // names, else (that file may be gone already) the one containerd's naming
  // gives this sandbox.
  pid_t shim = ReadPidFile(bundle + "/shim.pid");
  const bool daemon_alive = shim > 1 && ProcessMatches(shim, kShimBinaryName, "");
  if (!daemon_alive && is_sandbox) {
    absl::StatusOr<std::string> address = ReadFile(bundle + "/address", 4096);
    const std::string path =
        address.ok() ? SocketPathFromAddress(absl::StripAsciiWhitespace(*address))
                     : SocketPath(flags.address, flags.namespace_name, flags.id, ShimSocketDir());
    if (path.rfind(ShimSocketDir(), 0) == 0) ::unlink(path.c_str());
  }
  const std::string rootfs = bundle + "/rootfs";
  if (::umount2(rootfs.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    Warn(absl::StrCat("unmount ", rootfs, ": ", std::strerror(errno)));
  }
}

}  // namespace

int RunDelete(const ShimFlags& flags) {
  std::string bundle = flags.bundle;
  if (bundle.empty()) {
    std::error_code ec;
    bundle = std::filesystem::current_path(ec).string();
  }
  Delete(flags, bundle);
  const std::string response = EncodeDeleteResponse(0, kKilledExitStatus, absl::Now());
  std::fwrite(response.data(), 1, response.size(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace cloak::shim
