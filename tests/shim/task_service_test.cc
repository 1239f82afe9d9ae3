// The Task service end to end through a real ttrpc client, against a fake
// agent (gRPC over a unix socket) and a fake hypervisor.
#include "shim/task_service.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/fd.h"
#include "common/temp_dir.h"
#include "shim/ttrpc/client.h"
#include "shim/ttrpc/server.h"
#include "containerd/events/task.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "shim/proto/cgroups_metrics.pb.h"
#include "shim/proto/runtime_options.pb.h"
#include "shim/shim_process.h"
#include "shim/task_translate.h"
#include "tests/shim/fake_agent.h"

namespace cloak::shim {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using google::protobuf::Empty;
namespace events = ::containerd::events;

struct Event {
  std::string topic;
  std::string container_id;
  std::string id;  // exit: process id; exec events: exec id
  uint32_t exit_status = 0;
  std::string Summary() const {
    std::string s = absl::StrCat(topic, " ", container_id);
    if (!id.empty()) absl::StrAppend(&s, " ", id);
    if (topic == "/tasks/exit") absl::StrAppend(&s, " ", exit_status);
    return s;
  }
};

class CaptureSink final : public EventSink {
 public:
  void Publish(absl::string_view topic, const google::protobuf::Message& m) override {
    Event e;
    e.topic = std::string(topic);
    if (auto* x = dynamic_cast<const events::TaskExit*>(&m)) {
      e.container_id = x->container_id();
      e.id = x->id();
      e.exit_status = x->exit_status();
    } else if (auto* c = dynamic_cast<const events::TaskCreate*>(&m)) {
      e.container_id = c->container_id();
    } else if (auto* s = dynamic_cast<const events::TaskStart*>(&m)) {
      e.container_id = s->container_id();
    } else if (auto* d = dynamic_cast<const events::TaskDelete*>(&m)) {
      e.container_id = d->container_id();
    } else if (auto* a = dynamic_cast<const events::TaskExecAdded*>(&m)) {
      e.container_id = a->container_id();
      e.id = a->exec_id();
    } else if (auto* es = dynamic_cast<const events::TaskExecStarted*>(&m)) {
      e.container_id = es->container_id();
      e.id = es->exec_id();
    } else if (auto* p = dynamic_cast<const events::TaskPaused*>(&m)) {
      e.container_id = p->container_id();
    } else if (auto* r = dynamic_cast<const events::TaskResumed*>(&m)) {
      e.container_id = r->container_id();
    } else if (auto* o = dynamic_cast<const events::TaskOOM*>(&m)) {
      e.container_id = o->container_id();
    }
    absl::MutexLock l(&mu_);
    events_.push_back(e);
  }
  std::vector<std::string> Summaries() {
    absl::MutexLock l(&mu_);
    std::vector<std::string> out;
    for (const Event& e : events_) out.push_back(e.Summary());
    return out;
  }
  bool WaitFor(const std::string& summary, absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      for (const std::string& s : Summaries()) {
        if (s == summary) return true;
      }
      if (absl::Now() >= deadline) return false;
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

 private:
  absl::Mutex mu_;
  std::vector<Event> events_;
};

// Reads a fifo until EOF on a thread: the client's end of a process's
// output.
//
// The read end is open when the constructor returns, before the test hands
// the path to Create or Exec. The shim opens its end O_RDWR and closes it
// once the process's output is drained; a reader that only opened after
// that (a blocking open on a thread that had not run yet, as happens on a
// loaded machine) would find neither the bytes, which go with the last open
// end, nor a writer to end its open, and WaitEof would time out with "".
// O_NONBLOCK keeps the open from waiting for a writer; the thread then
// polls, and Linux reports POLLHUP on a fifo only after a writer came and
// went, so a read of 0 bytes is the shim's EOF and never an early one.
class FifoReader {
 public:
  explicit FifoReader(std::string path) : path_(std::move(path)) {
    ::mkfifo(path_.c_str(), 0600);
    fd_.Reset(::open(path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    int stop[2] = {-1, -1};
    if (::pipe2(stop, O_CLOEXEC) == 0) {
      stop_read_.Reset(stop[0]);
      stop_write_.Reset(stop[1]);
    }
    if (!fd_ || !stop_read_) {
      ADD_FAILURE() << "cannot open the fifo " << path_ << " for reading: " << strerror(errno);
      return;
    }
    thread_ = std::thread([this] { ReadUntilEof(); });
  }
  ~FifoReader() {
    if (stop_write_) ::close(stop_write_.Release());  // ends a poll still waiting
    if (thread_.joinable()) thread_.join();
  }
  const std::string& path() const { return path_; }
  // The whole output once the writer closed (EOF).
  std::string WaitEof(absl::Duration timeout = absl::Seconds(10)) {
    eof_.WaitForNotificationWithTimeout(timeout);
    absl::MutexLock l(&mu_);
    return data_;
  }
  bool eof() const { return eof_.HasBeenNotified(); }

 private:
  void ReadUntilEof() {
    char buf[65536];
    while (true) {
      pollfd fds[2] = {{fd_.get(), POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) return;  // the reader is going away
      if (fds[0].revents == 0) continue;
      ssize_t n = ::read(fd_.get(), buf, sizeof(buf));
      if (n > 0) {
        absl::MutexLock l(&mu_);
        data_.append(buf, static_cast<size_t>(n));
      } else if (n == 0) {
        eof_.Notify();
        return;
      } else if (errno != EAGAIN && errno != EINTR) {
        return;
      }
    }
  }

  std::string path_;
  UniqueFd fd_;
  UniqueFd stop_read_;
  UniqueFd stop_write_;
  absl::Mutex mu_;
  std::string data_;
  absl::Notification eof_;
  std::thread thread_;
};

class TaskServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("ckt-", "/tmp");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(*dir));
    agent_ = std::make_unique<testing::FakeAgentServer>(dir_->Join("agent.sock"));
    hv_shared_ = std::make_shared<testing::FakeHypervisor::Shared>();
    TaskServiceOptions options;
    options.namespace_name = "default";
    options.events = &sink_;
    options.on_shutdown = [this] { shutdown_called_.Notify(); };
    // containerd's record of the containers made from an image (plain ctr run).
    options.image_lookup = [](const std::string& id) -> absl::StatusOr<ContainerImage> {
      if (id == "fromimage") {
        return ContainerImage{"127.0.0.1:5000/busybox:latest",
                              "sha256:" + std::string(64, 'a')};
      }
      if (id == "baddigest") return ContainerImage{"127.0.0.1:5000/busybox:latest", "md5:1"};
      return absl::NotFoundError(absl::StrCat("containerd: container ", id,
                                              " was made without an image (--rootfs)"));
    };
    options.sandbox_factory =
        [this](const SandboxRequest& req) -> absl::StatusOr<std::unique_ptr<Sandbox>> {
      last_config_path_ = req.config_path;
      auto hv = std::make_unique<testing::FakeHypervisor>(agent_->socket_path(), hv_shared_,
                                                          fail_vm_start_);
      {
        absl::MutexLock l(&hv_mu_);
        last_hv_ = hv.get();
      }
      SandboxOptions so;
      so.id = req.sandbox_id;
      so.state_dir = dir_->Join("state/" + req.sandbox_id);
      so.boot_timeout = absl::Seconds(5);
      so.request_timeout = absl::Seconds(5);
      so.health_interval = health_interval_;
      so.health_timeout = health_timeout_;
      return std::make_unique<Sandbox>(
          so, std::move(hv),
          [](const transport::AgentAddress& a,
             absl::Duration) -> absl::StatusOr<std::shared_ptr<grpc::Channel>> {
            return grpc::CreateChannel("unix:" + a.path,
                                       grpc::InsecureChannelCredentials());
          });
    };
    service_ = std::make_unique<TaskService>(std::move(options));
    auto server = ttrpc::Server::Create();
    ASSERT_TRUE(server.ok());
    server_ = std::move(*server);
    service_->Register(*server_);
    ASSERT_TRUE(server_->Listen(dir_->Join("shim.sock")).ok());
    auto client = ttrpc::Client::Connect(dir_->Join("shim.sock"));
    ASSERT_TRUE(client.ok());
    client_ = std::move(*client);
  }

