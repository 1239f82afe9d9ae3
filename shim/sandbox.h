// Sandbox: one pod VM and the agent inside it. Owns the Hypervisor and the
// agent connection; every agent call has a deadline and is cancelled when
// the sandbox is destroyed or its VM dies.
//
// States: kNew --Boot--> kReady --Destroy--> kDestroyed
//                          |
//                          +--VM exits on its own--> kDead (on_vm_exit runs)
//
// The hypervisor and the way to reach the agent are injected (a
// Hypervisor and an AgentConnector), so tests run it against fakes.
#ifndef CLOAK_SHIM_SANDBOX_H_
#define CLOAK_SHIM_SANDBOX_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cloak/agent/v1/agent.pb.h"
#include "shim/cancellation.h"
#include "shim/hypervisor/console_log.h"
#include "shim/hypervisor/hypervisor.h"
#include "shim/stdio.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace cloak::shim {

inline constexpr absl::Duration kDefaultAgentRequestTimeout = absl::Seconds(30);
inline constexpr absl::Duration kDefaultPullTimeout = absl::Minutes(10);
// Health probes while the guest boots.
inline constexpr absl::Duration kHealthAttemptTimeout = absl::Seconds(2);
inline constexpr absl::Duration kDestroySandboxTimeout = absl::Seconds(10);
inline constexpr absl::Duration kVmStopGrace = absl::Seconds(5);
// How long a waiting call (WaitProcess) runs before it is renewed; it is
// renewed only while the agent answers a health probe.
inline constexpr absl::Duration kWaitSlice = absl::Hours(1);
// Health checks after boot (config agent.health_interval, health_timeout).
inline constexpr absl::Duration kDefaultHealthInterval = absl::Seconds(10);
inline constexpr absl::Duration kDefaultHealthTimeout = absl::Seconds(5);

// Opens a gRPC channel to the agent at `address` within `timeout`.
using AgentConnector = std::function<absl::StatusOr<std::shared_ptr<grpc::Channel>>(
    const transport::AgentAddress& address, absl::Duration timeout)>;

// One guest NIC as CreateSandbox configures it (agent/network.h).
struct GuestAddress {
  std::string address;  // IPv4 or IPv6
  uint32_t prefix_length = 24;
};

struct GuestInterface {
  std::string name;
  std::string mac;
  std::vector<GuestAddress> addresses;
  uint32_t mtu = 0;  // 0: the guest's default
};

struct GuestRoute {
  std::string destination;  // "10.1.0.0/16", "::/0"; empty: the IPv4 default route
  std::string gateway;
  std::string device;
};

struct SandboxOptions {
  std::string id;
  // Per-sandbox state directory (<runtime.state_dir>/<id>): the VM's
  // sockets and console log live here; Boot writes `vmm.pid` and `shim.pid`
  // for `delete`. Removed by Destroy. Empty: nothing is written.
  std::string state_dir;
  absl::Duration boot_timeout = hypervisor::kDefaultBootTimeout;
  absl::Duration request_timeout = kDefaultAgentRequestTimeout;
  absl::Duration pull_timeout = kDefaultPullTimeout;
  // After boot the agent is probed (Health) every health_interval; a probe
  // without an answer within health_timeout means the agent is hung: the
  // sandbox goes dead, its VM is stopped and on_vm_exit runs. The same bound
  // escalates a signal, a removal or a destroy the agent does not answer
  // (docs/shim.md, "Hung agent").
  absl::Duration health_interval = kDefaultHealthInterval;
  absl::Duration health_timeout = kDefaultHealthTimeout;
  // The VM's console log (VmConfig::console_log_path): kept under
  // console_log_max_bytes and its lines copied into the shim's log while the
  // VM runs (hypervisor::ConsoleLogPump). Empty: not watched.
  std::string console_log_path;
  int64_t console_log_max_bytes = hypervisor::kDefaultConsoleLogMaxBytes;
  // CreateSandbox fields.
  std::string hostname;
  std::map<std::string, std::string> annotations;
  // The guest's network (pod network, or QEMU user-mode networking).
  std::vector<GuestInterface> interfaces;
  std::vector<GuestRoute> routes;
  std::vector<std::string> dns;  // resolv.conf lines
  // The pod's init-data document (shim/initdata.h), exactly as given.
  std::string initdata;
  // The guest reaches the host's loopback (QEMU user networking): images
  // on a loopback registry are pulled through it.
  bool host_loopback_reachable = true;
  // Kept alive as long as the sandbox (its simulated SNP SP, its pod
  // network attachment).
  std::vector<std::shared_ptr<void>> companions;
};

