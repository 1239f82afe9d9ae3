// Faults a node sees, through containerd's CRI plugin with the cloak-dev
// handler (docs/reliability.md): a pod VM whose QEMU is stopped with SIGSTOP
// (the guest and its agent freeze, the process stays), containerd restarted
// under a running pod and in the middle of RunPodSandbox, and a full
// runtime.state_dir.
//
// Each case ends with the pod removed, a TaskExit seen on containerd's event
// stream for the tasks that existed, and no QEMU, shim or sandbox state dir
// left. The shim runs with the documented defaults (agent.health_interval
// 10s, agent.health_timeout 5s). Root only; skips, saying why, when a
// prerequisite is missing.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/fd.h"
#include "common/process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cri/cri_env.h"
#include "tests/cli/cri/cri_fixture.h"
#include "tests/util/host.h"

namespace cloak::cri {
namespace {

namespace v1 = ::runtime::v1;
using ::cloak::testutil::Slurp;
using ::testing::HasSubstr;

// agent.health_timeout's default: a silent agent call escalates after one
// timeout and a failed probe (2 × 5 s), then the VM is killed. The bound the
// tests allow adds the 2-core machine's scheduling and containerd's own work.
constexpr absl::Duration kEscalationBound = absl::Seconds(30);
// agent.health_interval + health_timeout, with the same slack.
constexpr absl::Duration kHealthCheckBound = absl::Seconds(45);

class CriFaultE2eTest : public CriEnvFixture {
 protected:
  void TearDown() override {
    if (events_) events_->Stop(absl::Seconds(1));
    if (stopped_qemu_ > 0) ::kill(stopped_qemu_, SIGCONT);  // teardown may then stop it
    CriEnvFixture::TearDown();
  }

  // `ctr events` for the whole run, in <dir>/events.log.
  void WatchEvents() {
    SpawnOptions o;
    o.stdout_path = o.stderr_path = env_->dir() + "/events.log";
    auto ev = Subprocess::Spawn({"ctr", "-a", env_->socket(), "events"}, o);
    ASSERT_TRUE(ev.ok()) << ev.status();
    events_.emplace(std::move(*ev));
  }
  std::string Events() const { return Slurp(env_->dir() + "/events.log"); }
  // A /tasks/exit event of container `id`'s init process was published.
  bool SawExit(const std::string& id, absl::Duration timeout = absl::ZeroDuration()) const {
    const absl::Time deadline = absl::Now() + timeout;
    do {
      for (absl::string_view line : absl::StrSplit(Events(), '\n')) {
        if (absl::StrContains(line, "/tasks/exit") &&
            absl::StrContains(line, absl::StrCat("\"container_id\":\"", id, "\"")) &&
            absl::StrContains(line, absl::StrCat("\"id\":\"", id, "\""))) {
          return true;
        }
      }
      if (absl::Now() >= deadline) break;
      absl::SleepFor(absl::Milliseconds(200));
    } while (true);
    return false;
  }

  // A pod with one container running `sleep 3000`; the ids, and the pod's
  // QEMU stopped with SIGSTOP.
  void RunAndFreeze(const std::string& name, std::string* pod_id, std::string* ctr_id) {
    ASSERT_NO_FATAL_FAILURE(WatchEvents());
    auto ref = client_->PullImage(env_->image());
    ASSERT_TRUE(ref.ok()) << ref.status();
    pod_ = env_->PodConfig(name);
    auto pod = env_->RunPod(pod_);
    ASSERT_TRUE(pod.ok()) << pod.status();
    v1::ContainerConfig ctr;
    ctr.mutable_metadata()->set_name("sleeper");
    ctr.mutable_image()->set_image(env_->image());
    ctr.add_command("sleep");
    ctr.add_command("3000");
    ctr.set_log_path("sleeper/0.log");
    auto id = client_->CreateContainer(*pod, ctr, pod_);
    ASSERT_TRUE(id.ok()) << id.status();
    ASSERT_TRUE(client_->StartContainer(*id).ok());
    // A healthy pod outlives a few health probes... (the first after 10 s).
    absl::SleepFor(absl::Seconds(12));
    auto status = client_->PodSandboxStatus(*pod);
    ASSERT_TRUE(status.ok()) << status.status();
    ASSERT_EQ(status->state(), v1::SANDBOX_READY);
    std::vector<pid_t> qemu = env_->QemuPidsMentioning(*pod);
    ASSERT_EQ(qemu.size(), 1u) << absl::StrJoin(qemu, " ");
    // ...then freezes.
    ASSERT_EQ(::kill(qemu[0], SIGSTOP), 0);
    stopped_qemu_ = qemu[0];
    std::cerr << "pod " << *pod << ": QEMU pid " << qemu[0] << " stopped\n";
    *pod_id = *pod;
    *ctr_id = *id;
  }

