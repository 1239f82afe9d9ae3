#include "snapshotter/content_client.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "containerd/services/content/v1/content.grpc.pb.h"

namespace cloak::snapshotter {
namespace {

namespace contentpb = ::containerd::services::content::v1;

class ContentClient final : public ManifestSource {
 public:
  ContentClient(std::string address, absl::Duration timeout, size_t max_bytes)
      : address_(std::move(address)),
        timeout_(timeout),
        max_bytes_(max_bytes),
        stub_(contentpb::Content::NewStub(
            grpc::CreateChannel("unix:" + address_, grpc::InsecureChannelCredentials()))) {}

  absl::StatusOr<std::string> ReadBlob(const std::string& ns, const std::string& digest) override {
    grpc::ClientContext ctx;
    ctx.AddMetadata("containerd-namespace", ns);
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
    contentpb::ReadContentRequest req;
    req.set_digest(digest);
    std::unique_ptr<grpc::ClientReader<contentpb::ReadContentResponse>> reader =
        stub_->Read(&ctx, req);
    std::string out;
    contentpb::ReadContentResponse chunk;
    while (reader->Read(&chunk)) {
      if (out.size() + chunk.data().size() > max_bytes_) {
        ctx.TryCancel();
        (void)reader->Finish();
        return absl::ResourceExhaustedError(
            absl::StrCat("blob ", digest, " is larger than ", max_bytes_, " bytes"));
      }
      out += chunk.data();
    }
    grpc::Status s = reader->Finish();
    if (!s.ok()) {
      return FromGrpcStatus(s, absl::StrCat("containerd at ", address_));
    }
    return out;
  }

 private:
  const std::string address_;
  const absl::Duration timeout_;
  const size_t max_bytes_;
  std::unique_ptr<contentpb::Content::Stub> stub_;
};

}  // namespace

std::unique_ptr<ManifestSource> NewContentClient(const std::string& address, absl::Duration timeout,
                                                 size_t max_bytes) {
  return std::make_unique<ContentClient>(address, timeout, max_bytes);
}

}  // namespace cloak::snapshotter
