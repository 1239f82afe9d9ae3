#include "shim/ttrpc/status.h"

#include "absl/strings/cord.h"
#include "gtest/gtest.h"

namespace cloak::ttrpc {
namespace {

TEST(ttrpc_status, CodesMapOneToOneWithGrpcNumbers) {
  // docs/formats.md, "ttrpc": gRPC numbering.
  const std::pair<absl::StatusCode, int> table[] = {
      {absl::StatusCode::kCancelled, 1},         {absl::StatusCode::kUnknown, 2},
      {absl::StatusCode::kInvalidArgument, 3},   {absl::StatusCode::kDeadlineExceeded, 4},
      {absl::StatusCode::kNotFound, 5},          {absl::StatusCode::kAlreadyExists, 6},
      {absl::StatusCode::kPermissionDenied, 7},  {absl::StatusCode::kResourceExhausted, 8},
      {absl::StatusCode::kFailedPrecondition, 9}, {absl::StatusCode::kAborted, 10},
      {absl::StatusCode::kOutOfRange, 11},       {absl::StatusCode::kUnimplemented, 12},
      {absl::StatusCode::kInternal, 13},         {absl::StatusCode::kUnavailable, 14},
      {absl::StatusCode::kDataLoss, 15},         {absl::StatusCode::kUnauthenticated, 16},
  };
  for (const auto& [code, number] : table) {
    absl::Status s(code, "boom");
    google::rpc::Status rpc = ToRpcStatus(s);
    EXPECT_EQ(rpc.code(), number);
    EXPECT_EQ(rpc.message(), "boom");
    EXPECT_EQ(FromRpcStatus(rpc), s);
  }
}

TEST(ttrpc_status, OkIsCodeZero) {
  EXPECT_EQ(ToRpcStatus(absl::OkStatus()).code(), 0);
  EXPECT_TRUE(ToRpcStatus(absl::OkStatus()).message().empty());
  google::rpc::Status rpc;
  rpc.set_message("ignored");
  EXPECT_TRUE(FromRpcStatus(rpc).ok());
}

TEST(ttrpc_status, UnknownCodeNumberBecomesUnknown) {
  google::rpc::Status rpc;
  rpc.set_code(99);
  rpc.set_message("weird");
  absl::Status s = FromRpcStatus(rpc);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnknown);
  EXPECT_NE(s.message().find("99"), absl::string_view::npos);
  EXPECT_NE(s.message().find("weird"), absl::string_view::npos);
  rpc.set_code(-1);
  EXPECT_EQ(FromRpcStatus(rpc).code(), absl::StatusCode::kUnknown);
}

TEST(ttrpc_status, PayloadsTravelAsDetails) {
  absl::Status s = absl::NotFoundError("container abc not found");
  s.SetPayload("type.googleapis.com/cloak.Test", absl::Cord("\x08\x01"));
  google::rpc::Status rpc = ToRpcStatus(s);
  ASSERT_EQ(rpc.details_size(), 1);
  EXPECT_EQ(rpc.details(0).type_url(), "type.googleapis.com/cloak.Test");
  EXPECT_EQ(rpc.details(0).value(), "\x08\x01");
  EXPECT_EQ(FromRpcStatus(rpc), s);
}

}  // namespace
}  // namespace cloak::ttrpc