  // Runs ctr; its exit code and how long it took.
  int RunCtr(const std::vector<std::string>& args, absl::Duration* took) {
    std::vector<std::string> argv = {"ctr", "-a", env_->socket(), "-n", "k8s.io"};
    argv.insert(argv.end(), args.begin(), args.end());
    const absl::Time start = absl::Now();
    const int rc = env_->Run(argv, absl::Seconds(120));
    *took = absl::Now() - start;
    std::cerr << absl::StrJoin(args, " ") << ": exit " << rc << " after "
              << absl::FormatDuration(absl::Trunc(*took, absl::Milliseconds(100))) << "\n"
              << env_->last_output();
    return rc;
  }

  // The pod's VM is gone; the pod is then removed through CRI and leaves
  // nothing behind.
  void ExpectVmGoneThenRemove(const std::string& pod_id) {
    for (int i = 0; i < 100 && !env_->QemuPidsMentioning(pod_id).empty(); ++i) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    EXPECT_TRUE(env_->QemuPidsMentioning(pod_id).empty()) << "the stopped QEMU is still there";
    stopped_qemu_ = -1;
    const absl::Time start = absl::Now();
    EXPECT_TRUE(client_->StopPodSandbox(pod_id).ok());
    EXPECT_TRUE(client_->RemovePodSandbox(pod_id).ok());
    std::cerr << "StopPodSandbox + RemovePodSandbox after the hang: " << absl::FormatDuration(absl::Now() - start)
              << "\n";
    env_->ForgetPod(pod_id);
    ExpectNothingLeft();
  }

  // CRI shows the sandbox not ready (it handles the exit event on its own
  // time).
  void ExpectNotReady(const std::string& pod_id) {
    absl::StatusOr<v1::PodSandboxStatus> status;
    for (int i = 0; i < 100; ++i) {
      status = client_->PodSandboxStatus(pod_id);
      if (status.ok() && status->state() == v1::SANDBOX_NOTREADY) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(status->state(), v1::SANDBOX_NOTREADY);
  }

  // The shim said why it stopped the VM, and the guest's own lines reached
  // the shim's log with the sandbox id (the agent's at info).
  void ExpectShimSaidHung(const std::string& pod_id) {
    const std::string log = env_->ContainerdLogTail(size_t{1} << 30);
    EXPECT_THAT(log, HasSubstr("the guest or its VMM is hung, so the shim stopped the VM"));
    EXPECT_THAT(log, HasSubstr(absl::StrCat("info containerd-shim-cloak-v2 [guest] sandbox=", pod_id,
                                            " ")));
    EXPECT_THAT(log, HasSubstr("Z info cloak-agent"));
  }

  // No QEMU, shim, sandbox state dir or mount of containerd's (a sandbox's
  // rootfs or shm) of this run is left (waiting up to `timeout` for the
  // processes to go).
  void ExpectNothingLeft(absl::Duration timeout = absl::Seconds(10), bool mounts = true) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline && !(env_->QemuPids().empty() && env_->ShimPids().empty())) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    EXPECT_TRUE(env_->QemuPids().empty()) << "QEMU left: " << absl::StrJoin(env_->QemuPids(), " ");
    EXPECT_TRUE(env_->ShimPids().empty()) << "shim left: " << absl::StrJoin(env_->ShimPids(), " ");
    std::error_code ec;
    for (std::filesystem::directory_iterator it(env_->dir() + "/run", ec), end; !ec && it != end;
         it.increment(ec)) {
      EXPECT_NE(it->status().type(), std::filesystem::file_type::directory)
          << "a sandbox state dir is left: " << it->path();
    }
    if (!mounts) return;
    for (absl::string_view line : absl::StrSplit(Slurp("/proc/self/mounts"), '\n')) {
      std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
      if (fields.size() < 2) continue;
      for (const char* under : {"/state/", "/root/"}) {
        EXPECT_FALSE(absl::StartsWith(fields[1], env_->dir() + under)) << "mount left: " << line;
      }
    }
  }

