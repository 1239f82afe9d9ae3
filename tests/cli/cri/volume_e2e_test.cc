// Pod volumes and early attestation through containerd's CRI (e2e).
//
// Volumes: a pod whose container mounts a configMap-like, a secret-like and
// a service-account-token-like directory in kubelet's layout (written here
// the way kubelet's atomic writer does), and an emptyDir, under the agent's
// built-in default policy: the files are in the container (copied through
// CopyFile, no shared filesystem), an update on the host shows up in the
// guest, and a host directory outside the policy's copy rules is refused,
// with the reason, at StartContainer (where CRI makes the task).
//
// Early attestation: the cloak-dev handler configured with the simulated
// SNP security processor attests at CreateSandbox, so a pod whose evidence
// the key broker refuses fails at RunPodSandbox with the broker's reason; a
// pod without init-data is refused by the shim; with a key-release policy
// that accepts the evidence the pod runs.
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "cli/cri/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cri/cri_env.h"
#include "tests/cli/cri/cri_fixture.h"
#include "tests/util/host.h"
#include "tests/util/kbs.h"

namespace cloak::cri {
namespace {

namespace v1 = ::runtime::v1;
namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPodUid[] = "0f5a6b7c-1234-4abc-9def-0123456789ab";

// kubelet's atomic writer: payload in a timestamped directory, `..data`
// swapped to it by a rename, one symlink per key through `..data`, the old
// directory removed.
void AtomicWrite(const std::string& dir, const std::map<std::string, std::string>& files,
                 const std::string& stamp) {
  const std::string ts = absl::StrCat(dir, "/..", stamp);
  fs::create_directories(ts);
  for (const auto& [k, v] : files) std::ofstream(ts + "/" + k) << v;
  std::string old;
  std::error_code ec;
  if (fs::is_symlink(dir + "/..data")) old = fs::read_symlink(dir + "/..data").string();
  fs::create_symlink(".." + stamp, dir + "/..data_tmp");
  fs::rename(dir + "/..data_tmp", dir + "/..data");
  for (const auto& [k, v] : files) {
    if (!fs::is_symlink(dir + "/" + k)) fs::create_symlink("..data/" + k, dir + "/" + k);
  }
  if (!old.empty()) fs::remove_all(dir + "/" + old, ec);
}

v1::Mount* AddMount(v1::ContainerConfig* ctr, const std::string& host, const std::string& path,
                    bool ro) {
  v1::Mount* m = ctr->add_mounts();
  m->set_host_path(host);
  m->set_container_path(path);
  m->set_readonly(ro);
  return m;
}

class VolumeCriE2eTest : public CriEnvFixture {
 protected:
  CriEnvOptions Options() const override {
    CriEnvOptions o = CriEnvOptions::ForThisBuild();
    o.allow_all_policy = false;  // the built-in default policy decides
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

  // Waits until the container's log holds `want`; returns the log.
  std::string WaitForLog(const std::string& pod, const std::string& name, const std::string& want,
                         absl::Duration timeout = absl::Seconds(60)) {
    const std::string path = absl::StrCat(env_->dir(), "/logs/", pod, "/", name, "/0.log");
    std::string log;
    const absl::Time deadline = absl::Now() + timeout;
    while (!absl::StrContains(log, want) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(250));
      log = testutil::Slurp(path);
    }
    return log;
  }
};

TEST_F(VolumeCriE2eTest, KubeletVolumesReachTheContainerAndFollowUpdates) {
  const std::string vols = absl::StrCat(env_->dir(), "/kubelet/pods/", kPodUid, "/volumes");
  const std::string cm = vols + "/kubernetes.io~configmap/app-config";
  const std::string secret = vols + "/kubernetes.io~secret/app-creds";
  const std::string sa = vols + "/kubernetes.io~projected/kube-api-access-x7k2p";
  const std::string scratch = vols + "/kubernetes.io~empty-dir/scratch";
  AtomicWrite(cm, {{"app.conf", "color=blue"}}, "2026_12_07_20_00_00.000000001");
  AtomicWrite(secret, {{"password", "s3cr3t-pw"}}, "2026_12_07_20_00_00.000000002");
  AtomicWrite(sa, {{"token", "eyJhbGciOi.token-one"}, {"namespace", "default"}},
              "2026_12_07_20_00_00.000000003");
  fs::create_directories(scratch);
  // A file kubelet never wrote: it must not reach the guest's emptyDir.
  std::ofstream(scratch + "/planted-by-host") << "x";

  auto ref = client_->PullImage(env_->image());
  ASSERT_TRUE(ref.ok()) << ref.status();
  v1::PodSandboxConfig pod_config = env_->PodConfig("vols");
  auto pod = env_->RunPod(pod_config);
  ASSERT_TRUE(pod.ok()) << pod.status();

  v1::ContainerConfig app = Container(
      "app",
      "echo cm=$(cat /etc/config/app.conf); echo pw=$(cat /etc/creds/password); "
      "echo token=$(cat /var/run/secrets/kubernetes.io/serviceaccount/token); "
      "echo ns=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace); "
      "echo written > /scratch/out && echo scratch=$(cat /scratch/out); "
      "ls /scratch | grep -q planted || echo scratch-clean; "
      "touch /etc/config/x 2>/dev/null || echo config-readonly; "
      "while true; do echo now=$(cat /etc/config/app.conf); sleep 1; done");
  AddMount(&app, cm, "/etc/config", true);
  AddMount(&app, secret, "/etc/creds", true);
  AddMount(&app, sa, "/var/run/secrets/kubernetes.io/serviceaccount", true);
  AddMount(&app, scratch, "/scratch", false);
  auto id = client_->CreateContainer(*pod, app, pod_config);
  ASSERT_TRUE(id.ok()) << id.status();
  absl::Status started = client_->StartContainer(*id);
  ASSERT_TRUE(started.ok()) << started;

  std::string log = WaitForLog("vols", "app", "now=color=blue");
  EXPECT_THAT(log, HasSubstr("cm=color=blue"));
  EXPECT_THAT(log, HasSubstr("pw=s3cr3t-pw"));
  EXPECT_THAT(log, HasSubstr("token=eyJhbGciOi.token-one"));
  EXPECT_THAT(log, HasSubstr("ns=default"));
  EXPECT_THAT(log, HasSubstr("scratch=written"));
  EXPECT_THAT(log, HasSubstr("scratch-clean"));
  EXPECT_THAT(log, HasSubstr("config-readonly"));
  // The emptyDir lives in guest memory: the container's write is not on
  // the host.
  EXPECT_FALSE(fs::exists(scratch + "/out"));

  // kubelet updates the configMap: the guest follows.
  const absl::Time updated = absl::Now();
  AtomicWrite(cm, {{"app.conf", "color=green"}}, "2026_12_07_20_05_00.000000004");
  log = WaitForLog("vols", "app", "now=color=green");
  EXPECT_THAT(log, HasSubstr("now=color=green")) << "the update never reached the guest";
  std::cerr << "configMap update visible in the container after "
            << absl::FormatDuration(absl::Trunc(absl::Now() - updated, absl::Milliseconds(100)))
            << "\n";

  // A host directory outside kubelet's volumes: the default policy has no
  // copy rule for it, so the copy (and the container) is refused, with the
  // reason, and the shim's log reports it.
  const std::string hostdir = env_->dir() + "/host-secrets";
  fs::create_directories(hostdir);
  std::ofstream(hostdir + "/id_rsa") << "not for the guest";
  v1::ContainerConfig sneaky = Container("sneaky", "cat /host/id_rsa; sleep 300");
  AddMount(&sneaky, hostdir, "/host", true);
  auto sid = client_->CreateContainer(*pod, sneaky, pod_config);
  ASSERT_TRUE(sid.ok()) << sid.status();
  absl::Status refused = client_->StartContainer(*sid);
  ASSERT_FALSE(refused.ok()) << "a copy outside the policy was allowed";
  EXPECT_THAT(refused.message(), HasSubstr("policy: copy denied: destination"));
  EXPECT_THAT(refused.message(), HasSubstr("/run/cloak/sandbox/volumes/host-path/host-secrets-"));
  EXPECT_THAT(refused.message(), HasSubstr("matches no copy_files rule"));
  EXPECT_THAT(env_->ContainerdLogTail(200000), HasSubstr("refused: agent CopyFile: policy: copy denied"));
  // The first container still runs.
  log = WaitForLog("vols", "app", "now=color=green");
  EXPECT_THAT(log, Not(HasSubstr("not for the guest")));
}

#if defined(CLOAK_KBS_BINARY) && defined(CLOAK_SIMSP_BINARY)
TEST_F(VolumeCriE2eTest, SimulatedSnpPodAttestsAtRunPodSandbox) {
  const std::string d = env_->dir() + "/early";
  fs::create_directories(d);
  ASSERT_EQ(env_->Run({CLOAK_SIMSP_BINARY, "init-chain", "--dir", d + "/chain", "--rsa-bits",
                       "2048"},
                      absl::Seconds(120)),
            0)
      << env_->last_output();
  // A dev class with the simulated SNP: the handler's config gains the chain.
  const std::string config = env_->dir() + "/cloak-dev.toml";
  std::string toml = testutil::Slurp(config);
  ASSERT_THAT(toml, HasSubstr("[tee]\ntype = \"none\"\n"));
  toml = absl::StrReplaceAll(
      toml, {{"[tee]\ntype = \"none\"\n",
              absl::StrCat("[tee]\ntype = \"none\"\nsimulated_snp_chain = \"", d, "/chain\"\n")}});
  std::ofstream(config) << toml;

  // cloak-kbs trusting the TEST chain, with an image key to release.
  const std::string kbs = CLOAK_KBS_BINARY;
  const std::string state = d + "/kbs";
  ASSERT_EQ(env_->Run({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                       "rsa_keygen_bits:2048", "-out", d + "/image.key"}),
            0)
      << env_->last_output();
  ASSERT_EQ(env_->Run({kbs, "admin", "put-resource", "--state-dir", state,
                       "default/image-key/early", "--file", d + "/image.key"}),
            0)
      << env_->last_output();
  auto kbs_proc = testutil::StartDevKbs(kbs, state, d, {"--snp-certs-dir", d + "/chain"});
  ASSERT_TRUE(kbs_proc.ok()) << kbs_proc.status();
  const testutil::DevInitData initdata =
      testutil::DevInitDataFor(kbs_proc->port, "default/image-key/early");
  const std::string host_data_hex = initdata.sha384_hex.substr(0, 64);
  auto set_policy = [&](const std::string& json) {
    std::ofstream(d + "/policy.json") << json;
    ASSERT_EQ(env_->Run({kbs, "admin", "set-policy", "--state-dir", state,
                         "default/image-key/early", "--file", d + "/policy.json"}),
              0)
        << env_->last_output();
  };
  auto pod_with = [&](const std::string& name, bool with_initdata) {
    v1::PodSandboxConfig c = env_->PodConfig(name);
    if (with_initdata) {
      (*c.mutable_annotations())["io.cloak.initdata"] = absl::Base64Escape(initdata.document);
    }
    return c;
  };

  // The key broker refuses simulated evidence (no allow_simulated): the pod
  // fails at RunPodSandbox, naming the broker's reason, before any
  // container or image.
  set_policy(absl::StrCat(R"({"allowed_tees":["snp"],"init_data_digests":[")", host_data_hex,
                          R"("]})"));
  absl::Time t = absl::Now();
  auto refused = env_->RunPod(pod_with("refused", true));
  ASSERT_FALSE(refused.ok()) << "a pod whose attestation was refused ran";
  EXPECT_THAT(refused.status().message(), HasSubstr("early attestation at CreateSandbox"));
  EXPECT_THAT(std::string(refused.status().message()) + testutil::Slurp(d + "/kbs.log"),
              HasSubstr("allow_simulated"));
  std::cerr << "refused pod failed at RunPodSandbox after " << absl::FormatDuration(absl::Now() - t)
            << ": " << refused.status().message() << "\n";
  EXPECT_TRUE(env_->QemuPids().empty()) << "the refused pod's VM is still running";

