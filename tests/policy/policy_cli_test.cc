// `cloak policy` cores: gen from workload YAML (with image configs given
// here instead of a registry), the init-data annotation, and `test` of a
// recorded request with its history.
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "cli/cloak/policy_cmd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "policy/yaml.h"

namespace cloak::cli {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

constexpr char kDeployment[] = R"yaml(
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
    spec:
      automountServiceAccountToken: false
      initContainers:
        - name: setup
          image: 127.0.0.1:5000/web/setup:1.0
          command: ["/bin/setup"]
      containers:
        - name: app
          image: 127.0.0.1:5000/web/app:1.0
          args: ["--port=8080"]
          env:
            - {name: LOG_LEVEL, value: info}
            - name: TOKEN
              valueFrom: {secretKeyRef: {name: s, key: t}}
          readinessProbe:
            exec: {command: ["/bin/check", "--ready"]}
          securityContext: {runAsUser: 1000, capabilities: {add: [NET_ADMIN]}}
        - name: sidecar
          image: busybox
          command: ["sh", "-c", "while true; do sleep 5; done"]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      containers: [{name: job, image: registry.example/job@sha256:0123456789012345678901234567890123456789012345678901234567890123}]
)yaml";

absl::StatusOr<ImageConfig> FakeImages(const std::string& image) {
  ImageConfig c;
  c.env = {"PATH=/usr/bin:/bin"};
  if (absl::StrContains(image, "web/app")) {
    c.entrypoint = {"/app"};
    c.cmd = {"--port=80"};
    c.working_dir = "/srv";
  } else if (absl::StrContains(image, "job")) {
    c.cmd = {"/job", "--run"};
  }
  return c;
}

TEST(PolicyGen, TwoContainerDeploymentAndAJob) {
  absl::StatusOr<std::vector<GeneratedPolicy>> got = GeneratePolicies(kDeployment, FakeImages);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].workload, "Deployment/web");
  EXPECT_EQ((*got)[1].workload, "Job/once");
  const json& p = (*got)[0].policy;
  ASSERT_EQ(p["containers"].size(), 4u);  // sandbox, setup, app, sidecar
  EXPECT_EQ(p["containers"][0]["sandbox"], true);
  const json& setup = p["containers"][1];
  EXPECT_EQ(setup["args"], json::array({"/bin/setup"}));
  const json& app = p["containers"][2];
  // Entrypoint of the image, args of the pod (they replace Cmd).
  EXPECT_EQ(app["args"], json::array({"/app", "--port=8080"}));
  EXPECT_EQ(app["working_dir"], "/srv");
  EXPECT_EQ(app["after"], json::array({"setup"}));
  EXPECT_EQ(app["user"]["uid"], 1000);
  EXPECT_THAT(app["capabilities"].dump(), HasSubstr("CAP_NET_ADMIN"));
  EXPECT_EQ(app["exec"][0]["argv"], json::array({"/bin/check", "--ready"}));
  EXPECT_EQ(app["exec"][0]["stdin"], false);
  EXPECT_THAT(app["env"].dump(), HasSubstr("LOG_LEVEL=info"));
  EXPECT_THAT(app["env"].dump(), HasSubstr("TOKEN=.*"));
  // The host's loopback registry as the guest reaches it.
  absl::StatusOr<policy::Policy> parsed = policy::ParsePolicyJson(p);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const policy::ContainerRule& a = parsed->containers[2];
  EXPECT_TRUE(a.image->reference->Matches("127.0.0.1:5000/web/app:1.0"));
  EXPECT_TRUE(a.image->reference->Matches("10.0.2.2:5000/web/app:1.0"));
  EXPECT_FALSE(a.image->reference->Matches("10.0.2.2:5000/web/app:2.0"));
  const policy::ContainerRule& side = parsed->containers[3];
  EXPECT_TRUE(side.image->reference->Matches("docker.io/library/busybox:latest"));
  EXPECT_TRUE(side.image->reference->Matches("busybox"));
  EXPECT_FALSE(side.image->reference->Matches("evil/busybox"));
  EXPECT_TRUE(side.exec.empty());
  // The Job: Cmd of the image, digest reference kept exactly.
  EXPECT_EQ((*got)[1].policy["containers"][1]["args"], json::array({"/job", "--run"}));
}