  void TearDown() override {
    client_.reset();
    if (server_) server_->Shutdown();
    service_.reset();
    agent_.reset();
  }

  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(const std::string& method, const Req& req) {
    ttrpc::CallOptions o;
    o.timeout = absl::Seconds(30);
    o.metadata = {{"containerd-namespace-ttrpc", "default"}};
    return client_->Call<Req, Resp>(kTaskService, method, req, o);
  }

  // A bundle with config.json running `args`.
  std::string MakeBundle(const std::string& id, const std::vector<std::string>& args,
                         std::map<std::string, std::string> annotations = {
                             {"io.cloak.image", "127.0.0.1:5000/busybox:latest"}}) {
    std::string bundle = dir_->Join("bundles/" + id);
    std::filesystem::create_directories(bundle);
    nlohmann::json spec;
    spec["ociVersion"] = "1.0.2";
    spec["process"]["args"] = args;
    spec["annotations"] = annotations;
    std::ofstream(bundle + "/config.json") << spec.dump();
    return bundle;
  }

  absl::StatusOr<uint32_t> Create(const std::string& id, const std::vector<std::string>& args,
                                  const std::string& out = "", const std::string& err = "",
                                  const std::string& in = "",
                                  std::map<std::string, std::string> annotations = {
                                      {"io.cloak.image", "127.0.0.1:5000/busybox:latest"}}) {
    taskapi::CreateTaskRequest req;
    req.set_id(id);
    req.set_bundle(MakeBundle(id, args, std::move(annotations)));
    req.set_stdout(out);
    req.set_stderr(err);
    req.set_stdin(in);
    auto r = Call<taskapi::CreateTaskRequest, taskapi::CreateTaskResponse>("Create", req);
    if (!r.ok()) return r.status();
    return r->pid();
  }
  absl::StatusOr<uint32_t> Start(const std::string& id, const std::string& exec = "") {
    taskapi::StartRequest req;
    req.set_id(id);
    req.set_exec_id(exec);
    auto r = Call<taskapi::StartRequest, taskapi::StartResponse>("Start", req);
    if (!r.ok()) return r.status();
    return r->pid();
  }
  absl::StatusOr<taskapi::WaitResponse> Wait(const std::string& id, const std::string& exec = "") {
    taskapi::WaitRequest req;
    req.set_id(id);
    req.set_exec_id(exec);
    return Call<taskapi::WaitRequest, taskapi::WaitResponse>("Wait", req);
  }
  absl::StatusOr<taskapi::DeleteResponse> Delete(const std::string& id,
                                                 const std::string& exec = "") {
    taskapi::DeleteRequest req;
    req.set_id(id);
    req.set_exec_id(exec);
    return Call<taskapi::DeleteRequest, taskapi::DeleteResponse>("Delete", req);
  }
  absl::StatusOr<taskapi::StateResponse> State(const std::string& id,
                                               const std::string& exec = "") {
    taskapi::StateRequest req;
    req.set_id(id);
    req.set_exec_id(exec);
    return Call<taskapi::StateRequest, taskapi::StateResponse>("State", req);
  }
  absl::Status Kill(const std::string& id, uint32_t sig, const std::string& exec = "",
                    bool all = false) {
    taskapi::KillRequest req;
    req.set_id(id);
    req.set_exec_id(exec);
    req.set_signal(sig);
    req.set_all(all);
    return Call<taskapi::KillRequest, Empty>("Kill", req).status();
  }
  absl::Status Exec(const std::string& id, const std::string& exec,
                    const std::vector<std::string>& args, const std::string& out = "") {
    taskapi::ExecProcessRequest req;
    req.set_id(id);
    req.set_exec_id(exec);
    req.set_stdout(out);
    nlohmann::json p;
    p["args"] = args;
    p["cwd"] = "/";
    req.mutable_spec()->set_type_url(std::string(kProcessSpecTypeUrl));
    req.mutable_spec()->set_value(p.dump());
    return Call<taskapi::ExecProcessRequest, Empty>("Exec", req).status();
  }
  absl::Status Shutdown() {
    taskapi::ShutdownRequest req;
    return Call<taskapi::ShutdownRequest, Empty>("Shutdown", req).status();
  }
  int HvStarts() {
    absl::MutexLock l(&hv_shared_->mu);
    return hv_shared_->starts;
  }
  int HvStops() {
    absl::MutexLock l(&hv_shared_->mu);
    return hv_shared_->stops;
  }

