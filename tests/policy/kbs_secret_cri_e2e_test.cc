// A key broker secret reaches the container as a file, and only the guest
// ever holds it (docs/policy.md "kbs_files").
//
// A Deployment names, in its io.cloak.kbs-files annotation, a cloak-kbs
// resource for its "app" container; `cloak policy gen` (its core) writes it
// into the pod's measured policy, carried by the init-data. Through a
// private containerd's CRI, a real QEMU guest and a real cloak-kbs on the
// host's loopback, the agent attests, fetches the resource and binds it
// read-only (0400) into the container, which prints a hash of it. Two more
// containers name a resource the broker does not hold and one whose
// key-release policy pins another init-data: each fails at StartContainer
// with the broker's reason. Last, a marker scan: the secret holds a random
// marker, and no file of the host — containerd's root, state and content
// store, the shim's sandbox state and the VM's console log, containerd's
// (and so the shim's) log, the containers' logs, /run/containerd — holds it.
// The broker's own store stands for a remote key broker and is not
// scanned; the guest's memory is a memfd, no file.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli/cloak/policy_cmd.h"
#include "cli/cri/client.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/cli/cri/cri_env.h"
#include "tests/cli/cri/cri_fixture.h"
#include "tests/util/host.h"
#include "tests/util/kbs.h"

namespace cloak::cri {
namespace {

namespace v1 = ::runtime::v1;
namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// The containers' scripts, as the Deployment and the CRI calls both have
// them (the generated policy pins the args).
constexpr char kAppScript[] =
    "echo sha=$(sha256sum /etc/db/password | cut -d' ' -f1); "
    "echo mode=$(stat -c '%a %u' /etc/db/password); "
    "echo x >> /etc/db/password 2>/dev/null || echo readonly; exec sleep 300";
constexpr char kCatScript[] = "cat /etc/db/password; sleep 300";

std::string Deployment(const std::string& image) {
  // A JSON string is a YAML double-quoted scalar.
  const std::string app = nlohmann::json(kAppScript).dump();
  const std::string cat = nlohmann::json(kCatScript).dump();
  return absl::StrCat(R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: db-client}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata:
      labels: {app: db}
      annotations:
        io.cloak.kbs-files: |
          - {container: app, resource: "kbs:///default/secret/db-password", path: /etc/db/password}
          - {container: missing, resource: "kbs:///default/secret/absent", path: /etc/db/password}
          - {container: other-pod, resource: "kbs:///default/secret/other-pod", path: /etc/db/password}
    spec:
      automountServiceAccountToken: false
      containers:
        - name: app
          image: )", image, R"(
          command: ["sh", "-c", )", app, R"(]
        - name: missing
          image: )", image, R"(
          command: ["sh", "-c", )", cat, R"(]
        - name: other-pod
          image: )", image, R"(
          command: ["sh", "-c", )", cat, R"(]
)");
}

class KbsSecretCriE2eTest : public CriEnvFixture {
 protected:
  CriEnvOptions Options() const override {
    CriEnvOptions o = CriEnvOptions::ForThisBuild();
    o.allow_all_policy = false;  // the pod's measured policy decides
    return o;
  }

