// Logging setup: one named spdlog logger per subsystem ("shim", "agent",
// "ttrpc", "transport", "qemu", ...), all sharing one sink and level.
#ifndef CLOAK_COMMON_LOGGING_H_
#define CLOAK_COMMON_LOGGING_H_

#include <memory>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "spdlog/logger.h"

namespace cloak {

struct LogOptions {
  // "trace", "debug", "info", "warn", "error", "off".
  std::string level = "info";
  // Empty: stderr. Otherwise a path opened for appending (e.g. a fifo).
  std::string file;
  // Component name shown in every line, e.g. "containerd-shim-cloak-v2".
  std::string component = "cloak";
};

// Installs the sink and level for every logger made by Logger() from now on
// and for those already made. InvalidArgument on an unknown level.
absl::Status InitLogging(const LogOptions& options);

// Changes the level of every logger (existing and future), keeping the
// sink. Safe while other threads log. InvalidArgument on an unknown level.
absl::Status SetLogLevel(absl::string_view level);

// Returns the logger named `name`, creating it on first use with the
// current sink and level. Thread-safe.
std::shared_ptr<spdlog::logger> Logger(absl::string_view name);

}  // namespace cloak

#endif  // CLOAK_COMMON_LOGGING_H_
