#include "cli/cri/cli.h"

#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <cstdlib>
#include <functional>
#include <optional>
#include <regex>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/cri/args.h"
#include "cli/cri/client.h"
#include "cli/cri/format.h"
#include "cli/cri/stream.h"
#include "common/version.h"
#include "common/files.h"

namespace cloak::cri {
namespace {

namespace v1 = ::runtime::v1;

template <typename Msg>
absl::StatusOr<Msg> ParseJson(const std::string& json, const char* what) {
  Msg msg;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  auto s = google::protobuf::util::JsonStringToMessage(json, &msg, opts);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a valid ", what, " (JSON as crictl takes it): ", s.ToString()));
  }
  return msg;
}

int Fail(const absl::Status& s, int code) {
  std::cerr << "cloak-cri: " << s.message() << "\n";
  return code;
}

// Puts the local terminal in raw mode for a TTY session, restores it after.
class RawTerminal {
 public:
  explicit RawTerminal(int fd) : fd_(fd) {
    if (::isatty(fd_) == 0 || ::tcgetattr(fd_, &saved_) != 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(fd_, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(fd_, TCSANOW, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};

// Streams a CRI Exec/Attach URL on this process's stdio.
// The remote command's exit code (0 for an attach the client left).
absl::StatusOr<int> Stream(const absl::StatusOr<std::string>& url, bool interactive, bool tty,
                           bool attach) {
  if (!url.ok()) return url.status();
  StreamIo io;
  io.stdin_fd = interactive ? 0 : -1;
  io.close_on_stdin_eof = attach;
  winsize ws{};
  if (tty && ::ioctl(1, TIOCGWINSZ, &ws) == 0) {
    io.cols = ws.ws_col;
    io.rows = ws.ws_row;
  }
  ::signal(SIGPIPE, SIG_IGN);
  std::optional<RawTerminal> raw;
  if (tty && interactive) raw.emplace(0);
  auto code = RunStream(*url, io);
  raw.reset();
  return code;
}

struct CommandSpec {
  std::string name;
  std::string args_usage;  // e.g. "CONTAINER-ID COMMAND [ARG...]"
  std::string summary;
  std::vector<FlagSpec> flags;
  size_t min_args = 0;
  size_t max_args = 0;  // kMany: no limit
};
constexpr size_t kMany = static_cast<size_t>(-1);

const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* flags = new std::vector<FlagSpec>{
      {"runtime-endpoint", 'r', true, "value",
       "CRI socket, unix:///path or /path (default: $CONTAINER_RUNTIME_ENDPOINT, else "
       "unix:///run/containerd/containerd.sock)"},
      {"image-endpoint", 'i', true, "value",
       "CRI image service socket (default: $IMAGE_SERVICE_ENDPOINT, else the runtime endpoint)"},
      {"timeout", 't', true, "value",
       "deadline to connect and of each call, e.g. 2s, 240s (a bare number is seconds; "
       "default: 4m0s, RunPodSandbox boots a VM)"},
  };
  return *flags;
}

const std::vector<FlagSpec> kOutputFlag = {
    {"output", 'o', true, "value", "Output format, One of: json|table (default: \"table\")"}};

const std::vector<CommandSpec>& Commands() {
  static const auto* commands = new std::vector<CommandSpec>{
      {"attach", "CONTAINER-ID", "Attach to a running container",
       {{"stdin", 'i', false, "", "Keep STDIN open"},
        {"tty", 't', false, "", "Allocate a pseudo-TTY"}},
       1, 1},
      {"create", "POD container-config.json pod-config.json", "Create a new container", {}, 3, 3},
      {"exec", "CONTAINER-ID COMMAND [ARG...]", "Run a command in a running container",
       {{"interactive", 'i', false, "", "Keep STDIN open"},
        {"sync", 's', false, "", "Run the command synchronously"},
        {"timeout", 0, true, "value", "Timeout in seconds (default: 0)"},
        {"tty", 't', false, "", "Allocate a pseudo-TTY"}},
       2, kMany},
      {"version", "", "Display runtime version information", {}, 0, 0},
      {"inspect", "CONTAINER-ID [CONTAINER-ID...]", "Display the status of one or more containers",
       {{"output", 'o', true, "value", "Output format, One of: json (default: \"json\")"},
        {"quiet", 'q', false, "", "Do not show verbose information"}},
       1, kMany},
      {"inspectp", "POD-ID [POD-ID...]", "Display the status of one or more pods",
       {{"output", 'o', true, "value", "Output format, One of: json (default: \"json\")"},
        {"quiet", 'q', false, "", "Do not show verbose information"}},
       1, kMany},
      {"ps", "", "List containers",
       {{"all", 'a', false, "", "Show all containers"},
        {"id", 0, true, "value", "Filter by container id"},
        {"name", 0, true, "value", "filter by container name regular expression pattern"},
        {"no-trunc", 0, false, "", "Show output without truncating the ID"},
        kOutputFlag[0],
        {"pod", 'p', true, "value", "Filter by pod id"},
        {"quiet", 'q', false, "", "Only display container IDs"},
        {"state", 's', true, "value", "Filter by container state"}},
       0, 0},
      {"pull", "NAME[:TAG|@DIGEST]", "Pull an image from a registry", {}, 1, 1},
      {"runp", "pod-config.json", "Run a new pod",
       {{"runtime", 'r', true, "value",
         "Runtime handler to use. Available options are defined by the container runtime."}},
       1, 1},
      {"rm", "CONTAINER-ID [CONTAINER-ID...]", "Remove one or more containers",
       {{"force", 'f', false, "", "Force removal of the container, disregarding if running"}},
       1, kMany},
      {"rmp", "POD-ID [POD-ID...]", "Remove one or more pods",
       {{"force", 'f', false, "", "Force removal of the pod sandbox, disregarding if running"}},
       1, kMany},
      {"pods", "", "List pods",
       {{"id", 0, true, "value", "filter by pod id"},
        {"name", 0, true, "value", "filter by pod name regular expression pattern"},
        {"namespace", 0, true, "value", "filter by pod namespace regular expression pattern"},
        {"no-trunc", 0, false, "", "Show output without truncating the ID"},
        kOutputFlag[0],
        {"quiet", 'q', false, "", "list only pod IDs"},
        {"state", 's', true, "value", "filter by pod state"}},
       0, 0},
      {"start", "CONTAINER-ID [CONTAINER-ID...]", "Start one or more created containers", {}, 1,
       kMany},
      {"stop", "CONTAINER-ID [CONTAINER-ID...]", "Stop one or more running containers",
       {{"timeout", 't', true, "value",
         "Seconds to wait to kill the container after a graceful stop is requested (default: 0)"}},
       1, kMany},
      {"stopp", "POD-ID [POD-ID...]", "Stop one or more running pods", {}, 1, kMany},
  };
  return *commands;
}

const CommandSpec* FindCommand(const std::string& name) {
  for (const CommandSpec& c : Commands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::string MainHelp() {
  std::string out =
      "NAME:\n   cloak-cri - a CRI v1 client that takes crictl's command lines (docs/cri.md)\n\n"
      "USAGE:\n   cloak-cri [global options] command [command options] [arguments...]\n\n"
      "COMMANDS:\n";
  for (const CommandSpec& c : Commands()) {
    absl::StrAppend(&out, "   ", c.name, std::string(12 - c.name.size(), ' '), c.summary, "\n");
  }
  absl::StrAppend(&out, "\nGLOBAL OPTIONS:\n", FlagsHelp(GlobalFlags()));
  return out;
}

std::string CommandHelp(const CommandSpec& c) {
  return absl::StrCat("NAME:\n   cloak-cri ", c.name, " - ", c.summary, "\n\nUSAGE:\n   cloak-cri ",
                      c.name, " [command options] ", c.args_usage, "\n\nOPTIONS:\n",
                      FlagsHelp(c.flags));
}

// A ContainerState / PodSandboxState from crictl's --state words.
absl::StatusOr<v1::ContainerState> ContainerStateFlag(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "created") return v1::CONTAINER_CREATED;
  if (s == "running") return v1::CONTAINER_RUNNING;
  if (s == "exited") return v1::CONTAINER_EXITED;
  if (s == "unknown") return v1::CONTAINER_UNKNOWN;
  return absl::InvalidArgumentError(absl::StrCat(
      "--state should be one of created, running, exited or unknown, not \"", s, "\""));
}

absl::StatusOr<v1::PodSandboxState> PodStateFlag(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "ready" || s == "sandboxready") return v1::SANDBOX_READY;
  if (s == "notready" || s == "sandboxnotready") return v1::SANDBOX_NOTREADY;
  return absl::InvalidArgumentError(
      absl::StrCat("--state should be ready or notready, not \"", s, "\""));
}

absl::StatusOr<std::regex> NameFilter(const std::string& pattern, const char* flag) {
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " ", pattern, " is not a regular expression: ", e.what()));
  }
}

// -o: table (the default for lists), json; yaml and templates are crictl's
// alone.
absl::Status CheckOutput(const std::string& output, bool table_ok) {
  if (output == "json" || (table_ok && output == "table")) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported output format \"", output, "\": cloak-cri prints ",
      table_ok ? "table or json" : "json", " (crictl also prints yaml and go-template)"));
}

