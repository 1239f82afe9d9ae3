#include "common/status_macros.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace cloak {

absl::StatusCode ErrnoToCode(int errno_value) {
  switch (errno_value) {
    case 0:
      return absl::StatusCode::kOk;
    case ENOENT:
    case ESRCH:
    case ENXIO:
    case ENODEV:
      return absl::StatusCode::kNotFound;
    case EEXIST:
    case EADDRINUSE:
      return absl::StatusCode::kAlreadyExists;
    case EPERM:
    case EACCES:
    case EROFS:
      return absl::StatusCode::kPermissionDenied;
    case EINVAL:
    case ENAMETOOLONG:
    case E2BIG:
    case ENOTDIR:
    case EISDIR:
    case EBADF:
      return absl::StatusCode::kInvalidArgument;
    case ETIMEDOUT:
      return absl::StatusCode::kDeadlineExceeded;
    case ENOMEM:
    case ENOSPC:
    case EMFILE:
    case ENFILE:
    case EMSGSIZE:
      return absl::StatusCode::kResourceExhausted;
    case EAGAIN:
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case EPIPE:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return absl::StatusCode::kUnavailable;
    case EBUSY:
    case ENOTEMPTY:
    case ENOTCONN:
      return absl::StatusCode::kFailedPrecondition;
    case ENOSYS:
    case EOPNOTSUPP:
    case EAFNOSUPPORT:
    case EPROTONOSUPPORT:
      return absl::StatusCode::kUnimplemented;
    case ECANCELED:
      return absl::StatusCode::kCancelled;
    case ERANGE:
    case EOVERFLOW:
      return absl::StatusCode::kOutOfRange;
    case EINTR:
      return absl::StatusCode::kAborted;
    default:
      return absl::StatusCode::kUnknown;
  }
}

absl::Status ErrnoError(int errno_value, absl::string_view context) {
  return absl::Status(ErrnoToCode(errno_value),
                      absl::StrCat(context, ": ", std::strerror(errno_value), " (errno ",
                                   errno_value, ")"));
}

absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

}  // namespace cloak
