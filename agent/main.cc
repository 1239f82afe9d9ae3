// cloak-agent: the guest agent. As PID 1 it sets the guest up (agent/init.h)
// and serves on the channel named by the kernel command line; as an ordinary
// process (tests) it serves where --listen says.
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/time/clock.h"
#include "agent/agent.h"
#include "agent/cgroup_stats.h"
#include "agent/init.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/version.h"

namespace {

int RunAsInit() {
  using namespace cloak::agent;
  absl::Status mounted = MountEssentials();
  (void)cloak::InitLogging({.level = "info", .file = "", .component = "cloak-agent"});
  auto log = cloak::Logger("init");
  if (!mounted.ok()) log->error("{}", mounted.ToString());
  absl::StatusOr<std::string> cmdline_text =
      cloak::ReadFile("/proc/cmdline", 64 * 1024, cloak::Symlinks::kRefuse);
  absl::StatusOr<KernelCmdline> cmdline =
      ParseKernelCmdline(cmdline_text.ok() ? *cmdline_text : "");
  if (!cmdline.ok()) {
    log->error("kernel command line: {}; using defaults", cmdline.status().ToString());
    cmdline = ParseKernelCmdline("");
  }
  // With the policy off, every line says so.
  const std::string component =
      cmdline->policy == "allow-all" ? "cloak-agent[POLICY ALLOW-ALL]" : "cloak-agent";
  (void)cloak::InitLogging({.level = cmdline->log_level, .file = "", .component = component});
  LoadModulesAndConfigfs(cmdline->modules);
  if (absl::Status s = LoopbackUp(); !s.ok()) log->warn("{}", s.ToString());

  AgentOptions options;
  options.listen = cmdline->channel;
  options.vsock_port = cmdline->port;
  options.guest = true;
  options.insecure_registries = cmdline->insecure_registries;
  options.max_concurrent_downloads = cmdline->max_downloads;
  options.policy = cmdline->policy;
  options.tee_class = cmdline->tee;
  absl::Status served = RunAgent(options);
  if (!served.ok()) log->error("agent: {}", served.ToString());
  // PID 1 must not exit (the kernel would panic): power the VM off instead.
  absl::SleepFor(absl::Seconds(1));
  PowerOff();
  while (true) absl::SleepFor(absl::Hours(1));
}

}  // namespace

int main(int argc, char** argv) {
  if (::getpid() == 1) return RunAsInit();

  cloak::agent::AgentOptions options;
  std::string log_level = "info";
  CLI::App app{"cloak-agent: the Cloak guest agent (PID 1 in the guest; flags for host runs)"};
  app.set_version_flag("--version", std::string(cloak::VersionString()));
  app.add_option("--listen", options.listen, "unix:///path, vsock, serial or auto");
  app.add_option("--vsock-port", options.vsock_port, "vsock port");
  app.add_option("--serial-port", options.serial_port, "virtio-serial port name");
  app.add_option("--run-dir", options.run_dir, "agent state directory");
  app.add_option("--crun", options.crun, "crun binary");
  app.add_option("--crun-root", options.crun_root, "crun state root (default <run-dir>/crun)");
  app.add_option("--no-pivot", options.no_pivot, "auto, true or false")
      ->check(CLI::IsMember({"auto", "true", "false"}));
  app.add_option("--cgroup-root", options.cgroup_root, "cgroup v2 mount point");
  app.add_option("--busybox", options.busybox, "static busybox for the pause container");
  app.add_option("--rootfs-provider", options.rootfs_provider, "image or busybox (tests)")
      ->check(CLI::IsMember({"image", "busybox"}));
  app.add_option("--insecure-registry", options.insecure_registries,
                 "registry host:port reached over plain HTTP (repeatable)");
  app.add_option("--max-concurrent-downloads", options.max_concurrent_downloads,
                 "image layers downloaded in parallel (1-16)")
      ->check(CLI::Range(1, 16));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  app.add_option("--policy", options.policy,
                 "enforce (the pod's init-data policy, else the built-in default) or allow-all")
      ->check(CLI::IsMember({"enforce", "allow-all"}));
  // A host-run agent (tests) is in no VM and nothing about it is measured;
  // a guest's class comes from its measured command line (cloak.tee).
  options.tee_class = "none";
  app.add_option("--tee-class", options.tee_class,
                 "none (dev: plain http to a KBS/registry on loopback allowed), snp or tdx")
      ->check(CLI::IsMember({"none", "snp", "tdx"}));
  CLI11_PARSE(app, argc, argv);

  const std::string component =
      options.policy == "allow-all" ? "cloak-agent[POLICY ALLOW-ALL]" : "cloak-agent";
  if (absl::Status s = cloak::InitLogging({.level = log_level, .file = "", .component = component});
      !s.ok()) {
    std::fprintf(stderr, "cloak-agent: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  absl::Status served = cloak::agent::RunAgent(options);
  if (!served.ok()) {
    cloak::Logger("agent")->error("{}", served.ToString());
    return 1;
  }
  return 0;
}
