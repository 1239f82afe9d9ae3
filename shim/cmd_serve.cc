// The shim daemon (no action word; re-executed by `start`), docs/shim.md "Contract: start".
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <cstdlib>
#include <string>

#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/version.h"
#include "shim/ttrpc/events_publisher.h"
#include "shim/ttrpc/server.h"
#include "shim/bundle.h"
#include "shim/commands.h"
#include "shim/events.h"
#include "shim/sandbox_factory.h"
#include "shim/task_service.h"
#include "spdlog/spdlog.h"

namespace cloak::shim {
namespace {

// Lets the Shutdown answer reach containerd before the connections close.
constexpr absl::Duration kShutdownAnswerGrace = absl::Milliseconds(50);

// The bundle's log fifo on fd 2 (containerd copies it into its own log).
void RedirectStderrToLogFifo() {
  int fd = ::open("log", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return;  // no reader (not under containerd): keep stderr
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  ::dup2(fd, 2);
  ::close(fd);
}

}  // namespace

namespace {

// Path of the unix socket `fd` listens on ("" for an unnamed or abstract
// one): `start` created it, the daemon removes it when it exits.
std::string ListenerPath(int fd) {
  sockaddr_un addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      addr.sun_family != AF_UNIX || len <= offsetof(sockaddr_un, sun_path) ||
      addr.sun_path[0] == '\0') {
    return "";
  }
  return std::string(addr.sun_path, ::strnlen(addr.sun_path, sizeof(addr.sun_path)));
}

}  // namespace

int RunServe(const ShimFlags& flags) {
  // Signals are taken synchronously by the main thread: block them before
  // any thread exists so every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

  RedirectStderrToLogFifo();
  (void)InitLogging(LogOptions{.level = flags.debug ? "debug" : "info",
                               .file = "",
                               .component = kShimBinaryName});
  auto log = Logger("shim");
  log->info("shim daemon {} starting: namespace={} id={} pid={}", VersionString(),
            flags.namespace_name, flags.id, ::getpid());

  std::unique_ptr<ttrpc::EventsPublisher> publisher;
  if (const char* ttrpc_address = std::getenv("TTRPC_ADDRESS");
      ttrpc_address != nullptr && ttrpc_address[0] != '\0') {
    absl::StatusOr<std::unique_ptr<ttrpc::EventsPublisher>> made =
        ttrpc::EventsPublisher::Create({.address = ttrpc_address,
                                        .namespace_name = flags.namespace_name});
    if (made.ok()) {
      publisher = std::move(*made);
    } else {
      log->error("events publisher: {}", made.status().ToString());
    }
  } else {
    log->warn("TTRPC_ADDRESS is not set: task events will not reach containerd");
  }
  PublisherEventSink sink(publisher.get());

  absl::Notification shutdown;
  TaskService service(TaskServiceOptions{
      .namespace_name = flags.namespace_name,
      .sandbox_factory = MakeSandbox,
      .events = &sink,
      .on_shutdown = [&shutdown] { shutdown.Notify(); },
      .debug = flags.debug,
      .image_lookup = flags.address.empty()
                          ? ContainerImageLookup()
                          : ContainerdImageLookup(flags.address, flags.namespace_name),
      .annotate_container = flags.address.empty()
                                ? ContainerAnnotator()
                                : ContainerdAnnotator(flags.address, flags.namespace_name),
  });
  absl::StatusOr<std::unique_ptr<ttrpc::Server>> server = ttrpc::Server::Create();
  if (!server.ok()) {
    log->critical("ttrpc server: {}", server.status().ToString());
    return 1;
  }
  service.Register(**server);
  const std::string listener_path = flags.socket.empty() ? ListenerPath(3) : "";
  absl::Status serving = flags.socket.empty() ? (*server)->ServeListener(UniqueFd(3))
                                              : (*server)->Listen(flags.socket);
  if (!serving.ok()) {
    log->critical("serve the Task API: {}", serving.ToString());
    return 1;
  }

  const timespec slice{0, 200 * 1000 * 1000};
  while (!shutdown.HasBeenNotified()) {
    int sig = ::sigtimedwait(&stop_signals, nullptr, &slice);
    if (sig == SIGTERM || sig == SIGINT) {
      log->info("signal {}: shutting down", sig);
      break;
    }
  }
  if (shutdown.HasBeenNotified()) absl::SleepFor(kShutdownAnswerGrace);
  service.Teardown();
  (*server)->Shutdown();
  if (publisher) publisher->Close();
  // The socket `start` made for us (Listen removes its own). The bundle may
  // already be gone, so its `address` file cannot be relied on.
  if (!listener_path.empty()) ::unlink(listener_path.c_str());
  log->info("shim daemon exiting");
  return 0;
}

}  // namespace cloak::shim