  std::optional<TempDir> dir_;
  std::unique_ptr<testing::FakeAgentServer> agent_;
  std::shared_ptr<testing::FakeHypervisor::Shared> hv_shared_;
  absl::Mutex hv_mu_;
  testing::FakeHypervisor* last_hv_ = nullptr;
  bool fail_vm_start_ = false;
  // SandboxOptions of the next sandbox made (the fixture's factory).
  absl::Duration health_interval_ = kDefaultHealthInterval;
  absl::Duration health_timeout_ = kDefaultHealthTimeout;
  std::string last_config_path_;
  CaptureSink sink_;
  absl::Notification shutdown_called_;
  std::unique_ptr<TaskService> service_;
  std::unique_ptr<ttrpc::Server> server_;
  std::unique_ptr<ttrpc::Client> client_;
};

TEST_F(TaskServiceTest, RunToCompletionWithOutputAndEventOrder) {
  FifoReader out(dir_->Join("c1-stdout"));
  FifoReader err(dir_->Join("c1-stderr"));
  auto pid = Create("c1", {"echo", "hello", "world"}, out.path(), err.path());
  ASSERT_TRUE(pid.ok()) << pid.status();
  EXPECT_GT(*pid, 0u);
  auto st = State("c1");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->status(), containerd::v1::types::CREATED);
  EXPECT_EQ(st->stdout(), out.path());
  ASSERT_TRUE(Start("c1").ok());
  auto w = Wait("c1");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->exit_status(), 0u);
  EXPECT_GT(w->exited_at().seconds(), 0);
  // The output is complete and closed before containerd deletes the task.
  EXPECT_EQ(out.WaitEof(), "hello world\n");
  EXPECT_EQ(err.WaitEof(), "err\n");
  st = State("c1");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->status(), containerd::v1::types::STOPPED);
  auto d = Delete("c1");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->exit_status(), 0u);
  EXPECT_THAT(sink_.Summaries(), ElementsAre("/tasks/create c1", "/tasks/start c1",
                                             "/tasks/exit c1 c1 0", "/tasks/delete c1"));
  EXPECT_EQ(State("c1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(HvStarts(), 1);
  EXPECT_EQ(HvStops(), 1);
  ASSERT_TRUE(Shutdown().ok());
  EXPECT_TRUE(shutdown_called_.HasBeenNotified());
  // The loopback registry is rewritten for the guest. Plain HTTP to it is
  // allowed through the kernel command line (tests/shim/sandbox_factory_test.cc), not
  // the spec.
  EXPECT_THAT(agent_->service().CreatedImages(), ElementsAre("10.0.2.2:5000/busybox:latest"));
  EXPECT_THAT(agent_->service().LastSpec("c1"), Not(HasSubstr("insecure_registries")));
}

TEST_F(TaskServiceTest, ExitCodeIsReported) {
  ASSERT_TRUE(Create("c7", {"exit", "7"}).ok());
  ASSERT_TRUE(Start("c7").ok());
  auto w = Wait("c7");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->exit_status(), 7u);
  auto d = Delete("c7");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->exit_status(), 7u);
}

