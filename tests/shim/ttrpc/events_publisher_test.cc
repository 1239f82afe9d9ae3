// The events publisher against a fake containerd Events service served by
// our own ttrpc server.
#include "shim/ttrpc/events_publisher.h"

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/temp_dir.h"
#include "shim/ttrpc/server.h"
#include "containerd/events/task.pb.h"
#include "containerd/services/events/ttrpc/v1/events.pb.h"
#include "google/protobuf/empty.pb.h"
#include "gtest/gtest.h"

namespace cloak::ttrpc {
namespace {

using containerd::services::events::ttrpc::v1::ForwardRequest;

struct Received {
  ForwardRequest request;
  std::string namespace_metadata;
  absl::Time deadline;
};

// A stand-in for containerd's `<address>.ttrpc` Events service.
class FakeContainerd {
 public:
  explicit FakeContainerd(std::string path) : path_(std::move(path)) {}
  ~FakeContainerd() { Stop(); }

  void Start(absl::StatusCode answer = absl::StatusCode::kOk) {
    auto s = Server::Create();
    ASSERT_TRUE(s.ok());
    server_ = std::move(*s);
    server_->RegisterTypedMethod<ForwardRequest, google::protobuf::Empty>(
        kEventsService, kEventsForwardMethod,
        [this, answer](const RequestContext& ctx,
                       const ForwardRequest& r) -> absl::StatusOr<google::protobuf::Empty> {
          if (answer != absl::StatusCode::kOk) return absl::Status(answer, "refused");
          absl::MutexLock lock(&mu_);
          received_.push_back({r, ctx.Namespace(), ctx.deadline});
          return google::protobuf::Empty();
        });
    ASSERT_TRUE(server_->Listen(path_).ok());
  }
  void Stop() {
    if (server_) server_->Shutdown();
    server_.reset();
  }
  std::vector<Received> received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }

 private:
  std::string path_;
  std::unique_ptr<Server> server_;
  absl::Mutex mu_;
  std::vector<Received> received_ ABSL_GUARDED_BY(mu_);
};

class ttrpc_events : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("ck-ev-");
    ASSERT_TRUE(dir.ok());
    dir_ = std::make_unique<TempDir>(std::move(*dir));
    path_ = dir_->Join("containerd.sock.ttrpc");
    fake_ = std::make_unique<FakeContainerd>(path_);
  }

  EventsPublisherOptions Options() {
    EventsPublisherOptions o;
    o.address = "unix://" + path_;
    o.namespace_name = "default";
    o.retry_delay_unit = absl::Milliseconds(50);
    return o;
  }

  static containerd::events::TaskExit Exit(const std::string& id) {
    containerd::events::TaskExit e;
    e.set_container_id(id);
    e.set_id(id);
    e.set_pid(42);
    e.set_exit_status(3);
    return e;
  }

  std::unique_ptr<TempDir> dir_;
  std::string path_;
  std::unique_ptr<FakeContainerd> fake_;
};

TEST_F(ttrpc_events, PublishSendsContainerdEnvelope) {
  fake_->Start();
  auto p = EventsPublisher::Create(Options());
  ASSERT_TRUE(p.ok()) << p.status();
  const absl::Time before = absl::Now();
  ASSERT_TRUE((*p)->Publish("/tasks/exit", Exit("c1")).ok());
  auto got = fake_->received();
  ASSERT_EQ(got.size(), 1u);
  const auto& env = got[0].request.envelope();
  EXPECT_EQ(env.namespace_(), "default");
  EXPECT_EQ(env.topic(), "/tasks/exit");
  EXPECT_EQ(env.event().type_url(), "containerd.events.TaskExit");
  containerd::events::TaskExit decoded;
  ASSERT_TRUE(decoded.ParseFromString(env.event().value()));
  EXPECT_EQ(decoded.container_id(), "c1");
  EXPECT_EQ(decoded.exit_status(), 3u);
  const absl::Time stamp =
      absl::FromUnixSeconds(env.timestamp().seconds()) + absl::Nanoseconds(env.timestamp().nanos());
  EXPECT_GE(stamp, before - absl::Seconds(1));
  EXPECT_LE(stamp, absl::Now() + absl::Seconds(1));
  EXPECT_EQ(got[0].namespace_metadata, "default");
  // 5 s per-call timeout travels as timeout_nano.
  EXPECT_LE(got[0].deadline, absl::Now() + absl::Seconds(5));
  EXPECT_GT(got[0].deadline, absl::Now() + absl::Seconds(3));
  EXPECT_EQ((*p)->sent_count(), 1u);
}

