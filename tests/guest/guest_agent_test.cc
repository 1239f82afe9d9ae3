// The guest image for real, without the shim: QEMU (TCG) boots vmlinuz +
// initrd.img through GuestHarness, and the test drives cloak-agent's gRPC API
// over virtio-serial. The guest pulls its images itself from Debian's
// docker-registry on the host's 127.0.0.1 (10.0.2.2 from the guest, QEMU
// user-mode network). Skips, saying why, when a prerequisite is missing.
// Everything started here (registry, QEMU) is stopped by pid even when an
// assertion fails.
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cloak/agent/v1/agent.grpc.pb.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/guest/guest_harness.h"
#include "tests/util/host.h"
#include "tests/util/registry.h"
#include "tests/util/agent_requests.h"
#include "tests/util/skip.h"

#ifndef CLOAK_SOURCE_DIR
#error "CLOAK_SOURCE_DIR must be defined"
#endif

namespace cloak::guest_test {
namespace {

using ::cloak::testutil::Which;
using ::cloak::testutil::FreePort;
using ::cloak::testutil::Slurp;
using ::cloak::testutil::PidAlive;
using ::cloak::testutil::PidsMentioning;

namespace v1 = ::cloak::agent::v1;
using ::testing::Contains;
using ::testing::HasSubstr;
using nlohmann::json;

const std::string kSource = CLOAK_SOURCE_DIR;
// A pull of the small test image over user-mode networking under TCG.
constexpr absl::Duration kPullTimeout = absl::Seconds(180);
// QEMU must be gone this long after DestroySandbox{power_off}.
constexpr absl::Duration kPowerOffDeadline = absl::Seconds(60);

struct RunResult {
  int exit_code = -1;
  std::string output;
};

std::string FormatMs(absl::Duration d) {
  return absl::StrCat(absl::ToInt64Milliseconds(d), " ms");
}

class GuestAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {"qemu-system-x86_64", "docker-registry", "skopeo", "busybox",
                             "python3", "gzip", "sha256sum"}) {
      if (Which(tool).empty()) CLOAK_SKIP() << tool << " is not installed";
    }
    if (absl::Status s = CheckCanBoot(GuestOptions()); !s.ok()) CLOAK_SKIP() << s.message();

    auto dir = TempDir::Create("cloak-gt-", "/tmp");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    d_ = dir_->path().string();
    std::filesystem::create_directories(d_ + "/registry");

    // Debian's docker-registry on the host's loopback only.
    port_ = FreePort();
    auto registry = testutil::StartLocalRegistry(d_, port_);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_.emplace(std::move(*registry));
    guest_registry_ = absl::StrCat(kHostLoopbackFromGuest, ":", port_);