// Plain `ctr run IMAGE ID`: no annotation, the image comes from containerd's
// record of the container, pinned to its digest; io.cloak.image overrides.
TEST_F(TaskServiceTest, ImageFromContainerdIsPulledByDigest) {
  ASSERT_TRUE(Create("fromimage", {"true"}, "", "", "", {}).ok());
  const std::string digest = "sha256:" + std::string(64, 'a');
  EXPECT_THAT(agent_->service().CreatedImages(),
              ElementsAre("10.0.2.2:5000/busybox:latest@" + digest));
  ASSERT_TRUE(Delete("fromimage").ok());
  // The annotation wins over containerd's record.
  ASSERT_TRUE(
      Create("fromimage", {"true"}, "", "", "", {{"io.cloak.image", "127.0.0.1:5000/other:1"}})
          .ok());
  EXPECT_THAT(agent_->service().CreatedImages(),
              ElementsAre("10.0.2.2:5000/busybox:latest@" + digest, "10.0.2.2:5000/other:1"));
  ASSERT_TRUE(Delete("fromimage").ok());
}

TEST_F(TaskServiceTest, ErrorCodes) {
  EXPECT_EQ(State("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Kill("nope", 15).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Delete("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Wait("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Start("nope").status().code(), absl::StatusCode::kNotFound);

  auto no_image = Create("noimg", {"true"}, "", "", "", {});
  EXPECT_EQ(no_image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(no_image.status().message(), HasSubstr("--annotation io.cloak.image=REF"));
  EXPECT_THAT(no_image.status().message(), HasSubstr("made without an image (--rootfs)"));
  auto bad_digest = Create("baddigest", {"true"}, "", "", "", {});
  EXPECT_EQ(bad_digest.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_digest.status().message(), HasSubstr("not sha256:<64 hex digits>"));
  EXPECT_EQ(HvStarts(), 0);  // refused before any VM started

  auto missing = Create("miss", {"true"}, "", "", "", {{"io.cloak.image", "missing:latest"}});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("manifest unknown"));
  EXPECT_EQ(HvStarts(), HvStops());  // its VM was stopped again

  ASSERT_TRUE(Create("c1", {"sleep"}).ok());
  EXPECT_EQ(Create("c1", {"sleep"}).status().code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(Start("c1").ok());
  EXPECT_EQ(Start("c1").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Delete("c1").status().code(), absl::StatusCode::kFailedPrecondition);
  auto checkpoint =
      Call<taskapi::CheckpointTaskRequest, Empty>("Checkpoint", taskapi::CheckpointTaskRequest());
  EXPECT_EQ(checkpoint.status().code(), absl::StatusCode::kUnimplemented);
  ASSERT_TRUE(Kill("c1", 9).ok());
  ASSERT_TRUE(Wait("c1").ok());
  EXPECT_EQ(Kill("c1", 9).code(), absl::StatusCode::kNotFound);  // already finished
  ASSERT_TRUE(Delete("c1").ok());
}

TEST_F(TaskServiceTest, ExecLifecycleAndInitExitLast) {
  ASSERT_TRUE(Create("c1", {"sleep"}).ok());
  ASSERT_TRUE(Start("c1").ok());
  FifoReader eout(dir_->Join("e1-stdout"));
  ASSERT_TRUE(Exec("c1", "e1", {"echo", "from", "exec"}, eout.path()).ok());
  EXPECT_EQ(Exec("c1", "e1", {"echo"}).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Exec("nope", "e9", {"echo"}).code(), absl::StatusCode::kNotFound);
  auto st = State("c1", "e1");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->status(), containerd::v1::types::CREATED);
  ASSERT_TRUE(Start("c1", "e1").ok());
  auto w = Wait("c1", "e1");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->exit_status(), 0u);
  EXPECT_EQ(eout.WaitEof(), "from exec\n");
  ASSERT_TRUE(Delete("c1", "e1").ok());
  EXPECT_EQ(State("c1", "e1").status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(Exec("c1", "e2", {"sleep"}).ok());
  ASSERT_TRUE(Start("c1", "e2").ok());
  ASSERT_TRUE(Kill("c1", SIGTERM, "", /*all=*/true).ok());
  auto wi = Wait("c1");
  ASSERT_TRUE(wi.ok());
  EXPECT_EQ(wi->exit_status(), 128u + SIGTERM);
  ASSERT_TRUE(Delete("c1").ok());
  EXPECT_THAT(sink_.Summaries(),
              ElementsAre("/tasks/create c1", "/tasks/start c1", "/tasks/exec-added c1 e1",
                          "/tasks/exec-started c1 e1", "/tasks/exit c1 e1 0",
                          "/tasks/exec-added c1 e2", "/tasks/exec-started c1 e2",
                          "/tasks/exit c1 e2 143", "/tasks/exit c1 c1 143",
                          "/tasks/delete c1"));
}

TEST_F(TaskServiceTest, WaitBlocksWithoutStallingOtherCalls) {
  ASSERT_TRUE(Create("c1", {"sleep"}).ok());
  ASSERT_TRUE(Start("c1").ok());
  std::atomic<int> done{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&] {
      auto w = Wait("c1");
      if (w.ok() && w->exit_status() == 137u) ++done;
    });
  }
  absl::SleepFor(absl::Milliseconds(100));
  for (int i = 0; i < 5; ++i) {
    auto st = State("c1");
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->status(), containerd::v1::types::RUNNING);
    auto pids = Call<taskapi::PidsRequest, taskapi::PidsResponse>("Pids", [] {
      taskapi::PidsRequest r;
      r.set_id("c1");
      return r;
    }());
    ASSERT_TRUE(pids.ok());
    EXPECT_EQ(pids->processes_size(), 1);
  }
  EXPECT_EQ(done.load(), 0);
  taskapi::ConnectRequest cr;
  cr.set_id("c1");
  auto conn = Call<taskapi::ConnectRequest, taskapi::ConnectResponse>("Connect", cr);
  ASSERT_TRUE(conn.ok());
  EXPECT_EQ(conn->shim_pid(), static_cast<uint32_t>(::getpid()));
  EXPECT_GT(conn->task_pid(), 0u);
  ASSERT_TRUE(Kill("c1", SIGKILL).ok());
  for (auto& t : waiters) t.join();
  EXPECT_EQ(done.load(), 3);
  ASSERT_TRUE(Delete("c1").ok());
}

