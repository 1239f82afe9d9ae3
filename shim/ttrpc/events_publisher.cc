#include "shim/ttrpc/events_publisher.h"

#include <string_view>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "shim/ttrpc/client.h"
#include "shim/ttrpc/server.h"
#include "containerd/services/events/ttrpc/v1/events.pb.h"
#include "google/protobuf/message.h"
#include "spdlog/logger.h"

namespace cloak::ttrpc {
namespace {

// fmt cannot format absl::string_view (distinct from std::string_view here).
std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace

absl::Status ValidateIdentifier(absl::string_view id) {
  return ValidateId(absl::StrCat("identifier \"", id, "\""), id);
}

absl::Status ValidateTopic(absl::string_view topic) {
  if (topic.size() < 2 || topic[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("topic \"", topic, "\" must start with '/' and name something"));
  }
  for (absl::string_view part : absl::StrSplit(topic.substr(1), '/')) {
    absl::Status s = ValidateIdentifier(part);
    if (!s.ok()) return Annotate(s, absl::StrCat("topic \"", topic, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> EncodeForwardRequest(absl::string_view namespace_name,
                                                 absl::string_view topic,
                                                 const google::protobuf::Message& event,
                                                 absl::Time timestamp) {
  RETURN_IF_ERROR(Annotate(ValidateIdentifier(namespace_name), "namespace"));
  RETURN_IF_ERROR(ValidateTopic(topic));
  containerd::services::events::ttrpc::v1::ForwardRequest request;
  auto* envelope = request.mutable_envelope();
  const int64_t nanos = absl::ToUnixNanos(timestamp);
  int64_t seconds = nanos / 1000000000;
  int64_t rem = nanos % 1000000000;
  if (rem < 0) {
    rem += 1000000000;
    --seconds;
  }
  envelope->mutable_timestamp()->set_seconds(seconds);
  envelope->mutable_timestamp()->set_nanos(static_cast<int32_t>(rem));
  envelope->set_namespace_(std::string(namespace_name));
  envelope->set_topic(std::string(topic));
  // Go's typeurl: the bare full name, no type.googleapis.com/ prefix.
  envelope->mutable_event()->set_type_url(std::string(event.GetDescriptor()->full_name()));
  if (!event.SerializeToString(envelope->mutable_event()->mutable_value())) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot serialize ", event.GetDescriptor()->full_name()));
  }
  return request.SerializeAsString();
}

absl::StatusOr<std::unique_ptr<EventsPublisher>> EventsPublisher::Create(
    EventsPublisherOptions options) {
  if (options.address.empty()) {
    return absl::InvalidArgumentError("events publisher: no ttrpc address (TTRPC_ADDRESS)");
  }
  RETURN_IF_ERROR(Annotate(ValidateIdentifier(options.namespace_name), "events publisher namespace"));
  if (options.queue_capacity == 0) {
    return absl::InvalidArgumentError("events publisher: queue capacity must be positive");
  }
  std::unique_ptr<EventsPublisher> p(new EventsPublisher(std::move(options)));
  EventsPublisher* raw = p.get();
  absl::MutexLock lock(&raw->close_mu_);
  raw->sender_ = std::thread([raw] { raw->SendLoop(); });
  return p;
}

EventsPublisher::EventsPublisher(EventsPublisherOptions options)
    : options_(std::move(options)), log_(cloak::Logger("ttrpc")) {}

EventsPublisher::~EventsPublisher() { Close(); }

absl::StatusOr<std::shared_ptr<Client>> EventsPublisher::GetClient() {
  absl::MutexLock lock(&client_mu_);
  if (client_ != nullptr && !client_->IsClosed()) return client_;
  ASSIGN_OR_RETURN(std::unique_ptr<Client> c, Client::Connect(options_.address));
  client_ = std::move(c);
  return client_;
}

void EventsPublisher::DropClient(const std::shared_ptr<Client>& client) {
  absl::MutexLock lock(&client_mu_);
  if (client_ == client) client_.reset();
}

absl::Status EventsPublisher::Send(const std::string& request) {
  CallOptions call;
  call.timeout = options_.call_timeout;
  call.metadata = {{std::string(kNamespaceMetadataKey), options_.namespace_name}};
  absl::Status last;
  for (int attempt = 0; attempt < 2; ++attempt) {
    ASSIGN_OR_RETURN(std::shared_ptr<Client> client, GetClient());
    last = client->CallRaw(kEventsService, kEventsForwardMethod, request, call).status();
    if (last.ok()) return last;
    if (!IsClosedError(last) && !client->IsClosed()) return last;
    // containerd restarted or dropped us: reconnect and retry once.
    DropClient(client);
  }
  return last;
}

absl::Status EventsPublisher::Publish(absl::string_view topic,
                                      const google::protobuf::Message& event) {
  ASSIGN_OR_RETURN(std::string request,
                   EncodeForwardRequest(options_.namespace_name, topic, event, absl::Now()));
  absl::Status s = Send(request);
  absl::MutexLock lock(&mu_);
  if (s.ok()) {
    ++sent_;
  } else {
    ++dropped_;
  }
  return s.ok() ? s : Annotate(s, absl::StrCat("publish ", topic));
}

absl::Status EventsPublisher::Enqueue(absl::string_view topic,
                                      const google::protobuf::Message& event) {
  ASSIGN_OR_RETURN(std::string request,
                   EncodeForwardRequest(options_.namespace_name, topic, event, absl::Now()));
  absl::MutexLock lock(&mu_);
  if (closing_) return absl::FailedPreconditionError("events publisher is closed");
  if (queue_.size() >= options_.queue_capacity) {
    ++dropped_;
    log_->error("events: queue full ({} events), dropping {}", queue_.size(), Sv(topic));
    return absl::ResourceExhaustedError(
        absl::StrCat("events queue full (", options_.queue_capacity, "), dropped ", topic));
  }
  queue_.push_back(Item{std::string(topic), std::move(request), 0, absl::InfinitePast()});
  cv_.SignalAll();
  return absl::OkStatus();
}

void EventsPublisher::SendLoop() {
  while (true) {
    std::string request;
    std::string topic;
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        const absl::Time now = absl::Now();
        if (closing_ && (queue_.empty() || now >= drain_deadline_)) {
          if (!queue_.empty()) {
            log_->error("events: closing with {} events unsent", queue_.size());
            dropped_ += queue_.size();
            queue_.clear();
            cv_.SignalAll();
          }
          return;
        }
        if (!queue_.empty() && queue_.front().not_before <= now) break;
        absl::Time wake = closing_ ? drain_deadline_ : absl::InfiniteFuture();
        if (!queue_.empty()) wake = std::min(wake, queue_.front().not_before);
        cv_.WaitWithDeadline(&mu_, wake);
      }
      request = queue_.front().request;
      topic = queue_.front().topic;
    }
    absl::Status s = Send(request);
    absl::MutexLock lock(&mu_);
    Item& item = queue_.front();
    if (s.ok()) {
      ++sent_;
      queue_.pop_front();
    } else if (++item.retries > options_.max_retries) {
      log_->error("events: evicting {} after {} retries: {}", topic, options_.max_retries,
                  s.ToString());
      ++dropped_;
      queue_.pop_front();
    } else {
      log_->warn("events: forward {} failed (retry {} of {}): {}", topic, item.retries,
                 options_.max_retries, s.ToString());
      item.not_before = absl::Now() + item.retries * options_.retry_delay_unit;
    }
    cv_.SignalAll();
  }
}

absl::Status EventsPublisher::Flush(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (!queue_.empty()) {
    if (cv_.WaitWithDeadline(&mu_, deadline) && !queue_.empty()) {
      return absl::DeadlineExceededError(
          absl::StrCat("events: ", queue_.size(), " events still queued after ",
                       absl::FormatDuration(timeout)));
    }
  }
  return absl::OkStatus();
}

void EventsPublisher::Close() {
  {
    absl::MutexLock lock(&mu_);
    if (!closing_) {
      closing_ = true;
      drain_deadline_ = absl::Now() + options_.close_drain_timeout;
    }
    cv_.SignalAll();
  }
  std::thread sender;
  {
    absl::MutexLock lock(&close_mu_);
    sender = std::move(sender_);
  }
  if (sender.joinable()) sender.join();
  std::shared_ptr<Client> client;
  {
    absl::MutexLock lock(&client_mu_);
    client = std::move(client_);
    client_.reset();
  }
  if (client != nullptr) client->Close();
}

uint64_t EventsPublisher::sent_count() const {
  absl::MutexLock lock(&mu_);
  return sent_;
}

uint64_t EventsPublisher::dropped_count() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

}  // namespace cloak::ttrpc
