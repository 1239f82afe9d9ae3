// `cloak policy gen` for a pod with volumes: the copy rules it emits admit
// kubelet's layout of exactly the pod's configMap, secret, downwardAPI and
// service-account token volumes, and nothing else.
#include <sys/stat.h>

#include "cli/cloak/policy_cmd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "policy/engine.h"

namespace cloak::cli {
namespace {

using ::testing::HasSubstr;

constexpr char kPod[] = R"yaml(
apiVersion: apps/v1
kind: Deployment
metadata: {name: vols}
spec:
  selector: {matchLabels: {app: vols}}
  template:
    metadata: {labels: {app: vols}}
    spec:
      containers:
        - name: app
          image: busybox
          volumeMounts:
            - {name: config, mountPath: /etc/config, readOnly: true}
            - {name: creds, mountPath: /etc/creds, readOnly: true}
            - {name: podinfo, mountPath: /etc/podinfo}
            - {name: scratch, mountPath: /scratch}
      volumes:
        - {name: config, configMap: {name: app-config}}
        - {name: creds, secret: {secretName: app-creds}}
        - name: podinfo
          downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
        - {name: scratch, emptyDir: {}}
        - {name: host, hostPath: {path: /etc}}
)yaml";

absl::StatusOr<ImageConfig> Images(const std::string&) {
  ImageConfig c;
  c.cmd = {"sh"};
  return c;
}

policy::Decision Copy(const policy::Engine& e, const std::string& rel, size_t size = 10) {
  agent::v1::CopyFileRequest r;
  r.set_path("/run/cloak/sandbox/volumes/" + rel);
  r.set_file_mode(S_IFREG | 0644);
  r.set_data(std::string(size, 'x'));
  return e.Check("CopyFile", r, policy::PodState());
}

TEST(PolicyGenVolumes, CopyRulesAdmitThePodsVolumesOnly) {
  absl::StatusOr<std::vector<GeneratedPolicy>> got = GeneratePolicies(kPod, Images);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 1u);
  const nlohmann::json& doc = (*got)[0].policy;
  ASSERT_TRUE(doc.contains("copy_files")) << doc.dump(2);
  EXPECT_EQ(doc["copy_files"].size(), 4u) << doc["copy_files"].dump(2);
  absl::StatusOr<policy::Policy> p = policy::ParsePolicyJson(doc);
  ASSERT_TRUE(p.ok()) << p.status();
  policy::Engine e(*std::move(p));

  for (const char* ok : {"kubernetes.io~configmap/config/..2026_12_07_20_00_00.1/app.conf",
                         "kubernetes.io~secret/creds/..data",
                         "kubernetes.io~downward-api/podinfo/labels",
                         "kubernetes.io~projected/kube-api-access-x7k2p/token"}) {
    policy::Decision d = Copy(e, ok);
    EXPECT_TRUE(d.allow) << ok << ": " << d.reason;
  }
  for (const char* no : {"kubernetes.io~configmap/other/key", "kubernetes.io~secret/config/key",
                         "host-path/etc-0123456789abcdef/passwd",
                         "kubernetes.io~projected/kube-api-access-toolong/token"}) {
    policy::Decision d = Copy(e, no);
    EXPECT_FALSE(d.allow) << no;
    EXPECT_THAT(d.reason, HasSubstr("matches no copy_files rule"));
  }
  policy::Decision big = Copy(e, "kubernetes.io~configmap/config/big", (1 << 20) + 1);
  EXPECT_FALSE(big.allow);
  EXPECT_THAT(big.reason, HasSubstr("exceed max_bytes 1048576"));
}

constexpr char kSecretPod[] = R"yaml(
apiVersion: apps/v1
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
    spec:
      containers:
        - {name: app, image: busybox}
        - {name: sidecar, image: busybox}
)yaml";

TEST(PolicyGenKbsFiles, AnnotationBecomesTheContainersKbsFiles) {
  absl::StatusOr<std::vector<GeneratedPolicy>> got = GeneratePolicies(kSecretPod, Images);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 1u);
  absl::StatusOr<policy::Policy> p = policy::ParsePolicyJson((*got)[0].policy);
  ASSERT_TRUE(p.ok()) << p.status() << "\n" << (*got)[0].policy.dump(2);
  bool seen_app = false;
  for (const policy::ContainerRule& c : p->containers) {
    if (c.name == "app") {
      seen_app = true;
      ASSERT_EQ(c.kbs_files.size(), 1u);
      EXPECT_EQ(c.kbs_files[0].resource, "default/secret/db-password");
      EXPECT_EQ(c.kbs_files[0].path, "/etc/db/password");
    } else {
      EXPECT_TRUE(c.kbs_files.empty()) << c.name;
    }
  }
  EXPECT_TRUE(seen_app);
}

TEST(PolicyGenKbsFiles, UnknownContainerIsAnError) {
  std::string yaml = kSecretPod;
  yaml.replace(yaml.find("container: app"), 14, "container: ap");
  absl::StatusOr<std::vector<GeneratedPolicy>> got = GeneratePolicies(yaml, Images);
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.status().message(), HasSubstr("io.cloak.kbs-files: no container named \"ap\""));
}

TEST(PolicyGenKbsFiles, BadResourceIsAnError) {
  std::string yaml = kSecretPod;
  yaml.replace(yaml.find("kbs:///default/secret/db-password"), 33, "kbs:///default/db-password");
  absl::StatusOr<std::vector<GeneratedPolicy>> got = GeneratePolicies(yaml, Images);
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.status().message(), HasSubstr("kbs_files[0].resource"));
}

}  // namespace
}  // namespace cloak::cli