  // A pod with one container that prints a line and sleeps; it runs, then is
  // removed leaving nothing. `name` must be new in this run.
  void RunAPodThenRemoveIt(const std::string& name) {
    v1::PodSandboxConfig config = env_->PodConfig(name);
    auto pod = env_->RunPod(config);
    ASSERT_TRUE(pod.ok()) << pod.status();
    v1::ContainerConfig ctr;
    ctr.mutable_metadata()->set_name("app");
    ctr.mutable_image()->set_image(env_->image());
    for (const char* a : {"sh", "-c", "echo up; sleep 3000"}) ctr.add_command(a);
    ctr.set_log_path("app/0.log");
    auto id = client_->CreateContainer(*pod, ctr, config);
    ASSERT_TRUE(id.ok()) << id.status();
    ASSERT_TRUE(client_->StartContainer(*id).ok());
    auto c = client_->ContainerStatus(*id);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->state(), v1::CONTAINER_RUNNING);
    EXPECT_TRUE(client_->StopPodSandbox(*pod).ok());
    EXPECT_TRUE(client_->RemovePodSandbox(*pod).ok());
    env_->ForgetPod(*pod);
    ExpectNothingLeft();
  }

  // See the tests that call it, below.
  void RestartMidRunPodSandbox(int signal);

  v1::PodSandboxConfig pod_;
  std::optional<Subprocess> events_;
  pid_t stopped_qemu_ = -1;
};

TEST_F(CriFaultE2eTest, HungAgentCtrKillStopsTheVm) {
  std::string pod, ctr;
  ASSERT_NO_FATAL_FAILURE(RunAndFreeze("hung-kill", &pod, &ctr));
  absl::Duration took;
  EXPECT_EQ(RunCtr({"task", "kill", "-s", "KILL", ctr}, &took), 0);
  EXPECT_LT(took, kEscalationBound);
  EXPECT_TRUE(SawExit(ctr, absl::Seconds(20))) << Events();
  EXPECT_TRUE(SawExit(pod, absl::Seconds(20))) << Events();
  ExpectNotReady(pod);
  ExpectShimSaidHung(pod);
  ExpectVmGoneThenRemove(pod);
}

TEST_F(CriFaultE2eTest, HungAgentCtrDeleteForceStopsTheVm) {
  std::string pod, ctr;
  ASSERT_NO_FATAL_FAILURE(RunAndFreeze("hung-delete", &pod, &ctr));
  absl::Duration took;
  const int rc = RunCtr({"task", "delete", "-f", ctr}, &took);
  // ctr kills, waits for the exit, then deletes; CRI deletes the task of a
  // container that exited as well, and may come first.
  EXPECT_TRUE(rc == 0 || absl::StrContains(env_->last_output(), "not found")) << rc;
  EXPECT_LT(took, kEscalationBound);
  EXPECT_TRUE(SawExit(ctr, absl::Seconds(20))) << Events();
  EXPECT_TRUE(SawExit(pod, absl::Seconds(20))) << Events();
  ExpectShimSaidHung(pod);
  ExpectVmGoneThenRemove(pod);
}