    RunResult made = Run({kSource + "/scripts/make-busybox-image", d_ + "/oci-busybox", "guest"});
    ASSERT_EQ(made.exit_code, 0) << made.output;
    ASSERT_NO_FATAL_FAILURE(Push(d_ + "/oci-busybox", "guest", "busybox"));
    image_ = absl::StrCat(guest_registry_, "/busybox:guest");
  }

  void TearDown() override {
    if (guest_ != nullptr && HasFailure()) {
      std::cerr << "---- guest console (tail) ----\n" << guest_->ConsoleTail(80) << "\n";
    }
    guest_.reset();  // QEMU stopped by pid, its state dir removed
    if (registry_.has_value()) {
      const pid_t pid = registry_->pid();
      if (HasFailure()) {
        std::string log = Slurp(d_ + "/registry.log");
        std::cerr << "---- registry log (tail) ----\n"
                  << log.substr(log.size() > 4000 ? log.size() - 4000 : 0) << "\n";
      }
      registry_.reset();  // SIGTERM, then SIGKILL, reaped
      EXPECT_FALSE(PidAlive(pid)) << "docker-registry " << pid << " is still running";
    }
  }

  RunResult Run(const std::vector<std::string>& argv, absl::Duration timeout = absl::Seconds(60)) {
    RunResult r;
    const std::string out = absl::StrCat(d_, "/run-", ++runs_, ".out");
    SpawnOptions o;
    o.stdout_path = o.stderr_path = out;
    auto p = Subprocess::Spawn(argv, o);
    if (!p.ok()) {
      r.output = p.status().ToString();
      return r;
    }
    auto exit = p->Wait(timeout);
    if (!exit.ok()) {
      p->Stop(absl::Seconds(1));
      r.output = "(timed out) " + Slurp(out);
      return r;
    }
    r.exit_code = exit->exit_code;
    r.output = Slurp(out);
    return r;
  }

  // skopeo copy oci:<layout>:<tag> → docker://127.0.0.1:<port>/<repo>:<tag>,
  // retried while the registry starts.
  void Push(const std::string& layout, const std::string& tag, const std::string& repo) {
    RunResult pushed;
    for (int i = 0; i < 50; ++i) {
      pushed = Run({"skopeo", "copy", "--dest-tls-verify=false",
                    absl::StrCat("oci:", layout, ":", tag),
                    absl::StrCat("docker://127.0.0.1:", port_, "/", repo, ":", tag)});
      if (pushed.exit_code == 0) return;
      absl::SleepFor(absl::Milliseconds(200));
    }
    FAIL() << "skopeo copy " << layout << ": " << pushed.output;
  }

  void BootGuest(bool allow_all_policy = false) {
    GuestOptions options;
    options.allow_all_policy = allow_all_policy;
    options.sandbox_id = "guest-agent-test";
    options.hostname = "guest-agent-test";
    options.insecure_registries = {guest_registry_};
    auto guest = GuestHarness::Boot(options);
    ASSERT_TRUE(guest.ok()) << guest.status();
    guest_ = std::move(*guest);
    std::cerr << "figure: boot-to-agent-ready " << FormatMs(guest_->boot_to_ready())
              << " (TCG, QEMU start to the first serving Health)\n";
    absl::Status created = guest_->CreateSandbox();
    ASSERT_TRUE(created.ok()) << created;
  }

  v1::AgentService::Stub& stub() { return guest_->stub(); }

  static std::string SpecFor(const std::vector<std::string>& args) {
    return testutil::ContainerSpecJson(args, "rootfs");
  }
  static v1::Stdio Stdio(bool in, bool out, bool err, bool terminal = false) {
    return testutil::AgentStdio(in, out, err, terminal);
  }

  // CreateContainer as the shim sends it (shim/task_service.cc Create): the
  // image reference in `image`, the OCI spec as JSON, the stdio wiring.
  absl::StatusOr<v1::CreateContainerResponse> Create(const std::string& id,
                                                     const std::string& image,
                                                     const std::vector<std::string>& args,
                                                     const v1::Stdio& stdio) {
    v1::CreateContainerRequest req;
    req.set_container_id(id);
    req.set_oci_spec_json(SpecFor(args));
    req.set_image(image);
    *req.mutable_stdio() = stdio;
    v1::CreateContainerResponse created;
    grpc::Status s = stub().CreateContainer(CallContext(kPullTimeout).get(), req, &created);
    if (!s.ok()) return FromGrpc("CreateContainer", s);
    return created;
  }

  absl::Status Start(const std::string& id, uint32_t* pid = nullptr) {
    v1::StartContainerRequest start;
    start.set_container_id(id);
    v1::StartContainerResponse started;
    grpc::Status s = stub().StartContainer(CallContext().get(), start, &started);
    if (!s.ok()) return FromGrpc("StartContainer", s);
    if (pid != nullptr) *pid = started.pid();
    return absl::OkStatus();
  }

  absl::Status Exec(const std::string& id, const std::string& exec_id,
                    const std::vector<std::string>& args, const v1::Stdio& stdio) {
    v1::ExecProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    json process = {{"args", args}, {"env", {"PATH=/bin", "TERM=xterm"}}, {"cwd", "/"}};
    req.set_process_json(process.dump());
    *req.mutable_stdio() = stdio;
    v1::ExecProcessResponse resp;
    return FromGrpc("ExecProcess", stub().ExecProcess(CallContext().get(), req, &resp));
  }

  // Reads a whole stream, to its end (EOF after the process closed it).
  absl::StatusOr<std::string> ReadAll(const std::string& id, const std::string& exec_id,
                                      v1::StreamKind kind = v1::STREAM_KIND_STDOUT) {
    v1::ReadOutputRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    req.set_stream(kind);
    auto ctx = CallContext(absl::Seconds(90));
    auto reader = stub().ReadOutput(ctx.get(), req);
    std::string out;
    v1::OutputChunk chunk;
    while (reader->Read(&chunk)) out += chunk.data();
    if (grpc::Status s = reader->Finish(); !s.ok()) return FromGrpc("ReadOutput", s);
    return out;
  }

  absl::StatusOr<int> Wait(const std::string& id, const std::string& exec_id) {
    v1::WaitProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    v1::WaitProcessResponse resp;
    grpc::Status s = stub().WaitProcess(CallContext(absl::Seconds(60)).get(), req, &resp);
    if (!s.ok()) return FromGrpc("WaitProcess", s);
    EXPECT_GT(resp.exited_at_unix_nano(), 0);
    return resp.exit_status();
  }

  absl::Status Signal(const std::string& id, const std::string& exec_id, int sig) {
    v1::SignalProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    req.set_signal(sig);
    v1::SignalProcessResponse resp;
    return FromGrpc("SignalProcess", stub().SignalProcess(CallContext().get(), req, &resp));
  }

  absl::Status WriteStdin(const std::string& id, const std::string& exec_id,
                          const std::string& data) {
    v1::WriteStdinRequest w;
    w.set_container_id(id);
    w.set_exec_id(exec_id);
    w.set_data(data);
    v1::WriteStdinResponse written;
    grpc::Status s = stub().WriteStdin(CallContext().get(), w, &written);
    if (!s.ok()) return FromGrpc("WriteStdin", s);
    if (written.written() != data.size()) {
      return absl::DataLossError(absl::StrCat("WriteStdin wrote ", written.written(), " of ",
                                              data.size(), " bytes"));
    }
    return absl::OkStatus();
  }

  absl::Status Remove(const std::string& id, uint32_t timeout_seconds) {
    v1::RemoveContainerRequest req;
    req.set_container_id(id);
    req.set_timeout_seconds(timeout_seconds);
    v1::RemoveContainerResponse resp;
    return FromGrpc("RemoveContainer",
                    stub().RemoveContainer(CallContext(absl::Seconds(60)).get(), req, &resp));
  }

  // Creates, starts and reads a container that prints a line: the guest
  // still pulls, unpacks and runs.
  void ExpectGoodContainerRuns(const std::string& id) {
    auto created = Create(id, image_, {"echo", "still-serving"}, Stdio(false, true, false));
    ASSERT_TRUE(created.ok()) << created.status();
    ASSERT_TRUE(Start(id).ok());
    auto out = ReadAll(id, "");
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(*out, "still-serving\n");
    EXPECT_EQ(Wait(id, "").value_or(-1), 0);
    EXPECT_TRUE(Remove(id, 0).ok());
  }

  // DestroySandbox{power_off}: QEMU exits by itself; nothing of it is left.
  void DestroyAndExpectPowerOff() {
    const pid_t qemu = guest_->qemu_pid();
    ASSERT_GT(qemu, 0);
    const std::string state_dir = guest_->state_dir();
    const absl::Time t = absl::Now();
    auto exit = guest_->DestroySandboxAndWaitForPowerOff(absl::Now() + kPowerOffDeadline);
    ASSERT_TRUE(exit.ok()) << exit.status() << " (QEMU did not power off by itself)";
    std::cerr << "figure: DestroySandbox to QEMU exit " << FormatMs(absl::Now() - t)
              << " (exit code " << exit->exit_code << ")\n";
    EXPECT_EQ(exit->term_signal, 0) << "QEMU was killed, it did not exit";
    EXPECT_FALSE(PidAlive(qemu)) << "QEMU pid " << qemu << " still exists";
    EXPECT_EQ(guest_->qemu_pid(), -1);
    EXPECT_THAT(PidsMentioning(state_dir), ::testing::IsEmpty())
        << "processes still mention " << state_dir;
    guest_.reset();
    EXPECT_FALSE(std::filesystem::exists(state_dir)) << "state dir left behind";
  }

  std::string d_;
  int port_ = 0;
  int runs_ = 0;
  std::string guest_registry_;  // 10.0.2.2:<port>
  std::string image_;           // 10.0.2.2:<port>/busybox:guest
  std::optional<TempDir> dir_;
  std::optional<Subprocess> registry_;
  // Declared last: destroyed first (also in TearDown), before the registry.
  std::unique_ptr<GuestHarness> guest_;
};

