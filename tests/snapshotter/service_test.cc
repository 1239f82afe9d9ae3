// The gRPC edge: containerd's snapshots service over a real (in-process)
// gRPC server on a unix socket: codes mapped one to one, the namespace taken
// from "containerd-namespace", List sent in batches, Info fields.
#include "snapshotter/service.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::snapshotter {
namespace {

using ::testing::HasSubstr;

class RecordingContent final : public ManifestSource {
 public:
  explicit RecordingContent(std::string* ns) : ns_(ns) {}
  absl::StatusOr<std::string> ReadBlob(const std::string& ns, const std::string&) override {
    *ns_ = ns;
    return std::string(
        R"({"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip+encrypted",)"
        R"("digest":"sha256:l1"}]})");
  }

 private:
  std::string* ns_;
};

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("cksnap-svc-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    SnapshotterOptions options;
    options.root = dir_->Join("root");
    auto core = Snapshotter::Create(options, std::make_unique<RecordingContent>(&namespace_));
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
    service_ = std::make_unique<SnapshotsService>(core_.get());
    const std::string address = "unix:" + dir_->Join("s.sock");
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address, grpc::InsecureServerCredentials());
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = snapshotspb::Snapshots::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  std::optional<TempDir> dir_;
  std::string namespace_;
  std::unique_ptr<Snapshotter> core_;
  std::unique_ptr<SnapshotsService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<snapshotspb::Snapshots::Stub> stub_;
};

TEST_F(ServiceTest, GuestPullLayerAnswersAlreadyExistsAndIsListedByFilter) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("containerd-namespace", "ns1");
  snapshotspb::PrepareSnapshotRequest req;
  req.set_key("ns1/1/extract-1 sha256:c1");
  (*req.mutable_labels())["containerd.io/snapshot.ref"] = "sha256:c1";
  (*req.mutable_labels())["containerd.io/snapshot/cri.image-ref"] = "reg/app:enc";
  (*req.mutable_labels())["containerd.io/snapshot/cri.manifest-digest"] = "sha256:m";
  (*req.mutable_labels())["containerd.io/snapshot/cri.layer-digest"] = "sha256:l1";
  snapshotspb::PrepareSnapshotResponse resp;
  grpc::Status s = stub_->Prepare(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS) << s.error_message();
  EXPECT_EQ(namespace_, "ns1");

  grpc::ClientContext list_ctx;
  snapshotspb::ListSnapshotsRequest list;
  list.add_filters(R"(labels."containerd.io/snapshot.ref"==sha256:c1,parent=="")");
  auto reader = stub_->List(&list_ctx, list);
  snapshotspb::ListSnapshotsResponse batch;
  std::vector<snapshotspb::Info> infos;
  while (reader->Read(&batch)) infos.insert(infos.end(), batch.info().begin(), batch.info().end());
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(infos[0].kind(), snapshotspb::COMMITTED);
  EXPECT_EQ(infos[0].labels().at("containerd.io/snapshot/cloak.guest-pull"), "true");
  EXPECT_GT(infos[0].created_at().seconds(), 0);
}

TEST_F(ServiceTest, CodesAreMappedOneToOne) {
  grpc::ClientContext c1;
  snapshotspb::StatSnapshotRequest stat;
  stat.set_key("nope");
  snapshotspb::StatSnapshotResponse stat_resp;
  EXPECT_EQ(stub_->Stat(&c1, stat, &stat_resp).error_code(), grpc::StatusCode::NOT_FOUND);

  grpc::ClientContext c2;
  snapshotspb::PrepareSnapshotRequest bad;  // no key
  snapshotspb::PrepareSnapshotResponse prep;
  EXPECT_EQ(stub_->Prepare(&c2, bad, &prep).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext c3;
  snapshotspb::PrepareSnapshotRequest ok;
  ok.set_key("k");
  ASSERT_TRUE(stub_->Prepare(&c3, ok, &prep).ok());
  ASSERT_EQ(prep.mounts_size(), 1);
  EXPECT_EQ(prep.mounts(0).type(), "bind");

  grpc::ClientContext c4;
  snapshotspb::MountsRequest mreq;
  mreq.set_key("k");
  snapshotspb::MountsResponse mresp;
  ASSERT_TRUE(stub_->Mounts(&c4, mreq, &mresp).ok());
  EXPECT_EQ(mresp.mounts(0).source(), prep.mounts(0).source());

  grpc::ClientContext c5;
  snapshotspb::CommitSnapshotRequest commit;
  commit.set_name("c");
  commit.set_key("k");
  google::protobuf::Empty empty;
  ASSERT_TRUE(stub_->Commit(&c5, commit, &empty).ok());
  grpc::ClientContext c6;
  mreq.set_key("c");
  grpc::Status committed = stub_->Mounts(&c6, mreq, &mresp);
  EXPECT_EQ(committed.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(committed.error_message(), HasSubstr("committed"));

  grpc::ClientContext c7;
  snapshotspb::UpdateSnapshotRequest update;
  update.mutable_info()->set_name("c");
  (*update.mutable_info()->mutable_labels())["a"] = "1";
  update.mutable_update_mask()->add_paths("labels.a");
  snapshotspb::UpdateSnapshotResponse updated;
  ASSERT_TRUE(stub_->Update(&c7, update, &updated).ok());
  EXPECT_EQ(updated.info().labels().at("a"), "1");
  EXPECT_EQ(updated.info().name(), "c");

  grpc::ClientContext c8;
  snapshotspb::UsageRequest usage;
  usage.set_key("c");
  snapshotspb::UsageResponse usage_resp;
  ASSERT_TRUE(stub_->Usage(&c8, usage, &usage_resp).ok());
  EXPECT_EQ(usage_resp.inodes(), 1);  // the empty fs directory

  grpc::ClientContext c9;
  snapshotspb::RemoveSnapshotRequest remove;
  remove.set_key("c");
  ASSERT_TRUE(stub_->Remove(&c9, remove, &empty).ok());
  grpc::ClientContext c10;
  EXPECT_EQ(stub_->Remove(&c10, remove, &empty).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, ListSendsEverySnapshotInBatches) {
  for (int i = 0; i < 250; ++i) {
    grpc::ClientContext ctx;
    snapshotspb::PrepareSnapshotRequest req;
    req.set_key(absl::StrCat("k", i));
    snapshotspb::PrepareSnapshotResponse resp;
    ASSERT_TRUE(stub_->Prepare(&ctx, req, &resp).ok());
  }
  grpc::ClientContext ctx;
  auto reader = stub_->List(&ctx, snapshotspb::ListSnapshotsRequest());
  snapshotspb::ListSnapshotsResponse batch;
  int batches = 0;
  size_t total = 0;
  while (reader->Read(&batch)) {
    ++batches;
    total += batch.info_size();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(total, 250u);
  EXPECT_EQ(batches, 3);

  grpc::ClientContext bad_ctx;
  snapshotspb::ListSnapshotsRequest bad;
  bad.add_filters("name~=k.*");
  auto bad_reader = stub_->List(&bad_ctx, bad);
  while (bad_reader->Read(&batch)) {
  }
  EXPECT_EQ(bad_reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace cloak::snapshotter