TEST(PolicyGen, AnnotatesEachPodTemplateWithItsInitData) {
  absl::StatusOr<std::vector<GeneratedPolicy>> got = GeneratePolicies(kDeployment, FakeImages);
  ASSERT_TRUE(got.ok());
  InitDataOptions o;
  o.kbs_url = "http://10.0.2.2:8080";
  absl::StatusOr<std::string> yaml = AnnotateWorkloads(kDeployment, *got, o);
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  absl::StatusOr<std::vector<json>> docs = policy::YamlDocuments(*yaml);
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 3u);
  EXPECT_FALSE((*docs)[0].contains("spec") && (*docs)[0]["spec"].contains("template"));
  std::string b64 = (*docs)[1]["spec"]["template"]["metadata"]["annotations"][kInitDataAnnotation];
  std::string initdata;
  ASSERT_TRUE(absl::Base64Unescape(b64, &initdata));
  EXPECT_THAT(initdata, HasSubstr("version = \"0.1.0\""));
  EXPECT_THAT(initdata, HasSubstr("kbs_url = \"http://10.0.2.2:8080\""));
  EXPECT_THAT(initdata, HasSubstr("\"policy.json\" = \"{"));
  // The rest of the workload is unchanged.
  EXPECT_EQ((*docs)[1]["spec"]["template"]["spec"]["containers"][0]["args"],
            json::array({"--port=8080"}));
  EXPECT_EQ((*docs)[1]["spec"]["replicas"], 1);
  EXPECT_TRUE((*docs)[2]["spec"]["template"]["metadata"]["annotations"].contains(kInitDataAnnotation));
}

TEST(PolicyGen, NoWorkloadIsAnError) {
  absl::StatusOr<std::vector<GeneratedPolicy>> got =
      GeneratePolicies("kind: Service\nmetadata: {name: x}\n", FakeImages);
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.status().message(), HasSubstr("no Pod, Deployment"));
}

TEST(PolicyTest, ReplaysTheHistoryThenDecides) {
  absl::StatusOr<policy::Policy> p = policy::ParsePolicy(R"({"version": "1", "containers": [
    {"name": "app", "exec": [["/bin/check"]]}]})");
  ASSERT_TRUE(p.ok()) << p.status();
  json spec = {{"process", {{"args", {"/app"}}}},
               {"linux", {{"maskedPaths", {"/proc/kcore", "/proc/keys", "/sys/firmware"}},
                          {"readonlyPaths", {"/proc/sys", "/proc/sysrq-trigger"}}}}};
  json rec = {{"history",
               {{{"rpc", "CreateContainer"},
                 {"request", {{"containerId", "app"}, {"ociSpecJson",
                                                        absl::Base64Escape(spec.dump())}}}}}},
              {"rpc", "ExecProcess"},
              {"request",
               {{"containerId", "app"},
                {"execId", "e1"},
                {"processJson", absl::Base64Escape(json{{"args", {"/bin/sh"}}}.dump())}}}};
  absl::StatusOr<policy::Decision> d = TestRecordedRequest(*p, rec.dump());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->allow);
  EXPECT_EQ(d->reason,
            R"(policy: exec denied: argv[0] "/bin/sh" matches no exec rule of container "app")");
  rec["request"]["processJson"] = absl::Base64Escape(json{{"args", {"/bin/check"}}}.dump());
  d = TestRecordedRequest(*p, rec.dump());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->allow) << d->reason;
  rec["rpc"] = "NoSuchRpc";
  EXPECT_FALSE(TestRecordedRequest(*p, rec.dump()).ok());
}

}  // namespace
}  // namespace cloak::cli
