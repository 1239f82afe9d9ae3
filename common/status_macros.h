// Status helpers shared by every Cloak component.
//
//   RETURN_IF_ERROR(expr);                  // returns the status if not OK
//   ASSIGN_OR_RETURN(auto value, expr);     // unwraps a StatusOr or returns
//   return ErrnoError(errno, "open ", path);
#ifndef CLOAK_COMMON_STATUS_MACROS_H_
#define CLOAK_COMMON_STATUS_MACROS_H_

#include "absl/strings/string_view.h"
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace cloak {

// Maps an errno value to the closest absl::StatusCode (ENOENT → NotFound,
// EEXIST → AlreadyExists, EACCES/EPERM → PermissionDenied, ...).
absl::StatusCode ErrnoToCode(int errno_value);

// A status whose code follows ErrnoToCode and whose message is the context
// followed by strerror, e.g. "open /run/x: No such file or directory (errno 2)".
absl::Status ErrnoError(int errno_value, absl::string_view context);

template <typename... Args>
  requires(sizeof...(Args) > 1)
absl::Status ErrnoError(int errno_value, const Args&... context) {
  return ErrnoError(errno_value, absl::string_view(absl::StrCat(context...)));
}

// Returns `status` with `context + ": "` prepended to its message, same code.
absl::Status Annotate(const absl::Status& status, absl::string_view context);

namespace internal {
inline absl::Status AsStatus(absl::Status s) { return s; }
template <typename T>
absl::Status AsStatus(const absl::StatusOr<T>& s) {
  return s.status();
}
}  // namespace internal

}  // namespace cloak

#define CLOAK_STATUS_CONCAT_INNER_(a, b) a##b
#define CLOAK_STATUS_CONCAT_(a, b) CLOAK_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                                           \
  do {                                                                  \
    ::absl::Status cloak_status_ = ::cloak::internal::AsStatus((expr)); \
    if (!cloak_status_.ok()) return cloak_status_;                      \
  } while (0)

#define CLOAK_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  CLOAK_ASSIGN_OR_RETURN_IMPL_(CLOAK_STATUS_CONCAT_(cloak_statusor_, __LINE__), lhs, expr)

#endif  // CLOAK_COMMON_STATUS_MACROS_H_
