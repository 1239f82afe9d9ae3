#include "shim/simsp/server.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace cloak::simsp {
namespace {

std::string ErrorResponse(SpStatus status, absl::string_view message) {
  SpResponse r;
  r.status = status;
  r.message = std::string(message);
  auto encoded = EncodeResponse(r);
  // An error response with only a (clamped) message always encodes.
  return encoded.ok() ? *encoded : std::string();
}

}  // namespace

SimulatedSp::SimulatedSp(DevChain chain, const SimulatedSpOptions& options, std::string report_id,
                         UniqueFd stop_read, UniqueFd stop_write)
    : chain_(std::move(chain)),
      options_(options),
      report_id_(std::move(report_id)),
      stop_read_(std::move(stop_read)),
      stop_write_(std::move(stop_write)) {}

absl::StatusOr<std::unique_ptr<SimulatedSp>> SimulatedSp::Create(
    DevChain chain, const SimulatedSpOptions& options) {
  if (options.measurement.size() != 48) {
    return absl::InvalidArgumentError(
        absl::StrCat("measurement must be 48 bytes, got ", options.measurement.size()));
  }
  SimulatedSpOptions opts = options;
  if (opts.host_data.empty()) opts.host_data.assign(32, '\0');
  if (opts.host_data.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("host_data must be 32 bytes, got ", opts.host_data.size()));
  }
  if (chain.vcek_key == nullptr) return absl::InvalidArgumentError("chain has no VCEK key");
  std::string report_id(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(report_id.data()), 32) != 1) {
    return absl::InternalError("RAND_bytes failed");
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return ErrnoError(errno, "pipe2");
  return std::unique_ptr<SimulatedSp>(new SimulatedSp(std::move(chain), opts,
                                                      std::move(report_id), UniqueFd(fds[0]),
                                                      UniqueFd(fds[1])));
}

SpResponse SimulatedSp::Answer(absl::string_view request) const {
  SpResponse response;
  auto report_data = DecodeRequest(request);
  if (!report_data.ok()) {
    response.status = SpStatus::kBadRequest;
    response.message = std::string(report_data.status().message());
    return response;
  }
  ReportFields fields = FieldsForChain(chain_);
  fields.report_data = *report_data;
  fields.measurement = options_.measurement;
  fields.host_data = options_.host_data;
  fields.policy = options_.policy;
  fields.vmpl = options_.vmpl;
  fields.report_id = report_id_;
  auto report = BuildReport(fields, chain_.vcek_key.get());
  if (!report.ok()) {
    response.status = SpStatus::kInternal;
    response.message = std::string(report.status().message());
    return response;
  }
  reports_signed_.fetch_add(1);
  response.report = *std::move(report);
  if (options_.include_vcek) response.vcek_der = chain_.vcek_der;
  return response;
}

std::string SimulatedSp::Handle(absl::string_view request) const {
  SpResponse response = Answer(request);
  auto encoded = EncodeResponse(response);
  if (!encoded.ok()) return ErrorResponse(SpStatus::kInternal, encoded.status().message());
  return *std::move(encoded);
}

absl::Status SimulatedSp::ServeConnection(int fd) {
  auto log = Logger("simsp");
  while (true) {
    // Idle between requests: wait for the first byte (or Stop) without a
    // deadline, then give the rest of the request io_timeout.
    auto first = ReadExactBefore(fd, kMagicSize, absl::InfiniteFuture(), stop_read_.get());
    if (absl::IsOutOfRange(first.status()) || absl::IsCancelled(first.status())) {
      return absl::OkStatus();
    }
    if (!first.ok()) return first.status();
    absl::Time deadline = absl::Now() + options_.io_timeout;
    std::string request = *first;
    bool magic_ok = request == absl::string_view(kRequestMagic, kMagicSize);
    if (magic_ok) {
      auto rest = ReadExactBefore(fd, kRequestSize - kMagicSize, deadline, stop_read_.get());
      if (absl::IsCancelled(rest.status())) return absl::OkStatus();
      if (!rest.ok()) {
        log->warn("step=request status=error reason=\"{}\"", std::string(rest.status().message()));
        return rest.status();
      }
      request += *rest;
    }
    std::string response = Handle(request);
    RETURN_IF_ERROR(WriteAllBefore(fd, response, deadline));
    if (!magic_ok) {
      log->warn("step=request status=bad-magic: answered an error and dropped the connection");
      return absl::InvalidArgumentError("simulated SP request: bad magic");
    }
    log->info("step=report signed={}", reports_signed());
  }
}

absl::Status SimulatedSp::Listen(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("unix socket path too long: ", path));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::AlreadyExistsError(absl::StrCat(path, " exists and is not a socket"));
    }
    ::unlink(path.c_str());
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError(errno, "socket");
  mode_t old = ::umask(0077);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int bind_errno = errno;
  ::umask(old);
  if (rc != 0) return ErrnoError(bind_errno, "bind ", path);
  if (::listen(fd.get(), 8) != 0) return ErrnoError(errno, "listen ", path);
  listen_fd_ = std::move(fd);
  listen_path_ = path;
  return absl::OkStatus();
}

absl::Status SimulatedSp::ServeUnixSocket(const std::string& path) {
  if (!listen_fd_ || listen_path_ != path) RETURN_IF_ERROR(Listen(path));
  auto log = Logger("simsp");
  log->info("step=listen socket={} product={} (TEST chain, NOT AMD)", path,
            ProductName(chain_.product));
  absl::Status result = absl::OkStatus();
  while (true) {
    pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
    int ready = ::poll(fds, 2, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      result = ErrnoError(errno, "poll");
      break;
    }
    if (fds[1].revents & POLLIN) break;
    if (!(fds[0].revents & POLLIN)) continue;
    UniqueFd conn(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      result = ErrnoError(errno, "accept");
      break;
    }
    absl::Status s = ServeConnection(conn.get());
    if (!s.ok()) log->warn("step=connection status=closed reason=\"{}\"", std::string(s.message()));
  }
  listen_fd_.Reset();
  ::unlink(path.c_str());
  listen_path_.clear();
  return result;
}

void SimulatedSp::Stop() {
  char byte = 1;
  ssize_t ignored = ::write(stop_write_.get(), &byte, 1);
  (void)ignored;
}

}  // namespace cloak::simsp