TEST_F(CriFaultE2eTest, HungAgentStopPodSandboxStopsTheVm) {
  std::string pod, ctr;
  ASSERT_NO_FATAL_FAILURE(RunAndFreeze("hung-stopp", &pod, &ctr));
  const absl::Time start = absl::Now();
  absl::Status stopped = client_->StopPodSandbox(pod);
  const absl::Duration took = absl::Now() - start;
  std::cerr << "StopPodSandbox of the hung pod: " << stopped << " after "
            << absl::FormatDuration(absl::Trunc(took, absl::Milliseconds(100))) << "\n";
  EXPECT_TRUE(stopped.ok()) << stopped;
  EXPECT_LT(took, kEscalationBound);
  EXPECT_TRUE(SawExit(ctr, absl::Seconds(20))) << Events();
  EXPECT_TRUE(SawExit(pod, absl::Seconds(20))) << Events();
  ExpectShimSaidHung(pod);
  ExpectVmGoneThenRemove(pod);
}

TEST_F(CriFaultE2eTest, HealthCheckFindsAHungAgent) {
  std::string pod, ctr;
  ASSERT_NO_FATAL_FAILURE(RunAndFreeze("hung-idle", &pod, &ctr));
  const absl::Time start = absl::Now();
  // Nobody asks anything of the shim: its health check finds the hang.
  EXPECT_TRUE(SawExit(pod, kHealthCheckBound)) << Events();
  std::cerr << "health check: sandbox exit seen "
            << absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(100)))
            << " after the SIGSTOP\n";
  EXPECT_TRUE(SawExit(ctr, absl::Seconds(20))) << Events();
  ExpectNotReady(pod);
  auto c = client_->ContainerStatus(ctr);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->state(), v1::CONTAINER_EXITED);
  ExpectShimSaidHung(pod);
  ExpectVmGoneThenRemove(pod);
}

// containerd restarted (stop, start) while a Cloak pod runs: the pod and its
// VM keep running, containerd reconnects to the shim, the container's log
// goes on, exec works, and the pod is removed cleanly afterwards.
TEST_F(CriFaultE2eTest, ContainerdRestartKeepsThePod) {
  ASSERT_NO_FATAL_FAILURE(WatchEvents());
  auto ref = client_->PullImage(env_->image());
  ASSERT_TRUE(ref.ok()) << ref.status();
  pod_ = env_->PodConfig("restart");
  auto pod = env_->RunPod(pod_);
  ASSERT_TRUE(pod.ok()) << pod.status();
  v1::ContainerConfig ctr;
  ctr.mutable_metadata()->set_name("ticker");
  ctr.mutable_image()->set_image(env_->image());
  for (const char* a : {"sh", "-c", "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 1; done"}) {
    ctr.add_command(a);
  }
  ctr.set_log_path("ticker/0.log");
  auto id = client_->CreateContainer(*pod, ctr, pod_);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(client_->StartContainer(*id).ok());
  const std::string log_path = env_->dir() + "/logs/restart/ticker/0.log";
  for (int i = 0; i < 100 && !absl::StrContains(Slurp(log_path), "tick-2"); ++i) {
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_THAT(Slurp(log_path), HasSubstr("tick-2"));
  const std::vector<pid_t> qemu = env_->QemuPidsMentioning(*pod);
  const std::vector<pid_t> shims = env_->ShimPids();
  ASSERT_EQ(qemu.size(), 1u);
  ASSERT_EQ(shims.size(), 1u);

  const pid_t old_containerd = env_->containerd_pid();
  const absl::Time start = absl::Now();
  ASSERT_TRUE(env_->RestartContainerd(absl::Seconds(3)).ok());
  client_ = &env_->client();
  events_.reset();  // its ctr lost the old containerd; watch the new one
  ASSERT_NO_FATAL_FAILURE(WatchEvents());
  std::cerr << "containerd " << old_containerd << " -> " << env_->containerd_pid()
            << " restarted in " << absl::FormatDuration(absl::Now() - start) << "\n";
  // The same VM and shim.
  EXPECT_EQ(env_->QemuPidsMentioning(*pod), qemu);
  EXPECT_EQ(env_->ShimPids(), shims);
  auto status = client_->PodSandboxStatus(*pod);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->state(), v1::SANDBOX_READY);
  auto c = client_->ContainerStatus(*id);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->state(), v1::CONTAINER_RUNNING);
  // The log goes on after the restart: a tick written after it arrives.
  const size_t before = Slurp(log_path).size();
  std::string grown;
  for (int i = 0; i < 100; ++i) {
    grown = Slurp(log_path);
    if (grown.size() > before && absl::StrContains(grown.substr(before), "tick-")) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_GT(grown.size(), before) << "the container's log stopped at the restart";
  // Exec through the restarted containerd and the same shim.
  auto exec = client_->ExecSync(*id, {"sh", "-c", "echo exec-after-restart"}, 60);
  ASSERT_TRUE(exec.ok()) << exec.status();
  EXPECT_EQ(exec->exit_code(), 0);
  EXPECT_THAT(exec->stdout(), HasSubstr("exec-after-restart"));
  // Neither the container nor the sandbox ended on the way (the exec did).
  EXPECT_FALSE(SawExit(*id)) << Events();
  EXPECT_FALSE(SawExit(*pod)) << Events();
  // Removed cleanly: exits reported, nothing left.
  EXPECT_TRUE(client_->StopPodSandbox(*pod).ok());
  EXPECT_TRUE(SawExit(*id, absl::Seconds(20))) << Events();
  EXPECT_TRUE(SawExit(*pod, absl::Seconds(20))) << Events();
  EXPECT_TRUE(client_->RemovePodSandbox(*pod).ok());
  env_->ForgetPod(*pod);
  ExpectNothingLeft();
}

