// Pods through containerd's CRI plugin with the cloak-dev handler, in the
// world of CriEnv: Exec and Attach streamed over containerd's streaming
// server (WebSocket, v4.channel.k8s.io), a container's non-zero exit in
// ContainerStatus, a missing image named in the error, and two containers of
// one pod in one VM with both logs at their CRI log paths. Root only; skips,
// saying why, when a prerequisite is missing.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "cli/cri/client.h"
#include "cli/cri/stream.h"
#include "common/fd.h"
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

const std::string kCriBinary = CloakCriBinary();

struct Pipe {
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) == 0) {
      read_end.Reset(fds[0]);
      write_end.Reset(fds[1]);
    }
  }
  UniqueFd read_end, write_end;
};

// Reads `fd` until what was read contains `want` or `timeout` passes.
std::string ReadUntil(int fd, const std::string& want, absl::Duration timeout) {
  std::string got;
  const absl::Time deadline = absl::Now() + timeout;
  while (!absl::StrContains(got, want) && absl::Now() < deadline) {
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

class CriPodE2eTest : public CriEnvFixture {
 protected:
  v1::ContainerConfig Container(const std::string& name, std::vector<std::string> command) {
    v1::ContainerConfig ctr;
    ctr.mutable_metadata()->set_name(name);
    ctr.mutable_image()->set_image(env_->image());
    for (const std::string& a : command) ctr.add_command(a);
    ctr.set_log_path(name + "/0.log");
    return ctr;
  }

  // Pulls the image, runs a pod and starts one container in it; the ids.
  void RunOne(const std::string& pod_name, const v1::ContainerConfig& ctr, std::string* pod_id,
              std::string* ctr_id) {
    auto ref = client_->PullImage(env_->image());
    ASSERT_TRUE(ref.ok()) << ref.status();
    pod_ = env_->PodConfig(pod_name);
    auto pod = env_->RunPod(pod_);
    ASSERT_TRUE(pod.ok()) << pod.status();
    auto id = client_->CreateContainer(*pod, ctr, pod_);
    ASSERT_TRUE(id.ok()) << id.status();
    ASSERT_TRUE(client_->StartContainer(*id).ok());
    *pod_id = *pod;
    *ctr_id = *id;
  }

  v1::PodSandboxConfig pod_;
};

TEST_F(CriPodE2eTest, ExecStreamsStdinOutputAndExitCode) {
  std::string pod, ctr;
  ASSERT_NO_FATAL_FAILURE(RunOne("exec", Container("sleeper", {"sleep", "300"}), &pod, &ctr));

  v1::ExecRequest req;
  req.set_container_id(ctr);
  for (const char* a : {"sh", "-c", "read x; echo \"got $x\"; echo to-err >&2; exit 4"}) {
    req.add_cmd(a);
  }
  req.set_stdin(true);
  req.set_stdout(true);
  req.set_stderr(true);
  auto url = client_->Exec(req);
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_TRUE(absl::StartsWith(*url, absl::StrCat("http://127.0.0.1:", env_->stream_port(), "/")))
      << *url;

  Pipe in, out, err;
  ASSERT_EQ(::write(in.write_end.get(), "hello-exec\n", 11), 11);
  const absl::Time start = absl::Now();
  auto code = RunStream(*url, {.stdin_fd = in.read_end.get(),
                               .stdout_fd = out.write_end.get(),
                               .stderr_fd = err.write_end.get()});
  std::cerr << "Exec session (stdin, output, status): " << absl::FormatDuration(absl::Now() - start)
            << "\n";
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 4);
  out.write_end.Reset();
  err.write_end.Reset();
  EXPECT_EQ(ReadUntil(out.read_end.get(), "\n", absl::Seconds(1)), "got hello-exec\n");
  EXPECT_EQ(ReadUntil(err.read_end.get(), "\n", absl::Seconds(1)), "to-err\n");

  // A stream URL is single use.
  EXPECT_FALSE(RunStream(*url, {}).ok());

  // The same through cloak-cri, stdin from a pipe; a command that succeeds.
  EXPECT_EQ(env_->Run({"sh", "-c",
                       absl::StrCat("echo via-pipe | ", kCriBinary, " -r ", env_->endpoint(),
                                    " exec -i ", ctr, " sh -c 'read x; echo cli-$x'")}),
            0)
      << env_->last_output();
  EXPECT_THAT(env_->last_output(), HasSubstr("cli-via-pipe"));
  EXPECT_EQ(
      env_->Run({kCriBinary, "-r", env_->endpoint(), "exec", ctr, "sh", "-c", "exit 9"}), 1)
      << env_->last_output();
  EXPECT_THAT(env_->last_output(), HasSubstr("command terminated with exit code 9"));
  // A TTY: one output stream, carriage returns from the terminal.
  EXPECT_EQ(env_->Run({kCriBinary, "-r", env_->endpoint(), "exec", "-t", ctr, "sh", "-c",
                       "tty >/dev/null && echo in-a-tty"}),
            0)
      << env_->last_output();
  EXPECT_THAT(env_->last_output(), HasSubstr("in-a-tty"));
}

TEST_F(CriPodE2eTest, AttachSendsStdinToTheContainerAndReadsItsOutput) {
  v1::ContainerConfig cat = Container("cat", {"cat"});
  cat.set_stdin(true);
  std::string pod, ctr;
  ASSERT_NO_FATAL_FAILURE(RunOne("attach", cat, &pod, &ctr));

  v1::AttachRequest req;
  req.set_container_id(ctr);
  req.set_stdin(true);
  req.set_stdout(true);
  req.set_stderr(true);
  auto url = client_->Attach(req);
  ASSERT_TRUE(url.ok()) << url.status();

  Pipe in, out, err;
  absl::StatusOr<int> code = absl::UnknownError("not run");
  std::thread session([&] {
    code = RunStream(*url, {.stdin_fd = in.read_end.get(),
                            .stdout_fd = out.write_end.get(),
                            .stderr_fd = err.write_end.get(),
                            .close_on_stdin_eof = true});
  });
  ASSERT_EQ(::write(in.write_end.get(), "hello-attach\n", 13), 13);
  const std::string echoed = ReadUntil(out.read_end.get(), "hello-attach\n", absl::Seconds(30));
  in.write_end.Reset();  // stdin ends: the session closes
  session.join();
  EXPECT_EQ(echoed, "hello-attach\n");
  EXPECT_TRUE(code.ok()) << code.status();

  // cat's output also went to the container's CRI log.
  const std::string log_path = env_->dir() + "/logs/attach/cat/0.log";
  std::string log;
  for (int i = 0; i < 50 && !absl::StrContains(log, "hello-attach"); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    log = Slurp(log_path);
  }
  EXPECT_THAT(log, HasSubstr(" stdout F hello-attach"));

  // The container keeps running after the session: attach again, with cloak-cri.
  auto status = client_->ContainerStatus(ctr);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->state(), v1::CONTAINER_RUNNING);
  EXPECT_EQ(env_->Run({"sh", "-c",
                       absl::StrCat("(echo again; sleep 3) | ", kCriBinary, " -r ",
                                    env_->endpoint(), " attach -i ", ctr)}),
            0)
      << env_->last_output();
  EXPECT_THAT(env_->last_output(), HasSubstr("again"));
}

