// ttrpc client: unary calls over one unix-socket connection. Calls may be
// made from many threads at once; a reader thread matches responses to
// calls by stream id (odd, starting at 1, +2 per call, as the Go client).
//
//   ASSIGN_OR_RETURN(auto client, Client::Connect("unix:///run/x.sock"));
//   CallOptions o;
//   o.timeout = absl::Seconds(5);
//   o.metadata = {{"containerd-namespace-ttrpc", "default"}};
//   ASSIGN_OR_RETURN(auto resp, (client->Call<StateRequest, StateResponse>(
//                                   "containerd.task.v2.Task", "State", req, o)));
//
// When the connection is lost, pending and later calls fail with
// Unavailable "ttrpc: closed" (Go's ErrClosed) and on_close fires once.
#ifndef CLOAK_SHIM_TTRPC_CLIENT_H_
#define CLOAK_SHIM_TTRPC_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/fd.h"

namespace spdlog {
class logger;
}  // namespace spdlog

namespace cloak::ttrpc {

// Message of the Unavailable status for calls on a lost connection.
inline constexpr absl::string_view kClosedMessage = "ttrpc: closed";

// True for the status a call gets because the connection is gone.
bool IsClosedError(const absl::Status& status);

struct ClientOptions {
  // Called once when the connection ends (peer EOF, error or Close()), from
  // the reader thread. Must not destroy the Client.
  std::function<void()> on_close;
};

struct CallOptions {
  // Sent as timeout_nano; the call returns DeadlineExceeded locally when it
  // passes. Infinite: no timeout.
  absl::Duration timeout = absl::InfiniteDuration();
  // Request metadata, e.g. {"containerd-namespace-ttrpc", "default"}.
  std::vector<std::pair<std::string, std::string>> metadata;
};

class Client {
 public:
  // Connects to a unix socket: "/path", "unix:///path" or "@abstract".
  static absl::StatusOr<std::unique_ptr<Client>> Connect(absl::string_view address,
                                                         ClientOptions options = {});
  // Uses an already-connected stream socket.
  static absl::StatusOr<std::unique_ptr<Client>> FromFd(UniqueFd fd, ClientOptions options = {});

  // Closes the connection and joins the reader.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One unary call with a serialized request; returns the serialized
  // response, or the server's status (codes as sent), DeadlineExceeded on
  // timeout, ResourceExhausted for an oversized request, Unavailable
  // "ttrpc: closed" when the connection is gone.
  absl::StatusOr<std::string> CallRaw(absl::string_view service, absl::string_view method,
                                      absl::string_view payload, const CallOptions& options = {});

  // Typed helper over CallRaw for protobuf messages.
  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(absl::string_view service, absl::string_view method,
                            const Req& request, const CallOptions& options = {});

  // Shuts the connection down; pending calls fail with "ttrpc: closed".
  // Idempotent.
  void Close();
  bool IsClosed() const;

 private:
  struct Pending;

  Client(UniqueFd fd, ClientOptions options);
  void ReadLoop();
  void Deliver(uint32_t stream_id, absl::StatusOr<std::string> result);
  // Marks the connection closed and fails every pending call.
  void FailAll();

  const ClientOptions options_;
  const std::shared_ptr<spdlog::logger> log_;
  const UniqueFd fd_;

  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  uint32_t next_stream_id_ ABSL_GUARDED_BY(write_mu_) = 1;

  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::map<uint32_t, std::shared_ptr<Pending>> pending_ ABSL_GUARDED_BY(mu_);

  absl::Mutex close_mu_;
  bool close_called_ ABSL_GUARDED_BY(close_mu_) = false;
  std::thread reader_ ABSL_GUARDED_BY(close_mu_);
};

template <typename Req, typename Resp>
absl::StatusOr<Resp> Client::Call(absl::string_view service, absl::string_view method,
                                  const Req& request, const CallOptions& options) {
  std::string payload;
  if (!request.SerializeToString(&payload)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ttrpc: cannot serialize request for ", service, "/", method));
  }
  absl::StatusOr<std::string> raw = CallRaw(service, method, payload, options);
  if (!raw.ok()) return raw.status();
  Resp response;
  if (!response.ParseFromString(*raw)) {
    return absl::InternalError(
        absl::StrCat("ttrpc: error unmarshalling response of ", service, "/", method));
  }
  return response;
}

}  // namespace cloak::ttrpc

#endif  // CLOAK_SHIM_TTRPC_CLIENT_H_
