// The containerd.task.v2.Task service (docs/shim.md: "Contract: Task API",
// "Contract: events") over sandboxes.
//
// One TaskService per shim process. It holds the containers containerd
// created through this shim (a pod's sandbox and its app containers, or one
// plain ctr container that is its own sandbox), their processes (init and
// execs) with an explicit state machine each:
//
//   kCreated --Start--> kRunning <--Pause/Resume--> kPaused
//       |                  |
//       +------------------+---- exit (or VM gone) ----> kStopped --Delete--> gone
//
// Every handler is safe to run concurrently (the ttrpc server runs each
// request on its own thread); Wait blocks without holding any lock.
//
// Event order (what containerd relies on): create; start before that
// process's exit; exec-added before exec-started before the exec's exit;
// init's exit after every exec's exit; each exit only after the process's
// output was drained to its fifos; delete after exit.
#ifndef CLOAK_SHIM_TASK_SERVICE_H_
#define CLOAK_SHIM_TASK_SERVICE_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "shim/ttrpc/server.h"
#include "containerd/task/v2/shim.pb.h"
#include "google/protobuf/empty.pb.h"
#include "shim/bundle.h"
#include "shim/containerd_images.h"
#include "shim/events.h"
#include "shim/sandbox.h"
#include "shim/volumes.h"

namespace cloak::shim {

namespace taskapi = ::containerd::task::v2;

inline constexpr absl::string_view kTaskService = "containerd.task.v2.Task";
// Time init's exit waits for its execs' exits (they die with the container).
inline constexpr absl::Duration kExecExitWait = absl::Seconds(10);
// Time a running container is given to stop when removed with its sandbox.
inline constexpr uint32_t kRemoveTimeoutSeconds = 5;

// What the Task service asks of a SandboxFactory.
struct SandboxRequest {
  std::string sandbox_id;
  std::string bundle;
  PodInfo pod;
  // runtimeoptions.v1.Options.config_path from CreateTaskRequest.options.
  std::string config_path;
  // containerd passed -debug (TaskServiceOptions.debug).
  bool debug = false;
};
// Makes a sandbox (not yet booted) for a pod.
using SandboxFactory =
    std::function<absl::StatusOr<std::unique_ptr<Sandbox>>(const SandboxRequest& request)>;

struct TaskServiceOptions {
  std::string namespace_name;
  SandboxFactory sandbox_factory;
  EventSink* events = nullptr;  // not owned; required
  // Called (once) when Shutdown finds no container left: the shim exits.
  std::function<void()> on_shutdown;
  // containerd passed -debug: the shim logs at least at debug level.
  bool debug = false;
  // Asks containerd which image a container was made from, for a container
  // that names none otherwise (plain `ctr run IMAGE`). Empty: not asked.
  ContainerImageLookup image_lookup;
  // Marks a sandbox's record in containerd (annotation and label
  // io.cloak.agent-policy) when its agent enforces no policy, so
  // `crictl inspectp` and `ctr container info` say so. Empty: not marked.
  ContainerAnnotator annotate_container;
};

class TaskService {
 public:
  explicit TaskService(TaskServiceOptions options);
  // Teardown().
  ~TaskService();
  TaskService(const TaskService&) = delete;
  TaskService& operator=(const TaskService&) = delete;

  // Registers every Task method on `server`.
  void Register(ttrpc::Server& server);

  // Destroys every sandbox (the shim is going away). Idempotent.
  void Teardown();
  // Containers currently held.
  size_t ContainerCount() const;