struct ProcessExit {
  uint32_t exit_status = 0;
  absl::Time exited_at = absl::UnixEpoch();
};

// The sandbox's state directory `dir` (<runtime.state_dir>/<id>), made with
// the shim's pid in `shim.pid` before any VM starts. A failure names the
// directory; on a full file system (ENOSPC) it says that runtime.state_dir
// is full (ResourceExhausted), and a directory this call made is removed.
absl::Status MakeStateDir(const std::string& id, const std::string& dir);
// The error for a failed write of sandbox `id`'s state in `dir`, as above.
absl::Status StateDirError(const std::string& id, const std::string& dir,
                           const absl::Status& cause);

class Sandbox {
 public:
  Sandbox(SandboxOptions options, std::unique_ptr<hypervisor::Hypervisor> hypervisor,
          AgentConnector connector);
  // Destroy().
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  const std::string& id() const;
  // SandboxOptions.host_loopback_reachable.
  bool host_loopback_reachable() const;
  // The agent said (after Boot) that it enforces no policy: its runtime
  // class set agent.allow_all_policy.
  bool agent_policy_allow_all() const;
  // The VMM's pid (what Create reports to containerd), -1 if none.
  pid_t VmmPid() const;

  // Called once if the VM ends while the sandbox is ready (crash, kill -9,
  // guest poweroff; or the shim stopped it because its agent hung), from a
  // monitor, health-check or request thread. Set before Boot.
  void SetVmExitCallback(std::function<void(const std::string& reason)> callback);
  // Called for each OOM kill the agent reports. Set before Boot.
  void SetOomCallback(std::function<void(const std::string& container_id)> callback);

  // Starts the VM, waits for the agent (Health) and creates the sandbox in
  // the guest, logging each step with its duration. DeadlineExceeded (with
  // the console's tail) if the agent does not answer in boot_timeout. On
  // failure the VM is stopped.
  absl::Status Boot();

  // Agent calls. Codes come from the agent one to one; Unavailable once the
  // VM is gone.
  absl::StatusOr<uint32_t> CreateContainer(const cloak::agent::v1::CreateContainerRequest& request);
  absl::StatusOr<uint32_t> StartContainer(const std::string& container_id);
  absl::StatusOr<uint32_t> ExecProcess(const cloak::agent::v1::ExecProcessRequest& request);
  // Escalates: when the agent answers neither the signal nor a health probe
  // within health_timeout each, the agent is hung and the VM is stopped
  // (Unavailable, dead() true afterwards: the process is gone with it).
  absl::Status SignalProcess(const std::string& container_id, const std::string& exec_id,
                             uint32_t signal, bool all);
  // Blocks until the process exits, the sandbox ends, or `cancel` fires.
  absl::StatusOr<ProcessExit> WaitProcess(const std::string& container_id,
                                          const std::string& exec_id, Cancellation& cancel);
  // Streams one output stream into `sink` until it ends.
  absl::Status ReadOutput(const std::string& container_id, const std::string& exec_id,
                          StreamKind stream, const std::function<bool(absl::string_view)>& sink,
                          Cancellation& cancel);
  absl::Status WriteStdin(const std::string& container_id, const std::string& exec_id,
                          absl::string_view data);
  absl::Status CloseStdin(const std::string& container_id, const std::string& exec_id);
  absl::Status ResizeTty(const std::string& container_id, const std::string& exec_id,
                         uint32_t width, uint32_t height);
  absl::StatusOr<std::vector<uint32_t>> ListProcesses(const std::string& container_id);
  absl::Status PauseContainer(const std::string& container_id);
  absl::Status ResumeContainer(const std::string& container_id);
  absl::StatusOr<cloak::agent::v1::StatsContainerResponse> StatsContainer(
      const std::string& container_id);
  absl::Status UpdateContainer(const std::string& container_id, const std::string& resources_json);
  // Escalates as SignalProcess does.
  absl::Status RemoveContainer(const std::string& container_id, uint32_t timeout_seconds);
  // One entry of a pod volume (shim/volumes.h).
  absl::Status CopyFile(const cloak::agent::v1::CopyFileRequest& request);

  // Stops every container and the VM: DestroySandbox(power_off), then
  // Hypervisor::Stop; cancels every call in flight and removes the state
  // dir. An agent that answers neither DestroySandbox nor a health probe
  // within health_timeout each is not waited for: the VM is killed.
  // Idempotent.
  absl::Status Destroy();

  // The VM ended (on its own, by Destroy, or stopped because the agent hung).
  bool dead() const;
  // Why the sandbox is dead ("" while it is not).
  std::string dead_reason() const;
  std::string ConsoleTail(int lines) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_SANDBOX_H_
