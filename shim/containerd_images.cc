#include "shim/containerd_images.h"

#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "containerd/services/containers/v1/containers.grpc.pb.h"
#include "containerd/services/images/v1/images.grpc.pb.h"

namespace cloak::shim {
namespace {

namespace containerspb = ::containerd::services::containers::v1;
namespace imagespb = ::containerd::services::images::v1;

absl::Status FromGrpc(const grpc::Status& s, absl::string_view what) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

bool IsSha256Digest(absl::string_view digest) {
  constexpr absl::string_view kPrefix = "sha256:";
  if (digest.size() != kPrefix.size() + 64 || digest.substr(0, kPrefix.size()) != kPrefix) {
    return false;
  }
  for (char c : digest.substr(kPrefix.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

ContainerImageLookup ContainerdImageLookup(std::string address, std::string namespace_name,
                                           absl::Duration timeout) {
  auto channel = grpc::CreateChannel("unix:" + address, grpc::InsecureChannelCredentials());
  std::shared_ptr<containerspb::Containers::Stub> containers =
      containerspb::Containers::NewStub(channel);
  std::shared_ptr<imagespb::Images::Stub> images = imagespb::Images::NewStub(channel);
  return [address, namespace_name, timeout, containers,
          images](const std::string& container_id) -> absl::StatusOr<ContainerImage> {
    const std::string where =
        absl::StrCat("containerd at ", address, " (namespace ", namespace_name, ")");
    ContainerImage out;
    {
      grpc::ClientContext ctx;
      ctx.AddMetadata(std::string(kContainerdNamespaceHeader), namespace_name);
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
      containerspb::GetContainerRequest req;
      req.set_id(container_id);
      containerspb::GetContainerResponse resp;
      grpc::Status s = containers->Get(&ctx, req, &resp);
      if (!s.ok()) return FromGrpc(s, absl::StrCat(where, ": container ", container_id));
      out.name = resp.container().image();
    }
    if (out.name.empty()) {
      return absl::NotFoundError(absl::StrCat(where, ": container ", container_id,
                                              " was made without an image (--rootfs)"));
    }
    grpc::ClientContext ctx;
    ctx.AddMetadata(std::string(kContainerdNamespaceHeader), namespace_name);
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    imagespb::GetImageRequest req;
    req.set_name(out.name);
    imagespb::GetImageResponse resp;
    grpc::Status s = images->Get(&ctx, req, &resp);
    if (!s.ok()) {
      return FromGrpc(s, absl::StrCat(where, ": image ", out.name, " of container ", container_id));
    }
    out.digest = resp.image().target().digest();
    return out;
  };
}

absl::StatusOr<std::string> SpecWithAnnotation(absl::string_view spec_json, absl::string_view key,
                                               absl::string_view value) {
  nlohmann::json spec = nlohmann::json::parse(spec_json, nullptr, /*allow_exceptions=*/false);
  if (!spec.is_object()) {
    return absl::InvalidArgumentError("the container's stored OCI spec is not a JSON object");
  }
  nlohmann::json& annotations = spec["annotations"];
  if (!annotations.is_object()) annotations = nlohmann::json::object();
  annotations[std::string(key)] = std::string(value);
  return spec.dump();
}

ContainerAnnotator ContainerdAnnotator(std::string address, std::string namespace_name,
                                       absl::Duration timeout) {
  auto channel = grpc::CreateChannel("unix:" + address, grpc::InsecureChannelCredentials());
  std::shared_ptr<containerspb::Containers::Stub> containers =
      containerspb::Containers::NewStub(channel);
  return [address, namespace_name, timeout, containers](
             const std::string& container_id, const std::string& key,
             const std::string& value) -> absl::Status {
    const std::string what = absl::StrCat("containerd at ", address, " (namespace ",
                                          namespace_name, "): container ", container_id);
    containerspb::GetContainerResponse got;
    {
      grpc::ClientContext ctx;
      ctx.AddMetadata(std::string(kContainerdNamespaceHeader), namespace_name);
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
      containerspb::GetContainerRequest req;
      req.set_id(container_id);
      grpc::Status s = containers->Get(&ctx, req, &got);
      if (!s.ok()) return FromGrpc(s, what);
    }
    containerspb::UpdateContainerRequest req;
    *req.mutable_container() = got.container();
    containerspb::Container* c = req.mutable_container();
    (*c->mutable_labels())[key] = value;
    req.mutable_update_mask()->add_paths("labels." + key);
    if (c->has_spec() && !c->spec().value().empty()) {
      absl::StatusOr<std::string> spec = SpecWithAnnotation(c->spec().value(), key, value);
      if (!spec.ok()) return absl::Status(spec.status().code(), absl::StrCat(what, ": ", spec.status().message()));
      c->mutable_spec()->set_value(*spec);
      req.mutable_update_mask()->add_paths("spec");
    }
    grpc::ClientContext ctx;
    ctx.AddMetadata(std::string(kContainerdNamespaceHeader), namespace_name);
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    containerspb::UpdateContainerResponse resp;
    grpc::Status s = containers->Update(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s, absl::StrCat(what, ": update"));
    return absl::OkStatus();
  };
}

absl::StatusOr<std::string> PinnedImageReference(absl::string_view name, absl::string_view digest) {
  if (!IsSha256Digest(digest)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image ", name, ": containerd's digest \"", digest, "\" is not sha256:<64 hex digits>"));
  }
  if (name.empty()) return absl::InvalidArgumentError("empty image name");
  if (size_t at = name.find('@'); at != absl::string_view::npos) {
    if (name.substr(at + 1) != digest) {
      return absl::InvalidArgumentError(absl::StrCat("image ", name, " is pinned to another digest than ",
                                                     digest, ", the one containerd holds"));
    }
    return std::string(name);
  }
  return absl::StrCat(name, "@", digest);
}

}  // namespace cloak::shim