TEST_F(GuestAgentTest, ContainerLifecycleThroughTheAgentApi) {
  // Exec and stdin writes: the policy is off (tests/policy drives it on).
  ASSERT_NO_FATAL_FAILURE(BootGuest(/*allow_all_policy=*/true));

  // GetGuestDetails: this guest, as the agent sees it.
  v1::GetGuestDetailsResponse details;
  ASSERT_TRUE(stub()
                  .GetGuestDetails(CallContext().get(), v1::GetGuestDetailsRequest(), &details)
                  .ok());
  EXPECT_FALSE(details.agent_version().empty());
  EXPECT_THAT(details.kernel_release(), HasSubstr("6.12"));
  EXPECT_EQ(details.tee(), "none");
  EXPECT_EQ(details.vcpus(), 1u);
  EXPECT_GT(details.memory_bytes(), 256u << 20);
  EXPECT_THAT(details.features(), Contains("guest-pull"));
  std::cerr << "guest: agent " << details.agent_version() << ", kernel "
            << details.kernel_release() << ", features "
            << absl::StrJoin(details.features(), ",") << "\n";

  // Pull (in the guest) + create, then start: the init prints and keeps
  // running with its stdout closed, so its stream reaches EOF.
  absl::Time t = absl::Now();
  auto created = Create(
      "app", image_,
      {"sh", "-c", "echo hello-from-guest; hostname; exec sleep 1000 >/dev/null 2>&1"},
      Stdio(false, true, false));
  ASSERT_TRUE(created.ok()) << created.status();
  std::cerr << "figure: pull+create " << FormatMs(absl::Now() - t) << " (" << image_ << ", "
            << created->image_digest() << ")\n";
  EXPECT_GT(created->pid(), 1u);
  EXPECT_THAT(created->image_digest(), ::testing::StartsWith("sha256:"));
  uint32_t pid = 0;
  ASSERT_TRUE(Start("app", &pid).ok());
  EXPECT_EQ(pid, created->pid());
  auto out = ReadAll("app", "");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "hello-from-guest\nctr\n");

  // A second process, with output on both streams.
  ASSERT_TRUE(Exec("app", "second", {"sh", "-c", "echo exec-two; echo to-stderr >&2; id -u"},
                   Stdio(false, true, true))
                  .ok());
  auto err = std::async(std::launch::async,
                        [&] { return ReadAll("app", "second", v1::STREAM_KIND_STDERR); });
  out = ReadAll("app", "second");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "exec-two\n0\n");
  auto err_text = err.get();
  ASSERT_TRUE(err_text.ok()) << err_text.status();
  EXPECT_EQ(*err_text, "to-stderr\n");
  EXPECT_EQ(Wait("app", "second").value_or(-1), 0);

  // stdin streamed to cat, CloseStdin → EOF → the echo read back to its end.
  ASSERT_TRUE(Exec("app", "cat", {"cat"}, Stdio(true, true, false)).ok());
  auto echoed = std::async(std::launch::async, [&] { return ReadAll("app", "cat"); });
  for (const char* piece : {"stdin ", "through the ", "agent\n", "no newline at the end"}) {
    ASSERT_TRUE(WriteStdin("app", "cat", piece).ok());
  }
  v1::CloseStdinRequest close;
  close.set_container_id("app");
  close.set_exec_id("cat");
  v1::CloseStdinResponse closed;
  ASSERT_TRUE(stub().CloseStdin(CallContext().get(), close, &closed).ok());
  auto echo = echoed.get();
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(*echo, "stdin through the agent\nno newline at the end");
  EXPECT_EQ(Wait("app", "cat").value_or(-1), 0);

  // Signals to processes that are not PID 1 of the container.
  ASSERT_TRUE(Exec("app", "term", {"sleep", "300"}, Stdio(false, false, false)).ok());
  ASSERT_TRUE(Exec("app", "kill", {"sleep", "300"}, Stdio(false, false, false)).ok());

  v1::ListProcessesRequest list;
  list.set_container_id("app");
  v1::ListProcessesResponse listed;
  ASSERT_TRUE(stub().ListProcesses(CallContext().get(), list, &listed).ok());
  EXPECT_GE(listed.pids_size(), 3) << "init + two sleeps";
  EXPECT_THAT(listed.pids(), Contains(created->pid()));

  ASSERT_TRUE(Signal("app", "term", SIGTERM).ok());
  EXPECT_EQ(Wait("app", "term").value_or(-1), 143);
  ASSERT_TRUE(Signal("app", "kill", SIGKILL).ok());
  EXPECT_EQ(Wait("app", "kill").value_or(-1), 137);

  // A terminal, resized, its output read.
  ASSERT_TRUE(Exec("app", "tty", {"sh"}, Stdio(true, true, false, /*terminal=*/true)).ok());
  v1::ResizeTtyRequest resize;
  resize.set_container_id("app");
  resize.set_exec_id("tty");
  resize.set_width(100);
  resize.set_height(40);
  v1::ResizeTtyResponse resized;
  grpc::Status rs = stub().ResizeTty(CallContext().get(), resize, &resized);
  ASSERT_TRUE(rs.ok()) << rs.error_message();
  auto tty_out = std::async(std::launch::async, [&] { return ReadAll("app", "tty"); });
  ASSERT_TRUE(WriteStdin("app", "tty", "tty; stty size; exit 3\n").ok());
  auto tty_text = tty_out.get();
  ASSERT_TRUE(tty_text.ok()) << tty_text.status();
  EXPECT_THAT(*tty_text, HasSubstr("/dev/pts/"));
  EXPECT_THAT(*tty_text, HasSubstr("40 100"));
  EXPECT_EQ(Wait("app", "tty").value_or(-1), 3);

  // cgroup v2 statistics.
  v1::StatsContainerRequest stats;
  stats.set_container_id("app");
  v1::StatsContainerResponse got;
  grpc::Status ss = stub().StatsContainer(CallContext().get(), stats, &got);
  ASSERT_TRUE(ss.ok()) << ss.error_message();
  EXPECT_GE(got.pids_current(), 1u);
  EXPECT_GT(got.memory_usage_bytes(), 0u);
  EXPECT_GT(got.cpu_usage_usec(), 0u);
  std::cerr << "stats: pids " << got.pids_current() << ", memory " << got.memory_usage_bytes()
            << " B, cpu " << got.cpu_usage_usec() << " us\n";

  // Freezer: paused refuses an exec, resumed runs one.
  v1::PauseContainerRequest pause;
  pause.set_container_id("app");
  v1::PauseContainerResponse paused;
  ASSERT_TRUE(stub().PauseContainer(CallContext().get(), pause, &paused).ok());
  EXPECT_EQ(Exec("app", "while-paused", {"true"}, Stdio(false, false, false)).code(),
            absl::StatusCode::kFailedPrecondition);
  v1::ResumeContainerRequest resume;
  resume.set_container_id("app");
  v1::ResumeContainerResponse resumed;
  ASSERT_TRUE(stub().ResumeContainer(CallContext().get(), resume, &resumed).ok());
  ASSERT_TRUE(Exec("app", "after-resume", {"echo", "thawed"}, Stdio(false, true, false)).ok());
  EXPECT_EQ(ReadAll("app", "after-resume").value_or(""), "thawed\n");
  EXPECT_EQ(Wait("app", "after-resume").value_or(-1), 0);

  // Removal of the running container (SIGTERM, then SIGKILL: sleep is PID 1).
  EXPECT_EQ(Remove("app", 0).code(), absl::StatusCode::kFailedPrecondition);
  absl::Status removed = Remove("app", 2);
  ASSERT_TRUE(removed.ok()) << removed;
  EXPECT_EQ(Remove("app", 0).code(), absl::StatusCode::kNotFound);
  v1::ListProcessesResponse gone;
  EXPECT_EQ(stub().ListProcesses(CallContext().get(), list, &gone).error_code(),
            grpc::StatusCode::NOT_FOUND);

  ASSERT_NO_FATAL_FAILURE(DestroyAndExpectPowerOff());
}

