// ttrpc server: serves unary RPCs (containerd/ttrpc, docs/formats.md "ttrpc") on unix
// sockets. Every connection has a reader thread; every request runs on its
// own thread, so a handler that blocks for hours (Task.Wait) never stalls
// other calls on the same connection. Responses are written whole under a
// per-connection write mutex and matched by stream id.
//
//   auto server = Server::Create();
//   (*server)->RegisterTypedMethod<EchoRequest, EchoResponse>(
//       "pkg.Echo", "Say", [](const RequestContext& ctx, const EchoRequest& r)
//           -> absl::StatusOr<EchoResponse> { ... });
//   RETURN_IF_ERROR((*server)->Listen("/run/x.sock"));   // or ServeListener(fd 3)
//   ...
//   (*server)->Shutdown();
//
// Malformed input closes only the offending connection (or answers an
// error, as the Go server does); it never takes the server down.
#ifndef CLOAK_SHIM_TTRPC_SERVER_H_
#define CLOAK_SHIM_TTRPC_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/fd.h"
#include "shim/ttrpc/frame.h"

namespace spdlog {
class logger;
}  // namespace spdlog

namespace cloak::ttrpc {

// ttrpc metadata key for the containerd namespace.
inline constexpr absl::string_view kNamespaceMetadataKey = "containerd-namespace-ttrpc";

// What a handler knows about the call it serves.
struct RequestContext {
  std::string service;
  std::string method;
  uint32_t stream_id = 0;
  uint64_t connection_id = 0;
  // Request metadata in arrival order; a key may repeat.
  std::vector<std::pair<std::string, std::string>> metadata;
  // Arrival time + timeout_nano, or InfiniteFuture when the client set none.
  absl::Time deadline = absl::InfiniteFuture();
  // Notified when the connection closes or the server shuts down; nobody
  // will read the answer any more.
  std::shared_ptr<absl::Notification> cancelled;

  // The first value for `key`, if any.
  std::optional<std::string> GetMetadata(absl::string_view key) const;
  // The containerd namespace (containerd-namespace-ttrpc), or "".
  std::string Namespace() const { return GetMetadata(kNamespaceMetadataKey).value_or(""); }
  bool IsCancelled() const { return cancelled != nullptr && cancelled->HasBeenNotified(); }
};

// A unary handler: the serialized request in, the serialized response out.
using Handler = std::function<absl::StatusOr<std::string>(const RequestContext& ctx,
                                                          const std::string& payload)>;

struct ServerOptions {
  // Called (from the connection's reader thread) once a connection has
  // ended, with its id. Must not call Shutdown().
  std::function<void(uint64_t connection_id)> on_connection_close;
  // Requests of one connection running at once; more are answered
  // ResourceExhausted.
  int max_concurrent_requests_per_connection = 1024;
  // Refuse peers whose uid/gid differ from ours (SO_PEERCRED), like ttrpc's
  // UnixSocketRequireSameUser handshaker.
  bool require_same_user = false;
};

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Create(ServerOptions options = {});
  // Shuts down if still serving.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Registers (or replaces) the handler of `service`/`method`, e.g.
  // ("containerd.task.v2.Task", "Create"). May be called while serving.
  void RegisterMethod(absl::string_view service, absl::string_view method, Handler handler);

  // Typed helper: parses Req (Internal "ttrpc: error unmarshalling payload"
  // on failure) and serializes Resp. Req and Resp are protobuf messages.
  template <typename Req, typename Resp>
  void RegisterTypedMethod(
      absl::string_view service, absl::string_view method,
      std::function<absl::StatusOr<Resp>(const RequestContext&, const Req&)> fn);

  // Listens on a unix socket address (path, "unix:///path" or "@abstract")
  // and starts accepting. The socket file is removed at Shutdown.
  absl::Status Listen(absl::string_view address);
  // Serves an already-listening socket, e.g. fd 3 handed to a shim by
  // `start`. Takes ownership.
  absl::Status ServeListener(UniqueFd listener);

  // Stops accepting, closes every connection (in-flight handlers see
  // ctx.cancelled), waits for all handlers to return and joins all threads.
  // Idempotent. Must not be called from a handler or callback.
  void Shutdown();

  // Connections currently open.
  size_t ConnectionCount() const;

 private:
  struct Connection;
  struct Listener {
    UniqueFd fd;
    std::string unlink_path;  // socket file we created, removed at Shutdown
  };

  Server(ServerOptions options, UniqueFd stop_fd);
  absl::Status StartListener(Listener listener);
  void AcceptLoop(int listen_fd);
  void ServeConnection(const std::shared_ptr<Connection>& conn);
  // Handles one decoded frame; false closes the connection.
  bool HandleFrame(const std::shared_ptr<Connection>& conn, Frame frame);
  void RunHandler(const std::shared_ptr<Connection>& conn, Handler handler,
                  const RequestContext& ctx, const std::string& payload);
  void Respond(Connection& conn, uint32_t stream_id, const absl::Status& status,
               absl::string_view payload);
  std::optional<Handler> FindHandler(const std::string& service, const std::string& method,
                                     absl::Status* not_found) const;
  // Runs `fn` on a thread joined by a later ReapThreads or Shutdown. False
  // when shutting down (fn not run).
  bool SpawnThread(std::function<void()> fn);
  void ReapThreads();

  const ServerOptions options_;
  const std::shared_ptr<spdlog::logger> log_;
  // An eventfd made readable by Shutdown; polled by every loop.
  const UniqueFd stop_fd_;

  mutable absl::Mutex handlers_mu_;
  std::map<std::string, std::map<std::string, Handler, std::less<>>, std::less<>> services_
      ABSL_GUARDED_BY(handlers_mu_);

  mutable absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Listener> listeners_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::shared_ptr<Connection>> connections_ ABSL_GUARDED_BY(mu_);
  uint64_t next_connection_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> finished_threads_ ABSL_GUARDED_BY(mu_);
  uint64_t next_thread_id_ ABSL_GUARDED_BY(mu_) = 1;
};

template <typename Req, typename Resp>
void Server::RegisterTypedMethod(
    absl::string_view service, absl::string_view method,
    std::function<absl::StatusOr<Resp>(const RequestContext&, const Req&)> fn) {
  RegisterMethod(service, method,
                 [fn = std::move(fn)](const RequestContext& ctx,
                                      const std::string& payload) -> absl::StatusOr<std::string> {
                   Req request;
                   if (!request.ParseFromString(payload)) {
                     return absl::InternalError("ttrpc: error unmarshalling payload");
                   }
                   absl::StatusOr<Resp> response = fn(ctx, request);
                   if (!response.ok()) return response.status();
                   std::string out;
                   if (!response->SerializeToString(&out)) {
                     return absl::InternalError("ttrpc: error marshalling response");
                   }
                   return out;
                 });
}

}  // namespace cloak::ttrpc

#endif  // CLOAK_SHIM_TTRPC_SERVER_H_
