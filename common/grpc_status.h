// absl::Status <-> grpc::Status at the gRPC edges (the agent API, the CRI
// and containerd clients). Both use the canonical code numbers, so codes
// map one to one; only the message is carried, with `context` prepended on
// the way in.
#ifndef CLOAK_COMMON_GRPC_STATUS_H_
#define CLOAK_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cloak {

grpc::Status ToGrpcStatus(const absl::Status& status);

// OK for OK; else the same code with "<context>: <message>" (just the
// message when `context` is empty).
absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view context = "");

}  // namespace cloak

#endif  // CLOAK_COMMON_GRPC_STATUS_H_
