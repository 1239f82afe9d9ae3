#include "shim/ttrpc/server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string_view>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "spdlog/logger.h"
#include "common/status_macros.h"
#include "shim/ttrpc/socket.h"
#include "shim/ttrpc/status.h"
#include "ttrpc/ttrpc.pb.h"

namespace cloak::ttrpc {
namespace {

// fmt cannot format absl::string_view (distinct from std::string_view here).
std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

constexpr size_t kReadChunk = 64 * 1024;

// Waits until `fd` or `stop_fd` is readable. False when stopping.
bool WaitForInput(int fd, int stop_fd) {
  while (true) {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    int r = ::poll(p, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (p[1].revents != 0) return false;
    if (p[0].revents != 0) return true;
  }
}

}  // namespace

std::optional<std::string> RequestContext::GetMetadata(absl::string_view key) const {
  for (const auto& [k, v] : metadata) {
    if (k == key) return v;
  }
  return std::nullopt;
}

struct Server::Connection {
  Connection(uint64_t connection_id, UniqueFd socket) : id(connection_id), fd(std::move(socket)) {}
  const uint64_t id;
  const UniqueFd fd;
  const std::shared_ptr<absl::Notification> closed = std::make_shared<absl::Notification>();
  absl::Mutex write_mu;
  std::atomic<int> active_requests{0};
  // Touched by the reader thread only.
  uint32_t last_stream_id = 0;

  // Stops both directions: the peer sees EOF even while handler threads
  // still hold the fd, and blocked writes fail.
  // Called by the reader and by Shutdown, possibly at the same time.
  void Close() {
    if (!close_started.exchange(true)) closed->Notify();
    ::shutdown(fd.get(), SHUT_RDWR);
  }
  std::atomic<bool> close_started{false};
};

absl::StatusOr<std::unique_ptr<Server>> Server::Create(ServerOptions options) {
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop) return ErrnoError(errno, "eventfd for ttrpc server");
  return std::unique_ptr<Server>(new Server(std::move(options), std::move(stop)));
}

Server::Server(ServerOptions options, UniqueFd stop_fd)
    : options_(std::move(options)), log_(cloak::Logger("ttrpc")), stop_fd_(std::move(stop_fd)) {}

Server::~Server() { Shutdown(); }

void Server::RegisterMethod(absl::string_view service, absl::string_view method,
                            Handler handler) {
  absl::MutexLock lock(&handlers_mu_);
  services_[std::string(service)][std::string(method)] = std::move(handler);
}

absl::Status Server::Listen(absl::string_view address) {
  ASSIGN_OR_RETURN(std::string path, SocketPathFromAddress(address));
  ASSIGN_OR_RETURN(UniqueFd fd, ListenUnix(path));
  Listener l{std::move(fd), path[0] == '@' ? std::string() : path};
  return StartListener(std::move(l));
}

absl::Status Server::ServeListener(UniqueFd listener) {
  if (!listener) return absl::InvalidArgumentError("ttrpc: invalid listener fd");
  int accepting = 0;
  socklen_t len = sizeof(accepting);
  if (::getsockopt(listener.get(), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0) {
    return ErrnoError(errno, "ttrpc: fd ", listener.get(), " is not a socket");
  }
  if (!accepting) {
    return absl::InvalidArgumentError(
        absl::StrCat("ttrpc: fd ", listener.get(), " is not a listening socket"));
  }
  return StartListener(Listener{std::move(listener), ""});
}

absl::Status Server::StartListener(Listener listener) {
  RETURN_IF_ERROR(SetNonBlocking(listener.fd.get(), true));
  RETURN_IF_ERROR(SetCloexec(listener.fd.get(), true));
  const int fd = listener.fd.get();
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return absl::FailedPreconditionError("ttrpc: server is shut down");
    listeners_.push_back(std::move(listener));
  }
  if (!SpawnThread([this, fd] { AcceptLoop(fd); })) {
    return absl::FailedPreconditionError("ttrpc: server is shut down");
  }
  return absl::OkStatus();
}

void Server::AcceptLoop(int listen_fd) {
  while (WaitForInput(listen_fd, stop_fd_.get())) {
    UniqueFd fd(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd) {
      const int err = errno;
      if (err == EINTR || err == EAGAIN || err == EWOULDBLOCK || err == ECONNABORTED) continue;
      log_->error("ttrpc: accept on fd {}: {}", listen_fd, std::strerror(err));
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // Back off like the Go server instead of spinning.
        pollfd p{stop_fd_.get(), POLLIN, 0};
        ::poll(&p, 1, 100);
        continue;
      }
      return;
    }
    if (options_.require_same_user) {
      ucred cred{};
      socklen_t len = sizeof(cred);
      if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
          cred.uid != ::geteuid() || cred.gid != ::getegid()) {
        log_->error("ttrpc: refusing connection from uid {} gid {}: invalid credentials",
                    cred.uid, cred.gid);
        continue;
      }
    }
    std::shared_ptr<Connection> conn;
    {
      absl::MutexLock lock(&mu_);
      if (shutting_down_) return;
      conn = std::make_shared<Connection>(next_connection_id_++, std::move(fd));
      connections_[conn->id] = conn;
    }
    log_->debug("ttrpc: connection {} accepted", conn->id);
    if (!SpawnThread([this, conn] { ServeConnection(conn); })) {
      conn->Close();
      absl::MutexLock lock(&mu_);
      connections_.erase(conn->id);
      return;
    }
  }
}

