#include "snapshotter/service.h"

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace cloak::snapshotter {
namespace {

// Infos per List message (containerd's own server sends batches of 100).
constexpr int kListBatch = 100;

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

// Logs failures other than the expected ones (AlreadyExists is the answer
// for every guest-pull layer; NotFound the answer to containerd's Stat).
grpc::Status Answer(const char* rpc, const std::string& key, const absl::Status& s) {
  if (!s.ok() && s.code() != absl::StatusCode::kAlreadyExists &&
      s.code() != absl::StatusCode::kNotFound) {
    Logger("snapshotter")->warn("{} {}: {}", rpc, key, s.ToString());
  }
  return ToGrpc(s);
}

std::string Namespace(const grpc::ServerContext* ctx) {
  auto it = ctx->client_metadata().find("containerd-namespace");
  if (it == ctx->client_metadata().end()) return "";
  return std::string(it->second.data(), it->second.size());
}

Labels ToLabels(const google::protobuf::Map<std::string, std::string>& m) {
  return Labels(m.begin(), m.end());
}

template <typename Resp>
void AddMounts(const std::vector<Mount>& mounts, Resp* resp) {
  for (const Mount& m : mounts) {
    auto* out = resp->add_mounts();
    out->set_type(m.type);
    out->set_source(m.source);
    for (const std::string& o : m.options) out->add_options(o);
  }
}

void SetTime(absl::Time t, google::protobuf::Timestamp* ts) {
  const int64_t ns = absl::ToUnixNanos(t);
  ts->set_seconds(ns / 1000000000);
  ts->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

}  // namespace

void ToInfo(const Snapshot& s, snapshotspb::Info* info) {
  info->set_name(s.name);
  info->set_parent(s.parent);
  info->set_kind(static_cast<snapshotspb::Kind>(static_cast<int>(s.kind)));
  SetTime(s.created, info->mutable_created_at());
  SetTime(s.updated, info->mutable_updated_at());
  for (const auto& [k, v] : s.labels) (*info->mutable_labels())[k] = v;
}

grpc::Status SnapshotsService::Prepare(grpc::ServerContext* ctx,
                                       const snapshotspb::PrepareSnapshotRequest* req,
                                       snapshotspb::PrepareSnapshotResponse* resp) {
  absl::StatusOr<std::vector<Mount>> m =
      core_->Prepare(Namespace(ctx), req->key(), req->parent(), ToLabels(req->labels()));
  if (m.ok()) AddMounts(*m, resp);
  return Answer("Prepare", req->key(), m.status());
}

grpc::Status SnapshotsService::View(grpc::ServerContext* ctx,
                                    const snapshotspb::ViewSnapshotRequest* req,
                                    snapshotspb::ViewSnapshotResponse* resp) {
  absl::StatusOr<std::vector<Mount>> m =
      core_->View(Namespace(ctx), req->key(), req->parent(), ToLabels(req->labels()));
  if (m.ok()) AddMounts(*m, resp);
  return Answer("View", req->key(), m.status());
}

grpc::Status SnapshotsService::Mounts(grpc::ServerContext*, const snapshotspb::MountsRequest* req,
                                      snapshotspb::MountsResponse* resp) {
  absl::StatusOr<std::vector<Mount>> m = core_->Mounts(req->key());
  if (m.ok()) AddMounts(*m, resp);
  return Answer("Mounts", req->key(), m.status());
}

grpc::Status SnapshotsService::Commit(grpc::ServerContext*,
                                      const snapshotspb::CommitSnapshotRequest* req,
                                      google::protobuf::Empty*) {
  return Answer("Commit", req->key(),
                core_->Commit(req->name(), req->key(), ToLabels(req->labels())));
}

grpc::Status SnapshotsService::Remove(grpc::ServerContext*,
                                      const snapshotspb::RemoveSnapshotRequest* req,
                                      google::protobuf::Empty*) {
  return Answer("Remove", req->key(), core_->Remove(req->key()));
}

grpc::Status SnapshotsService::Stat(grpc::ServerContext*,
                                    const snapshotspb::StatSnapshotRequest* req,
                                    snapshotspb::StatSnapshotResponse* resp) {
  absl::StatusOr<Snapshot> s = core_->Stat(req->key());
  if (s.ok()) ToInfo(*s, resp->mutable_info());
  return Answer("Stat", req->key(), s.status());
}

grpc::Status SnapshotsService::Update(grpc::ServerContext*,
                                      const snapshotspb::UpdateSnapshotRequest* req,
                                      snapshotspb::UpdateSnapshotResponse* resp) {
  std::vector<std::string> paths(req->update_mask().paths().begin(),
                                 req->update_mask().paths().end());
  absl::StatusOr<Snapshot> s =
      core_->Update(req->info().name(), ToLabels(req->info().labels()), paths);
  if (s.ok()) ToInfo(*s, resp->mutable_info());
  return Answer("Update", req->info().name(), s.status());
}

grpc::Status SnapshotsService::List(
    grpc::ServerContext*, const snapshotspb::ListSnapshotsRequest* req,
    grpc::ServerWriter<snapshotspb::ListSnapshotsResponse>* writer) {
  std::vector<std::string> filters(req->filters().begin(), req->filters().end());
  absl::StatusOr<std::vector<Snapshot>> all = core_->List(filters);
  if (!all.ok()) return Answer("List", "", all.status());
  snapshotspb::ListSnapshotsResponse batch;
  for (const Snapshot& s : *all) {
    ToInfo(s, batch.add_info());
    if (batch.info_size() == kListBatch) {
      if (!writer->Write(batch)) return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
      batch.Clear();
    }
  }
  if (batch.info_size() > 0 && !writer->Write(batch)) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
  }
  return grpc::Status::OK;
}

grpc::Status SnapshotsService::Usage(grpc::ServerContext*, const snapshotspb::UsageRequest* req,
                                     snapshotspb::UsageResponse* resp) {
  absl::StatusOr<snapshotter::Usage> u = core_->GetUsage(req->key());
  if (u.ok()) {
    resp->set_size(u->size);
    resp->set_inodes(u->inodes);
  }
  return Answer("Usage", req->key(), u.status());
}

grpc::Status SnapshotsService::Cleanup(grpc::ServerContext*, const snapshotspb::CleanupRequest*,
                                       google::protobuf::Empty*) {
  return Answer("Cleanup", "", core_->Cleanup());
}

}  // namespace cloak::snapshotter
