#include "shim/ttrpc/client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "common/logging.h"
#include "spdlog/logger.h"
#include "common/status_macros.h"
#include "shim/ttrpc/frame.h"
#include "shim/ttrpc/socket.h"
#include "shim/ttrpc/status.h"
#include "ttrpc/ttrpc.pb.h"

namespace cloak::ttrpc {
namespace {

// fmt cannot format absl::string_view (distinct from std::string_view here).
std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

constexpr size_t kReadChunk = 64 * 1024;

absl::Status ClosedError() { return absl::UnavailableError(kClosedMessage); }

}  // namespace

bool IsClosedError(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable &&
         absl::StartsWith(status.message(), kClosedMessage);
}

struct Client::Pending {
  absl::Notification done;
  absl::StatusOr<std::string> result = absl::UnknownError("ttrpc: no response");
};

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(absl::string_view address,
                                                        ClientOptions options) {
  absl::StatusOr<UniqueFd> fd = ConnectUnix(address);
  if (!fd.ok()) return Annotate(fd.status(), absl::StrCat("ttrpc: dial ", address));
  return FromFd(std::move(*fd), std::move(options));
}

absl::StatusOr<std::unique_ptr<Client>> Client::FromFd(UniqueFd fd, ClientOptions options) {
  if (!fd) return absl::InvalidArgumentError("ttrpc: invalid client fd");
  RETURN_IF_ERROR(SetNonBlocking(fd.get(), false));
  std::unique_ptr<Client> client(new Client(std::move(fd), std::move(options)));
  Client* c = client.get();
  absl::MutexLock lock(&c->close_mu_);
  c->reader_ = std::thread([c] { c->ReadLoop(); });
  return client;
}

Client::Client(UniqueFd fd, ClientOptions options)
    : options_(std::move(options)), log_(cloak::Logger("ttrpc")), fd_(std::move(fd)) {}

Client::~Client() { Close(); }

void Client::Close() {
  ::shutdown(fd_.get(), SHUT_RDWR);  // wakes the reader; it fails pending calls
  std::thread reader;
  {
    absl::MutexLock lock(&close_mu_);
    if (close_called_) return;
    close_called_ = true;
    reader = std::move(reader_);
  }
  if (!reader.joinable()) return;
  if (reader.get_id() == std::this_thread::get_id()) {
    reader.detach();  // Close() from on_close: the reader returns right after
  } else {
    reader.join();
  }
}

bool Client::IsClosed() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

absl::StatusOr<std::string> Client::CallRaw(absl::string_view service, absl::string_view method,
                                            absl::string_view payload,
                                            const CallOptions& options) {
  ::ttrpc::Request request;
  request.set_service(std::string(service));
  request.set_method(std::string(method));
  request.set_payload(std::string(payload));
  if (options.timeout != absl::InfiniteDuration()) {
    if (options.timeout <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(
          absl::StrCat("ttrpc: ", service, "/", method, ": deadline exceeded before the call"));
    }
    request.set_timeout_nano(absl::ToInt64Nanoseconds(options.timeout));
  }
  for (const auto& [k, v] : options.metadata) {
    ::ttrpc::KeyValue* kv = request.add_metadata();
    kv->set_key(k);
    kv->set_value(v);
  }
  const std::string bytes = request.SerializeAsString();
  if (bytes.size() > kMaxMessageSize) return OversizedMessageError(bytes.size());

  const absl::Time deadline = absl::Now() + options.timeout;
  auto pending = std::make_shared<Pending>();
  uint32_t stream_id = 0;
  {
    absl::MutexLock write_lock(&write_mu_);
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return ClosedError();
      stream_id = next_stream_id_;
      next_stream_id_ += 2;
      pending_[stream_id] = pending;
    }
    absl::StatusOr<std::string> frame =
        EncodeFrame(stream_id, MessageType::kRequest, 0, bytes);
    absl::Status sent = frame.ok() ? SendAll(fd_.get(), *frame) : frame.status();
    if (!sent.ok()) {
      {
        absl::MutexLock lock(&mu_);
        pending_.erase(stream_id);
      }
      log_->debug("ttrpc: send {}/{} (stream {}): {}", Sv(service), Sv(method), stream_id,
                  sent.ToString());
      ::shutdown(fd_.get(), SHUT_RDWR);  // the reader sees EOF and fails the rest
      return absl::UnavailableError(absl::StrCat(kClosedMessage, ": ", sent.message()));
    }
  }

  if (!pending->done.WaitForNotificationWithDeadline(deadline)) {
    absl::MutexLock lock(&mu_);
    if (pending_.erase(stream_id) == 1) {
      return absl::DeadlineExceededError(absl::StrCat("ttrpc: ", service, "/", method,
                                                      ": deadline exceeded after ",
                                                      absl::FormatDuration(options.timeout)));
    }
    // Delivered in the meantime: fall through to the result.
  }
  pending->done.WaitForNotification();
  return std::move(pending->result);
}

void Client::Deliver(uint32_t stream_id, absl::StatusOr<std::string> result) {
  std::shared_ptr<Pending> p;
  {
    absl::MutexLock lock(&mu_);
    auto it = pending_.find(stream_id);
    if (it == pending_.end()) {
      log_->debug("ttrpc: response for unknown or abandoned stream {}", stream_id);
      return;
    }
    p = std::move(it->second);
    pending_.erase(it);
  }
  p->result = std::move(result);
  p->done.Notify();
}

void Client::ReadLoop() {
  FrameDecoder decoder;
  std::string buf(kReadChunk, '\0');
  bool open = true;
  while (open) {
    ssize_t n = ::read(fd_.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != ECONNRESET) log_->debug("ttrpc: client read: {}", std::strerror(errno));
      break;
    }
    if (n == 0) {
      if (decoder.InFrame()) {
        log_->error("ttrpc: server closed the connection in the middle of a frame");
      }
      break;
    }
    decoder.Append(absl::string_view(buf.data(), static_cast<size_t>(n)));
    while (true) {
      absl::StatusOr<std::optional<Frame>> frame = decoder.Next();
      if (!frame.ok()) {
        log_->error("ttrpc: client: {}; closing connection", frame.status().ToString());
        open = false;
        break;
      }
      if (!frame->has_value()) break;
      Frame& f = **frame;
      if (f.oversized_length != 0) {
        Deliver(f.stream_id, OversizedMessageError(f.oversized_length));
        continue;
      }
      if (f.type != MessageType::kResponse) {
        log_->warn("ttrpc: client: ignoring message type {} on stream {}",
                   static_cast<int>(f.type), f.stream_id);
        continue;
      }
      ::ttrpc::Response response;
      if (!response.ParseFromString(f.payload)) {
        Deliver(f.stream_id, absl::InternalError("ttrpc: malformed response"));
        continue;
      }
      if (response.has_status() && response.status().code() != 0) {
        Deliver(f.stream_id, FromRpcStatus(response.status()));
      } else {
        Deliver(f.stream_id, std::move(*response.mutable_payload()));
      }
    }
  }
  ::shutdown(fd_.get(), SHUT_RDWR);
  FailAll();
  if (options_.on_close) options_.on_close();
}

void Client::FailAll() {
  std::map<uint32_t, std::shared_ptr<Pending>> pending;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    pending.swap(pending_);
  }
  for (auto& [id, p] : pending) {
    p->result = ClosedError();
    p->done.Notify();
  }
}

}  // namespace cloak::ttrpc
