// ContainerManager: the sandbox and its containers, each with an explicit
// state machine, run through crun.
//
//   sandbox:   kNone ──CreateSandbox──▶ kReady ──DestroySandbox──▶ kDestroyed
//   container: kCreating ──crun create──▶ kCreated ──start──▶ kRunning ⇄ kPaused
//              (any but kCreating) ──init exits──▶ kStopped; Remove erases it
//   process:   kCreated ──start/exec──▶ kRunning ──reaped──▶ kExited
//
// Lifecycle calls on one container are serialised (op_mu); waits, signals
// and stdio never take that lock.
#ifndef CLOAK_AGENT_CONTAINER_MANAGER_H_
#define CLOAK_AGENT_CONTAINER_MANAGER_H_

#include <sys/types.h>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/cgroup_stats.h"
#include "agent/crun.h"
#include "agent/kbs_files.h"
#include "agent/process_io.h"
#include "agent/reaper.h"
#include "agent/rootfs.h"
#include "cloak/agent/v1/agent.pb.h"
#include "common/fd.h"
#include "nlohmann/json.hpp"

namespace cloak::agent {

inline constexpr size_t kMaxContainers = 256;
inline constexpr size_t kMaxExecsPerContainer = 1024;
inline constexpr size_t kMaxInitdataBytes = 256 * 1024;
inline constexpr absl::Duration kOomPollInterval = absl::Seconds(1);
// How long a killed container may take to exit before Remove gives up.
inline constexpr absl::Duration kKillGrace = absl::Seconds(10);

enum class ProcessState { kCreated, kRunning, kExited };
enum class ContainerState { kCreating, kCreated, kRunning, kPaused, kStopped };
enum class SandboxState { kNone, kReady, kDestroyed };
const char* StateName(ContainerState s);

class Process {
 public:
  Process(std::string exec_id, std::unique_ptr<ProcessIo> io)
      : exec_id_(std::move(exec_id)), io_(std::move(io)) {}
  const std::string& exec_id() const { return exec_id_; }
  ProcessIo* io() const { return io_.get(); }

  void SetLaunched(pid_t pid);
  void SetRunning();
  void MarkExited(const ExitRecord& record);
  pid_t pid();
  ProcessState state();
  // The exit, once it happened; nullopt when `deadline` passes first.
  std::optional<ExitRecord> WaitExit(absl::Time deadline);
  // Signals the process through its pidfd. NotFound once it has exited.
  absl::Status Signal(int signal);
  // True once exited, waited for and its output drained (safe to forget).
  bool Finished();
  void MarkWaited();

 private:
  const std::string exec_id_;
  const std::unique_ptr<ProcessIo> io_;
  absl::Mutex mu_;
  ProcessState state_ ABSL_GUARDED_BY(mu_) = ProcessState::kCreated;
  pid_t pid_ ABSL_GUARDED_BY(mu_) = 0;
  UniqueFd pidfd_ ABSL_GUARDED_BY(mu_);
  std::optional<ExitRecord> exit_ ABSL_GUARDED_BY(mu_);
  bool waited_ ABSL_GUARDED_BY(mu_) = false;
};

struct ManagerOptions {
  // Agent state: bundles, sockets, sandbox files. Short (unix socket paths).
  std::string run_dir = "/run/cloak";
  // cgroup v2 mount point; containers live in <cgroup_root>/cloak/<id>.
  std::string cgroup_root = "/sys/fs/cgroup";
  // Set the guest's hostname on CreateSandbox (PID 1 only).
  bool manage_guest = false;
  // The policy engine checks runtime-interpreted annotations (enforce mode):
  // those that reach CreateContainer were allowed and are kept in the spec.
  bool policy_checks_runtime_annotations = false;
  // Called by CreateSandbox with the pod's init-data (when it has one),
  // after it is stored: the agent takes its [data.agent] settings from it.
  std::function<void(const std::string& initdata)> on_initdata;
  // Fetches key broker resources ("repo/type/tag") after attesting
  // (agent/attest/session.h), contents in the same order. Unset: a
  // container with kbs files fails.
  std::function<absl::StatusOr<std::vector<std::string>>(const std::vector<std::string>& resources)>
      fetch_kbs_resources;
};

struct OomSubscription {
  absl::Mutex mu;
  std::deque<std::string> events ABSL_GUARDED_BY(mu);
  bool closed ABSL_GUARDED_BY(mu) = false;
};

class ContainerManager {
 public:
  // `images` makes rootfs for image containers, `pause` for the sandbox
  // container; neither is owned. `reaper` may be null only if no container
  // call is ever made (unit tests of the RPC layer).
  ContainerManager(ManagerOptions options, Crun* crun, Reaper* reaper, RootfsProvider* images,
                   RootfsProvider* pause);
  ~ContainerManager();

