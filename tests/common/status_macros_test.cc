#include "common/status_macros.h"

#include <cerrno>

#include "gtest/gtest.h"

namespace cloak {
namespace {

absl::StatusOr<int> Half(int v) {
  if (v % 2 != 0) return absl::InvalidArgumentError("odd");
  return v / 2;
}

absl::StatusOr<int> Quarter(int v) {
  ASSIGN_OR_RETURN(int h, Half(v));
  ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::Status CheckEven(int v) {
  RETURN_IF_ERROR(Half(v));
  return absl::OkStatus();
}

TEST(StatusMacros, AssignOrReturnPropagates) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(3).message(), "odd");
}

TEST(StatusMacros, ErrnoMapping) {
  struct Case {
    int err;
    absl::StatusCode code;
  } cases[] = {
      {ENOENT, absl::StatusCode::kNotFound},
      {EEXIST, absl::StatusCode::kAlreadyExists},
      {EACCES, absl::StatusCode::kPermissionDenied},
      {EINVAL, absl::StatusCode::kInvalidArgument},
      {ETIMEDOUT, absl::StatusCode::kDeadlineExceeded},
      {ECONNREFUSED, absl::StatusCode::kUnavailable},
      {ENOSYS, absl::StatusCode::kUnimplemented},
      {EBUSY, absl::StatusCode::kFailedPrecondition},
  };
  for (const auto& c : cases) EXPECT_EQ(ErrnoToCode(c.err), c.code) << c.err;
}

TEST(StatusMacros, ErrnoMessageNamesContextAndErrno) {
  absl::Status s = ErrnoError(ENOENT, "open ", "/run/x");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "open /run/x: No such file or directory (errno 2)");
}

TEST(StatusMacros, AnnotateKeepsCode) {
  absl::Status s = Annotate(absl::NotFoundError("no task"), "state c1");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "state c1: no task");
  EXPECT_TRUE(Annotate(absl::OkStatus(), "x").ok());
}

}  // namespace
}  // namespace cloak
