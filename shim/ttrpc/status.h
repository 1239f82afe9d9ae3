// absl::Status <-> google.rpc.Status, the status a ttrpc Response carries.
// absl::StatusCode uses the gRPC numbering, so codes map one to one.
#ifndef CLOAK_SHIM_TTRPC_STATUS_H_
#define CLOAK_SHIM_TTRPC_STATUS_H_

#include "absl/status/status.h"
#include "google/rpc/status.pb.h"

namespace cloak::ttrpc {

// Code and message; each absl payload becomes a detail Any whose type_url is
// the payload's key and whose value is the payload's bytes.
google::rpc::Status ToRpcStatus(const absl::Status& status);

// Code 0 gives OK (message and details dropped). A code outside 1..16 gives
// Unknown with the code noted in the message. Details become payloads.
absl::Status FromRpcStatus(const google::rpc::Status& status);

}  // namespace cloak::ttrpc

#endif  // CLOAK_SHIM_TTRPC_STATUS_H_