  absl::Status CreateSandbox(const v1::CreateSandboxRequest& request);
  // Stops and removes every container; the sandbox cannot be made again.
  absl::Status DestroySandbox();
  SandboxState sandbox_state();

  // `kbs_files`: key broker secrets the policy mounts into this container
  // (agent/kbs_files.h), fetched before the image is pulled.
  absl::StatusOr<v1::CreateContainerResponse> CreateContainer(
      const v1::CreateContainerRequest& request, const std::vector<KbsFile>& kbs_files = {});
  absl::StatusOr<pid_t> StartContainer(const std::string& id);
  absl::Status RemoveContainer(const std::string& id, absl::Duration timeout);
  absl::StatusOr<pid_t> ExecProcess(const v1::ExecProcessRequest& request);
  absl::Status SignalProcess(const std::string& id, const std::string& exec_id, int signal,
                             bool all);
  absl::StatusOr<std::vector<pid_t>> ListProcesses(const std::string& id);
  absl::Status PauseContainer(const std::string& id);
  absl::Status ResumeContainer(const std::string& id);
  absl::StatusOr<CgroupStats> StatsContainer(const std::string& id);
  absl::Status UpdateContainer(const std::string& id, absl::string_view resources_json);
  // A pod volume entry from the host (agent/volume_files.h), under the
  // sandbox's volume directory.
  absl::Status CopyFile(const v1::CopyFileRequest& request);
  // <run_dir>/sandbox/volumes: what kGuestVolumeRoot names.
  std::string VolumeRootDir() const;

  // The process (init for an empty exec_id). NotFound if unknown.
  absl::StatusOr<std::shared_ptr<Process>> FindProcess(const std::string& id,
                                                       const std::string& exec_id);

  // OOM events: one per oom_kill increment of a container's memory.events.
  std::shared_ptr<OomSubscription> SubscribeOom();
  void UnsubscribeOom(const std::shared_ptr<OomSubscription>& sub);
  // One polling pass (the watcher thread calls it; public for tests).
  void PollOomOnce();

  std::string CgroupDir(const std::string& id) const;

 private:
  struct Container {
    std::string id;
    std::string dir;
    std::string cgroup_dir;
    bool sandbox = false;
    absl::Mutex op_mu;  // serialises lifecycle calls
    absl::Mutex mu;
    ContainerState state ABSL_GUARDED_BY(mu) = ContainerState::kCreating;
    std::shared_ptr<Process> init ABSL_GUARDED_BY(mu);
    absl::flat_hash_map<std::string, std::shared_ptr<Process>> execs ABSL_GUARDED_BY(mu);
    uint64_t oom_kills_seen ABSL_GUARDED_BY(mu) = 0;
    // A container whose init has exited is stopped.
    void RefreshLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      if (init != nullptr && state != ContainerState::kCreating &&
          init->state() == ProcessState::kExited) {
        state = ContainerState::kStopped;
      }
    }
  };

  absl::StatusOr<std::shared_ptr<Container>> Find(const std::string& id);
  absl::Status RequireSandbox();
  absl::Status CreateLocked(Container* c, const v1::CreateContainerRequest& request,
                            const std::vector<KbsFile>& kbs_files,
                            v1::CreateContainerResponse* response);
  // Starts a process through `launch` (crun create or exec), wiring stdio.
  absl::StatusOr<std::shared_ptr<Process>> LaunchProcess(
      Container* c, const std::string& exec_id, const v1::Stdio& stdio,
      const std::function<absl::StatusOr<Crun::Launch>(
          const CrunStdio&, const std::function<absl::Status(const std::function<bool()>&)>&)>&
          launch);
  absl::Status StopAndDelete(Container* c, absl::Duration timeout);
  std::string NewSocketPath();
  void OomLoop();

  const ManagerOptions options_;
  Crun* const crun_;
  Reaper* const reaper_;
  RootfsProvider* const images_;
  RootfsProvider* const pause_;

  // Serialises volume writes (CopyFile, emptyDir creation).
  absl::Mutex volumes_mu_;
  absl::Status AddVolumeMounts(absl::string_view host_spec_json, nlohmann::json* spec);
  absl::Mutex mu_;
  SandboxState sandbox_ ABSL_GUARDED_BY(mu_) = SandboxState::kNone;
  std::string resolv_conf_ ABSL_GUARDED_BY(mu_);
  bool have_sandbox_container_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, std::shared_ptr<Container>> containers_ ABSL_GUARDED_BY(mu_);
  uint64_t socket_counter_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::shared_ptr<OomSubscription>> oom_subs_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread oom_thread_;
};

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_CONTAINER_MANAGER_H_