// Layers that try to leave the rootfs, and blobs that are not what the
// manifest says: each refused with an error naming the entry or digest,
// and the agent keeps serving.
TEST_F(GuestAgentTest, HostileImagesAreRefusedAndTheAgentKeepsServing) {
  struct Case {
    std::string kind;
    std::string must_name;  // in the error
  };
  const std::vector<Case> cases = {
      {"dotdot", "\"../escape\""},
      {"abs-symlink", "\"escape/pwned\""},
      {"rel-symlink", "\"up/pwned\""},
      {"hardlink", "\"pw\""},
      {"hardlink-symlink", "\"pw\""},
      {"deep", "max_path_depth"},
  };
  const std::string script = kSource + "/tests/guest/make_hostile_image.sh";
  for (const Case& c : cases) {
    RunResult made = Run({script, d_ + "/oci-" + c.kind, c.kind, c.kind});
    ASSERT_EQ(made.exit_code, 0) << made.output;
    ASSERT_NO_FATAL_FAILURE(Push(d_ + "/oci-" + c.kind, c.kind, "hostile"));
  }
  // Two harmless images whose layer blob is then damaged in the registry's
  // own storage (it serves what is on disk): same size other bytes, and cut
  // in half. The manifest's digest no longer matches the blob.
  std::map<std::string, std::string> damaged;  // kind → layer digest
  for (const std::string kind : {"corrupt", "truncated"}) {
    RunResult made = Run({script, d_ + "/oci-" + kind, kind, "plain"});
    ASSERT_EQ(made.exit_code, 0) << made.output;
    std::string digest(absl::StripAsciiWhitespace(made.output));
    ASSERT_TRUE(absl::StartsWith(digest, "sha256:")) << made.output;
    ASSERT_NO_FATAL_FAILURE(Push(d_ + "/oci-" + kind, kind, "damaged"));
    const std::string hex = digest.substr(7);
    const std::string data = absl::StrCat(d_, "/registry/docker/registry/v2/blobs/sha256/",
                                          hex.substr(0, 2), "/", hex, "/data");
    ASSERT_TRUE(std::filesystem::exists(data)) << data;
    const auto size = std::filesystem::file_size(data);
    if (kind == "corrupt") {
      std::fstream f(data, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(size / 2));
      f.put('\xff').put('\x00').put('\xff');
    } else {
      std::filesystem::resize_file(data, size / 2);
    }
    damaged[kind] = digest;
  }

  ASSERT_NO_FATAL_FAILURE(BootGuest());
  int n = 0;
  for (const Case& c : cases) {
    const std::string id = absl::StrCat("hostile-", n++);
    const absl::Time t = absl::Now();
    auto created = Create(id, absl::StrCat(guest_registry_, "/hostile:", c.kind), {"true"},
                          Stdio(false, false, false));
    ASSERT_FALSE(created.ok()) << c.kind << ": the hostile layer was accepted";
    std::cerr << "hostile " << c.kind << " (" << FormatMs(absl::Now() - t)
              << "): " << created.status() << "\n";
    EXPECT_THAT(std::string(created.status().message()), HasSubstr(c.must_name)) << c.kind;
    EXPECT_NE(created.status().code(), absl::StatusCode::kDeadlineExceeded) << c.kind;
    // Nothing of it is left: the id is free again.
    v1::ListProcessesRequest list;
    list.set_container_id(id);
    v1::ListProcessesResponse listed;
    EXPECT_EQ(stub().ListProcesses(CallContext().get(), list, &listed).error_code(),
              grpc::StatusCode::NOT_FOUND)
        << c.kind;
  }
  for (const auto& [kind, digest] : damaged) {
    const absl::Time t = absl::Now();
    auto created = Create(absl::StrCat("damaged-", kind),
                          absl::StrCat(guest_registry_, "/damaged:", kind), {"true"},
                          Stdio(false, false, false));
    ASSERT_FALSE(created.ok()) << kind << ": the damaged blob was accepted";
    std::cerr << "damaged " << kind << " (" << FormatMs(absl::Now() - t)
              << "): " << created.status() << "\n";
    EXPECT_THAT(std::string(created.status().message()), HasSubstr(digest.substr(0, 7 + 12)))
        << kind;
  }

  // The agent still answers, and a good image still runs.
  v1::HealthResponse health;
  ASSERT_TRUE(stub().Health(CallContext().get(), v1::HealthRequest(), &health).ok());
  EXPECT_TRUE(health.serving());
  ASSERT_NO_FATAL_FAILURE(ExpectGoodContainerRuns("good-after-hostile"));

  ASSERT_NO_FATAL_FAILURE(DestroyAndExpectPowerOff());
}

