#include "shim/events.h"

#include "common/logging.h"
#include "spdlog/spdlog.h"

namespace cloak::shim {

void PublisherEventSink::Publish(absl::string_view topic, const google::protobuf::Message& event) {
  if (publisher_ == nullptr) {
    Logger("shim")->debug("event {} dropped: no TTRPC_ADDRESS to publish to", std::string(topic));
    return;
  }
  absl::Status s = publisher_->Enqueue(topic, event);
  if (!s.ok()) Logger("shim")->error("event {} not queued: {}", std::string(topic), s.ToString());
}

}  // namespace cloak::shim