TEST_F(TaskServiceTest, PauseResumeStatsOomUpdate) {
  ASSERT_TRUE(Create("c1", {"sleep"}).ok());
  taskapi::PauseRequest pr;
  pr.set_id("c1");
  auto early = Call<taskapi::PauseRequest, Empty>("Pause", pr);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);  // not running yet
  ASSERT_TRUE(Start("c1").ok());
  ASSERT_TRUE((Call<taskapi::PauseRequest, Empty>("Pause", pr).ok()));
  EXPECT_EQ(State("c1")->status(), containerd::v1::types::PAUSED);
  taskapi::ResumeRequest rr;
  rr.set_id("c1");
  ASSERT_TRUE((Call<taskapi::ResumeRequest, Empty>("Resume", rr).ok()));
  EXPECT_EQ(State("c1")->status(), containerd::v1::types::RUNNING);

  taskapi::StatsRequest sr;
  sr.set_id("c1");
  auto stats = Call<taskapi::StatsRequest, taskapi::StatsResponse>("Stats", sr);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->stats().type_url(), "io.containerd.cgroups.v2.Metrics");
  io::containerd::cgroups::v2::Metrics m;
  ASSERT_TRUE(m.ParseFromString(stats->stats().value()));
  EXPECT_EQ(m.cpu().usage_usec(), 1234u);

  taskapi::UpdateTaskRequest ur;
  ur.set_id("c1");
  ur.mutable_resources()->set_type_url(std::string(kLinuxResourcesTypeUrl));
  ur.mutable_resources()->set_value(R"({"memory":{"limit":67108864}})");
  EXPECT_TRUE((Call<taskapi::UpdateTaskRequest, Empty>("Update", ur).ok()));

  agent_->service().InjectOom("c1");
  EXPECT_TRUE(sink_.WaitFor("/tasks/oom c1"));
  ASSERT_TRUE(Kill("c1", SIGKILL).ok());
  ASSERT_TRUE(Wait("c1").ok());
  ASSERT_TRUE(Delete("c1").ok());
  EXPECT_TRUE(sink_.WaitFor("/tasks/paused c1", absl::ZeroDuration()));
  EXPECT_TRUE(sink_.WaitFor("/tasks/resumed c1", absl::ZeroDuration()));
}