TEST_F(ttrpc_events, ReconnectsAfterContainerdRestart) {
  fake_->Start();
  auto p = EventsPublisher::Create(Options());
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE((*p)->Publish("/tasks/start", Exit("a")).ok());
  fake_->Stop();
  fake_->Start();
  ASSERT_TRUE((*p)->Publish("/tasks/exit", Exit("b")).ok());
  auto got = fake_->received();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].request.envelope().topic(), "/tasks/exit");
}

TEST_F(ttrpc_events, PublishErrorsAreReturned) {
  auto p = EventsPublisher::Create(Options());
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE((*p)->Publish("/tasks/exit", Exit("x")).ok()) << "nobody listening";
  fake_->Start(absl::StatusCode::kInvalidArgument);
  absl::Status s = (*p)->Publish("/tasks/exit", Exit("x"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ((*p)->Publish("tasks/exit", Exit("x")).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ttrpc_events, QueuedEventsAreRetriedUntilContainerdIsUp) {
  auto p = EventsPublisher::Create(Options());
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE((*p)->Enqueue("/tasks/create", Exit("one")).ok());
  ASSERT_TRUE((*p)->Enqueue("/tasks/exit", Exit("two")).ok());
  absl::SleepFor(absl::Milliseconds(120));  // first tries fail: nothing listens yet
  fake_->Start();
  ASSERT_TRUE((*p)->Flush(absl::Seconds(10)).ok());
  auto got = fake_->received();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].request.envelope().topic(), "/tasks/create") << "order is kept";
  EXPECT_EQ(got[1].request.envelope().topic(), "/tasks/exit");
  EXPECT_EQ((*p)->sent_count(), 2u);
  EXPECT_EQ((*p)->dropped_count(), 0u);
}

TEST_F(ttrpc_events, GivesUpAfterMaxRetries) {
  EventsPublisherOptions o = Options();
  o.max_retries = 2;
  o.retry_delay_unit = absl::Milliseconds(10);
  auto p = EventsPublisher::Create(o);
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE((*p)->Enqueue("/tasks/exit", Exit("lost")).ok());
  ASSERT_TRUE((*p)->Flush(absl::Seconds(5)).ok());
  EXPECT_EQ((*p)->dropped_count(), 1u);
  EXPECT_EQ((*p)->sent_count(), 0u);
}

TEST_F(ttrpc_events, QueueIsBounded) {
  EventsPublisherOptions o = Options();
  o.queue_capacity = 2;
  o.retry_delay_unit = absl::Seconds(10);  // keep the head stuck
  o.close_drain_timeout = absl::ZeroDuration();
  auto p = EventsPublisher::Create(o);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE((*p)->Enqueue("/tasks/exit", Exit("1")).ok());
  EXPECT_TRUE((*p)->Enqueue("/tasks/exit", Exit("2")).ok());
  EXPECT_EQ((*p)->Enqueue("/tasks/exit", Exit("3")).code(), absl::StatusCode::kResourceExhausted);
  (*p)->Close();
  EXPECT_EQ((*p)->Enqueue("/tasks/exit", Exit("4")).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ttrpc_events_validation, IdentifiersAndTopics) {
  for (const char* ok : {"default", "k8s.io", "a", "a-b_c.d", "ABC123"}) {
    EXPECT_TRUE(ValidateIdentifier(ok).ok()) << ok;
  }
  for (const char* bad : {"", "-a", "a-", "a..b", "a b", "a/b", "é"}) {
    EXPECT_FALSE(ValidateIdentifier(bad).ok()) << bad;
  }
  EXPECT_FALSE(ValidateIdentifier(std::string(77, 'a')).ok());
  for (const char* ok : {"/tasks/exit", "/tasks/exec-added", "/x"}) {
    EXPECT_TRUE(ValidateTopic(ok).ok()) << ok;
  }
  for (const char* bad : {"", "/", "tasks/exit", "/tasks//exit", "/tasks/exit/"}) {
    EXPECT_FALSE(ValidateTopic(bad).ok()) << bad;
  }
}

TEST(ttrpc_events_validation, EncodeForwardRequest) {
  containerd::events::TaskOOM oom;
  oom.set_container_id("c");
  auto bytes = EncodeForwardRequest("ns1", "/tasks/oom", oom, absl::FromUnixNanos(1500000000123));
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ForwardRequest r;
  ASSERT_TRUE(r.ParseFromString(*bytes));
  EXPECT_EQ(r.envelope().timestamp().seconds(), 1500);
  EXPECT_EQ(r.envelope().timestamp().nanos(), 123);
  EXPECT_EQ(r.envelope().event().type_url(), "containerd.events.TaskOOM");
  EXPECT_FALSE(EncodeForwardRequest("bad ns", "/tasks/oom", oom, absl::Now()).ok());
}

}  // namespace
}  // namespace cloak::ttrpc
