// Command-line flags of containerd-shim-cloak-v2, parsed the way Go's `flag`
// package parses them (docs/shim.md, "Contract: command line"): single or double dash, `-flag
// value` or `-flag=value`, boolean flags take no value (or `-flag=true|false`), parsing stops at
// the first non-flag word, which is the action.
#ifndef CLOAK_SHIM_FLAGS_H_
#define CLOAK_SHIM_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cloak::shim {

enum class Action { kServe, kStart, kDelete };

struct ShimFlags {
  std::string namespace_name;  // -namespace
  std::string address;         // -address: containerd's grpc socket
  std::string publish_binary;  // -publish-binary
  std::string id;              // -id
  std::string bundle;          // -bundle (delete); else the cwd
  std::string socket;          // -socket: serve here instead of fd 3
  bool debug = false;          // -debug
  bool version = false;        // -v, -version
  bool help = false;           // -h, -help
  Action action = Action::kServe;
};

// What -h prints: the flags and actions.
std::string ShimUsage();

// Parses argv[1..]. InvalidArgument naming the flag for an unknown flag, a
// missing value, a bad boolean or an unknown action.
absl::StatusOr<ShimFlags> ParseShimFlags(const std::vector<std::string>& args);

// The daemon's arguments as `start` re-executes it (no action word).
std::vector<std::string> DaemonArgs(const ShimFlags& flags);

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_FLAGS_H_