  // The Task API, one method per RPC (exposed for tests and Register).
  using Ctx = ttrpc::RequestContext;
  absl::StatusOr<taskapi::StateResponse> State(const Ctx& ctx, const taskapi::StateRequest& req);
  absl::StatusOr<taskapi::CreateTaskResponse> Create(const Ctx& ctx, const taskapi::CreateTaskRequest& req);
  absl::StatusOr<taskapi::StartResponse> Start(const Ctx& ctx, const taskapi::StartRequest& req);
  absl::StatusOr<taskapi::DeleteResponse> Delete(const Ctx& ctx, const taskapi::DeleteRequest& req);
  absl::StatusOr<taskapi::PidsResponse> Pids(const Ctx& ctx, const taskapi::PidsRequest& req);
  absl::StatusOr<google::protobuf::Empty> Pause(const Ctx& ctx, const taskapi::PauseRequest& req);
  absl::StatusOr<google::protobuf::Empty> Resume(const Ctx& ctx, const taskapi::ResumeRequest& req);
  absl::StatusOr<google::protobuf::Empty> Checkpoint(const Ctx& ctx,
                                                     const taskapi::CheckpointTaskRequest& req);
  absl::StatusOr<google::protobuf::Empty> Kill(const Ctx& ctx, const taskapi::KillRequest& req);
  absl::StatusOr<google::protobuf::Empty> Exec(const Ctx& ctx, const taskapi::ExecProcessRequest& req);
  absl::StatusOr<google::protobuf::Empty> ResizePty(const Ctx& ctx,
                                                    const taskapi::ResizePtyRequest& req);
  absl::StatusOr<google::protobuf::Empty> CloseIO(const Ctx& ctx, const taskapi::CloseIORequest& req);
  absl::StatusOr<google::protobuf::Empty> Update(const Ctx& ctx, const taskapi::UpdateTaskRequest& req);
  absl::StatusOr<taskapi::WaitResponse> Wait(const Ctx& ctx, const taskapi::WaitRequest& req);
  absl::StatusOr<taskapi::StatsResponse> Stats(const Ctx& ctx, const taskapi::StatsRequest& req);
  absl::StatusOr<taskapi::ConnectResponse> Connect(const Ctx& ctx, const taskapi::ConnectRequest& req);
  absl::StatusOr<google::protobuf::Empty> Shutdown(const Ctx& ctx, const taskapi::ShutdownRequest& req);

 private:
  struct Process;
  struct Container;

  absl::StatusOr<std::shared_ptr<Container>> FindContainer(const std::string& id) const;
  absl::StatusOr<std::shared_ptr<Process>> FindProcess(const std::string& id,
                                                       const std::string& exec_id) const;
  // Starts the copiers between the process's fifos and the agent.
  void StartIo(const std::shared_ptr<Process>& p);
  // A Create whose ttrpc connection closed before it finished (containerd
  // stopped or restarted meanwhile, docs/shim.md "Contract: create"):
  // containerd never learns of the task, so nothing may stay of it. Removes
  // the container from the guest (when `created_in_guest`), stops the VM the
  // create booted, makes the shim exit when it holds nothing else, and
  // returns Cancelled.
  absl::Status AbandonCreate(const std::shared_ptr<Container>& c, bool created_in_guest);
  // A Start that failed: releases the process's stdio and ends its Wait
  // with kStartFailedExitStatus. Returns `error`.
  absl::Status FailStart(const std::shared_ptr<Process>& p, absl::Status error);
  // Launches the thread that waits for the process's exit.
  void StartWaiter(const std::shared_ptr<Process>& p);
  void WaitLoop(std::shared_ptr<Process> p);
  // Records an exit once (later calls are ignored) and publishes it.
  void RecordExit(const std::shared_ptr<Process>& p, uint32_t exit_status, absl::Time exited_at);
  void OnSandboxExit(const std::string& sandbox_id, const std::string& reason);
  // Copies the pod volumes `spec_json` mounts into the sandbox's guest and
  // keeps them refreshed (shim/volumes.h). The agent's refusal is returned
  // with its reason.
  absl::Status CopyVolumes(const std::string& container_id, const std::shared_ptr<Sandbox>& sandbox,
                           const std::string& spec_json);
  // Stops refreshing the volumes of a sandbox that goes away.
  void DropVolumes(const std::string& sandbox_id);

  const TaskServiceOptions options_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Container>> containers_ ABSL_GUARDED_BY(mu_);
  // Ids whose Create is in progress.
  std::set<std::string> creating_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Sandbox>> sandboxes_ ABSL_GUARDED_BY(mu_);
  // By sandbox id: the volumes copied into that sandbox's guest.
  std::map<std::string, std::shared_ptr<VolumeSync>> volume_syncs_ ABSL_GUARDED_BY(mu_);
  bool shutdown_requested_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_TASK_SERVICE_H_
