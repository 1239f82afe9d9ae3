#include "shim/flags.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace cloak::shim {
namespace {

absl::StatusOr<bool> ParseGoBool(absl::string_view flag, absl::string_view v) {
  // strconv.ParseBool.
  if (v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True") return true;
  if (v == "0" || v == "f" || v == "F" || v == "false" || v == "FALSE" || v == "False") {
    return false;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("invalid boolean value \"", v, "\" for flag -", flag));
}

}  // namespace

absl::StatusOr<ShimFlags> ParseShimFlags(const std::vector<std::string>& args) {
  ShimFlags flags;
  std::map<std::string, std::string*, std::less<>> strings = {
      {"namespace", &flags.namespace_name}, {"address", &flags.address},
      {"publish-binary", &flags.publish_binary}, {"id", &flags.id},
      {"bundle", &flags.bundle}, {"socket", &flags.socket}};
  std::map<std::string, bool*, std::less<>> bools = {
      {"debug", &flags.debug}, {"v", &flags.version}, {"version", &flags.version},
      {"h", &flags.help},      {"help", &flags.help}};
  size_t i = 0;
  for (; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg.size() < 2 || arg[0] != '-') break;  // first non-flag: the action
    if (arg == "--") {
      ++i;
      break;
    }
    arg.remove_prefix(1);
    if (arg[0] == '-') arg.remove_prefix(1);
    if (arg.empty() || arg[0] == '-' || arg[0] == '=') {
      return absl::InvalidArgumentError(absl::StrCat("bad flag syntax: ", args[i]));
    }
    absl::string_view name = arg;
    absl::string_view value;
    bool has_value = false;
    if (size_t eq = arg.find('='); eq != absl::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    if (auto b = bools.find(name); b != bools.end()) {
      if (has_value) {
        absl::StatusOr<bool> parsed = ParseGoBool(name, value);
        if (!parsed.ok()) return parsed.status();
        *b->second = *parsed;
      } else {
        *b->second = true;
      }
      continue;
    }
    auto s = strings.find(name);
    if (s == strings.end()) {
      return absl::InvalidArgumentError(absl::StrCat("flag provided but not defined: -", name));
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("flag needs an argument: -", name));
      }
      value = args[++i];
    }
    *s->second = std::string(value);
  }
  if (i < args.size()) {
    const std::string& action = args[i];
    if (action == "start") {
      flags.action = Action::kStart;
    } else if (action == "delete") {
      flags.action = Action::kDelete;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown action \"", action, "\": expected start, delete or none"));
    }
  }
  return flags;
}

std::string ShimUsage() {
  return "Usage: containerd-shim-cloak-v2 [flags] [start | delete]\n"
         "containerd runtime v2 shim (runtime type io.containerd.cloak.v2): each pod runs in its\n"
         "own VM (docs/shim.md). containerd starts it; run by hand only for -v or -h.\n"
         "\n"
         "Actions:\n"
         "  start    start (or reuse) the pod's shim daemon and print its socket address\n"
         "  delete   clean up after a dead shim (reads the bundle in the working directory)\n"
         "  (none)   serve the Task API (the daemon that `start` runs)\n"
         "\n"
         "Flags (Go syntax: -flag value, -flag=value, one or two dashes):\n"
         "  -namespace string       containerd namespace\n"
         "  -address string         containerd's gRPC socket (images and containers are looked up there)\n"
         "  -publish-binary string  containerd binary, for publishing events\n"
         "  -id string              id of the task\n"
         "  -bundle string          bundle directory (delete; default the working directory)\n"
         "  -socket string          serve on this unix socket instead of fd 3\n"
         "  -debug                  debug logging\n"
         "  -v, -version            print the version and exit\n"
         "  -h, -help               print this help and exit\n";
}

std::vector<std::string> DaemonArgs(const ShimFlags& flags) {
  std::vector<std::string> args = {"-namespace", flags.namespace_name, "-id", flags.id,
                                   "-address", flags.address};
  if (!flags.publish_binary.empty()) {
    args.insert(args.end(), {"-publish-binary", flags.publish_binary});
  }
  if (flags.debug) args.push_back("-debug");
  return args;
}

}  // namespace cloak::shim