// containerd stopped (SIGTERM) or killed (SIGKILL) while RunPodSandbox
// boots the pod's VM, then started again: nothing is left of the half-made
// sandbox (no Kata-style leak), kubelet's StopPodSandbox and
// RemovePodSandbox of what CRI kept of it succeed, and a new pod runs.
//
// On SIGTERM containerd cancels the Create itself: it runs `delete` on the
// bundle, whose SIGTERM leaves the shim finishing the boot; the restarted
// containerd cannot reach that shim, runs `delete` again, which kills the
// shim and the VM by pid. On SIGKILL nobody cleans up on containerd's side:
// the restarted containerd reconnects to the shim and CRI finds the sandbox
// without a task (NOTREADY); the shim, whose Create outlived the connection
// that asked for it, stops the VM and exits by itself (docs/shim.md,
// "Contract: create").
void CriFaultE2eTest::RestartMidRunPodSandbox(int signal) {
  auto ref = client_->PullImage(env_->image());
  ASSERT_TRUE(ref.ok()) << ref.status();
  // A client of its own: the fixture's is replaced at the restart.
  auto own = Client::Create({.endpoint = env_->socket(), .timeout = absl::Minutes(4)});
  ASSERT_TRUE(own.ok()) << own.status();
  absl::StatusOr<std::string> half = absl::UnknownError("not run");
  std::thread runp([&] { half = (*own)->RunPodSandbox(env_->PodConfig("half"), "cloak-dev"); });
  struct Join {
    std::thread& t;
    ~Join() {
      if (t.joinable()) t.join();
    }
  } join{runp};
  // The VM is booting (under TCG for seconds): restart containerd now.
  for (int i = 0; i < 600 && env_->QemuPids().empty(); ++i) absl::SleepFor(absl::Milliseconds(100));
  ASSERT_EQ(env_->QemuPids().size(), 1u) << "no QEMU started for the pod within 60 s";
  ASSERT_EQ(env_->ShimPids().size(), 1u);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(env_->RestartContainerd(absl::Seconds(2), signal).ok());
  client_ = &env_->client();
  std::cerr << "containerd (" << strsignal(signal) << ") restarted in "
            << absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(100)))
            << " while the pod's VM booted\n";
  runp.join();
  EXPECT_FALSE(half.ok()) << "RunPodSandbox answered " << *half << " across the restart";
  std::cerr << "the interrupted RunPodSandbox: " << half.status() << "\n";

  // Nothing runs on for the half-made sandbox (CRI's records of it stay
  // until kubelet removes them).
  ExpectNothingLeft(absl::Seconds(180), /*mounts=*/false);
  std::cerr << "QEMU and shim of the half-made sandbox gone "
            << absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(100)))
            << " after containerd was stopped; the shim undid the create itself: "
            << (absl::StrContains(env_->ContainerdLogTail(size_t{1} << 30),
                                  "closed before it was created (containerd stopped or restarted)")
                    ? "yes"
                    : "no (containerd's delete stopped it)")
            << "\n";
  // CRI keeps the sandbox's record, not ready; kubelet removes it.
  auto listed = client_->ListPodSandbox();
  ASSERT_TRUE(listed.ok()) << listed.status();
  for (const v1::PodSandbox& p : *listed) {
    std::cerr << "after the restart CRI lists " << p.id() << " "
              << v1::PodSandboxState_Name(p.state()) << "\n";
    EXPECT_EQ(p.state(), v1::SANDBOX_NOTREADY);
    EXPECT_TRUE(client_->StopPodSandbox(p.id()).ok());
    absl::Status removed = client_->RemovePodSandbox(p.id());
    EXPECT_TRUE(removed.ok()) << removed;
  }
  ExpectNothingLeft();
  ASSERT_NO_FATAL_FAILURE(RunAPodThenRemoveIt("after-restart"));
}