void Server::ServeConnection(const std::shared_ptr<Connection>& conn) {
  FrameDecoder decoder;
  std::string buf(kReadChunk, '\0');
  bool open = true;
  while (open && WaitForInput(conn->fd.get(), stop_fd_.get())) {
    ssize_t n = ::read(conn->fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno != ECONNRESET) {
        log_->error("ttrpc: connection {}: read: {}", conn->id, std::strerror(errno));
      }
      break;
    }
    if (n == 0) {
      if (decoder.InFrame()) {
        log_->error("ttrpc: connection {}: peer closed in the middle of a frame ({} bytes "
                    "pending); closing connection",
                    conn->id, decoder.buffered());
      }
      break;
    }
    decoder.Append(absl::string_view(buf.data(), static_cast<size_t>(n)));
    while (open) {
      absl::StatusOr<std::optional<Frame>> frame = decoder.Next();
      if (!frame.ok()) {
        log_->error("ttrpc: connection {}: {}; closing connection", conn->id,
                    frame.status().ToString());
        open = false;
        break;
      }
      if (!frame->has_value()) break;
      open = HandleFrame(conn, std::move(**frame));
    }
  }
  conn->Close();
  {
    absl::MutexLock lock(&mu_);
    connections_.erase(conn->id);
  }
  log_->debug("ttrpc: connection {} closed", conn->id);
  if (options_.on_connection_close) options_.on_connection_close(conn->id);
}

bool Server::HandleFrame(const std::shared_ptr<Connection>& conn, Frame frame) {
  if (frame.oversized_length != 0) {
    log_->warn("ttrpc: connection {} stream {}: {}", conn->id, frame.stream_id,
               Sv(OversizedMessageError(frame.oversized_length).message()));
    Respond(*conn, frame.stream_id, OversizedMessageError(frame.oversized_length), "");
    return true;
  }
  if (frame.type != MessageType::kRequest) {
    // The Go server ignores other types for forward compatibility.
    log_->warn("ttrpc: connection {} stream {}: ignoring message type {}", conn->id,
               frame.stream_id, static_cast<int>(frame.type));
    return true;
  }
  if (frame.stream_id % 2 != 1) {
    log_->error("ttrpc: connection {}: request on even stream id {}", conn->id, frame.stream_id);
    Respond(*conn, frame.stream_id,
            absl::InvalidArgumentError("StreamID must be odd for client initiated streams"), "");
    return true;
  }
  if (frame.stream_id <= conn->last_stream_id) {
    log_->error("ttrpc: connection {}: stream id {} not above {}", conn->id, frame.stream_id,
                conn->last_stream_id);
    Respond(*conn, frame.stream_id,
            absl::InvalidArgumentError("StreamID cannot be re-used and must increment"), "");
    return true;
  }
  conn->last_stream_id = frame.stream_id;

  ::ttrpc::Request request;
  if (!request.ParseFromString(frame.payload)) {
    log_->error("ttrpc: connection {} stream {}: malformed request ({} bytes)", conn->id,
                frame.stream_id, frame.payload.size());
    Respond(*conn, frame.stream_id,
            absl::InvalidArgumentError("unmarshal request error: malformed ttrpc.Request"), "");
    return true;
  }
  if ((frame.flags & kFlagRemoteOpen) != 0) {
    Respond(*conn, frame.stream_id,
            absl::UnimplementedError("ttrpc: client streaming is not supported"), "");
    return true;
  }

  absl::Status not_found;
  std::optional<Handler> handler = FindHandler(request.service(), request.method(), &not_found);
  if (!handler.has_value()) {
    log_->debug("ttrpc: connection {} stream {}: {}", conn->id, frame.stream_id,
                Sv(not_found.message()));
    Respond(*conn, frame.stream_id, not_found, "");
    return true;
  }

  RequestContext ctx;
  ctx.service = request.service();
  ctx.method = request.method();
  ctx.stream_id = frame.stream_id;
  ctx.connection_id = conn->id;
  ctx.cancelled = conn->closed;
  for (const ::ttrpc::KeyValue& kv : request.metadata()) {
    ctx.metadata.emplace_back(kv.key(), kv.value());
  }
  if (request.timeout_nano() > 0) {
    ctx.deadline = absl::Now() + absl::Nanoseconds(request.timeout_nano());
  }

  if (conn->active_requests.fetch_add(1) >= options_.max_concurrent_requests_per_connection) {
    conn->active_requests.fetch_sub(1);
    Respond(*conn, frame.stream_id,
            absl::ResourceExhaustedError(absl::StrCat(
                "ttrpc: more than ", options_.max_concurrent_requests_per_connection,
                " concurrent requests on one connection")),
            "");
    return true;
  }
  std::string* payload = request.mutable_payload();
  bool started = SpawnThread([this, conn, h = std::move(*handler), ctx = std::move(ctx),
                              p = std::move(*payload)]() {
    RunHandler(conn, h, ctx, p);
    conn->active_requests.fetch_sub(1);
  });
  if (!started) {
    conn->active_requests.fetch_sub(1);
    return false;
  }
  return true;
}

