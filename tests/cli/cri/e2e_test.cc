// Pods through containerd's real CRI plugin with the cloak-dev runtime
// handler, driven by cloak::cri::Client in the world of CriEnv (cri_env.h): a
// private containerd 1.6 with CRI on, a private registry on 127.0.0.1, QEMU
// under TCG with this build's guest image. Host-network pods. Root only;
// skips, saying why, when a prerequisite is missing. Everything it starts is
// stopped by pid, even when a step fails.
#include <sys/types.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cli/cri/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cri/cri_env.h"
#include "tests/cli/cri/cri_fixture.h"
#include "tests/util/host.h"

namespace cloak::cri {
namespace {

namespace v1 = ::runtime::v1;
using ::cloak::testutil::PssKib;
using ::cloak::testutil::Slurp;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

const std::string kCriBinary = CloakCriBinary();

class CriE2eTest : public CriEnvFixture {
 protected:
  void SetUp() override {
    CriEnvFixture::SetUp();
    if (!env_) return;  // skipped or failed
    d_ = env_->dir();
    image_ = env_->image();
  }

  int Run(const std::vector<std::string>& argv) { return env_->Run(argv); }

  std::string d_, image_, pod_id_;
};

TEST_F(CriE2eTest, HostNetworkPodRunsLogsExecsAndCleansUp) {
  auto ref = client_->PullImage(image_);
  ASSERT_TRUE(ref.ok()) << ref.status();

  const v1::PodSandboxConfig pod = env_->PodConfig("hello");
  v1::ContainerConfig ctr;
  ctr.mutable_metadata()->set_name("hello");
  ctr.mutable_image()->set_image(image_);
  for (const char* a : {"sh", "-c", "echo hello-cri; sleep 300"}) ctr.add_command(a);
  ctr.set_log_path("hello/0.log");

  const absl::Time start = absl::Now();
  auto pod_id = env_->RunPod(pod, "cloak-dev");
  ASSERT_TRUE(pod_id.ok()) << pod_id.status();
  pod_id_ = *pod_id;
  const absl::Duration run_pod = absl::Now() - start;
  EXPECT_EQ(env_->QemuPids().size(), 1u);

  auto ctr_id = client_->CreateContainer(pod_id_, ctr, pod);
  ASSERT_TRUE(ctr_id.ok()) << ctr_id.status();
  const absl::Duration created = absl::Now() - start;
  ASSERT_TRUE(client_->StartContainer(*ctr_id).ok());
  const absl::Duration started = absl::Now() - start;
  std::cerr << "RunPodSandbox " << absl::FormatDuration(run_pod) << ", + CreateContainer "
            << absl::FormatDuration(created) << ", + StartContainer "
            << absl::FormatDuration(started) << " (wall, from RunPodSandbox)\n";
  EXPECT_EQ(env_->QemuPids().size(), 1u) << "the container joins the pod's VM";
  std::cerr << "host memory of the pod: QEMU PSS " << PssKib(env_->QemuPids()) << " KiB, shim PSS "
            << PssKib(env_->ShimPids()) << " KiB\n";

  auto status = client_->ContainerStatus(*ctr_id);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->state(), v1::CONTAINER_RUNNING);
  EXPECT_EQ(status->log_path(), d_ + "/logs/hello/hello/0.log");

  auto listed = client_->ListContainers(pod_id_);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id(), *ctr_id);

  auto out = client_->ExecSync(*ctr_id, {"sh", "-c", "echo exec-ok; echo to-err >&2"}, 60);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->exit_code(), 0);
  EXPECT_EQ(out->stdout(), "exec-ok\n");
  EXPECT_EQ(out->stderr(), "to-err\n");
  auto bad = client_->ExecSync(*ctr_id, {"sh", "-c", "exit 7"}, 60);
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_EQ(bad->exit_code(), 7);

  // This class opted out of the agent policy (CriEnv's allow_all_policy):
  // `inspectp` says so, from the sandbox's record in containerd.
  auto inspected = client_->InspectPod(pod_id_, /*verbose=*/true);
  ASSERT_TRUE(inspected.ok()) << inspected.status();
  std::string info;
  for (const auto& [k, v] : inspected->info()) info += v;
  EXPECT_THAT(info, ContainsRegex(R"re("io.cloak.agent-policy": *"allow-all")re"));
  EXPECT_THAT(Slurp(d_ + "/containerd.log"), HasSubstr("agent policy ALLOW-ALL"));

  // The same through the cloak-cri binary.
  const std::string endpoint = env_->endpoint();
  ASSERT_EQ(Run({kCriBinary, "-r", endpoint, "inspectp", pod_id_}), 0) << env_->last_output();
  EXPECT_THAT(env_->last_output(), ContainsRegex(R"re("io.cloak.agent-policy": *"allow-all")re"));
  ASSERT_EQ(Run({kCriBinary, "-r", endpoint, "ps", "--no-trunc", "--pod", pod_id_}), 0)
      << env_->last_output();
  EXPECT_THAT(env_->last_output(), ContainsRegex(*ctr_id + " +[^ ]+ +.* ago +Running +hello "));
  // A non-zero exit is exit 1 with the code in the message, as with crictl 1.26.
  EXPECT_EQ(Run({kCriBinary, "-r", endpoint, "exec", "-s", *ctr_id, "sh", "-c",
                 "echo via-cli; exit 5"}),
            1);
  EXPECT_THAT(env_->last_output(), HasSubstr("via-cli"));
  EXPECT_THAT(env_->last_output(), HasSubstr("command 'sh -c echo via-cli; exit 5' exited with 5"));

  // CRI log format: "<RFC3339Nano> stdout F hello-cri".
  const std::string log_path = d_ + "/logs/hello/hello/0.log";
  std::string log;
  for (int i = 0; i < 100 && !absl::StrContains(log, "hello-cri"); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    log = Slurp(log_path);
  }
  std::vector<std::string> lines = absl::StrSplit(log, '\n', absl::SkipEmpty());
  ASSERT_FALSE(lines.empty()) << "no log at " << log_path;
  EXPECT_THAT(lines[0], MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[^ ]+ stdout F hello-cri"));

  ASSERT_TRUE(client_->StopPodSandbox(pod_id_).ok());
  auto stopped = client_->ContainerStatus(*ctr_id);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->state(), v1::CONTAINER_EXITED);
  ASSERT_TRUE(client_->RemovePodSandbox(pod_id_).ok());
  env_->ForgetPod(pod_id_);
  EXPECT_EQ(client_->ContainerStatus(*ctr_id).status().code(), absl::StatusCode::kNotFound);

  for (int i = 0; i < 100 && !(env_->QemuPids().empty() && env_->ShimPids().empty()); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(env_->QemuPids().empty()) << "QEMU left: " << absl::StrJoin(env_->QemuPids(), " ");
  EXPECT_TRUE(env_->ShimPids().empty()) << "shim left: " << absl::StrJoin(env_->ShimPids(), " ");
}

}  // namespace
}  // namespace cloak::cri
