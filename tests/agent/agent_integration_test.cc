// cloak-agent as a process on this host (root + crun), driven through its
// gRPC API with the busybox rootfs provider. Every container lives under a
// crun --root in a TempDir and is deleted in TearDown, even on failure.
#include <sys/stat.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cloak/agent/v1/agent.grpc.pb.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "tests/util/agent_requests.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/util/skip.h"

namespace cloak::agent {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using nlohmann::json;

constexpr char kAgentBinary[] = CLOAK_AGENT_BINARY;

std::string FindCrun() {
  for (const char* p : {"/usr/bin/crun", "/usr/local/bin/crun", "/bin/crun"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

class AgentIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) CLOAK_SKIP() << "needs root (crun creates namespaces and cgroups)";
    crun_ = FindCrun();
    if (crun_.empty()) CLOAK_SKIP() << "crun is not installed";
    if (::access("/bin/busybox", X_OK) != 0) CLOAK_SKIP() << "needs /bin/busybox (busybox-static)";
    absl::StatusOr<TempDir> dir = TempDir::Create("cloak-agent-it-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = std::make_unique<TempDir>(std::move(*dir));
    socket_ = dir_->Join("agent.sock");
    crun_root_ = dir_->Join("crun");
    std::string agent = absl::StrJoin(
        {std::string(kAgentBinary), std::string("--listen"), absl::StrCat("unix://", socket_),
         std::string("--run-dir"), dir_->Join("run"), std::string("--crun-root"), crun_root_,
         std::string("--crun"), crun_, std::string("--rootfs-provider"), std::string("busybox"),
         std::string("--log-level"), std::string("debug"),
         // Exec and stdin are what this suite tests: the policy is off
         // here (tests/policy runs the agent with it on).
         std::string("--policy"), std::string("allow-all")},
        " ");
    // This host mounts an empty-ish cgroup2 at /sys/fs/cgroup/unified next to
    // the v1 hierarchies ("hybrid"), which crun refuses: hide it in a
    // private mount namespace of the agent.
    std::string script = absl::StrCat(
        "if [ \"$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)\" = cgroup2fs ]; then "
        "umount /sys/fs/cgroup/unified; fi; exec ",
        agent);
    SpawnOptions options;
    options.stdout_path = dir_->Join("agent.log");
    options.stderr_path = dir_->Join("agent.log");
    options.stop_grace = absl::Seconds(15);
    absl::StatusOr<Subprocess> p = Subprocess::Spawn(
        {"unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script}, options);
    ASSERT_TRUE(p.ok()) << p.status();
    agent_ = std::make_unique<Subprocess>(std::move(*p));
    auto channel =
        grpc::CreateChannel(absl::StrCat("unix:", socket_), grpc::InsecureChannelCredentials());
    const absl::Time deadline = absl::Now() + absl::Seconds(15);
    while (::access(socket_.c_str(), F_OK) != 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_TRUE(channel->WaitForConnected(absl::ToChronoTime(deadline))) << AgentLog();
    stub_ = v1::AgentService::NewStub(channel);

    v1::CreateSandboxRequest sandbox;
    sandbox.set_sandbox_id("pod-it");
    sandbox.set_hostname("pod-it");
    sandbox.add_dns("nameserver 10.0.2.3");
    v1::CreateSandboxResponse created;
    grpc::Status s = stub_->CreateSandbox(Ctx().get(), sandbox, &created);
    ASSERT_TRUE(s.ok()) << s.error_message() << AgentLog();
  }

  void TearDown() override {
    if (agent_ != nullptr) {
      // The agent removes its containers on SIGTERM; anything left behind
      // (a crashed agent) is deleted here.
      agent_->Stop(absl::Seconds(15));
      std::error_code ec;
      if (std::filesystem::exists(crun_root_, ec)) {
        for (const auto& entry : std::filesystem::directory_iterator(crun_root_, ec)) {
          std::string id = entry.path().filename().string();
          absl::StatusOr<Subprocess> del =
              Subprocess::Spawn({crun_, "--root", crun_root_, "delete", "--force", id});
          if (del.ok()) (void)del->Wait(absl::Seconds(20));
        }
      }
    }
    if (HasFailure() && dir_ != nullptr) std::cerr << AgentLog();
  }

  std::string AgentLog() {
    std::ifstream in(dir_->Join("agent.log"));
    std::stringstream ss;
    ss << in.rdbuf();
    return "\n--- agent log ---\n" + ss.str();
  }

  static std::unique_ptr<grpc::ClientContext> Ctx(absl::Duration timeout = absl::Seconds(60)) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    return ctx;
  }

  static std::string SpecFor(const std::vector<std::string>& args) {
    return testutil::ContainerSpecJson(args, "/ignored");
  }
  static v1::Stdio Stdio(bool in, bool out, bool err, bool terminal = false) {
    return testutil::AgentStdio(in, out, err, terminal);
  }

  grpc::Status CreateAndStart(const std::string& id, const std::vector<std::string>& args,
                              const v1::Stdio& stdio) {
    v1::CreateContainerRequest req;
    req.set_container_id(id);
    req.set_oci_spec_json(SpecFor(args));
    req.set_image("busybox:test");
    *req.mutable_stdio() = stdio;
    v1::CreateContainerResponse created;
    grpc::Status s = stub_->CreateContainer(Ctx().get(), req, &created);
    if (!s.ok()) return s;
    EXPECT_GT(created.pid(), 1u);
    v1::StartContainerRequest start;
    start.set_container_id(id);
    v1::StartContainerResponse started;
    s = stub_->StartContainer(Ctx().get(), start, &started);
    if (s.ok()) {
      EXPECT_EQ(started.pid(), created.pid());
    }
    return s;
  }

  grpc::Status Exec(const std::string& id, const std::string& exec_id,
                    const std::vector<std::string>& args, const v1::Stdio& stdio) {
    v1::ExecProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    json process = {{"args", args}, {"env", {"PATH=/bin", "TERM=xterm"}}, {"cwd", "/"}};
    req.set_process_json(process.dump());
    *req.mutable_stdio() = stdio;
    v1::ExecProcessResponse resp;
    return stub_->ExecProcess(Ctx().get(), req, &resp);
  }

  // Reads a whole stream, to its end.
  absl::StatusOr<std::string> ReadAll(const std::string& id, const std::string& exec_id,
                                      v1::StreamKind kind) {
    v1::ReadOutputRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    req.set_stream(kind);
    auto ctx = Ctx(absl::Seconds(60));
    auto reader = stub_->ReadOutput(ctx.get(), req);
    std::string out;
    v1::OutputChunk chunk;
    while (reader->Read(&chunk)) out += chunk.data();
    grpc::Status s = reader->Finish();
    if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    return out;
  }

  absl::StatusOr<int> Wait(const std::string& id, const std::string& exec_id) {
    v1::WaitProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    v1::WaitProcessResponse resp;
    grpc::Status s = stub_->WaitProcess(Ctx().get(), req, &resp);
    if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    EXPECT_GT(resp.exited_at_unix_nano(), 0);
    return resp.exit_status();
  }

  grpc::Status Signal(const std::string& id, const std::string& exec_id, int sig, bool all = false) {
    v1::SignalProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    req.set_signal(sig);
    req.set_all(all);
    v1::SignalProcessResponse resp;
    return stub_->SignalProcess(Ctx().get(), req, &resp);
  }

  grpc::Status Remove(const std::string& id, uint32_t timeout) {
    v1::RemoveContainerRequest req;
    req.set_container_id(id);
    req.set_timeout_seconds(timeout);
    v1::RemoveContainerResponse resp;
    return stub_->RemoveContainer(Ctx().get(), req, &resp);
  }

  std::string crun_;
  std::unique_ptr<TempDir> dir_;
  std::string socket_;
  std::string crun_root_;
  std::unique_ptr<Subprocess> agent_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
};

TEST_F(AgentIntegrationTest, InitOutputOnBothStreamsAndExitStatus) {
  ASSERT_TRUE(CreateAndStart("c1", {"sh", "-c", "echo hello; echo err >&2; exit 7"},
                             Stdio(false, true, true))
                  .ok())
      << AgentLog();
  auto err = std::async(std::launch::async, [&] { return ReadAll("c1", "", v1::STREAM_KIND_STDERR); });
  absl::StatusOr<std::string> out = ReadAll("c1", "", v1::STREAM_KIND_STDOUT);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "hello\n");
  absl::StatusOr<std::string> err_text = err.get();
  ASSERT_TRUE(err_text.ok()) << err_text.status();
  EXPECT_EQ(*err_text, "err\n");
  absl::StatusOr<int> status = Wait("c1", "");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 7);
  // Stopped: removal needs no timeout.
  EXPECT_TRUE(Remove("c1", 0).ok());
  EXPECT_EQ(Remove("c1", 0).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(AgentIntegrationTest, LargeOutputIsNotLost) {
  // 4 MiB through a 1 MiB buffer: the reader blocks the process, no byte lost.
  ASSERT_TRUE(CreateAndStart("big", {"sh", "-c", "dd if=/dev/zero bs=65536 count=64 2>/dev/null"},
                             Stdio(false, true, false))
                  .ok())
      << AgentLog();
  absl::SleepFor(absl::Milliseconds(500));  // let the buffer fill first
  absl::StatusOr<std::string> out = ReadAll("big", "", v1::STREAM_KIND_STDOUT);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->size(), 4u << 20);
  EXPECT_EQ(*Wait("big", ""), 0);
}

TEST_F(AgentIntegrationTest, ExecStdinSignalsAndListing) {
  ASSERT_TRUE(CreateAndStart("c2", {"sleep", "1000"}, Stdio(false, false, false)).ok()) << AgentLog();

  // A second process with output.
  ASSERT_TRUE(Exec("c2", "hi", {"sh", "-c", "echo exec-two; hostname"}, Stdio(false, true, false)).ok());
  EXPECT_EQ(*ReadAll("c2", "hi", v1::STREAM_KIND_STDOUT), "exec-two\nctr\n");
  EXPECT_EQ(*Wait("c2", "hi"), 0);

  // stdin streamed to cat, CloseStdin → EOF → exit 0.
  ASSERT_TRUE(Exec("c2", "cat", {"cat"}, Stdio(true, true, false)).ok());
  auto out = std::async(std::launch::async, [&] { return ReadAll("c2", "cat", v1::STREAM_KIND_STDOUT); });
  for (const char* piece : {"abc", "def\n", "xyz"}) {
    v1::WriteStdinRequest w;
    w.set_container_id("c2");
    w.set_exec_id("cat");
    w.set_data(piece);
    v1::WriteStdinResponse written;
    ASSERT_TRUE(stub_->WriteStdin(Ctx().get(), w, &written).ok());
    EXPECT_EQ(written.written(), strlen(piece));
  }
  v1::CloseStdinRequest close;
  close.set_container_id("c2");
  close.set_exec_id("cat");
  v1::CloseStdinResponse closed;
  ASSERT_TRUE(stub_->CloseStdin(Ctx().get(), close, &closed).ok());
  EXPECT_EQ(*out.get(), "abcdef\nxyz");
  EXPECT_EQ(*Wait("c2", "cat"), 0);

  // SIGTERM → 143, SIGKILL → 137.
  ASSERT_TRUE(Exec("c2", "s1", {"sleep", "1000"}, Stdio(false, false, false)).ok());
  ASSERT_TRUE(Exec("c2", "s2", {"sleep", "1000"}, Stdio(false, false, false)).ok());

  v1::ListProcessesRequest list;
  list.set_container_id("c2");
  v1::ListProcessesResponse listed;
  ASSERT_TRUE(stub_->ListProcesses(Ctx().get(), list, &listed).ok());
  EXPECT_GE(listed.pids_size(), 3);

  ASSERT_TRUE(Signal("c2", "s1", SIGTERM).ok());
  EXPECT_EQ(*Wait("c2", "s1"), 143);
  ASSERT_TRUE(Signal("c2", "s2", SIGKILL).ok());
  EXPECT_EQ(*Wait("c2", "s2"), 137);
  EXPECT_EQ(Signal("c2", "s2", SIGKILL).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Exec("c2", "s1", {"true"}, Stdio(false, false, false)).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  // A running container is not removed without a timeout.
  EXPECT_EQ(Remove("c2", 0).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // sleep as PID 1 of its namespace ignores SIGTERM: SIGKILL follows.
  ASSERT_TRUE(Signal("c2", "", SIGKILL).ok());
  EXPECT_EQ(*Wait("c2", ""), 137);
  EXPECT_TRUE(Remove("c2", 0).ok());
}

TEST_F(AgentIntegrationTest, TerminalWithResize) {
  ASSERT_TRUE(CreateAndStart("c3", {"sleep", "1000"}, Stdio(false, false, false)).ok()) << AgentLog();
  grpc::Status s = Exec("c3", "tty", {"sh"}, Stdio(true, true, false, /*terminal=*/true));
  ASSERT_TRUE(s.ok()) << s.error_message() << AgentLog();
  v1::ResizeTtyRequest resize;
  resize.set_container_id("c3");
  resize.set_exec_id("tty");
  resize.set_width(100);
  resize.set_height(40);
  v1::ResizeTtyResponse resized;
  ASSERT_TRUE(stub_->ResizeTty(Ctx().get(), resize, &resized).ok());
  auto out = std::async(std::launch::async, [&] { return ReadAll("c3", "tty", v1::STREAM_KIND_STDOUT); });
  v1::WriteStdinRequest w;
  w.set_container_id("c3");
  w.set_exec_id("tty");
  w.set_data("tty; stty size; exit 3\n");
  v1::WriteStdinResponse written;
  ASSERT_TRUE(stub_->WriteStdin(Ctx().get(), w, &written).ok());
  absl::StatusOr<std::string> text = out.get();
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("/dev/pts/"));
  EXPECT_THAT(*text, HasSubstr("40 100"));
  EXPECT_EQ(*Wait("c3", "tty"), 3);
  // stderr of a terminal process is merged: its stream is simply empty.
  EXPECT_EQ(*ReadAll("c3", "tty", v1::STREAM_KIND_STDERR), "");
  EXPECT_TRUE(Remove("c3", 2).ok()) << AgentLog();
}

TEST_F(AgentIntegrationTest, PauseResumeStatsAndUpdate) {
  ASSERT_TRUE(CreateAndStart("c4", {"sleep", "1000"}, Stdio(false, false, false)).ok()) << AgentLog();
  v1::PauseContainerRequest pause;
  pause.set_container_id("c4");
  v1::PauseContainerResponse paused;
  grpc::Status s = stub_->PauseContainer(Ctx().get(), pause, &paused);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(stub_->PauseContainer(Ctx().get(), pause, &paused).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Exec("c4", "e", {"true"}, Stdio(false, false, false)).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  v1::ResumeContainerRequest resume;
  resume.set_container_id("c4");
  v1::ResumeContainerResponse resumed;
  ASSERT_TRUE(stub_->ResumeContainer(Ctx().get(), resume, &resumed).ok());
  EXPECT_EQ(stub_->ResumeContainer(Ctx().get(), resume, &resumed).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  // This host is cgroup v1: stats must answer clearly either way.
  v1::StatsContainerRequest stats;
  stats.set_container_id("c4");
  v1::StatsContainerResponse got;
  s = stub_->StatsContainer(Ctx().get(), stats, &got);
  if (!s.ok()) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  } else {
    EXPECT_GT(got.pids_current(), 0u);
  }

  v1::UpdateContainerRequest update;
  update.set_container_id("c4");
  update.set_resources_json(R"({"pids":{"limit":100},"devices":[{"allow":true,"access":"rwm"}]})");
  v1::UpdateContainerResponse updated;
  s = stub_->UpdateContainer(Ctx().get(), update, &updated);
  EXPECT_TRUE(s.ok()) << s.error_message();

  // Paused again, then removed with a timeout: thawed and stopped.
  ASSERT_TRUE(stub_->PauseContainer(Ctx().get(), pause, &paused).ok());
  EXPECT_TRUE(Remove("c4", 1).ok()) << AgentLog();
}

TEST_F(AgentIntegrationTest, SandboxContainerBadInputAndDestroy) {
  v1::CreateContainerRequest pause;
  pause.set_container_id("pause");
  pause.set_oci_spec_json(SpecFor({"/pause"}));
  pause.set_sandbox_container(true);
  v1::CreateContainerResponse created;
  ASSERT_TRUE(stub_->CreateContainer(Ctx().get(), pause, &created).ok()) << AgentLog();
  v1::StartContainerRequest start;
  start.set_container_id("pause");
  v1::StartContainerResponse started;
  ASSERT_TRUE(stub_->StartContainer(Ctx().get(), start, &started).ok());
  EXPECT_EQ(stub_->StartContainer(Ctx().get(), start, &started).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  v1::CreateContainerRequest bad;
  bad.set_container_id("../escape");
  bad.set_oci_spec_json(SpecFor({"true"}));
  EXPECT_EQ(stub_->CreateContainer(Ctx().get(), bad, &created).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad.set_container_id("ok1");
  bad.set_oci_spec_json("{not json");
  EXPECT_EQ(stub_->CreateContainer(Ctx().get(), bad, &created).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // A failed create leaves nothing behind: the id is free again.
  ASSERT_TRUE(CreateAndStart("ok1", {"sleep", "1000"}, Stdio(false, false, false)).ok());
  EXPECT_EQ(CreateAndStart("ok1", {"true"}, Stdio(false, false, false)).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  // all=true reaches every process of the container.
  ASSERT_TRUE(Exec("ok1", "x", {"sleep", "1000"}, Stdio(false, false, false)).ok());
  ASSERT_TRUE(Signal("ok1", "", SIGKILL, /*all=*/true).ok());
  EXPECT_EQ(*Wait("ok1", "x"), 137);
  EXPECT_EQ(*Wait("ok1", ""), 137);

  v1::DestroySandboxRequest destroy;
  v1::DestroySandboxResponse destroyed;
  ASSERT_TRUE(stub_->DestroySandbox(Ctx().get(), destroy, &destroyed).ok()) << AgentLog();
  std::error_code ec;
  EXPECT_TRUE(std::filesystem::is_empty(dir_->Join("run/containers"), ec)) << ec.message();
  v1::HealthResponse health;
  ASSERT_TRUE(stub_->Health(Ctx().get(), {}, &health).ok());
  EXPECT_FALSE(health.serving());
  EXPECT_EQ(CreateAndStart("late", {"true"}, Stdio(false, false, false)).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

}  // namespace
}  // namespace cloak::agent
