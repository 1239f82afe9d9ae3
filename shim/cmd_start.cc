// `containerd-shim-cloak-v2 ... start` (docs/shim.md, "Contract: start").
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/fd.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "shim/bundle.h"
#include "shim/commands.h"
#include "shim/shim_process.h"

namespace cloak::shim {
namespace {

absl::StatusOr<UniqueFd> BindUnix(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError(errno, "socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoError(errno, "bind ", path);
  }
  return fd;
}

bool CanConnect(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

// Spawns the daemon: setsid, cwd = bundle, listener on fd 3, stdio on
// /dev/null (containerd reads start's output to EOF).
absl::StatusOr<pid_t> SpawnDaemon(const ShimFlags& flags, int listener) {
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return ErrnoError(errno, "readlink /proc/self/exe");
  exe[n] = '\0';
  std::vector<std::string> args = {kShimBinaryName};
  for (std::string& a : DaemonArgs(flags)) args.push_back(std::move(a));
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) return ErrnoError(errno, "fork");
  if (pid == 0) {
    ::setsid();
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
      if (null > 3) ::close(null);
    }
    if (listener == 3) {
      ::fcntl(3, F_SETFD, 0);
    } else {
      ::dup2(listener, 3);  // dup2 clears FD_CLOEXEC on the copy
    }
    ::execv(exe, argv.data());
    ::_exit(127);
  }
  return pid;
}

void BumpOomScore(pid_t child) {
  absl::StatusOr<std::string> own = ReadFile("/proc/self/oom_score_adj");
  int score = 0;
  if (!own.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*own), &score)) return;
  if (score >= 1000) return;
  std::string path = absl::StrCat("/proc/", child, "/oom_score_adj");
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (fd) (void)WriteAll(fd.get(), absl::StrCat(score + 1));
}

absl::StatusOr<std::string> Start(const ShimFlags& flags) {
  if (flags.id.empty()) return absl::InvalidArgumentError("-id is required");
  if (flags.namespace_name.empty()) return absl::InvalidArgumentError("-namespace is required");
  std::error_code ec;
  const std::string bundle = std::filesystem::current_path(ec).string();
  if (ec) return absl::InternalError(absl::StrCat("getcwd: ", ec.message()));
  // Runtime options arrive on stdin; Create carries them again, so they
  // are only drained here.
  {
    char buf[4096];
    while (::read(0, buf, sizeof(buf)) > 0) {
    }
  }
  ASSIGN_OR_RETURN(PodInfo pod, ReadPodInfo(bundle, flags.id));
  const std::string socket_dir = ShimSocketDir();
  const std::string address =
      SocketAddress(flags.address, flags.namespace_name, pod.sandbox_id, socket_dir);
  const std::string path = SocketPathFromAddress(address);
  if (path.size() > kMaxSocketPathLength) {
    return absl::InvalidArgumentError(absl::StrCat("socket path ", path, " is longer than ",
                                                   kMaxSocketPathLength, " bytes"));
  }
  std::filesystem::create_directories(socket_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("create ", socket_dir, ": ", ec.message()));
  ::chmod(socket_dir.c_str(), 0700);

  absl::StatusOr<UniqueFd> listener = BindUnix(path);
  if (!listener.ok() && listener.status().code() == absl::StatusCode::kAlreadyExists) {
    if (CanConnect(path)) {
      // The pod's shim is alive: this container joins it.
      RETURN_IF_ERROR(WriteFileAtomic(bundle + "/address", address, 0644));
      return address;
    }
    ::unlink(path.c_str());  // stale
    listener = BindUnix(path);
  }
  if (!listener.ok()) return listener.status();
  if (::listen(listener->get(), 128) != 0) return ErrnoError(errno, "listen ", path);
  ::chmod(path.c_str(), 0600);
  absl::Status written = WriteFileAtomic(bundle + "/address", address, 0644);
  if (!written.ok()) {
    ::unlink(path.c_str());
    return written;
  }
  absl::StatusOr<pid_t> pid = SpawnDaemon(flags, listener->get());
  if (!pid.ok()) {
    ::unlink(path.c_str());
    return pid.status();
  }
  BumpOomScore(*pid);
  (void)WriteFileAtomic(bundle + "/shim.pid", absl::StrCat(*pid), 0644);
  return address;
}

}  // namespace

int RunStart(const ShimFlags& flags) {
  absl::StatusOr<std::string> address = Start(flags);
  if (!address.ok()) {
    std::fprintf(stderr, "%s start: %s\n", kShimBinaryName,
                 std::string(address.status().message()).c_str());
    return 1;
  }
  std::fputs(address->c_str(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace cloak::shim