absl::StatusOr<int64_t> Int64Flag(const ParsedFlags& f, const std::string& name) {
  int64_t v = 0;
  const std::string text = f.Get(name, "0");
  if (!absl::SimpleAtoi(text, &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid value \"", text, "\" for flag -", name, ": parse error"));
  }
  return v;
}

}  // namespace

absl::StatusOr<v1::PodSandboxConfig> ParsePodSandboxConfig(const std::string& json) {
  return ParseJson<v1::PodSandboxConfig>(json, "pod sandbox config");
}

absl::StatusOr<v1::ContainerConfig> ParseContainerConfig(const std::string& json) {
  return ParseJson<v1::ContainerConfig>(json, "container config");
}

absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args) {
  CommandLine out;
  if (const char* e = std::getenv("CONTAINER_RUNTIME_ENDPOINT"); e != nullptr && *e != '\0') {
    out.options.endpoint = e;
  }
  if (const char* e = std::getenv("IMAGE_SERVICE_ENDPOINT"); e != nullptr && *e != '\0') {
    out.image_endpoint = e;
  }
  auto global = ParseFlags(GlobalFlags(), args);
  if (!global.ok()) return global.status();
  if (global->Has("runtime-endpoint")) out.options.endpoint = global->Get("runtime-endpoint");
  if (global->Has("image-endpoint")) out.image_endpoint = global->Get("image-endpoint");
  if (global->Has("timeout")) {
    auto t = ParseTimeout(global->Get("timeout"));
    if (!t.ok()) return t.status();
    // crictl: 0 or less is the default.
    if (*t > absl::ZeroDuration()) out.options.timeout = *t;
  }
  if (global->args.empty() || global->help) {
    out.help = true;
    return out;
  }
  out.command = global->args[0];
  const CommandSpec* spec = FindCommand(out.command);
  if (spec == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("No help topic for '", out.command, "' (cloak-cri --help lists the commands)"));
  }
  auto flags = ParseFlags(spec->flags, std::vector<std::string>(global->args.begin() + 1,
                                                                global->args.end()));
  if (!flags.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        flags.status().message(), " (cloak-cri ", out.command, " --help lists its options)"));
  }
  out.flags = *std::move(flags);
  if (out.flags.help) return out;
  const size_t n = out.flags.args.size();
  if (n < spec->min_args || n > spec->max_args) {
    return absl::InvalidArgumentError(absl::StrCat(
        "usage: cloak-cri ", out.command, " [command options] ", spec->args_usage,
        spec->args_usage.empty() ? "(no arguments)" : "", "; got ", n, " argument",
        n == 1 ? "" : "s", " (flags go before the arguments, as with crictl)"));
  }
  return out;
}