TEST_F(TaskServiceTest, StdinIsForwardedAndClosed) {
  FifoReader out(dir_->Join("cat-stdout"));
  const std::string in = dir_->Join("cat-stdin");
  ASSERT_EQ(::mkfifo(in.c_str(), 0600), 0);
  ASSERT_TRUE(Create("cat", {"cat"}, out.path(), "", in).ok());
  ASSERT_TRUE(Start("cat").ok());
  int w = ::open(in.c_str(), O_WRONLY);
  ASSERT_GE(w, 0);
  ASSERT_EQ(::write(w, "abc\n", 4), 4);
  ::close(w);  // EOF → CloseStdin → cat exits
  auto wr = Wait("cat");
  ASSERT_TRUE(wr.ok());
  EXPECT_EQ(wr->exit_status(), 0u);
  EXPECT_EQ(out.WaitEof(), "abc\n");
  ASSERT_TRUE(Delete("cat").ok());
}

TEST_F(TaskServiceTest, LargeOutputIsNotLost) {
  FifoReader out(dir_->Join("big-stdout"));
  ASSERT_TRUE(Create("big", {"spew", "1000000"}, out.path()).ok());
  ASSERT_TRUE(Start("big").ok());
  ASSERT_TRUE(Wait("big").ok());
  EXPECT_EQ(out.WaitEof().size(), 1000000u);
  ASSERT_TRUE(Delete("big").ok());
}

TEST_F(TaskServiceTest, VmCrashReportsExitsAndTasksStayDeletable) {
  ASSERT_TRUE(Create("c1", {"sleep"}).ok());
  ASSERT_TRUE(Start("c1").ok());
  ASSERT_TRUE(Exec("c1", "e1", {"sleep"}).ok());
  ASSERT_TRUE(Start("c1", "e1").ok());
  ASSERT_TRUE(Exec("c1", "e2", {"sleep"}).ok());  // never started
  agent_->Shutdown();                              // the guest is gone with the VM
  {
    absl::MutexLock l(&hv_mu_);
    last_hv_->Crash();
  }
  auto w = Wait("c1");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->exit_status(), kLostExitStatus);
  EXPECT_EQ(Kill("c1", 9).code(), absl::StatusCode::kNotFound);
  // Events are published asynchronously: wait for init's.
  ASSERT_TRUE(sink_.WaitFor("/tasks/exit c1 c1 255", absl::Seconds(10)));
  auto s = sink_.Summaries();
  // init's exit is last (the exec that never started reports none).
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s.back(), "/tasks/exit c1 c1 255");
  EXPECT_TRUE(sink_.WaitFor("/tasks/exit c1 e1 255", absl::ZeroDuration()));
  ASSERT_TRUE(Delete("c1", "e1").ok());
  ASSERT_TRUE(Delete("c1").ok());
  ASSERT_TRUE(Shutdown().ok());
  EXPECT_TRUE(shutdown_called_.HasBeenNotified());
}

// A hung guest (SIGSTOP of its VMM): the kill is not left waiting for the
// agent's request deadline. After health_timeout without an answer and a
// failed health probe the VM is stopped, the kill succeeds, every task
// reports its exit, and the tasks are deletable.
TEST_F(TaskServiceTest, HungAgentKillStopsTheVmAndReportsExits) {
  health_timeout_ = absl::Milliseconds(300);
  ASSERT_TRUE(Create("c1", {"sleep"}).ok());
  ASSERT_TRUE(Start("c1").ok());
  ASSERT_TRUE(Exec("c1", "e1", {"sleep"}).ok());
  ASSERT_TRUE(Start("c1", "e1").ok());
  agent_->service().Hang();
  const absl::Time start = absl::Now();
  absl::Status killed = Kill("c1", 9);
  const absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(killed.ok()) << killed;
  // One silent health_timeout for the signal, one for the probe; far below
  // the request deadline (5 s here, 30 s by default).
  EXPECT_GE(took, absl::Milliseconds(550));
  EXPECT_LT(took, absl::Seconds(3));
  // The kill is answered first; the VM is stopped and the exits published
  // just after.
  ASSERT_TRUE(sink_.WaitFor("/tasks/exit c1 c1 255", absl::Seconds(10)));
  EXPECT_TRUE(sink_.WaitFor("/tasks/exit c1 e1 255", absl::ZeroDuration()));
  {
    absl::MutexLock l(&hv_shared_->mu);
    EXPECT_EQ(hv_shared_->stops, 1);
  }
  auto w = Wait("c1");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->exit_status(), kLostExitStatus);
  // The sandbox is dead: a second kill finds nothing to signal.
  EXPECT_EQ(Kill("c1", 9).code(), absl::StatusCode::kNotFound);
  const absl::Time del = absl::Now();
  ASSERT_TRUE(Delete("c1", "e1").ok());
  ASSERT_TRUE(Delete("c1").ok());
  EXPECT_LT(absl::Now() - del, absl::Seconds(2));
  ASSERT_TRUE(Shutdown().ok());
  EXPECT_TRUE(shutdown_called_.HasBeenNotified());
}

