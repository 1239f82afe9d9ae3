#include "cli/cri/cli.h"

#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "cli/cri/client.h"
#include "cli/cri/stream.h"
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

std::string ToJson(const google::protobuf::Message& msg) {
  std::string json;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(msg, &json, opts);
  return json;
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
int Stream(const absl::StatusOr<std::string>& url, bool interactive, bool tty, bool attach) {
  if (!url.ok()) return Fail(url.status(), 1);
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
  if (!code.ok()) return Fail(code.status(), 1);
  return *code;
}

}  // namespace

absl::StatusOr<v1::PodSandboxConfig> ParsePodSandboxConfig(const std::string& json) {
  return ParseJson<v1::PodSandboxConfig>(json, "pod sandbox config");
}

absl::StatusOr<v1::ContainerConfig> ParseContainerConfig(const std::string& json) {
  return ParseJson<v1::ContainerConfig>(json, "container config");
}

int RunCriCli(int argc, char** argv) {
  CLI::App app{"cloak-cri: a small CRI v1 client (RuntimeService / ImageService)"};
  app.require_subcommand(1);
  ClientOptions options;
  int timeout_s = static_cast<int>(absl::ToInt64Seconds(kDefaultTimeout));
  app.add_option("-r,--runtime-endpoint", options.endpoint, "CRI socket (unix:///path or /path)")
      ->capture_default_str();
  app.add_option("--timeout", timeout_s, "deadline of one RPC, seconds")->capture_default_str();

  auto* version = app.add_subcommand("version", "runtime name and versions");
  std::string pod_json, ctr_json, handler, id, image;
  auto* runp = app.add_subcommand("runp", "RunPodSandbox from POD.json; prints the pod id");
  runp->add_option("pod", pod_json, "pod sandbox config (JSON)")->required();
  runp->add_option("--runtime", handler, "runtime handler (e.g. cloak-dev)");
  auto* create = app.add_subcommand("create", "CreateContainer; prints the container id");
  create->add_option("pod-id", id, "pod sandbox id")->required();
  create->add_option("container", ctr_json, "container config (JSON)")->required();
  create->add_option("pod", pod_json, "pod sandbox config (JSON) the pod was run with")
      ->required();
  auto* start = app.add_subcommand("start", "StartContainer");
  start->add_option("container-id", id)->required();
  auto* ps = app.add_subcommand("ps", "ListContainers (id, state, name, pod)");
  ps->add_option("-p,--pod", id, "only this pod's containers");
  auto* pods = app.add_subcommand("pods", "ListPodSandbox (id, state, name, namespace, handler)");
  auto* inspectp = app.add_subcommand("inspectp", "PodSandboxStatus (state, IP) as JSON");
  inspectp->add_option("pod-id", id)->required();
  auto* inspect = app.add_subcommand("inspect", "ContainerStatus (state, exit code, log path)");
  inspect->add_option("container-id", id)->required();
  int64_t exec_timeout = 0;
  std::vector<std::string> cmd;
  auto* exec = app.add_subcommand("exec-sync", "ExecSync: prints stdout/stderr, exits with the "
                                               "command's exit code");
  exec->add_option("--exec-timeout", exec_timeout, "seconds; 0 means none");
  exec->add_option("container-id", id)->required();
  exec->add_option("cmd", cmd, "command and arguments (after --)")->required();
  bool interactive = false, tty = false;
  auto* exec_stream = app.add_subcommand(
      "exec", "Exec over the runtime's streaming server; exits with the command's exit code");
  exec_stream->add_flag("-i,--interactive", interactive, "send this process's stdin");
  exec_stream->add_flag("-t,--tty", tty, "run the command in a TTY (stderr joins stdout)");
  exec_stream->add_option("container-id", id)->required();
  exec_stream->add_option("cmd", cmd, "command and arguments (after --)")->required();
  auto* attach = app.add_subcommand("attach", "Attach to a container's stdio (its config must "
                                              "have stdin: true for -i)");
  attach->add_flag("-i,--interactive", interactive, "send this process's stdin; at its end the "
                                                    "session closes");
  attach->add_flag("-t,--tty", tty, "the container runs in a TTY (tty: true in its config)");
  attach->add_option("container-id", id)->required();
  auto* stop = app.add_subcommand("stop", "StopContainer");
  int64_t grace = 10;
  stop->add_option("container-id", id)->required();
  stop->add_option("--grace", grace, "seconds before SIGKILL");
  auto* rm = app.add_subcommand("rm", "RemoveContainer");
  rm->add_option("container-id", id)->required();
  auto* stopp = app.add_subcommand("stopp", "StopPodSandbox");
  stopp->add_option("pod-id", id)->required();
  auto* rmp = app.add_subcommand("rmp", "RemovePodSandbox");
  rmp->add_option("pod-id", id)->required();
  auto* pull = app.add_subcommand("pull", "PullImage; prints the image ref");
  pull->add_option("image", image)->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  options.timeout = absl::Seconds(timeout_s);
  auto client = Client::Create(options);
  if (!client.ok()) return Fail(client.status(), 2);
  Client& c = **client;

  auto load_pod = [&]() -> absl::StatusOr<v1::PodSandboxConfig> {
    auto text = ReadFile(pod_json);
    if (!text.ok()) return text.status();
    return ParsePodSandboxConfig(*text);
  };

  if (*version) {
    auto v = c.Version();
    if (!v.ok()) return Fail(v.status(), 1);
    std::cout << "Version:  " << v->version() << "\nRuntimeName:  " << v->runtime_name()
              << "\nRuntimeVersion:  " << v->runtime_version()
              << "\nRuntimeApiVersion:  " << v->runtime_api_version() << "\n";
  } else if (*runp) {
    auto pod = load_pod();
    if (!pod.ok()) return Fail(pod.status(), 2);
    auto pod_id = c.RunPodSandbox(*pod, handler);
    if (!pod_id.ok()) return Fail(pod_id.status(), 1);
    std::cout << *pod_id << "\n";
  } else if (*create) {
    auto pod = load_pod();
    if (!pod.ok()) return Fail(pod.status(), 2);
    auto text = ReadFile(ctr_json);
    if (!text.ok()) return Fail(text.status(), 2);
    auto ctr = ParseContainerConfig(*text);
    if (!ctr.ok()) return Fail(ctr.status(), 2);
    auto cid = c.CreateContainer(id, *ctr, *pod);
    if (!cid.ok()) return Fail(cid.status(), 1);
    std::cout << *cid << "\n";
  } else if (*start) {
    if (auto s = c.StartContainer(id); !s.ok()) return Fail(s, 1);
  } else if (*ps) {
    auto list = c.ListContainers(id);
    if (!list.ok()) return Fail(list.status(), 1);
    for (const v1::Container& k : *list) {
      std::cout << k.id() << "\t" << v1::ContainerState_Name(k.state()) << "\t"
                << k.metadata().name() << "\t" << k.pod_sandbox_id() << "\n";
    }
  } else if (*pods) {
    auto list = c.ListPodSandbox();
    if (!list.ok()) return Fail(list.status(), 1);
    for (const v1::PodSandbox& p : *list) {
      std::cout << p.id() << "\t" << v1::PodSandboxState_Name(p.state()) << "\t"
                << p.metadata().name() << "\t" << p.metadata().namespace_() << "\t"
                << p.runtime_handler() << "\n";
    }
  } else if (*inspectp) {
    auto st = c.PodSandboxStatus(id);
    if (!st.ok()) return Fail(st.status(), 1);
    std::cout << ToJson(*st);
  } else if (*inspect) {
    auto st = c.ContainerStatus(id);
    if (!st.ok()) return Fail(st.status(), 1);
    std::cout << ToJson(*st);
  } else if (*exec) {
    auto r = c.ExecSync(id, cmd, exec_timeout);
    if (!r.ok()) return Fail(r.status(), 1);
    std::cout << r->stdout();
    std::cerr << r->stderr();
    return r->exit_code();
  } else if (*exec_stream) {
    v1::ExecRequest req;
    req.set_container_id(id);
    for (const std::string& arg : cmd) req.add_cmd(arg);
    // With a TTY, containerd (1.6) treats the end of stdin as a detach and
    // closes the output: a TTY session without -i still opens stdin (and
    // sends nothing on it) so the output is not cut at once.
    req.set_stdin(interactive || tty);
    req.set_tty(tty);
    req.set_stdout(true);
    req.set_stderr(!tty);  // a TTY has one output stream
    return Stream(c.Exec(req), interactive, tty, /*attach=*/false);
  } else if (*attach) {
    v1::AttachRequest req;
    req.set_container_id(id);
    // stdin is always opened (nothing is sent on it without -i): containerd
    // (1.6) detaches an attach whose stdin ends, and a stream it was not
    // given ends at once. Harmless for a container without stdin.
    req.set_stdin(true);
    req.set_tty(tty);
    req.set_stdout(true);
    req.set_stderr(!tty);
    return Stream(c.Attach(req), interactive, tty, /*attach=*/true);
  } else if (*stop) {
    if (auto s = c.StopContainer(id, grace); !s.ok()) return Fail(s, 1);
  } else if (*rm) {
    if (auto s = c.RemoveContainer(id); !s.ok()) return Fail(s, 1);
  } else if (*stopp) {
    if (auto s = c.StopPodSandbox(id); !s.ok()) return Fail(s, 1);
  } else if (*rmp) {
    if (auto s = c.RemovePodSandbox(id); !s.ok()) return Fail(s, 1);
  } else if (*pull) {
    auto ref = c.PullImage(image);
    if (!ref.ok()) return Fail(ref.status(), 1);
    std::cout << *ref << "\n";
  }
  return 0;
}

}  // namespace cloak::cri