TEST_F(CriFaultE2eTest, ContainerdStoppedMidRunPodSandboxLeavesNoVm) {
  RestartMidRunPodSandbox(SIGTERM);
}

TEST_F(CriFaultE2eTest, ContainerdKilledMidRunPodSandboxLeavesNoVm) {
  RestartMidRunPodSandbox(SIGKILL);
}

// runtime.state_dir on a full file system: RunPodSandbox fails at once with
// an error that names the directory and says it is full (ENOSPC); no VM
// starts and nothing of the sandbox is left in the directory. Once space is
// freed a pod runs.
TEST_F(CriFaultE2eTest, FullStateDirIsAClearErrorThenAPodRuns) {
  auto ref = client_->PullImage(env_->image());
  ASSERT_TRUE(ref.ok()) << ref.status();
  // A 16 MiB tmpfs over runtime.state_dir, unmounted even when the test fails.
  const std::string run = env_->dir() + "/run";
  std::filesystem::create_directories(run);
  ASSERT_EQ(::mount("tmpfs", run.c_str(), "tmpfs", 0, "size=16m,mode=0700"), 0)
      << "mount a tmpfs on " << run << ": " << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{run};
  // Filled to the last byte.
  const std::string filler = run + "/filler";
  {
    UniqueFd fd(::open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd.valid()) << std::strerror(errno);
    const std::string block(1 << 16, 'x');
    size_t chunk = block.size();
    while (chunk > 0) {
      ssize_t n = ::write(fd.get(), block.data(), chunk);
      if (n < 0 && errno == ENOSPC) {
        chunk /= 2;
        continue;
      }
      ASSERT_GE(n, 0) << std::strerror(errno);
    }
  }

  const absl::Time start = absl::Now();
  auto pod = env_->RunPod(env_->PodConfig("full"));
  const absl::Duration took = absl::Now() - start;
  std::cerr << "RunPodSandbox with a full state dir: "
            << (pod.ok() ? *pod : pod.status().ToString()) << " after "
            << absl::FormatDuration(absl::Trunc(took, absl::Milliseconds(100))) << "\n";
  ASSERT_FALSE(pod.ok());
  EXPECT_THAT(pod.status().message(),
              HasSubstr(absl::StrCat("the state directory ", run,
                                     " (runtime.state_dir) is full (ENOSPC)")));
  EXPECT_THAT(pod.status().message(), HasSubstr("No space left on device"));
  EXPECT_LT(took, absl::Seconds(30));
  // Nothing half-made: no VM, no shim, only the filler in the directory,
  // and CRI removed the sandbox it could not run.
  ExpectNothingLeft();
  std::vector<std::string> entries;
  for (const auto& e : std::filesystem::directory_iterator(run)) {
    entries.push_back(e.path().filename().string());
  }
  EXPECT_THAT(entries, ::testing::ElementsAre("filler"));
  auto listed = client_->ListPodSandbox();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(listed->empty());

  // Space freed: a pod runs, in the same directory.
  ASSERT_EQ(::unlink(filler.c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(RunAPodThenRemoveIt("after-full"));
}

}  // namespace
}  // namespace cloak::cri
