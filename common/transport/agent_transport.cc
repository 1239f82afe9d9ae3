#include "common/transport/agent_transport.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/transport/sockets.h"
#include "grpc/grpc.h"
#include "grpcpp/channel.h"
#include "grpcpp/create_channel_posix.h"
#include "grpcpp/support/channel_arguments.h"

namespace cloak::transport {
namespace {

// One connect attempt bounded by the given time; sets errno-like *err.
using Dialer = std::function<absl::StatusOr<UniqueFd>(absl::Duration, int*)>;

absl::StatusOr<UniqueFd> DialWithRetry(const std::string& endpoint, const Dialer& dial,
                                       const ConnectOptions& options, absl::Duration timeout) {
  auto log = Logger("transport");
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + timeout;
  absl::Duration backoff = options.initial_backoff;
  absl::Status last;
  int attempts = 0;
  while (true) {
    absl::Duration left = deadline - absl::Now();
    absl::Duration attempt = std::min(options.attempt_timeout, left);
    if (attempt < absl::ZeroDuration()) attempt = absl::ZeroDuration();
    int err = 0;
    ++attempts;
    auto fd = dial(attempt, &err);
    if (fd.ok()) {
      log->debug("connected to agent at {} after {} attempt(s) in {}", endpoint, attempts,
                 absl::FormatDuration(absl::Now() - start));
      return fd;
    }
    last = fd.status();
    if (!internal::IsRetryableConnectErrno(err)) {
      return Annotate(last, absl::StrCat("connect to agent at ", endpoint));
    }
    left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    absl::SleepFor(std::min(backoff, left));
    backoff = std::min(backoff * 2, options.max_backoff);
  }
  return absl::DeadlineExceededError(absl::StrCat("agent at ", endpoint, " not reachable within ",
                                                  absl::FormatDuration(timeout), " (", attempts,
                                                  " attempts; last error: ", last.message(), ")"));
}

std::shared_ptr<grpc::Channel> ChannelFromFd(const std::string& endpoint, UniqueFd fd,
                                             const ConnectOptions& options) {
  grpc::ChannelArguments args;
  if (!options.authority.empty()) args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, options.authority);
  // gRPC owns the fd from here on; it is closed when the channel goes away.
  return grpc::CreateCustomInsecureChannelFromFd(endpoint, fd.Release(), args);
}

absl::Status CheckPath(absl::string_view what, const std::string& path) {
  if (path.empty() || path.front() != '/' || path.size() > kMaxUnixPathLength) {
    return absl::InvalidArgumentError(absl::StrCat(what, " socket path \"", path,
                                                   "\" must be absolute and at most ",
                                                   kMaxUnixPathLength, " bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> ConnectUnixPath(const std::string& endpoint,
                                                               const std::string& path,
                                                               const ConnectOptions& options,
                                                               absl::Duration timeout) {
  Dialer dial = [&path](absl::Duration t, int* err) { return internal::ConnectUnix(path, t, err); };
  ASSIGN_OR_RETURN(UniqueFd fd, DialWithRetry(endpoint, dial, options, timeout));
  return ChannelFromFd(endpoint, std::move(fd), options);
}

}  // namespace

// --- VsockTransport --------------------------------------------------------

absl::StatusOr<std::unique_ptr<VsockTransport>> VsockTransport::Create(const Config& config) {
  AgentAddress addr{
      .kind = AgentAddress::Kind::kVsock, .cid = config.cid, .port = config.port, .path = {}};
  // The parser owns the rules for CIDs and ports.
  RETURN_IF_ERROR(ParseAgentAddress(addr.ToString()).status());
  return std::unique_ptr<VsockTransport>(new VsockTransport(config));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> VsockTransport::Connect(absl::Duration timeout) {
  const std::string endpoint = Endpoint();
  Dialer dial = [this](absl::Duration t, int* err) {
    return internal::ConnectVsock(config_.cid, config_.port, t, err);
  };
  ASSIGN_OR_RETURN(UniqueFd fd, DialWithRetry(endpoint, dial, config_.options, timeout));
  return ChannelFromFd(endpoint, std::move(fd), config_.options);
}

std::string VsockTransport::Endpoint() const {
  return absl::StrCat("vsock://", config_.cid, ":", config_.port);
}

// --- SerialTransport -------------------------------------------------------

absl::StatusOr<std::unique_ptr<SerialTransport>> SerialTransport::Create(const Config& config) {
  RETURN_IF_ERROR(CheckPath("serial chardev", config.socket_path));
  return std::unique_ptr<SerialTransport>(new SerialTransport(config));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> SerialTransport::Connect(absl::Duration timeout) {
  return ConnectUnixPath(Endpoint(), config_.socket_path, config_.options, timeout);
}

std::string SerialTransport::Endpoint() const {
  return absl::StrCat("serial://", config_.socket_path);
}

// --- UnixTransport ---------------------------------------------------------

absl::StatusOr<std::unique_ptr<UnixTransport>> UnixTransport::Create(const Config& config) {
  RETURN_IF_ERROR(CheckPath("agent", config.path));
  return std::unique_ptr<UnixTransport>(new UnixTransport(config));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> UnixTransport::Connect(absl::Duration timeout) {
  return ConnectUnixPath(Endpoint(), config_.path, config_.options, timeout);
}

std::string UnixTransport::Endpoint() const { return absl::StrCat("unix://", config_.path); }

// --- factory ---------------------------------------------------------------

absl::StatusOr<std::unique_ptr<AgentTransport>> CreateTransport(const AgentAddress& address,
                                                                const ConnectOptions& options) {
  switch (address.kind) {
    case AgentAddress::Kind::kVsock: {
      ASSIGN_OR_RETURN(auto t, VsockTransport::Create(
                                   {.cid = address.cid, .port = address.port, .options = options}));
      return std::unique_ptr<AgentTransport>(std::move(t));
    }
    case AgentAddress::Kind::kSerial: {
      ASSIGN_OR_RETURN(auto t,
                       SerialTransport::Create({.socket_path = address.path, .options = options}));
      return std::unique_ptr<AgentTransport>(std::move(t));
    }
    case AgentAddress::Kind::kUnix: {
      ASSIGN_OR_RETURN(auto t, UnixTransport::Create({.path = address.path, .options = options}));
      return std::unique_ptr<AgentTransport>(std::move(t));
    }
  }
  return absl::InvalidArgumentError("unknown agent address kind");
}

absl::StatusOr<std::unique_ptr<AgentTransport>> CreateTransport(absl::string_view address,
                                                                const ConnectOptions& options) {
  ASSIGN_OR_RETURN(AgentAddress parsed, ParseAgentAddress(address));
  return CreateTransport(parsed, options);
}

}  // namespace cloak::transport