// RAII: a harness dropped without DestroySandbox (as when an assertion
// fails mid-test) stops QEMU by pid and removes its state directory.
TEST(GuestHarness, DestructorStopsQemuAndRemovesItsState) {
  if (absl::Status s = CheckCanBoot(GuestOptions()); !s.ok()) CLOAK_SKIP() << s.message();
  GuestOptions options;
  options.sandbox_id = "guest-harness-raii";
  auto guest = GuestHarness::Boot(options);
  ASSERT_TRUE(guest.ok()) << guest.status();
  const pid_t qemu = (*guest)->qemu_pid();
  const std::string state_dir = (*guest)->state_dir();
  ASSERT_GT(qemu, 0);
  ASSERT_TRUE(PidAlive(qemu));
  ASSERT_TRUE(std::filesystem::exists(state_dir + "/console.log"));
  v1::HealthResponse health;
  ASSERT_TRUE((*guest)->stub().Health(CallContext().get(), v1::HealthRequest(), &health).ok());
  guest->reset();
  EXPECT_FALSE(PidAlive(qemu)) << "QEMU pid " << qemu << " outlived its harness";
  EXPECT_FALSE(std::filesystem::exists(state_dir)) << state_dir << " was left behind";
  EXPECT_THAT(PidsMentioning(state_dir), ::testing::IsEmpty());
}

}  // namespace
}  // namespace cloak::guest_test
