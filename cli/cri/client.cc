#include "cli/cri/client.h"

#include <grpcpp/grpcpp.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "k8s/cri/v1/api.grpc.pb.h"

namespace cloak::cri {
namespace {

namespace v1 = ::runtime::v1;

std::string Hint(grpc::StatusCode code, const std::string& endpoint) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
      return absl::StrCat(" (is containerd running and serving ", endpoint,
                          "? check --runtime-endpoint)");
    case grpc::StatusCode::UNIMPLEMENTED:
      return " (does containerd have its CRI plugin enabled, speaking CRI v1? check "
             "disabled_plugins in its config)";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return " (raise --timeout, or look at the runtime's log)";
    default:
      return "";
  }
}

}  // namespace

std::string NormalizeEndpoint(const std::string& endpoint) {
  if (absl::StartsWith(endpoint, "unix:")) return endpoint;
  if (absl::StartsWith(endpoint, "/")) return absl::StrCat("unix://", endpoint);
  return endpoint;
}

absl::Status CriError(int grpc_code, const std::string& grpc_message, const std::string& rpc,
                      const std::string& endpoint, const std::string& subject) {
  // gRPC and absl share the canonical code numbers.
  const auto code = static_cast<absl::StatusCode>(grpc_code);
  std::string msg = absl::StrCat("CRI ", rpc);
  if (!subject.empty()) absl::StrAppend(&msg, " ", subject);
  absl::StrAppend(&msg, " via ", endpoint, ": ", grpc_message,
                  Hint(static_cast<grpc::StatusCode>(grpc_code), endpoint));
  return absl::Status(code, msg);
}

struct Client::Impl {
  std::string endpoint;
  absl::Duration timeout;
  std::unique_ptr<v1::RuntimeService::Stub> runtime;
  std::unique_ptr<v1::ImageService::Stub> image;

  void Prepare(grpc::ClientContext& ctx) const {
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }

