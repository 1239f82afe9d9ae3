// Where the Task service sends containerd events (docs/shim.md, "Contract: events"). The
// production sink queues them, in order, on the ttrpc events publisher to
// $TTRPC_ADDRESS; tests capture them.
#ifndef CLOAK_SHIM_EVENTS_H_
#define CLOAK_SHIM_EVENTS_H_

#include <memory>

#include "absl/strings/string_view.h"
#include "shim/ttrpc/events_publisher.h"
#include "google/protobuf/message.h"

namespace cloak::shim {

inline constexpr absl::string_view kTopicCreate = "/tasks/create";
inline constexpr absl::string_view kTopicStart = "/tasks/start";
inline constexpr absl::string_view kTopicExit = "/tasks/exit";
inline constexpr absl::string_view kTopicDelete = "/tasks/delete";
inline constexpr absl::string_view kTopicOom = "/tasks/oom";
inline constexpr absl::string_view kTopicExecAdded = "/tasks/exec-added";
inline constexpr absl::string_view kTopicExecStarted = "/tasks/exec-started";
inline constexpr absl::string_view kTopicPaused = "/tasks/paused";
inline constexpr absl::string_view kTopicResumed = "/tasks/resumed";

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Queues one event; events are delivered in the order published. Never
  // blocks for long and never fails the caller (failures are logged).
  virtual void Publish(absl::string_view topic, const google::protobuf::Message& event) = 0;
};

// Sink over ttrpc::EventsPublisher::Enqueue.
class PublisherEventSink final : public EventSink {
 public:
  explicit PublisherEventSink(ttrpc::EventsPublisher* publisher) : publisher_(publisher) {}
  void Publish(absl::string_view topic, const google::protobuf::Message& event) override;

 private:
  ttrpc::EventsPublisher* publisher_;  // not owned; may be null (events dropped)
};

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_EVENTS_H_