TEST_F(CriPodE2eTest, NonZeroExitShowsInContainerStatus) {
  std::string pod, ctr;
  ASSERT_NO_FATAL_FAILURE(RunOne("fails", Container("fails", {"sh", "-c", "exit 3"}), &pod, &ctr));
  v1::ContainerStatus status;
  for (int i = 0; i < 300; ++i) {
    auto s = client_->ContainerStatus(ctr);
    ASSERT_TRUE(s.ok()) << s.status();
    status = *s;
    if (status.state() == v1::CONTAINER_EXITED) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(status.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(status.exit_code(), 3);
  EXPECT_EQ(status.reason(), "Error");
  // containerd stamps started_at when the Start RPC returns; a command that
  // exits at once may have finished before that (with runc as well).
  EXPECT_GT(status.finished_at(), status.created_at());
  // The pod's VM is still up for its other containers.
  EXPECT_EQ(env_->QemuPidsMentioning(pod).size(), 1u);
}

TEST_F(CriPodE2eTest, MissingImageFailsNamingTheImage) {
  const std::string missing = env_->registry_host() + "/no-such-image:missing";
  auto pulled = client_->PullImage(missing);
  ASSERT_FALSE(pulled.ok());
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr(missing));
  std::cerr << "PullImage: " << pulled.status() << "\n";

  // CreateContainer of an image that was never pulled (kubelet pulls first;
  // a stale or wrong reference still has to be named).
  pod_ = env_->PodConfig("missing");
  auto pod = env_->RunPod(pod_);
  ASSERT_TRUE(pod.ok()) << pod.status();
  v1::ContainerConfig ctr = Container("ghost", {"true"});
  ctr.mutable_image()->set_image(missing);
  auto created = client_->CreateContainer(*pod, ctr, pod_);
  ASSERT_FALSE(created.ok());
  EXPECT_THAT(std::string(created.status().message()), HasSubstr(missing));
  std::cerr << "CreateContainer: " << created.status() << "\n";
}

// VM size from the pod (shim/vm_sizing.h, docs/performance.md): kubelet
// sends the summed container limits in LinuxPodSandboxConfig.resources,
// containerd turns them into the io.kubernetes.cri.sandbox-* annotations,
// and the shim gives the VM limit + hypervisor.pod_memory_overhead_mib
// (384 MiB by default): 640 MiB for limits.memory 256Mi.
TEST_F(CriPodE2eTest, PodMemoryLimitSizesTheVm) {
  constexpr int64_t kLimit = int64_t{256} << 20;
  constexpr int kWantMib = 256 + 384;
  auto ref = client_->PullImage(env_->image());
  ASSERT_TRUE(ref.ok()) << ref.status();
  pod_ = env_->PodConfig("sized");
  pod_.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(kLimit);
  auto pod = env_->RunPod(pod_);
  ASSERT_TRUE(pod.ok()) << pod.status();
  v1::ContainerConfig ctr = Container("sized", {"sleep", "300"});
  ctr.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(kLimit);
  auto id = client_->CreateContainer(*pod, ctr, pod_);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(client_->StartContainer(*id).ok());

  // The host side: QEMU was started with that much memory.
  const std::vector<pid_t> qemu = env_->QemuPidsMentioning(*pod);
  ASSERT_EQ(qemu.size(), 1u);
  const std::string cmdline =
      absl::StrReplaceAll(Slurp(absl::StrCat("/proc/", qemu[0], "/cmdline")), {{std::string(1, '\0'), " "}});
  EXPECT_THAT(cmdline, HasSubstr(absl::StrCat(" -m ", kWantMib, "M"))) << cmdline;

  // The guest side: what the kernel reports (less than the VM's memory by
  // what the firmware and the kernel image reserve).
  auto meminfo = client_->ExecSync(*id, {"head", "-3", "/proc/meminfo"}, 60);
  ASSERT_TRUE(meminfo.ok()) << meminfo.status();
  int64_t total_kib = 0, free_kib = 0, available_kib = 0;
  ASSERT_EQ(std::sscanf(meminfo->stdout().c_str(),
                        "MemTotal: %" SCNd64 " kB MemFree: %" SCNd64 " kB MemAvailable: %" SCNd64,
                        &total_kib, &free_kib, &available_kib),
            3)
      << meminfo->stdout();
  // What the overhead pays for: the guest's use with the pod idle.
  std::cerr << "guest MemTotal " << total_kib / 1024 << " MiB of a " << kWantMib
            << " MiB VM; in use with the pod idle " << (total_kib - available_kib) / 1024
            << " MiB\n";
  EXPECT_LE(total_kib, int64_t{kWantMib} * 1024);
  EXPECT_GE(total_kib, int64_t{kWantMib - 96} * 1024);
  // The container's own limit is applied inside the guest too.
  auto limit = client_->ExecSync(
      *id, {"sh", "-c", "cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max"}, 60);
  ASSERT_TRUE(limit.ok()) << limit.status();
  EXPECT_EQ(absl::StripAsciiWhitespace(limit->stdout()), absl::StrCat(kLimit))
      << "stderr: " << limit->stderr() << " exit " << limit->exit_code();
}

TEST_F(CriPodE2eTest, TwoContainersShareOneVmAndBothLog) {
  auto ref = client_->PullImage(env_->image());
  ASSERT_TRUE(ref.ok()) << ref.status();
  pod_ = env_->PodConfig("two");
  const absl::Time start = absl::Now();
  auto pod = env_->RunPod(pod_);
  ASSERT_TRUE(pod.ok()) << pod.status();
  std::vector<std::string> ids;
  for (const std::string name : {"first", "second"}) {
    auto id = client_->CreateContainer(
        *pod, Container(name, {"sh", "-c", absl::StrCat("echo hello-from-", name, "; sleep 300")}),
        pod_);
    ASSERT_TRUE(id.ok()) << id.status();
    ASSERT_TRUE(client_->StartContainer(*id).ok());
    ids.push_back(*id);
  }
  std::cerr << "two-container pod running after " << absl::FormatDuration(absl::Now() - start)
            << "\n";
  EXPECT_EQ(env_->QemuPidsMentioning(*pod).size(), 1u)
      << "QEMU of the pod: " << absl::StrJoin(env_->QemuPidsMentioning(*pod), " ");
  EXPECT_EQ(env_->QemuPids().size(), 1u) << "one VM for the whole pod";
  EXPECT_EQ(env_->ShimPids().size(), 1u) << "one shim for the whole pod";

  for (const std::string name : {"first", "second"}) {
    const std::string path = absl::StrCat(env_->dir(), "/logs/two/", name, "/0.log");
    std::string log;
    for (int i = 0; i < 100 && !absl::StrContains(log, "hello-from-" + name); ++i) {
      absl::SleepFor(absl::Milliseconds(100));
      log = Slurp(path);
    }
    EXPECT_THAT(log, HasSubstr(" stdout F hello-from-" + name)) << path;
  }
  for (const std::string& id : ids) {
    auto st = client_->ContainerStatus(id);
    ASSERT_TRUE(st.ok()) << st.status();
    EXPECT_EQ(st->state(), v1::CONTAINER_RUNNING);
    auto out = client_->ExecSync(id, {"cat", "/proc/1/cmdline"}, 30);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_THAT(out->stdout(), HasSubstr("sleep")) << "each container has its own PID 1";
  }
}

}  // namespace
}  // namespace cloak::cri
