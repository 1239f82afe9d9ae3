// Publishes containerd task events the way a shim must (docs/shim.md, "Contract: events"):
// ttrpc call containerd.services.events.ttrpc.v1.Events/Forward on
// $TTRPC_ADDRESS with Envelope{timestamp, namespace, topic, event Any whose
// type_url is the bare full name, e.g. "containerd.events.TaskExit"} and
// metadata containerd-namespace-ttrpc: <namespace>.
//
// Like containerd's Go publisher: 5 s per call, reconnect and retry once
// when the connection was closed, a queue of 2048 events, and a failed
// event retried up to 5 times with count x 1 s between tries. Unlike it, a
// retried event stays at the head of the queue, so events keep their order
// (containerd expects /tasks/exit before /tasks/delete).
#ifndef CLOAK_SHIM_TTRPC_EVENTS_PUBLISHER_H_
#define CLOAK_SHIM_TTRPC_EVENTS_PUBLISHER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace google::protobuf {
class Message;
}  // namespace google::protobuf

namespace spdlog {
class logger;
}  // namespace spdlog

namespace cloak::ttrpc {

class Client;

inline constexpr absl::string_view kEventsService = "containerd.services.events.ttrpc.v1.Events";
inline constexpr absl::string_view kEventsForwardMethod = "Forward";

struct EventsPublisherOptions {
  // containerd's ttrpc socket ($TTRPC_ADDRESS), path or unix:// address.
  std::string address;
  // The shim's -namespace; goes into the envelope and the metadata.
  std::string namespace_name;
  absl::Duration call_timeout = absl::Seconds(5);
  size_t queue_capacity = 2048;
  // Retries of a failed queued event; the n-th waits n x retry_delay_unit.
  int max_retries = 5;
  absl::Duration retry_delay_unit = absl::Seconds(1);
  // How long Close() keeps sending what is still queued.
  absl::Duration close_drain_timeout = absl::Seconds(5);
};

// containerd's identifier rule: [A-Za-z0-9]+ joined by single '.', '_' or
// '-', at most 76 characters. InvalidArgument otherwise.
absl::Status ValidateIdentifier(absl::string_view id);
// A topic starts with '/' and each '/'-separated component is an identifier.
absl::Status ValidateTopic(absl::string_view topic);

// The serialized ForwardRequest for one event (pure; used by the publisher
// and by tests).
absl::StatusOr<std::string> EncodeForwardRequest(absl::string_view namespace_name,
                                                 absl::string_view topic,
                                                 const google::protobuf::Message& event,
                                                 absl::Time timestamp);

class EventsPublisher {
 public:
  // Validates the options and starts the background sender. Connects
  // lazily, so containerd need not be up yet.
  static absl::StatusOr<std::unique_ptr<EventsPublisher>> Create(EventsPublisherOptions options);
  // Close().
  ~EventsPublisher();
  EventsPublisher(const EventsPublisher&) = delete;
  EventsPublisher& operator=(const EventsPublisher&) = delete;

  // Sends one event now and returns the outcome (no queueing, no retry
  // beyond the reconnect-once rule). Stamped with the current time.
  absl::Status Publish(absl::string_view topic, const google::protobuf::Message& event);

  // Queues one event for the background sender, stamped now.
  // ResourceExhausted when the queue is full, FailedPrecondition after Close.
  absl::Status Enqueue(absl::string_view topic, const google::protobuf::Message& event);

  // Waits until every queued event was sent or given up. DeadlineExceeded
  // if that takes longer than `timeout`.
  absl::Status Flush(absl::Duration timeout);

  // Stops taking events, keeps sending queued ones for at most
  // close_drain_timeout, then stops the sender and closes the connection.
  void Close();

  // Events sent successfully / given up, since creation.
  uint64_t sent_count() const;
  uint64_t dropped_count() const;

 private:
  struct Item {
    std::string topic;
    std::string request;  // serialized ForwardRequest
    int retries = 0;
    absl::Time not_before = absl::InfinitePast();
  };

  explicit EventsPublisher(EventsPublisherOptions options);
  void SendLoop();
  // One Forward call, reconnecting and retrying once on a closed connection.
  absl::Status Send(const std::string& request);
  absl::StatusOr<std::shared_ptr<Client>> GetClient();
  void DropClient(const std::shared_ptr<Client>& client);

  const EventsPublisherOptions options_;
  const std::shared_ptr<spdlog::logger> log_;

  absl::Mutex client_mu_;
  std::shared_ptr<Client> client_ ABSL_GUARDED_BY(client_mu_);

  mutable absl::Mutex mu_;
  absl::CondVar cv_;  // queue changed, or closing
  // The sender keeps the event it is sending at the front until done.
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time drain_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  uint64_t sent_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Mutex close_mu_;
  std::thread sender_ ABSL_GUARDED_BY(close_mu_);
};

}  // namespace cloak::ttrpc

#endif  // CLOAK_SHIM_TTRPC_EVENTS_PUBLISHER_H_