  // Calls `method` on `stub` and maps its status.
  template <typename Stub, typename Req, typename Resp>
  absl::Status Call(Stub* stub,
                    grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                    const char* rpc, const std::string& subject, const Req& req,
                    Resp* resp) const {
    grpc::ClientContext ctx;
    Prepare(ctx);
    grpc::Status s = (stub->*method)(&ctx, req, resp);
    if (s.ok()) return absl::OkStatus();
    return CriError(s.error_code(), s.error_message(), rpc, endpoint, subject);
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::Create(const ClientOptions& options) {
  if (options.endpoint.empty()) return absl::InvalidArgumentError("CRI endpoint is empty");
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("CRI timeout must be positive");
  }
  auto impl = std::make_unique<Impl>();
  impl->endpoint = NormalizeEndpoint(options.endpoint);
  impl->timeout = options.timeout;
  grpc::ChannelArguments args;
  // containerd caps CRI messages at 16 MiB; ExecSync output can reach that.
  args.SetMaxReceiveMessageSize(32 * 1024 * 1024);
  auto channel =
      grpc::CreateCustomChannel(impl->endpoint, grpc::InsecureChannelCredentials(), args);
  impl->runtime = v1::RuntimeService::NewStub(channel);
  impl->image = v1::ImageService::NewStub(channel);
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

absl::StatusOr<v1::VersionResponse> Client::Version() {
  v1::VersionRequest req;
  req.set_version("v1");
  v1::VersionResponse resp;
  auto* stub = impl_->runtime.get();
  absl::Status s = impl_->Call(stub, &v1::RuntimeService::Stub::Version, "Version", "", req, &resp);
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<std::string> Client::PullImage(const std::string& image,
                                              const v1::PodSandboxConfig* sandbox) {
  if (image.empty()) return absl::InvalidArgumentError("PullImage: no image reference given");
  v1::PullImageRequest req;
  req.mutable_image()->set_image(image);
  if (sandbox != nullptr) *req.mutable_sandbox_config() = *sandbox;
  v1::PullImageResponse resp;
  absl::Status s = impl_->Call(impl_->image.get(), &v1::ImageService::Stub::PullImage,
                               "PullImage", image, req, &resp);
  if (!s.ok()) return s;
  return resp.image_ref();
}

absl::StatusOr<std::string> Client::RunPodSandbox(const v1::PodSandboxConfig& config,
                                                  const std::string& runtime_handler) {
  if (!config.has_metadata() || config.metadata().name().empty()) {
    return absl::InvalidArgumentError("RunPodSandbox: the pod config has no metadata.name");
  }
  v1::RunPodSandboxRequest req;
  *req.mutable_config() = config;
  req.set_runtime_handler(runtime_handler);
  v1::RunPodSandboxResponse resp;
  absl::Status s =
      impl_->Call(impl_->runtime.get(), &v1::RuntimeService::Stub::RunPodSandbox, "RunPodSandbox",
                  absl::StrCat("pod ", config.metadata().name(), " (handler \"", runtime_handler,
                               "\")"),
                  req, &resp);
  if (!s.ok()) return s;
  return resp.pod_sandbox_id();
}

absl::Status Client::StopPodSandbox(const std::string& pod_id) {
  v1::StopPodSandboxRequest req;
  req.set_pod_sandbox_id(pod_id);
  v1::StopPodSandboxResponse resp;
  return impl_->Call(impl_->runtime.get(), &v1::RuntimeService::Stub::StopPodSandbox,
                     "StopPodSandbox", absl::StrCat("pod ", pod_id), req, &resp);
}

absl::Status Client::RemovePodSandbox(const std::string& pod_id) {
  v1::RemovePodSandboxRequest req;
  req.set_pod_sandbox_id(pod_id);
  v1::RemovePodSandboxResponse resp;
  return impl_->Call(impl_->runtime.get(), &v1::RuntimeService::Stub::RemovePodSandbox,
                     "RemovePodSandbox", absl::StrCat("pod ", pod_id), req, &resp);
}

absl::StatusOr<v1::PodSandboxStatus> Client::PodSandboxStatus(const std::string& pod_id) {
  auto resp = InspectPod(pod_id, /*verbose=*/false);
  if (!resp.ok()) return resp.status();
  return resp->status();
}

absl::StatusOr<v1::PodSandboxStatusResponse> Client::InspectPod(const std::string& pod_id,
                                                                bool verbose) {
  v1::PodSandboxStatusRequest req;
  req.set_pod_sandbox_id(pod_id);
  req.set_verbose(verbose);
  v1::PodSandboxStatusResponse resp;
  absl::Status s = impl_->Call(impl_->runtime.get(), &v1::RuntimeService::Stub::PodSandboxStatus,
                               "PodSandboxStatus", absl::StrCat("pod ", pod_id), req, &resp);
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<std::vector<v1::PodSandbox>> Client::ListPodSandbox(
    const v1::PodSandboxFilter& filter) {
  v1::ListPodSandboxRequest req;
  if (filter.ByteSizeLong() != 0) *req.mutable_filter() = filter;
  v1::ListPodSandboxResponse resp;
  absl::Status s = impl_->Call(impl_->runtime.get(), &v1::RuntimeService::Stub::ListPodSandbox,
                               "ListPodSandbox", "", req, &resp);
  if (!s.ok()) return s;
  return std::vector<v1::PodSandbox>(resp.items().begin(), resp.items().end());
}

absl::StatusOr<std::string> Client::CreateContainer(const std::string& pod_id,
                                                    const v1::ContainerConfig& config,
                                                    const v1::PodSandboxConfig& sandbox) {
  if (!config.has_metadata() || config.metadata().name().empty()) {
    return absl::InvalidArgumentError("CreateContainer: the container config has no metadata.name");
  }
  if (!config.has_image() || config.image().image().empty()) {
    return absl::InvalidArgumentError("CreateContainer: the container config has no image.image");
  }
  v1::CreateContainerRequest req;
  req.set_pod_sandbox_id(pod_id);
  *req.mutable_config() = config;
  *req.mutable_sandbox_config() = sandbox;
  v1::CreateContainerResponse resp;
  absl::Status s = impl_->Call(
      impl_->runtime.get(), &v1::RuntimeService::Stub::CreateContainer, "CreateContainer",
      absl::StrCat("container ", config.metadata().name(), " in pod ", pod_id), req, &resp);
  if (!s.ok()) return s;
  return resp.container_id();
}

absl::Status Client::StartContainer(const std::string& container_id) {
  v1::StartContainerRequest req;
  req.set_container_id(container_id);
  v1::StartContainerResponse resp;
  return impl_->Call(impl_->runtime.get(), &v1::RuntimeService::Stub::StartContainer,
                     "StartContainer", absl::StrCat("container ", container_id), req, &resp);
}

absl::Status Client::StopContainer(const std::string& container_id, int64_t timeout_seconds) {
  v1::StopContainerRequest req;
  req.set_container_id(container_id);
  req.set_timeout(timeout_seconds);
  v1::StopContainerResponse resp;
  return impl_->Call(impl_->runtime.get(), &v1::RuntimeService::Stub::StopContainer,
                     "StopContainer", absl::StrCat("container ", container_id), req, &resp);
}

absl::Status Client::RemoveContainer(const std::string& container_id) {
  v1::RemoveContainerRequest req;
  req.set_container_id(container_id);
  v1::RemoveContainerResponse resp;
  return impl_->Call(impl_->runtime.get(), &v1::RuntimeService::Stub::RemoveContainer,
                     "RemoveContainer", absl::StrCat("container ", container_id), req, &resp);
}

absl::StatusOr<v1::ContainerStatus> Client::ContainerStatus(const std::string& container_id) {
  auto resp = InspectContainer(container_id, /*verbose=*/false);
  if (!resp.ok()) return resp.status();
  return resp->status();
}

absl::StatusOr<v1::ContainerStatusResponse> Client::InspectContainer(
    const std::string& container_id, bool verbose) {
  v1::ContainerStatusRequest req;
  req.set_container_id(container_id);
  req.set_verbose(verbose);
  v1::ContainerStatusResponse resp;
  absl::Status s =
      impl_->Call(impl_->runtime.get(), &v1::RuntimeService::Stub::ContainerStatus,
                  "ContainerStatus", absl::StrCat("container ", container_id), req, &resp);
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<std::vector<v1::Container>> Client::ListContainers(const std::string& pod_id) {
  v1::ContainerFilter filter;
  if (!pod_id.empty()) filter.set_pod_sandbox_id(pod_id);
  return ListContainers(filter);
}

absl::StatusOr<std::vector<v1::Container>> Client::ListContainers(
    const v1::ContainerFilter& filter) {
  v1::ListContainersRequest req;
  if (filter.ByteSizeLong() != 0) *req.mutable_filter() = filter;
  v1::ListContainersResponse resp;
  const std::string& pod_id = filter.pod_sandbox_id();
  absl::Status s = impl_->Call(impl_->runtime.get(), &v1::RuntimeService::Stub::ListContainers,
                               "ListContainers", pod_id.empty() ? "" : absl::StrCat("of pod ", pod_id),
                               req, &resp);
  if (!s.ok()) return s;
  return std::vector<v1::Container>(resp.containers().begin(), resp.containers().end());
}

absl::StatusOr<v1::ExecSyncResponse> Client::ExecSync(const std::string& container_id,
                                                      const std::vector<std::string>& cmd,
                                                      int64_t timeout_seconds) {
  if (cmd.empty()) return absl::InvalidArgumentError("ExecSync: no command given");
  v1::ExecSyncRequest req;
  req.set_container_id(container_id);
  for (const std::string& arg : cmd) req.add_cmd(arg);
  req.set_timeout(timeout_seconds);
  v1::ExecSyncResponse resp;
  absl::Status s = impl_->Call(impl_->runtime.get(), &v1::RuntimeService::Stub::ExecSync,
                               "ExecSync", absl::StrCat("in container ", container_id), req, &resp);
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<std::string> Client::Exec(const v1::ExecRequest& request) {
  if (request.cmd().empty()) return absl::InvalidArgumentError("Exec: no command given");
  if (!request.stdin() && !request.stdout() && !request.stderr()) {
    return absl::InvalidArgumentError("Exec: one of stdin, stdout, stderr must be streamed");
  }
  v1::ExecResponse resp;
  absl::Status s = impl_->Call(impl_->runtime.get(), &v1::RuntimeService::Stub::Exec, "Exec",
                               absl::StrCat("in container ", request.container_id()), request,
                               &resp);
  if (!s.ok()) return s;
  return resp.url();
}

absl::StatusOr<std::string> Client::Attach(const v1::AttachRequest& request) {
  if (!request.stdin() && !request.stdout() && !request.stderr()) {
    return absl::InvalidArgumentError("Attach: one of stdin, stdout, stderr must be streamed");
  }
  v1::AttachResponse resp;
  absl::Status s = impl_->Call(impl_->runtime.get(), &v1::RuntimeService::Stub::Attach, "Attach",
                               absl::StrCat("to container ", request.container_id()), request,
                               &resp);
  if (!s.ok()) return s;
  return resp.url();
}

}  // namespace cloak::cri
