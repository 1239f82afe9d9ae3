// containerd.services.snapshots.v1.Snapshots over the Snapshotter core: the
// gRPC edge (codes mapped one to one, the request's containerd namespace
// taken from its "containerd-namespace" metadata).
#ifndef CLOAK_SNAPSHOTTER_SERVICE_H_
#define CLOAK_SNAPSHOTTER_SERVICE_H_

#include "containerd/services/snapshots/v1/snapshots.grpc.pb.h"
#include "snapshotter/snapshotter.h"

namespace cloak::snapshotter {

namespace snapshotspb = ::containerd::services::snapshots::v1;

class SnapshotsService final : public snapshotspb::Snapshots::Service {
 public:
  explicit SnapshotsService(Snapshotter* core) : core_(core) {}

  grpc::Status Prepare(grpc::ServerContext* ctx, const snapshotspb::PrepareSnapshotRequest* req,
                       snapshotspb::PrepareSnapshotResponse* resp) override;
  grpc::Status View(grpc::ServerContext* ctx, const snapshotspb::ViewSnapshotRequest* req,
                    snapshotspb::ViewSnapshotResponse* resp) override;
  grpc::Status Mounts(grpc::ServerContext* ctx, const snapshotspb::MountsRequest* req,
                      snapshotspb::MountsResponse* resp) override;
  grpc::Status Commit(grpc::ServerContext* ctx, const snapshotspb::CommitSnapshotRequest* req,
                      google::protobuf::Empty* resp) override;
  grpc::Status Remove(grpc::ServerContext* ctx, const snapshotspb::RemoveSnapshotRequest* req,
                      google::protobuf::Empty* resp) override;
  grpc::Status Stat(grpc::ServerContext* ctx, const snapshotspb::StatSnapshotRequest* req,
                    snapshotspb::StatSnapshotResponse* resp) override;
  grpc::Status Update(grpc::ServerContext* ctx, const snapshotspb::UpdateSnapshotRequest* req,
                      snapshotspb::UpdateSnapshotResponse* resp) override;
  grpc::Status List(grpc::ServerContext* ctx, const snapshotspb::ListSnapshotsRequest* req,
                    grpc::ServerWriter<snapshotspb::ListSnapshotsResponse>* writer) override;
  grpc::Status Usage(grpc::ServerContext* ctx, const snapshotspb::UsageRequest* req,
                     snapshotspb::UsageResponse* resp) override;
  grpc::Status Cleanup(grpc::ServerContext* ctx, const snapshotspb::CleanupRequest* req,
                       google::protobuf::Empty* resp) override;

 private:
  Snapshotter* core_;
};

// Fills `info` from a snapshot record.
void ToInfo(const Snapshot& s, snapshotspb::Info* info);

}  // namespace cloak::snapshotter

#endif  // CLOAK_SNAPSHOTTER_SERVICE_H_
