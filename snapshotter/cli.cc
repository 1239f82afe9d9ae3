#include "snapshotter/cli.h"

#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "snapshotter/content_client.h"
#include "snapshotter/service.h"
#include "snapshotter/snapshotter.h"

namespace cloak::snapshotter {
namespace {

struct Flags {
  std::string root = "/var/lib/cloak-snapshotter";
  std::string address = "/run/cloak-snapshotter/snapshotter.sock";
  std::string containerd_address = "/run/containerd/containerd.sock";
  std::string guest_pull = "encrypted";
  std::string log_level = "info";
};

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "cloak-snapshotter: %s\n", s.ToString().c_str());
  return 1;
}

// A socket left by a previous run is replaced; anything else at the path is
// an error rather than something to delete.
absl::Status PrepareSocketPath(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec)
    return absl::InternalError(absl::StrCat("create directory of ", path, ": ", ec.message()));
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoError(errno, "stat ", path);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " exists and is not a socket: choose another --address"));
  }
  if (::unlink(path.c_str()) != 0) return ErrnoError(errno, "remove stale socket ", path);
  return absl::OkStatus();
}

int Serve(const Flags& flags) {
  absl::Status logging =
      InitLogging({.level = flags.log_level, .file = "", .component = "cloak-snapshotter"});
  if (!logging.ok()) return Fail(logging);
  absl::StatusOr<GuestPullMode> mode = ParseGuestPullMode(flags.guest_pull);
  if (!mode.ok()) return Fail(mode.status());
  if (flags.address.empty() || flags.address[0] != '/') {
    return Fail(absl::InvalidArgumentError("--address must be an absolute socket path"));
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::unique_ptr<ManifestSource> manifests;
  if (!flags.containerd_address.empty()) manifests = NewContentClient(flags.containerd_address);
  SnapshotterOptions options;
  options.root = flags.root;
  options.mode = *mode;
  absl::StatusOr<std::unique_ptr<Snapshotter>> core =
      Snapshotter::Create(options, std::move(manifests));
  if (!core.ok()) return Fail(core.status());
  absl::Status socket = PrepareSocketPath(flags.address);
  if (!socket.ok()) return Fail(socket);

  SnapshotsService service(core->get());
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + flags.address, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    return Fail(absl::UnavailableError(absl::StrCat("cannot listen on ", flags.address)));
  }
  ::chmod(flags.address.c_str(), 0600);
  Logger("snapshotter")
      ->info(
          "serving containerd.services.snapshots.v1.Snapshots on {} (root {}, guest pull: {}, "
          "manifests from {})",
          flags.address, flags.root, flags.guest_pull,
          flags.containerd_address.empty() ? "nowhere" : flags.containerd_address);
  grpc::Server* raw = server.get();
  std::thread stopper([raw, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    Logger("snapshotter")->info("signal {}: stopping", sig);
    raw->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  });
  server->Wait();
  stopper.join();
  ::unlink(flags.address.c_str());
  Logger("snapshotter")->info("stopped");
  return 0;
}

}  // namespace

int RunSnapshotterCli(int argc, char** argv) {
  Flags flags;
  CLI::App app{
      "cloak-snapshotter: containerd proxy snapshotter. Layers of images the cloak guest pulls "
      "itself (encrypted ones) are recorded without being fetched or unpacked on the host; "
      "every other image gets ordinary overlayfs snapshots."};
  app.set_version_flag("--version", std::string(::cloak::VersionString()));
  app.add_option("--root", flags.root, "State directory (metadata and snapshot directories)")
      ->capture_default_str();
  app.add_option("--address", flags.address, "Unix socket to serve containerd on")
      ->capture_default_str();
  app.add_option("--containerd-address", flags.containerd_address,
                 "containerd's gRPC socket, to read image manifests from its content store "
                 "(empty: none)")
      ->capture_default_str();
  app.add_option("--guest-pull", flags.guest_pull,
                 "Which layers the guest pulls: \"encrypted\" (media type +encrypted and the "
                 "layers above; containerd 1.6) or \"all\" (every CRI image layer; for a "
                 "snapshotter bound to the cloak runtime handlers on containerd >= 1.7)")
      ->capture_default_str();
  app.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error, off")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return Serve(flags);
}

}  // namespace cloak::snapshotter