  v1::ContainerConfig Container(const std::string& name, const std::string& script) {
    v1::ContainerConfig ctr;
    ctr.mutable_metadata()->set_name(name);
    ctr.mutable_image()->set_image(env_->image());
    ctr.add_command("sh");
    ctr.add_command("-c");
    ctr.add_command(script);
    ctr.set_log_path(name + "/0.log");
    return ctr;
  }
};

#ifdef CLOAK_KBS_BINARY
TEST_F(KbsSecretCriE2eTest, SecretReachesTheContainerAsAFileAndNeverTheHost) {
  // The broker's store: outside the run's directory, standing for a key
  // broker that is not on this node.
  auto kbs_dir = TempDir::Create("kbs-secret");
  ASSERT_TRUE(kbs_dir.ok()) << kbs_dir.status();
  const std::string kd = kbs_dir->path().string();
  const std::string kbs = CLOAK_KBS_BINARY;
  const std::string state = kd + "/state";
  const std::string marker = testutil::RandomMarker("cloak-kbs-secret-marker-");
  const std::string secret = absl::StrCat("password=", marker, "\n");
  {
    std::ofstream(kd + "/secret") << secret;
    ASSERT_EQ(env_->Run({kbs, "admin", "put-resource", "--state-dir", state,
                         "default/secret/db-password", "--file", kd + "/secret"}),
              0)
        << env_->last_output();
    ASSERT_EQ(env_->Run({kbs, "admin", "put-resource", "--state-dir", state,
                         "default/secret/other-pod", "--file", kd + "/secret"}),
              0)
        << env_->last_output();
    fs::remove(kd + "/secret");
  }
  auto kbs_proc = testutil::StartDevKbs(kbs, state, kd);
  ASSERT_TRUE(kbs_proc.ok()) << kbs_proc.status();

  // The policy from the Deployment, its init-data pointing at the broker.
  auto gen = cli::GeneratePolicies(Deployment(env_->image()),
                                   cli::SkopeoImageConfig(/*tls_verify=*/false));
  ASSERT_TRUE(gen.ok()) << gen.status();
  ASSERT_EQ(gen->size(), 1u);
  cli::InitDataOptions init_options;
  init_options.kbs_url = absl::StrCat("http://10.0.2.2:", kbs_proc->port);
  const std::string initdata = cli::InitDataWithPolicy((*gen)[0].policy, init_options);
  ASSERT_THAT(initdata, HasSubstr("default/secret/db-password"));
  ASSERT_THAT(initdata, Not(HasSubstr(marker)));
  // Released only to this pod's init-data (dev evidence); "other-pod" only
  // to another init-data.
  auto set_policy = [&](const std::string& resource, const std::string& digest) {
    std::ofstream(kd + "/policy.json")
        << absl::StrCat(R"({"allowed_tees":["sample"],"init_data_digests":[")", digest, R"("]})");
    ASSERT_EQ(env_->Run({kbs, "admin", "set-policy", "--state-dir", state, resource, "--file",
                         kd + "/policy.json"}),
              0)
        << env_->last_output();
  };
  set_policy("default/secret/db-password", testutil::Sha384Hex(initdata));
  set_policy("default/secret/other-pod", testutil::Sha384Hex(initdata + "# another pod\n"));

  auto ref = client_->PullImage(env_->image());
  ASSERT_TRUE(ref.ok()) << ref.status();
  v1::PodSandboxConfig pod_config = env_->PodConfig("db");
  (*pod_config.mutable_annotations())[cli::kInitDataAnnotation] = absl::Base64Escape(initdata);
  auto pod = env_->RunPod(pod_config);
  ASSERT_TRUE(pod.ok()) << pod.status();

  const absl::Time t = absl::Now();
  auto id = client_->CreateContainer(
      *pod,
      Container("app", kAppScript),
      pod_config);
  ASSERT_TRUE(id.ok()) << id.status();
  absl::Status started = client_->StartContainer(*id);
  ASSERT_TRUE(started.ok()) << started << "\n--- kbs log ---\n" << testutil::Slurp(kd + "/kbs.log");
  std::cerr << "container with a key broker file created and started in "
            << absl::FormatDuration(absl::Trunc(absl::Now() - t, absl::Milliseconds(100))) << "\n";
  const std::string log_path = env_->dir() + "/logs/db/app/0.log";
  std::string log;
  for (int i = 0; i < 240 && !absl::StrContains(log, "readonly"); ++i) {
    absl::SleepFor(absl::Milliseconds(250));
    log = testutil::Slurp(log_path);
  }
  EXPECT_THAT(log, HasSubstr("sha=" + tee::HexEncode(tee::Sha256(secret))));
  EXPECT_THAT(log, HasSubstr("mode=400 0"));
  EXPECT_THAT(log, HasSubstr("readonly"));
  const std::string kbs_log = testutil::Slurp(kd + "/kbs.log");
  EXPECT_THAT(kbs_log, HasSubstr("step=attest tee=sample"));
  EXPECT_THAT(kbs_log, HasSubstr("step=resource path=default/secret/db-password tee=sample status=200"));

  // A resource the broker does not hold, and one released only to another
  // pod's init-data: each container fails (CRI makes the agent's container
  // at StartContainer) with the broker's reason.
  auto missing = client_->CreateContainer(*pod, Container("missing", kCatScript),
                                          pod_config);
  ASSERT_TRUE(missing.ok()) << missing.status();
  absl::Status refused = client_->StartContainer(*missing);
  ASSERT_FALSE(refused.ok()) << "a container whose key broker file does not exist started";
  EXPECT_THAT(refused.message(), HasSubstr("kbs_files"));
  EXPECT_THAT(refused.message(), HasSubstr("ResourceNotFound"));
  EXPECT_THAT(refused.message(), HasSubstr("default/secret/absent"));
  auto other = client_->CreateContainer(
      *pod, Container("other-pod", kCatScript), pod_config);
  ASSERT_TRUE(other.ok()) << other.status();
  refused = client_->StartContainer(*other);
  ASSERT_FALSE(refused.ok()) << "a secret released to another init-data reached this pod";
  EXPECT_THAT(refused.message(), HasSubstr("PolicyDeny"));
  EXPECT_THAT(refused.message(), HasSubstr("default/secret/other-pod"));

  // The marker scan. It finds the marker where it is (the broker's store
  // keeps the resource as given)...
  ASSERT_THAT(testutil::FilesHoldingMarker(marker, {state}), Not(IsEmpty()))
      << "the scan cannot find the marker even in the key broker's store";
  // ...and nowhere on the host side of the pod.
  std::vector<std::string> dirs = {env_->dir()};
  if (fs::exists("/run/containerd")) dirs.push_back("/run/containerd");
  EXPECT_THAT(testutil::FilesHoldingMarker(marker, dirs), IsEmpty())
      << "the key broker secret is on the host";
  EXPECT_THAT(env_->ContainerdLogTail(1 << 24), Not(HasSubstr(marker)));
  EXPECT_THAT(log, Not(HasSubstr(marker)));
}
#endif

}  // namespace
}  // namespace cloak::cri
