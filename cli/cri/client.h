// cloak::cri::Client: a CRI v1 client (containerd's CRI plugin, or any CRI
// runtime) over gRPC on a unix socket. Each call carries a deadline; every
// error keeps the gRPC code (mapped one to one to absl) and says which RPC
// failed, on which endpoint, for which object, and what to check.
#ifndef CLOAK_CLI_CRI_CLIENT_H_
#define CLOAK_CLI_CRI_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "k8s/cri/v1/api.pb.h"

namespace cloak::cri {

// containerd's default socket; CRI is served on containerd's main gRPC socket.
inline constexpr char kDefaultEndpoint[] = "unix:///run/containerd/containerd.sock";
// Default deadline of one RPC. RunPodSandbox boots a VM and PullImage fetches
// layers: both take longer than the usual CRI call.
inline constexpr absl::Duration kDefaultTimeout = absl::Minutes(4);

struct ClientOptions {
  // "unix:///path" or a plain absolute path to the socket.
  std::string endpoint = kDefaultEndpoint;
  absl::Duration timeout = kDefaultTimeout;
};

// Turns a plain socket path into a gRPC target; "unix:" targets pass through.
std::string NormalizeEndpoint(const std::string& endpoint);

// Maps a gRPC failure of `rpc` (about `subject`, e.g. a container id; may be
// empty) to an absl::Status with the same code and an actionable message.
absl::Status CriError(int grpc_code, const std::string& grpc_message, const std::string& rpc,
                      const std::string& endpoint, const std::string& subject);

class Client final {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Create(const ClientOptions& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  absl::StatusOr<runtime::v1::VersionResponse> Version();

  absl::StatusOr<std::string> PullImage(const std::string& image,
                                        const runtime::v1::PodSandboxConfig* sandbox = nullptr);

  // Returns the pod sandbox id.
  absl::StatusOr<std::string> RunPodSandbox(const runtime::v1::PodSandboxConfig& config,
                                            const std::string& runtime_handler);
  absl::Status StopPodSandbox(const std::string& pod_id);
  absl::Status RemovePodSandbox(const std::string& pod_id);
  absl::StatusOr<runtime::v1::PodSandboxStatus> PodSandboxStatus(const std::string& pod_id);
  absl::StatusOr<std::vector<runtime::v1::PodSandbox>> ListPodSandbox(
      const runtime::v1::PodSandboxFilter& filter = {});
  // PodSandboxStatus with its info map (verbose: the runtime's details).
  absl::StatusOr<runtime::v1::PodSandboxStatusResponse> InspectPod(const std::string& pod_id,
                                                                   bool verbose);

  // Returns the container id.
  absl::StatusOr<std::string> CreateContainer(const std::string& pod_id,
                                              const runtime::v1::ContainerConfig& config,
                                              const runtime::v1::PodSandboxConfig& sandbox);
  absl::Status StartContainer(const std::string& container_id);
  absl::Status StopContainer(const std::string& container_id, int64_t timeout_seconds);
  absl::Status RemoveContainer(const std::string& container_id);
  absl::StatusOr<runtime::v1::ContainerStatus> ContainerStatus(const std::string& container_id);
  // An empty pod_id lists the containers of every pod.
  absl::StatusOr<std::vector<runtime::v1::Container>> ListContainers(const std::string& pod_id);
  absl::StatusOr<std::vector<runtime::v1::Container>> ListContainers(
      const runtime::v1::ContainerFilter& filter);
  // ContainerStatus with its info map (verbose: the runtime's details).
  absl::StatusOr<runtime::v1::ContainerStatusResponse> InspectContainer(
      const std::string& container_id, bool verbose);
  // A non-zero exit code of `cmd` is a result, not an error.
  absl::StatusOr<runtime::v1::ExecSyncResponse> ExecSync(const std::string& container_id,
                                                          const std::vector<std::string>& cmd,
                                                          int64_t timeout_seconds);
  // Exec / Attach: the URL of the runtime's streaming server for this
  // session (single use; see stream.h to speak to it).
  absl::StatusOr<std::string> Exec(const runtime::v1::ExecRequest& request);
  absl::StatusOr<std::string> Attach(const runtime::v1::AttachRequest& request);

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cloak::cri

#endif  // CLOAK_CLI_CRI_CLIENT_H_