void Server::RunHandler(const std::shared_ptr<Connection>& conn, Handler handler,
                        const RequestContext& ctx, const std::string& payload) {
  absl::StatusOr<std::string> result = handler(ctx, payload);
  if (conn->closed->HasBeenNotified()) {
    log_->debug("ttrpc: connection {} closed before {}/{} (stream {}) finished", conn->id,
                ctx.service, ctx.method, ctx.stream_id);
    return;
  }
  if (result.ok()) {
    Respond(*conn, ctx.stream_id, absl::OkStatus(), *result);
  } else {
    Respond(*conn, ctx.stream_id, result.status(), "");
  }
}

void Server::Respond(Connection& conn, uint32_t stream_id, const absl::Status& status,
                     absl::string_view payload) {
  ::ttrpc::Response response;
  if (!status.ok()) *response.mutable_status() = ToRpcStatus(status);
  response.set_payload(std::string(payload));
  std::string bytes = response.SerializeAsString();
  if (bytes.size() > kMaxMessageSize) {
    absl::Status too_big = OversizedMessageError(bytes.size());
    log_->error("ttrpc: connection {} stream {}: response {}", conn.id, stream_id,
                Sv(too_big.message()));
    response.Clear();
    *response.mutable_status() = ToRpcStatus(too_big);
    bytes = response.SerializeAsString();
  }
  absl::StatusOr<std::string> frame = EncodeFrame(stream_id, MessageType::kResponse, 0, bytes);
  if (!frame.ok()) return;  // cannot happen: size checked above
  absl::MutexLock lock(&conn.write_mu);
  absl::Status sent = SendAll(conn.fd.get(), *frame);
  if (!sent.ok()) {
    log_->debug("ttrpc: connection {} stream {}: response not sent: {}", conn.id, stream_id,
                sent.ToString());
  }
}

std::optional<Handler> Server::FindHandler(const std::string& service, const std::string& method,
                                           absl::Status* not_found) const {
  absl::ReaderMutexLock lock(&handlers_mu_);
  auto s = services_.find(service);
  if (s == services_.end()) {
    *not_found = absl::UnimplementedError(absl::StrCat("service ", service));
    return std::nullopt;
  }
  auto m = s->second.find(method);
  if (m == s->second.end()) {
    *not_found = absl::UnimplementedError(absl::StrCat("method ", method));
    return std::nullopt;
  }
  return m->second;
}

bool Server::SpawnThread(std::function<void()> fn) {
  ReapThreads();
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return false;
  const uint64_t id = next_thread_id_++;
  threads_.emplace(id, std::thread([this, id, fn = std::move(fn)]() mutable {
                     fn();
                     fn = nullptr;  // drop captures (connections) before reporting done
                     absl::MutexLock done(&mu_);
                     finished_threads_.push_back(id);
                   }));
  return true;
}

void Server::ReapThreads() {
  std::vector<std::thread> done;
  {
    absl::MutexLock lock(&mu_);
    for (uint64_t id : finished_threads_) {
      auto it = threads_.find(id);
      if (it == threads_.end()) continue;
      done.push_back(std::move(it->second));
      threads_.erase(it);
    }
    finished_threads_.clear();
  }
  for (std::thread& t : done) t.join();
}

void Server::Shutdown() {
  std::vector<Listener> listeners;
  std::map<uint64_t, std::shared_ptr<Connection>> connections;
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_ && threads_.empty() && listeners_.empty()) return;
    shutting_down_ = true;
    listeners = std::move(listeners_);
    listeners_.clear();
    connections = connections_;
  }
  const uint64_t one = 1;
  if (::write(stop_fd_.get(), &one, sizeof(one)) < 0 && errno != EAGAIN) {
    log_->error("ttrpc: wake threads for shutdown: {}", std::strerror(errno));
  }
  for (auto& [id, conn] : connections) conn->Close();
  connections.clear();
  // Join everything; handlers may still be running and finish on their own.
  while (true) {
    std::map<uint64_t, std::thread> threads;
    {
      absl::MutexLock lock(&mu_);
      threads.swap(threads_);
      finished_threads_.clear();
    }
    if (threads.empty()) break;
    for (auto& [id, t] : threads) t.join();
  }
  for (Listener& l : listeners) {
    l.fd.Reset();
    if (!l.unlink_path.empty()) ::unlink(l.unlink_path.c_str());
  }
}

size_t Server::ConnectionCount() const {
  absl::MutexLock lock(&mu_);
  return connections_.size();
}

}  // namespace cloak::ttrpc