// The periodic health check finds a hung agent without any request from
// containerd: the tasks exit and the VM is stopped.
TEST_F(TaskServiceTest, HealthCheckFindsAHungAgent) {
  health_interval_ = absl::Milliseconds(200);
  health_timeout_ = absl::Milliseconds(300);
  ASSERT_TRUE(Create("c1", {"sleep"}).ok());
  ASSERT_TRUE(Start("c1").ok());
  // A healthy agent is probed and left alone.
  absl::SleepFor(absl::Seconds(1));
  {
    absl::MutexLock l(&hv_shared_->mu);
    EXPECT_EQ(hv_shared_->stops, 0);
  }
  EXPECT_THAT(sink_.Summaries(), Not(::testing::Contains(HasSubstr("/tasks/exit"))));
  const absl::Time hung = absl::Now();
  agent_->service().Hang();
  ASSERT_TRUE(sink_.WaitFor("/tasks/exit c1 c1 255", absl::Seconds(10)));
  // Within one interval and one probe's timeout (plus scheduling).
  EXPECT_LT(absl::Now() - hung, absl::Seconds(2));
  {
    absl::MutexLock l(&hv_shared_->mu);
    EXPECT_EQ(hv_shared_->stops, 1);
  }
  EXPECT_EQ(Kill("c1", 9).code(), absl::StatusCode::kNotFound);
  const absl::Time del = absl::Now();
  ASSERT_TRUE(Delete("c1").ok());
  EXPECT_LT(absl::Now() - del, absl::Seconds(2));
}

// An agent that answers is probed many times and left alone; a kill is
// delivered by the agent as usual.
TEST_F(TaskServiceTest, HealthyAgentIsNotStopped) {
  health_interval_ = absl::Milliseconds(100);
  health_timeout_ = absl::Milliseconds(300);
  ASSERT_TRUE(Create("c1", {"sleep"}).ok());
  ASSERT_TRUE(Start("c1").ok());
  absl::SleepFor(absl::Seconds(1));
  ASSERT_TRUE(Kill("c1", 15).ok());
  ASSERT_TRUE(sink_.WaitFor("/tasks/exit c1 c1 143", absl::Seconds(10)));
  {
    absl::MutexLock l(&hv_shared_->mu);
    EXPECT_EQ(hv_shared_->stops, 0);
  }
  ASSERT_TRUE(Delete("c1").ok());
}

