#include "shim/ttrpc/status.h"

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace cloak::ttrpc {

google::rpc::Status ToRpcStatus(const absl::Status& status) {
  google::rpc::Status out;
  out.set_code(static_cast<int32_t>(status.code()));
  if (status.ok()) return out;
  out.set_message(std::string(status.message()));
  status.ForEachPayload([&out](absl::string_view type_url, const absl::Cord& value) {
    google::protobuf::Any* any = out.add_details();
    any->set_type_url(std::string(type_url));
    any->set_value(std::string(value));
  });
  return out;
}

absl::Status FromRpcStatus(const google::rpc::Status& status) {
  const int32_t code = status.code();
  if (code == 0) return absl::OkStatus();
  absl::Status out;
  if (code < 1 || code > static_cast<int32_t>(absl::StatusCode::kUnauthenticated)) {
    out = absl::UnknownError(absl::StrCat("unknown status code ", code, ": ", status.message()));
  } else {
    out = absl::Status(static_cast<absl::StatusCode>(code), status.message());
  }
  for (const google::protobuf::Any& d : status.details()) {
    out.SetPayload(d.type_url(), absl::Cord(d.value()));
  }
  return out;
}

}  // namespace cloak::ttrpc