  // No init-data: refused by the shim before a VM boots.
  t = absl::Now();
  auto bare = env_->RunPod(pod_with("bare", false));
  ASSERT_FALSE(bare.ok()) << "a simulated-SNP pod without init-data ran";
  EXPECT_THAT(bare.status().message(), HasSubstr("this pod has no init-data"));
  EXPECT_THAT(bare.status().message(), HasSubstr("simulated SNP"));
  std::cerr << "pod without init-data refused after " << absl::FormatDuration(absl::Now() - t)
            << "\n";

  // The broker accepts the simulated evidence and this init-data: the pod
  // runs, attested before its first container.
  set_policy(absl::StrCat(R"({"allowed_tees":["snp"],"allow_simulated":true,)",
                          R"("init_data_digests":[")", host_data_hex, R"("]})"));
  const size_t before = testutil::Slurp(d + "/kbs.log").size();
  auto ok = env_->RunPod(pod_with("attested", true));
  ASSERT_TRUE(ok.ok()) << ok.status() << "\n--- kbs log ---\n" << testutil::Slurp(d + "/kbs.log");
  // Attested and the key released during RunPodSandbox: no container yet.
  const std::string during = testutil::Slurp(d + "/kbs.log").substr(before);
  EXPECT_THAT(during, HasSubstr("step=attest tee=snp"));
  EXPECT_THAT(during, HasSubstr("step=resource path=default/image-key/early"));
}
#endif

}  // namespace
}  // namespace cloak::cri