TEST_F(TaskServiceTest, PodContainersShareOneVm) {
  std::map<std::string, std::string> sandbox = {{"io.kubernetes.cri.container-type", "sandbox"},
                                                {"io.kubernetes.cri.sandbox-id", "pod1"}};
  std::map<std::string, std::string> app = {{"io.kubernetes.cri.container-type", "container"},
                                            {"io.kubernetes.cri.sandbox-id", "pod1"},
                                            {"io.kubernetes.cri.image-name", "docker.io/library/busybox:1"}};
  ASSERT_TRUE(Create("pod1", {"pause"}, "", "", "", sandbox).ok());
  ASSERT_TRUE(Start("pod1").ok());
  auto app_missing = Create("app0", {"sleep"}, "", "", "",
                            {{"io.kubernetes.cri.container-type", "container"},
                             {"io.kubernetes.cri.sandbox-id", "other"},
                             {"io.kubernetes.cri.image-name", "x"}});
  EXPECT_EQ(app_missing.status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(Create("app1", {"sleep"}, "", "", "", app).ok());
  ASSERT_TRUE(Start("app1").ok());
  EXPECT_EQ(HvStarts(), 1);
  EXPECT_EQ(agent_->service().sandboxes_created(), 1);
  // Shutdown with containers left keeps the shim.
  ASSERT_TRUE(Shutdown().ok());
  EXPECT_FALSE(shutdown_called_.HasBeenNotified());
  // Stopping the pod's sandbox stops everything in it.
  ASSERT_TRUE(Kill("pod1", SIGKILL).ok());
  ASSERT_TRUE(Wait("pod1").ok());
  ASSERT_TRUE(Delete("pod1").ok());
  EXPECT_EQ(HvStops(), 1);
  auto w = Wait("app1");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(Delete("app1").ok());
  ASSERT_TRUE(Shutdown().ok());
  EXPECT_TRUE(shutdown_called_.HasBeenNotified());
}

// containerd stopped or restarted while a Create booted the pod's VM: the
// connection that asked closed before the answer, so containerd never
// learns of the task. The create is undone (the VM stopped, its state dir
// gone, no /tasks/create), and the shim, holding nothing, exits by itself.
TEST_F(TaskServiceTest, CreateWhoseConnectionClosedIsUndoneAndTheShimExits) {
  taskapi::CreateTaskRequest req;
  req.set_id("c1");
  req.set_bundle(MakeBundle("c1", {"sleep"}));
  ttrpc::RequestContext gone;
  gone.cancelled = std::make_shared<absl::Notification>();
  gone.cancelled->Notify();
  absl::StatusOr<taskapi::CreateTaskResponse> r = service_->Create(gone, req);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(r.status().message(), HasSubstr("containerd's connection closed"));
  EXPECT_EQ(HvStarts(), 1);
  EXPECT_EQ(HvStops(), 1);
  EXPECT_FALSE(std::filesystem::exists(dir_->Join("state/c1")));
  EXPECT_EQ(State("c1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(shutdown_called_.HasBeenNotified());
  for (const std::string& e : sink_.Summaries()) {
    EXPECT_THAT(e, ::testing::Not(HasSubstr("/tasks/create")));
  }
}

// The same for an app container of a running pod: only that container is
// undone; the pod's VM and the shim stay.
TEST_F(TaskServiceTest, AbandonedAppContainerCreateLeavesThePodRunning) {
  std::map<std::string, std::string> sandbox = {{"io.kubernetes.cri.container-type", "sandbox"},
                                                {"io.kubernetes.cri.sandbox-id", "pod1"}};
  ASSERT_TRUE(Create("pod1", {"pause"}, "", "", "", sandbox).ok());
  ASSERT_TRUE(Start("pod1").ok());
  taskapi::CreateTaskRequest req;
  req.set_id("app1");
  req.set_bundle(MakeBundle("app1", {"sleep"},
                            {{"io.kubernetes.cri.container-type", "container"},
                             {"io.kubernetes.cri.sandbox-id", "pod1"},
                             {"io.kubernetes.cri.image-name", "docker.io/library/busybox:1"}}));
  ttrpc::RequestContext gone;
  gone.cancelled = std::make_shared<absl::Notification>();
  gone.cancelled->Notify();
  EXPECT_EQ(service_->Create(gone, req).status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(State("app1").status().code(), absl::StatusCode::kNotFound);
  auto pod = State("pod1");
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ(pod->status(), containerd::v1::types::RUNNING);
  EXPECT_EQ(HvStops(), 0);
  EXPECT_FALSE(shutdown_called_.HasBeenNotified());
  ASSERT_TRUE(Kill("pod1", SIGKILL).ok());
  ASSERT_TRUE(Wait("pod1").ok());
  ASSERT_TRUE(Delete("pod1").ok());
}

// A full runtime.state_dir (ENOSPC) is named as such; another failure names
// the directory and keeps its cause.
TEST(StateDirTest, ErrorsNameTheDirectoryAndAFullOne) {
  absl::Status full = StateDirError(
      "pod1", "/run/cloak/pod1",
      absl::ResourceExhaustedError(
          "create /run/cloak/pod1/shim.pid.tmp.7: No space left on device"));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(),
              HasSubstr("the state directory /run/cloak (runtime.state_dir) is full (ENOSPC)"));
  EXPECT_THAT(full.message(), HasSubstr("No space left on device"));
  absl::Status other =
      StateDirError("pod1", "/run/cloak/pod1", absl::PermissionDeniedError("open: denied"));
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(other.message(), HasSubstr("write its state in /run/cloak/pod1"));
  EXPECT_THAT(other.message(), ::testing::Not(HasSubstr("full")));

  auto dir = TempDir::Create("ckst-", "/tmp");
  ASSERT_TRUE(dir.ok());
  std::ofstream(dir->Join("file")) << "x";
  absl::Status under_file = MakeStateDir("pod1", dir->Join("file/pod1"));
  EXPECT_FALSE(under_file.ok());
  EXPECT_THAT(under_file.message(), HasSubstr(dir->Join("file/pod1")));
  ASSERT_TRUE(MakeStateDir("pod1", dir->Join("run/pod1")).ok());
  EXPECT_EQ(ReadPidFile(dir->Join("run/pod1/shim.pid")), ::getpid());
}

TEST_F(TaskServiceTest, RuntimeOptionsReachTheFactory) {
  taskapi::CreateTaskRequest req;
  req.set_id("c1");
  req.set_bundle(MakeBundle("c1", {"sleep"}));
  req.mutable_options()->set_type_url("runtimeoptions.v1.Options");
  runtimeoptions::v1::Options options;
  options.set_config_path("/x/c.toml");
  options.SerializeToString(req.mutable_options()->mutable_value());
  auto r = Call<taskapi::CreateTaskRequest, taskapi::CreateTaskResponse>("Create", req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(last_config_path_, "/x/c.toml");
  ASSERT_TRUE(Delete("c1").ok());  // never started: deletable
}

TEST_F(TaskServiceTest, VmStartFailureReachesTheCaller) {
  fail_vm_start_ = true;
  auto r = Create("c1", {"sleep"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("tee=snp"));
  EXPECT_EQ(State("c1").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cloak::shim
