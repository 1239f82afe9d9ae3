// The hostile-host suite against the engine: requests a malicious host (node
// admin, compromised containerd or shim) could send a confidential pod's
// agent, each of which must be denied with a reason naming the rule and the
// field. The same pod's legitimate life is allowed (the suite would be
// worthless if the engine denied everything).
#include <functional>
#include <memory>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "policy/engine.h"
#include "tests/policy/specs.h"

namespace cloak::policy_test {
namespace {

using nlohmann::json;
using policy::Decision;
using policy::Engine;
using policy::PodState;
namespace v1 = agent::v1;

constexpr char kSetupImage[] = "registry.example:5000/web/setup:1.0";
constexpr char kAppImage[] = "registry.example:5000/web/app:1.0";
constexpr char kSidecarImage[] = "registry.example:5000/web/sidecar:1.0";
constexpr char kBusybox[] = "registry.example:5000/busybox:1.36";

Engine WebEngine() {
  absl::StatusOr<policy::Policy> p = policy::ParsePolicy(WebPodPolicy());
  EXPECT_TRUE(p.ok()) << p.status();
  return Engine(*std::move(p));
}

Engine DefaultEngine() { return Engine(policy::DefaultPolicy()); }

json AppSpec() {
  return CriSpec("app", {"/app", "--listen", ":8080"}, {"PATH=/usr/bin:/bin", "LOG_LEVEL=info"});
}
json SetupSpec() { return CriSpec("setup", {"/bin/setup", "--once"}, {"PATH=/usr/bin:/bin"}); }
json SidecarSpec() { return CriSpec("sidecar", {"/sidecar"}, {"PATH=/usr/bin:/bin"}); }

// Applies `rpc` to the state after checking the engine allows it (the
// legitimate part of the pod's history).
void Apply(const Engine& e, PodState* state, absl::string_view rpc,
           const google::protobuf::Message& req, const google::protobuf::Message* resp = nullptr) {
  Decision d = e.Check(rpc, req, *state);
  ASSERT_TRUE(d.allow) << rpc << ": " << d.reason;
  e.Record(rpc, req, resp, state);
}

// The web pod as the host legitimately runs it: sandbox, setup (exit 0,
// removed), app and sidecar started, one allowed exec in app.
void RunWebPod(const Engine& e, PodState* state, int setup_exit = 0) {
  Apply(e, state, "CreateSandbox", v1::CreateSandboxRequest());
  Apply(e, state, "CreateContainer", Create("pause", "", CriSandboxSpec(), /*sandbox=*/true));
  Apply(e, state, "CreateContainer", Create("c-setup", kSetupImage, SetupSpec()));
  v1::StartContainerRequest start;
  start.set_container_id("c-setup");
  Apply(e, state, "StartContainer", start);
  v1::WaitProcessRequest wait;
  wait.set_container_id("c-setup");
  v1::WaitProcessResponse waited;
  waited.set_exit_status(setup_exit);
  Apply(e, state, "WaitProcess", wait, &waited);
  v1::RemoveContainerRequest remove;
  remove.set_container_id("c-setup");
  Apply(e, state, "RemoveContainer", remove);
  if (setup_exit != 0) return;
  Apply(e, state, "CreateContainer", Create("c-app", kAppImage, AppSpec()));
  start.set_container_id("c-app");
  Apply(e, state, "StartContainer", start);
  Apply(e, state, "CreateContainer", Create("c-side", kSidecarImage, SidecarSpec()));
  start.set_container_id("c-side");
  Apply(e, state, "StartContainer", start);
  Apply(e, state, "ExecProcess", Exec("c-app", "probe", {"/bin/check", "--ready"}));
}

// `ctr run` under the built-in default: one container, started.
void RunCtrContainer(const Engine& e, PodState* state) {
  Apply(e, state, "CreateSandbox", v1::CreateSandboxRequest());
  Apply(e, state, "CreateContainer", Create("c1", kBusybox, CtrSpec({"sh", "-c", "echo hi"})));
  v1::StartContainerRequest start;
  start.set_container_id("c1");
  Apply(e, state, "StartContainer", start);
}

struct Hostile {
  std::string name;
  bool default_policy = false;
  int setup_exit = 0;
  // Returns the engine's answer to the hostile request.
  std::function<Decision(const Engine&, const PodState&)> send;
  // What the reason must contain (rule and field).
  std::string want;
};

// gtest prints a failing case by its name.
void PrintTo(const Hostile& h, std::ostream* os) { *os << h.name; }

Decision Send(const Engine& e, const PodState& s, absl::string_view rpc,
              const google::protobuf::Message& req) {
  return e.Check(rpc, req, s);
}

json With(json spec, const std::function<void(json&)>& change) {
  change(spec);
  return spec;
}

std::vector<Hostile> Cases() {
  std::vector<Hostile> c;
  auto add = [&c](std::string name, std::function<Decision(const Engine&, const PodState&)> send,
                  std::string want, bool default_policy = false) {
    c.push_back({std::move(name), default_policy, 0, std::move(send), std::move(want)});
  };
  auto create_app = [](json spec, std::string image = kAppImage, std::string id = "c-app2") {
    return [spec = std::move(spec), image = std::move(image), id = std::move(id)](
               const Engine& e, const PodState& s) {
      // A second app while the first runs would trip max_instances: the
      // field checks are seen on a pod whose app was removed.
      PodState without = s;
      without.containers.erase("c-app");
      return Send(e, without, "CreateContainer", Create(id, image, spec));
    };
  };

  // --- exec ---
  add("ExecShell",
      [](const Engine& e, const PodState& s) {
        return Send(e, s, "ExecProcess", Exec("c-app", "x1", {"/bin/sh"}));
      },
      R"(policy: exec denied: argv[0] "/bin/sh" matches no exec rule of container "app")");
  add("ExecAllowedCommandWithExtraArgument",
      [](const Engine& e, const PodState& s) {
        return Send(e, s, "ExecProcess", Exec("c-app", "x2", {"/bin/check", "--ready", "--fix"}));
      },
      R"(policy: exec denied: argv[2] "--fix" matches no exec rule of container "app")");
  add("ExecReadsAFileOutsideThePattern",
      [](const Engine& e, const PodState& s) {
        return Send(e, s, "ExecProcess", Exec("c-app", "x3", {"cat", "/etc/shadow"}));
      },
      R"(argv[1] "/etc/shadow" matches no exec rule of container "app")");
  add("ExecWithLdPreload",
      [](const Engine& e, const PodState& s) {
        return Send(e, s, "ExecProcess",
                    Exec("c-app", "x4", {"/bin/check", "--ready"},
                         {"PATH=/usr/bin:/bin", "LD_PRELOAD=/tmp/evil.so"}));
      },
      R"(process.env "LD_PRELOAD" (with its value) matches no env rule of container "app")");
  add("ExecIntoContainerWithoutExecRules",
      [](const Engine& e, const PodState& s) {
        return Send(e, s, "ExecProcess", Exec("c-side", "x5", {"/bin/sh"}));
      },
      R"(policy: exec denied: argv[0] "/bin/sh": container "sidecar" allows no exec)");
  add("ExecWithStdinOnANoStdinRule",
      [](const Engine& e, const PodState& s) {
        v1::ExecProcessRequest req = Exec("c-app", "x6", {"/bin/check", "--ready"});
        req.mutable_stdio()->set_stdin(true);
        return Send(e, s, "ExecProcess", req);
      },
      R"(policy: exec denied: stdin is off for this exec rule of container "app")");
  add("ExecIntoAContainerThePolicyNeverSaw",
      [](const Engine& e, const PodState& s) {
        return Send(e, s, "ExecProcess", Exec("ghost", "x7", {"/bin/check", "--ready"}));
      },
      R"(policy: exec denied: container "ghost" was not created under this policy)");
  add("ExecShellUnderTheDefaultPolicy",
      [](const Engine& e, const PodState& s) {
        return Send(e, s, "ExecProcess", Exec("c1", "x8", {"/bin/sh"}));
      },
      R"(policy: ExecProcess denied: rule rpcs.ExecProcess is "deny" (built-in default policy)",
      /*default_policy=*/true);

  // --- image ---
  add("SwapTheImage", create_app(AppSpec(), "evil.example/app:1.0"),
      R"(image "evil.example/app:1.0" of container "app" differs from the image it was created with, "registry.example:5000/web/app:1.0" (pin_images))");
  add("ImageOutsideTheRuleOnFirstCreate",
      [](const Engine& e, const PodState& s) {
        PodState fresh = s;
        fresh.containers.erase("c-app");
        fresh.pinned_images.erase("app");
        return Send(e, fresh, "CreateContainer",
                    Create("c-app2", "registry.example:5000/web/app:2.0", AppSpec()));
      },
      R"(image "registry.example:5000/web/app:2.0" does not match regex)");
  add("ImagePinnedToAnotherDigest",
      [](const Engine& e, const PodState& s) {
        PodState fresh = s;
        fresh.containers.erase("c-app");
        fresh.pinned_images.erase("app");
        return Send(e, fresh, "CreateContainer",
                    Create("c-app2",
                           "registry.example:5000/web/app@sha256:"
                           "2222222222222222222222222222222222222222222222222222222222222222",
                           AppSpec()));
      },
      "is pinned to another digest than sha256:1111");
  add("PulledManifestHasAnotherDigest",
      [](const Engine& e, const PodState& s) {
        return e.CheckPulledImage(Create("c-app", kAppImage, AppSpec()),
                                  "sha256:3333333333333333333333333333333333333333333333333333333333333333",
                                  s);
      },
      R"(resolved to "sha256:3333)");
  add("ImageChangeAfterCreateUnderTheDefaultPolicy",
      [](const Engine& e, const PodState& s) {
        PodState removed = s;
        removed.containers.erase("c1");
        return Send(e, removed, "CreateContainer",
                    Create("c1", "evil.example/busybox:1.36", CtrSpec({"sh"})));
      },
      R"(differs from the image it was created with, "registry.example:5000/busybox:1.36" (pin_images))",
      true);

  // --- mounts ---
  add("HostPathMount",
      create_app(With(AppSpec(),
                      [](json& s) {
                        s["mounts"].push_back({{"destination", "/host"},
                                               {"type", "bind"},
                                               {"source", "/"},
                                               {"options", {"rbind", "rw"}}});
                      })),
      R"(mounts[11] destination "/host" (bind from "/") matches no mount rule of container "app")");
  add("HostsFileFromTheHostRoot",
      create_app(With(AppSpec(),
                      [](json& s) { s["mounts"][6]["source"] = "/etc/shadow"; })),
      R"(mounts[6] "/etc/hosts" source "/etc/shadow" does not match regex)");
  add("MountOptionNotAllowed",
      create_app(With(AppSpec(),
                      [](json& s) { s["mounts"][9]["options"].push_back("suid"); })),
      R"(mounts[9] "/etc/resolv.conf" option "suid" is not allowed for container "app")");
  add("HostPathMountUnderTheDefaultPolicy",
      [](const Engine& e, const PodState& s) {
        json spec = CtrSpec({"sh"});
        spec["mounts"].push_back(
            {{"destination", "/mnt"}, {"type", "bind"}, {"source", "/var/lib/kubelet"}});
        return Send(e, s, "CreateContainer", Create("c2", kBusybox, spec));
      },
      R"(mounts[8] "/mnt" source "/var/lib/kubelet" does not match regex)", true);

  // --- process ---
  add("InjectLdPreload",
      create_app(With(AppSpec(),
                      [](json& s) { s["process"]["env"].push_back("LD_PRELOAD=/x.so"); })),
      R"(policy: create denied: process.env "LD_PRELOAD" (with its value) matches no env rule of container "app")");
  add("EnvValueOutsideThePattern",
      create_app(With(AppSpec(),
                      [](json& s) { s["process"]["env"][1] = "LOG_LEVEL=trace"; })),
      R"(process.env "LOG_LEVEL" (with its value) matches no env rule)");
  add("LdPreloadUnderTheDefaultPolicy",
      [](const Engine& e, const PodState& s) {
        json spec = CtrSpec({"sh"});
        spec["process"]["env"].push_back("LD_PRELOAD=/tmp/x.so");
        return Send(e, s, "CreateContainer", Create("c2", kBusybox, spec));
      },
      R"(process.env "LD_PRELOAD" matches env_deny)", true);
  add("ChangeArgsOfAnExistingContainer",
      create_app(With(AppSpec(),
                      [](json& s) { s["process"]["args"].push_back("--debug-shell"); })),
      R"(process.args has 4 entries, container "app" allows 3)");
  add("ReplaceTheCommand",
      create_app(With(AppSpec(), [](json& s) { s["process"]["args"][0] = "/bin/sh"; })),
      R"(process.args[0] "/bin/sh" does not match "/app" of container "app")");
  add("ArgumentOutsideThePattern",
      create_app(With(AppSpec(), [](json& s) { s["process"]["args"][2] = "0.0.0.0:8080"; })),
      R"(process.args[2] "0.0.0.0:8080" does not match regex /:[0-9]{2,5}/)");
  add("WorkingDirChanged",
      create_app(With(AppSpec(), [](json& s) { s["process"]["cwd"] = "/tmp"; })),
      R"(process.cwd "/tmp" does not match "/" of container "app")");
  add("ExtraSupplementaryGroup",
      create_app(With(AppSpec(),
                      [](json& s) { s["process"]["user"]["additionalGids"].push_back(6); })),
      R"(process.user.additionalGids has 6, not allowed for container "app")");

  // --- privileges ---
  add("Privileged",
      create_app(With(AppSpec(),
                      [](json& s) {
                        s["process"]["capabilities"]["bounding"].push_back("CAP_SYS_ADMIN");
                      })),
      R"(policy: create denied: privileged: process.capabilities.bounding has CAP_SYS_ADMIN; container "app" is not privileged)");
  add("HostDevices",
      create_app(With(AppSpec(),
                      [](json& s) {
                        s["linux"]["devices"] = {{{"path", "/dev/sda"}, {"type", "b"},
                                                  {"major", 8}, {"minor", 0}}};
                      })),
      R"(privileged: linux.devices adds 1 host device(s))");
  add("AddACapability",
      create_app(With(AppSpec(),
                      [](json& s) {
                        s["process"]["capabilities"]["effective"].push_back("CAP_NET_ADMIN");
                      })),
      R"(process.capabilities.effective "CAP_NET_ADMIN" is not among the 14 capabilities of container "app")");
  add("UserNamespace",
      create_app(With(AppSpec(),
                      [](json& s) { s["linux"]["namespaces"].push_back({{"type", "user"}}); })),
      R"(linux.namespaces "user" is not allowed for container "app")");
  add("SysctlNotListed",
      create_app(With(AppSpec(),
                      [](json& s) { s["linux"]["sysctl"] = {{"kernel.core_pattern", "|/x"}}; })),
      R"(linux.sysctl "kernel.core_pattern" is not allowed for container "app")");
  add("SysctlValueChanged",
      create_app(With(AppSpec(),
                      [](json& s) {
                        s["linux"]["sysctl"] = {{"net.ipv4.ip_unprivileged_port_start", "1024"}};
                      })),
      R"(linux.sysctl "net.ipv4.ip_unprivileged_port_start" value "1024" does not match "0")");
  add("UnmaskProcKcore",
      create_app(With(AppSpec(),
                      [](json& s) { s["linux"]["maskedPaths"] = json::array({"/proc/keys"}); })),
      R"(linux.maskedPaths lacks "/proc/kcore", which container "app" must mask)");
  add("WritableProcSys",
      create_app(With(AppSpec(),
                      [](json& s) { s["linux"]["readonlyPaths"] = json::array(); })),
      R"(linux.readonlyPaths lacks "/proc/sys")");
  add("RunOciAnnotation",
      create_app(With(AppSpec(),
                      [](json& s) { s["annotations"]["run.oci.hooks.stdout"] = "/dev/console"; })),
      R"(annotation "run.oci.hooks.stdout" is runtime-interpreted and not allowed for container "app")");
  add("ListedRuntimeAnnotationWithAnotherValue",
      create_app(With(AppSpec(),
                      [](json& s) { s["annotations"]["run.oci.keep_original_groups"] = "0"; })),
      R"(annotation "run.oci.keep_original_groups" value "0" does not match "1")");
  add("RunOciAnnotationUnderTheDefaultPolicy",
      [](const Engine& e, const PodState& s) {
        json spec = CtrSpec({"sh"});
        spec["annotations"] = {{"run.oci.seccomp_fail_unknown_syscall", "1"}};
        return Send(e, s, "CreateContainer", Create("c2", kBusybox, spec));
      },
      R"(annotation "run.oci.seccomp_fail_unknown_syscall" is runtime-interpreted)", true);

  // --- the set, count and order of containers ---
  add("ExtraContainer",
      [](const Engine& e, const PodState& s) {
        return Send(e, s, "CreateContainer",
                    Create("c-miner", kBusybox, CriSpec("miner", {"/miner"}, {})));
      },
      R"(policy: create denied: container "miner" matches no container rule (the policy allows "setup", "app", "sidecar"))");
  add("SecondAppWhileTheFirstRuns",
      [](const Engine& e, const PodState& s) {
        return Send(e, s, "CreateContainer", Create("c-app2", kAppImage, AppSpec()));
      },
      R"(container "app" exists already (max_instances 1): no extra containers)");
  add("SecondSandboxContainer",
      [](const Engine& e, const PodState& s) {
        return Send(e, s, "CreateContainer", Create("pause2", "", CriSandboxSpec(), true));
      },
      R"(sandbox container "pause2" exists already (max_instances 1))");
  c.push_back({"AppAfterAFailedInitContainer", false, /*setup_exit=*/1,
               [](const Engine& e, const PodState& s) {
                 return Send(e, s, "CreateContainer", Create("c-app", kAppImage, AppSpec()));
               },
               R"(container "app" may only be created after "setup" exited with 0 (rule after))"});
  add("AppBeforeTheInitContainer",
      [](const Engine& e, const PodState&) {
        PodState empty;
        return Send(e, empty, "CreateContainer", Create("c-app", kAppImage, AppSpec()));
      },
      R"(may only be created after "setup" exited with 0)");
  add("ReuseAContainerId",
      [](const Engine& e, const PodState& s) {
        return Send(e, s, "CreateContainer",
                    Create("c-side", kSidecarImage, SidecarSpec()));
      },
      R"(container id "c-side" exists already)");

  // --- stdio ---
  add("ReadLogsOfAContainerWhoseLogsAreOff",
      [](const Engine& e, const PodState& s) {
        v1::ReadOutputRequest r;
        r.set_container_id("c-side");
        r.set_stream(v1::STREAM_KIND_STDOUT);
        return Send(e, s, "ReadOutput", r);
      },
      R"(policy: read output denied: stdio.read_output is off for container "sidecar")");
  add("ReadOutputOfAnExecThePolicyNeverAllowed",
      [](const Engine& e, const PodState& s) {
        v1::ReadOutputRequest r;
        r.set_container_id("c-app");
        r.set_exec_id("sneaky");
        r.set_stream(v1::STREAM_KIND_STDOUT);
        return Send(e, s, "ReadOutput", r);
      },
      R"(policy: read output denied: exec "sneaky" of container "app" was not allowed by an exec rule)");
  add("WriteStdin",
      [](const Engine& e, const PodState& s) {
        v1::WriteStdinRequest r;
        r.set_container_id("c-app");
        r.set_data("rm -rf /\n");
        return Send(e, s, "WriteStdin", r);
      },
      R"(policy: write stdin denied: stdio.write_stdin is off for container "app")");
  add("WriteStdinOfANoStdinExec",
      [](const Engine& e, const PodState& s) {
        v1::WriteStdinRequest r;
        r.set_container_id("c-app");
        r.set_exec_id("probe");
        return Send(e, s, "WriteStdin", r);
      },
      R"(exec "probe" of container "app" has no stdin allowed by an exec rule)");
  add("WriteStdinUnderTheDefaultPolicy",
      [](const Engine& e, const PodState& s) {
        v1::WriteStdinRequest r;
        r.set_container_id("c1");
        return Send(e, s, "WriteStdin", r);
      },
      R"(policy: WriteStdin denied: rule rpcs.WriteStdin is "deny")", true);

  // --- the policy itself, file copies ---
  add("SetPolicyAllowAll",
      [](const Engine& e, const PodState& s) {
        v1::SetPolicyRequest r;
        r.set_policy(R"({"version": "1", "containers": [{"name": "*"}]})");
        return Send(e, s, "SetPolicy", r);
      },
      R"(policy: SetPolicy denied: rule rpcs.SetPolicy is "deny" (the default))");
  add("SetPolicyUnderTheDefaultPolicy",
      [](const Engine& e, const PodState& s) {
        return Send(e, s, "SetPolicy", v1::SetPolicyRequest());
      },
      R"(policy: SetPolicy denied: rule rpcs.SetPolicy is "deny" (built-in default policy)", true);
  add("CopyOutsideTheAllowedDestinations",
      [](const Engine& e, const PodState&) { return e.CheckCopyFile("/etc/passwd", 10); },
      R"(policy: copy denied: destination "/etc/passwd" matches no copy_files rule)");
  add("CopyTooLarge",
      [](const Engine& e, const PodState&) {
        return e.CheckCopyFile("/run/cloak/sandbox/volumes/kubernetes.io~configmap/data/blob",
                               2 << 20);
      },
      R"(2097152 bytes to "/run/cloak/sandbox/volumes/kubernetes.io~configmap/data/blob" exceed max_bytes 1048576)");
  return c;
}

class HostileHostTest : public ::testing::TestWithParam<Hostile> {};

TEST_P(HostileHostTest, IsDeniedWithItsReason) {
  const Hostile& h = GetParam();
  Engine e = h.default_policy ? DefaultEngine() : WebEngine();
  PodState state;
  if (h.default_policy) {
    ASSERT_NO_FATAL_FAILURE(RunCtrContainer(e, &state));
  } else {
    ASSERT_NO_FATAL_FAILURE(RunWebPod(e, &state, h.setup_exit));
  }
  Decision d = h.send(e, state);
  EXPECT_FALSE(d.allow) << h.name << " was allowed";
  EXPECT_THAT(d.reason, ::testing::HasSubstr(h.want));
  EXPECT_THAT(d.reason, ::testing::StartsWith("policy: "));
}

INSTANTIATE_TEST_SUITE_P(Requests, HostileHostTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Hostile>& i) { return i.param.name; });

TEST(HostileHostSuite, HasAtLeastThirtyRequests) { EXPECT_GE(Cases().size(), 30u); }

// The control group: everything the pod legitimately does is allowed.
TEST(LegitimatePod, WebPodRunsAndItsAllowedRequestsPass) {
  Engine e = WebEngine();
  PodState state;
  ASSERT_NO_FATAL_FAILURE(RunWebPod(e, &state));
  EXPECT_TRUE(e.Check("ExecProcess", Exec("c-app", "log", {"cat", "/tmp/app.log"}), state).allow);
  v1::ReadOutputRequest read;
  read.set_container_id("c-app");
  EXPECT_TRUE(e.Check("ReadOutput", read, state).allow);
  read.set_exec_id("probe");
  EXPECT_TRUE(e.Check("ReadOutput", read, state).allow);
  for (const char* rpc : {"StatsContainer", "SignalProcess", "WaitProcess", "ListProcesses",
                          "CloseStdin", "ResizeTty", "Health", "GetAttestationStatus"}) {
    v1::StatsContainerRequest any;
    EXPECT_TRUE(e.Check(rpc, any, state).allow) << rpc;
  }
  EXPECT_TRUE(e.CheckPulledImage(Create("c-app", kAppImage, AppSpec()),
                                 "sha256:1111111111111111111111111111111111111111111111111111111111111111",
                                 state)
                  .allow);
  EXPECT_TRUE(
      e.CheckCopyFile("/run/cloak/sandbox/volumes/kubernetes.io~configmap/data/config.yaml", 4096)
          .allow);
  // The app is re-created after a restart: same image, same spec.
  v1::RemoveContainerRequest remove;
  remove.set_container_id("c-app");
  e.Record("RemoveContainer", remove, nullptr, &state);
  Decision again = e.Check("CreateContainer", Create("c-app-1", kAppImage, AppSpec()), state);
  EXPECT_TRUE(again.allow) << again.reason;
}

TEST(LegitimatePod, DefaultPolicyRunsCtrAndCriContainers) {
  Engine e = DefaultEngine();
  PodState state;
  ASSERT_NO_FATAL_FAILURE(RunCtrContainer(e, &state));
  Decision cri = e.Check("CreateContainer",
                         Create("c2", kBusybox, CriSpec("web", {"/bin/sh"}, {"PATH=/bin"})), state);
  EXPECT_TRUE(cri.allow) << cri.reason;
  Decision pause = e.Check("CreateContainer", Create("p", "", CriSandboxSpec(), true), state);
  EXPECT_TRUE(pause.allow) << pause.reason;
  v1::ReadOutputRequest read;
  read.set_container_id("c1");
  EXPECT_TRUE(e.Check("ReadOutput", read, state).allow);
  for (const char* rpc : {"StatsContainer", "SignalProcess", "WaitProcess", "RemoveContainer",
                          "DestroySandbox", "WatchOomEvents", "CloseStdin", "UpdateContainer"}) {
    v1::StatsContainerRequest any;
    EXPECT_TRUE(e.Check(rpc, any, state).allow) << rpc;
  }
}

}  // namespace
}  // namespace cloak::policy_test