int RunCriCli(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // crictl prints "crictl version vX" for --version / -v before anything else.
  if (!args.empty() && (args[0] == "--version" || args[0] == "-v")) {
    std::cout << "cloak-cri version " << ::cloak::VersionString() << "\n";
    return 0;
  }
  auto line = ParseCommandLine(args);
  if (!line.ok()) {
    return Fail(line.status(), line.status().code() == absl::StatusCode::kNotFound ? 3 : 1);
  }
  if (line->help) {
    std::cout << MainHelp();
    return 0;
  }
  const std::string& cmd = line->command;
  const ParsedFlags& f = line->flags;
  const std::vector<std::string>& a = f.args;
  if (f.help) {
    std::cout << CommandHelp(*FindCommand(cmd));
    return 0;
  }

  auto client = Client::Create(line->options);
  if (!client.ok()) return Fail(client.status(), 1);
  Client& c = **client;
  // Images through -i when it names another socket.
  std::unique_ptr<Client> image_client_owner;
  Client* image_client = &c;
  if (!line->image_endpoint.empty() &&
      NormalizeEndpoint(line->image_endpoint) != NormalizeEndpoint(line->options.endpoint)) {
    ClientOptions io = line->options;
    io.endpoint = line->image_endpoint;
    auto ic = Client::Create(io);
    if (!ic.ok()) return Fail(ic.status(), 1);
    image_client_owner = *std::move(ic);
    image_client = image_client_owner.get();
  }

  auto load_pod = [&](const std::string& path) -> absl::StatusOr<v1::PodSandboxConfig> {
    auto text = ReadFile(path);
    if (!text.ok()) return text.status();
    return ParsePodSandboxConfig(*text);
  };

  if (cmd == "version") {
    auto v = c.Version();
    if (!v.ok()) return Fail(v.status(), 1);
    std::cout << "Version:  " << v->version() << "\nRuntimeName:  " << v->runtime_name()
              << "\nRuntimeVersion:  " << v->runtime_version()
              << "\nRuntimeApiVersion:  " << v->runtime_api_version() << "\n";
  } else if (cmd == "runp") {
    auto pod = load_pod(a[0]);
    if (!pod.ok()) return Fail(pod.status(), 1);
    auto pod_id = c.RunPodSandbox(*pod, f.Get("runtime"));
    if (!pod_id.ok()) return Fail(pod_id.status(), 1);
    std::cout << *pod_id << "\n";
  } else if (cmd == "create") {
    auto pod = load_pod(a[2]);
    if (!pod.ok()) return Fail(pod.status(), 1);
    auto text = ReadFile(a[1]);
    if (!text.ok()) return Fail(text.status(), 1);
    auto ctr = ParseContainerConfig(*text);
    if (!ctr.ok()) return Fail(ctr.status(), 1);
    auto cid = c.CreateContainer(a[0], *ctr, *pod);
    if (!cid.ok()) return Fail(cid.status(), 1);
    std::cout << *cid << "\n";
  } else if (cmd == "start") {
    for (const std::string& id : a) {
      if (auto s = c.StartContainer(id); !s.ok()) return Fail(s, 1);
      std::cout << id << "\n";
    }
  } else if (cmd == "stop") {
    auto grace = Int64Flag(f, "timeout");
    if (!grace.ok()) return Fail(grace.status(), 1);
    for (const std::string& id : a) {
      if (auto s = c.StopContainer(id, *grace); !s.ok()) return Fail(s, 1);
      std::cout << id << "\n";
    }
  } else if (cmd == "rm") {
    for (const std::string& id : a) {
      if (f.Bool("force")) {
        if (auto s = c.StopContainer(id, 0); !s.ok()) return Fail(s, 1);
      }
      if (auto s = c.RemoveContainer(id); !s.ok()) return Fail(s, 1);
      std::cout << id << "\n";
    }
  } else if (cmd == "stopp") {
    for (const std::string& id : a) {
      if (auto s = c.StopPodSandbox(id); !s.ok()) return Fail(s, 1);
      std::cout << "Stopped sandbox " << id << "\n";
    }
  } else if (cmd == "rmp") {
    for (const std::string& id : a) {
      if (f.Bool("force")) {
        if (auto s = c.StopPodSandbox(id); !s.ok()) return Fail(s, 1);
      }
      if (auto s = c.RemovePodSandbox(id); !s.ok()) return Fail(s, 1);
      std::cout << "Removed sandbox " << id << "\n";
    }
  } else if (cmd == "ps") {
    const std::string output = f.Get("output", "table");
    if (auto s = CheckOutput(output, true); !s.ok()) return Fail(s, 1);
    v1::ContainerFilter filter;
    filter.set_id(f.Get("id"));
    filter.set_pod_sandbox_id(f.Get("pod"));
    if (f.Has("state")) {
      auto st = ContainerStateFlag(f.Get("state"));
      if (!st.ok()) return Fail(st.status(), 1);
      filter.mutable_state()->set_state(*st);
    } else if (!f.Bool("all")) {
      filter.mutable_state()->set_state(v1::CONTAINER_RUNNING);  // crictl's default
    }
    auto list = c.ListContainers(filter);
    if (!list.ok()) return Fail(list.status(), 1);
    if (f.Has("name")) {
      auto re = NameFilter(f.Get("name"), "name");
      if (!re.ok()) return Fail(re.status(), 1);
      std::erase_if(*list, [&](const v1::Container& k) {
        return !std::regex_search(k.metadata().name(), *re);
      });
    }
    if (f.Bool("quiet")) {
      for (const v1::Container& k : *list) std::cout << k.id() << "\n";
    } else if (output == "json") {
      v1::ListContainersResponse resp;
      for (const v1::Container& k : *list) *resp.add_containers() = k;
      std::cout << MessageJson(resp) << "\n";
    } else {
      std::cout << ContainersTable(*list, absl::Now(), f.Bool("no-trunc"));
    }
  } else if (cmd == "pods") {
    const std::string output = f.Get("output", "table");
    if (auto s = CheckOutput(output, true); !s.ok()) return Fail(s, 1);
    v1::PodSandboxFilter filter;
    filter.set_id(f.Get("id"));
    if (f.Has("state")) {
      auto st = PodStateFlag(f.Get("state"));
      if (!st.ok()) return Fail(st.status(), 1);
      filter.mutable_state()->set_state(*st);
    }
    auto list = c.ListPodSandbox(filter);
    if (!list.ok()) return Fail(list.status(), 1);
    for (const char* flag : {"name", "namespace"}) {
      if (!f.Has(flag)) continue;
      auto re = NameFilter(f.Get(flag), flag);
      if (!re.ok()) return Fail(re.status(), 1);
      const bool by_name = std::string(flag) == "name";
      std::erase_if(*list, [&](const v1::PodSandbox& p) {
        return !std::regex_search(by_name ? p.metadata().name() : p.metadata().namespace_(), *re);
      });
    }
    if (f.Bool("quiet")) {
      for (const v1::PodSandbox& p : *list) std::cout << p.id() << "\n";
    } else if (output == "json") {
      v1::ListPodSandboxResponse resp;
      for (const v1::PodSandbox& p : *list) *resp.add_items() = p;
      std::cout << MessageJson(resp) << "\n";
    } else {
      std::cout << PodsTable(*list, absl::Now(), f.Bool("no-trunc"));
    }
  } else if (cmd == "inspect" || cmd == "inspectp") {
    if (auto s = CheckOutput(f.Get("output", "json"), false); !s.ok()) return Fail(s, 1);
    const bool verbose = !f.Bool("quiet");
    for (const std::string& id : a) {
      if (cmd == "inspect") {
        auto r = c.InspectContainer(id, verbose);
        if (!r.ok()) return Fail(r.status(), 1);
        std::cout << StatusJson(r->status(), {r->info().begin(), r->info().end()}) << "\n";
      } else {
        auto r = c.InspectPod(id, verbose);
        if (!r.ok()) return Fail(r.status(), 1);
        std::cout << StatusJson(r->status(), {r->info().begin(), r->info().end()}) << "\n";
      }
    }
  } else if (cmd == "exec") {
    const std::string& id = a[0];
    const std::vector<std::string> command(a.begin() + 1, a.end());
    auto exec_timeout = Int64Flag(f, "timeout");
    if (!exec_timeout.ok()) return Fail(exec_timeout.status(), 1);
    if (f.Bool("sync")) {
      auto r = c.ExecSync(id, command, *exec_timeout);
      if (!r.ok()) return Fail(r.status(), 1);
      std::cout << r->stdout() << std::flush;
      if (r->exit_code() == 0) {
        std::cerr << r->stderr();
        return 0;
      }
      // As crictl 1.26: exit 1, the code (and stderr) in the message.
      std::cerr << "cloak-cri: " << ExecSyncExitMessage(command, r->exit_code(), r->stderr())
                << "\n";
      return 1;
    }
    const bool interactive = f.Bool("interactive"), tty = f.Bool("tty");
    v1::ExecRequest req;
    req.set_container_id(id);
    for (const std::string& word : command) req.add_cmd(word);
    // With a TTY, containerd (1.6) treats the end of stdin as a detach and
    // closes the output: a TTY session without -i still opens stdin (and
    // sends nothing on it) so the output is not cut at once.
    req.set_stdin(interactive || tty);
    req.set_tty(tty);
    req.set_stdout(true);
    req.set_stderr(!tty);  // a TTY has one output stream
    auto rc = Stream(c.Exec(req), interactive, tty, /*attach=*/false);
    if (!rc.ok()) return Fail(rc.status(), 1);
    if (*rc == 0) return 0;
    // As crictl 1.26: exit 1, the code in the message.
    std::cerr << "cloak-cri: " << ExecStreamExitMessage(*rc) << "\n";
    return 1;
  } else if (cmd == "attach") {
    const bool tty = f.Bool("tty");
    v1::AttachRequest req;
    req.set_container_id(a[0]);
    // stdin is always opened (nothing is sent on it without -i): containerd
    // (1.6) detaches an attach whose stdin ends, and a stream it was not
    // given ends at once. Harmless for a container without stdin.
    req.set_stdin(true);
    req.set_tty(tty);
    req.set_stdout(true);
    req.set_stderr(!tty);
    auto rc = Stream(c.Attach(req), f.Bool("stdin"), tty, /*attach=*/true);
    if (!rc.ok()) return Fail(rc.status(), 1);
    return *rc == 0 ? 0 : 1;
  } else if (cmd == "pull") {
    auto ref = image_client->PullImage(a[0]);
    if (!ref.ok()) return Fail(ref.status(), 1);
    std::cout << "Image is up to date for " << *ref << "\n";
  }
  return 0;
}

}  // namespace cloak::cri
