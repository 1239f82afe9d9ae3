// The hostile-host suite through the real agent: the guest image boots under
// QEMU (TCG, tests/guest GuestHarness), CreateSandbox hands it init-data
// whose [data] "policy.json" is the pod's policy, and a representative part
// of the hostile requests of hostile_host_test.cc goes over the agent API.
// Each must come back PermissionDenied with the engine's reason, the agent
// must keep serving, and the guest's log must show the refusal. A second
// guest without a policy in its init-data runs under the built-in default.
// Everything started here (registry, QEMU) is stopped by pid, pass or fail.
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cloak/agent/v1/agent.grpc.pb.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/guest/guest_harness.h"
#include "tests/util/agent_requests.h"
#include "tests/util/host.h"
#include "tests/util/registry.h"
#include "tests/util/sigstore_key.h"
#include "tests/util/skip.h"

#ifndef CLOAK_SOURCE_DIR
#error "CLOAK_SOURCE_DIR must be defined"
#endif

namespace cloak::guest_test {
namespace {

using ::cloak::testutil::FreePort;
using ::cloak::testutil::Slurp;
using ::cloak::testutil::Which;
using ::testing::HasSubstr;
using nlohmann::json;
namespace v1 = ::cloak::agent::v1;

const std::string kSource = CLOAK_SOURCE_DIR;
constexpr absl::Duration kPullTimeout = absl::Seconds(180);

// The pod's policy: "app" runs `sh -c 'echo ready; exec sleep 600'` from the
// test image and may be asked `echo probe`; "worker" runs `echo working`
// with its output off. Nothing else.
std::string PodPolicy(const std::string& image) {
  json p = {
      {"version", "1"},
      {"description", "policy guest test"},
      {"containers",
       {{{"name", "app"},
         {"image", image},
         {"args", {"sh", "-c", "echo ready; exec sleep 600"}},
         {"env", {"PATH=/bin", "TERM=xterm"}},
         {"exec", {{{"argv", {"echo", "probe"}}, {"stdin", false}}}}},
        {{"name", "worker"},
         {"image", image},
         {"args", {"echo", "working"}},
         {"env", {"PATH=/bin", "TERM=xterm"}},
         {"stdio", {{"read_output", false}}}}}}};
  return p.dump(2);
}

std::string InitData(const std::string& policy) {
  std::string doc = "version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\n";
  if (!policy.empty()) absl::StrAppend(&doc, "\"policy.json\" = '''\n", policy, "\n'''\n");
  return doc;
}

class PolicyGuestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {"qemu-system-x86_64", "docker-registry", "skopeo", "busybox"}) {
      if (Which(tool).empty()) CLOAK_SKIP() << tool << " is not installed";
    }
    if (absl::Status s = CheckCanBoot(GuestOptions()); !s.ok()) CLOAK_SKIP() << s.message();
    auto dir = TempDir::Create("cloak-pg-", "/tmp");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    d_ = dir_->path().string();
    std::filesystem::create_directories(d_ + "/registry");
    port_ = FreePort();
    auto registry = testutil::StartLocalRegistry(d_, port_);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_.emplace(std::move(*registry));
    guest_registry_ = absl::StrCat(kHostLoopbackFromGuest, ":", port_);
    ASSERT_EQ(Run({kSource + "/scripts/make-busybox-image", d_ + "/oci", "guest"}), 0);
    int pushed = -1;
    for (int i = 0; i < 50 && pushed != 0; ++i) {
      pushed = Run({"skopeo", "copy", "--dest-tls-verify=false", "oci:" + d_ + "/oci:guest",
                    absl::StrCat("docker://127.0.0.1:", port_, "/busybox:guest")});
      if (pushed != 0) absl::SleepFor(absl::Milliseconds(200));
    }
    ASSERT_EQ(pushed, 0) << "skopeo copy failed";
    image_ = absl::StrCat(guest_registry_, "/busybox:guest");
  }

  void TearDown() override {
    if (guest_ != nullptr && HasFailure()) {
      std::cerr << "---- guest console (tail) ----\n" << guest_->ConsoleTail(80) << "\n";
    }
    guest_.reset();
    registry_.reset();
  }

  int Run(const std::vector<std::string>& argv) {
    SpawnOptions o;
    o.stdout_path = o.stderr_path = d_ + "/run.out";
    auto p = Subprocess::Spawn(argv, o);
    if (!p.ok()) return -1;
    auto exit = p->Wait(absl::Seconds(60));
    if (!exit.ok()) {
      p->Stop(absl::Seconds(1));
      return -1;
    }
    return exit->exit_code;
  }

  // Boots a guest (policy on) and creates its sandbox with `initdata`.
  void BootWithInitData(const std::string& initdata) {
    GuestOptions options;
    options.sandbox_id = "policy-guest-test";
    options.hostname = "policy-guest-test";
    options.insecure_registries = {guest_registry_};
    auto guest = GuestHarness::Boot(options);
    ASSERT_TRUE(guest.ok()) << guest.status();
    guest_ = std::move(*guest);
    v1::CreateSandboxRequest create = BuildCreateSandboxRequest(options);
    create.set_initdata(initdata);
    v1::CreateSandboxResponse created;
    grpc::Status s = stub().CreateSandbox(CallContext().get(), create, &created);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  v1::AgentService::Stub& stub() { return guest_->stub(); }

  static json Spec(const std::vector<std::string>& args) {
    return json::parse(testutil::ContainerSpecJson(args, "rootfs"));
  }

  grpc::Status Create(const std::string& id, const std::string& image, const json& spec,
                      bool stdout_wired = true) {
    v1::CreateContainerRequest req;
    req.set_container_id(id);
    req.set_image(image);
    req.set_oci_spec_json(spec.dump());
    *req.mutable_stdio() = testutil::AgentStdio(false, stdout_wired, false, false);
    v1::CreateContainerResponse resp;
    return stub().CreateContainer(CallContext(kPullTimeout).get(), req, &resp);
  }

  grpc::Status Start(const std::string& id) {
    v1::StartContainerRequest req;
    req.set_container_id(id);
    v1::StartContainerResponse resp;
    return stub().StartContainer(CallContext().get(), req, &resp);
  }

  grpc::Status Exec(const std::string& id, const std::string& exec_id,
                    const std::vector<std::string>& argv, bool stdin_wired = false) {
    v1::ExecProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    req.set_process_json(
        json{{"args", argv}, {"env", {"PATH=/bin", "TERM=xterm"}}, {"cwd", "/"}}.dump());
    *req.mutable_stdio() = testutil::AgentStdio(stdin_wired, true, false, false);
    v1::ExecProcessResponse resp;
    return stub().ExecProcess(CallContext().get(), req, &resp);
  }

  // The whole stream; the status of the call.
  grpc::Status Read(const std::string& id, const std::string& exec_id, std::string* out) {
    v1::ReadOutputRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    req.set_stream(v1::STREAM_KIND_STDOUT);
    auto ctx = CallContext(absl::Seconds(60));
    auto reader = stub().ReadOutput(ctx.get(), req);
    v1::OutputChunk chunk;
    while (reader->Read(&chunk)) *out += chunk.data();
    return reader->Finish();
  }

  // A hostile request: PermissionDenied whose message contains `want`.
  void ExpectDenied(const std::string& what, const grpc::Status& s, const std::string& want) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << what << ": " << s.error_code() << " " << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(want)) << what;
    ++denied_;
  }

  std::string d_;
  int port_ = 0;
  int denied_ = 0;
  std::string guest_registry_, image_;
  std::optional<TempDir> dir_;
  std::optional<Subprocess> registry_;
  std::unique_ptr<GuestHarness> guest_;
};

TEST_F(PolicyGuestTest, HostileRequestsAreDeniedByThePolicyInInitData) {
  ASSERT_NO_FATAL_FAILURE(BootWithInitData(InitData(PodPolicy(image_))));
  const json app = Spec({"sh", "-c", "echo ready; exec sleep 600"});

  // The pod as its owner meant it: allowed.
  grpc::Status s = Create("app", image_, app);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(Start("app").ok());
  ASSERT_TRUE(Exec("app", "probe", {"echo", "probe"}).ok());
  std::string probe;
  ASSERT_TRUE(Read("app", "probe", &probe).ok());
  EXPECT_EQ(probe, "probe\n");
  s = Create("worker", image_, Spec({"echo", "working"}));
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(Start("worker").ok());

  // 1. A shell.
  ExpectDenied("exec shell", Exec("app", "sh", {"/bin/sh"}),
               R"(policy: exec denied: argv[0] "/bin/sh" matches no exec rule of container "app")");
  // 2. Exec into a container that allows none.
  ExpectDenied("exec worker", Exec("worker", "x", {"echo", "probe"}),
               R"(container "worker" allows no exec)");
  // 3. Write stdin.
  {
    v1::WriteStdinRequest w;
    w.set_container_id("app");
    w.set_data("id\n");
    v1::WriteStdinResponse resp;
    ExpectDenied("write stdin", stub().WriteStdin(CallContext().get(), w, &resp),
                 R"(policy: write stdin denied: stdio.write_stdin is off for container "app")");
  }
  // 4. Read the output of a container whose logs are off.
  {
    std::string out;
    ExpectDenied("read worker output", Read("worker", "", &out),
                 R"(policy: read output denied: stdio.read_output is off for container "worker")");
    EXPECT_EQ(out, "");
  }
  // 5. An extra container.
  ExpectDenied("extra container", Create("miner", image_, Spec({"sh"})),
               R"(container "miner" matches no container rule)");
  // 6-10: a second "worker" would be one too many, so the field checks are
  // seen on a fresh name-alike rule: remove worker first.
  {
    v1::WaitProcessRequest wait;
    wait.set_container_id("worker");
    v1::WaitProcessResponse waited;
    ASSERT_TRUE(stub().WaitProcess(CallContext(absl::Seconds(60)).get(), wait, &waited).ok());
    v1::RemoveContainerRequest rm;
    rm.set_container_id("worker");
    v1::RemoveContainerResponse removed;
    ASSERT_TRUE(stub().RemoveContainer(CallContext(absl::Seconds(60)).get(), rm, &removed).ok());
  }
  // 6. Swap the image.
  ExpectDenied("swap image",
               Create("worker", absl::StrCat(guest_registry_, "/evil:latest"),
                      Spec({"echo", "working"})),
               "differs from the image it was created with");
  // 7. Change the args.
  ExpectDenied("change args", Create("worker", image_, Spec({"sh", "-c", "cat /etc/shadow"})),
               R"(process.args has 3 entries, container "worker" allows 2)");
  // 8. A host-path mount.
  {
    json spec = Spec({"echo", "working"});
    spec["mounts"] = {{{"destination", "/host"}, {"type", "bind"}, {"source", "/"},
                       {"options", {"rbind"}}}};
    ExpectDenied("host mount", Create("worker", image_, spec),
                 R"(mounts[0] destination "/host" (bind from "/") matches no mount rule)");
  }
  // 9. LD_PRELOAD.
  {
    json spec = Spec({"echo", "working"});
    spec["process"]["env"].push_back("LD_PRELOAD=/tmp/x.so");
    ExpectDenied("ld_preload", Create("worker", image_, spec),
                 R"(process.env "LD_PRELOAD" (with its value) matches no env rule)");
  }
  // 10. Privileged.
  {
    json spec = Spec({"echo", "working"});
    spec["process"]["capabilities"] = {{"bounding", {"CAP_SYS_ADMIN"}}};
    ExpectDenied("privileged", Create("worker", image_, spec),
                 "privileged: process.capabilities.bounding has CAP_SYS_ADMIN");
  }
  // 11. A run.oci.* annotation.
  {
    json spec = Spec({"echo", "working"});
    spec["annotations"] = {{"run.oci.hooks.stderr", "/dev/console"}};
    ExpectDenied("run.oci annotation", Create("worker", image_, spec),
                 R"(annotation "run.oci.hooks.stderr" is runtime-interpreted)");
  }
  // 12. SetPolicy allow-all.
  {
    v1::SetPolicyRequest set;
    set.set_policy(R"({"version": "1", "rpcs": {"SetPolicy": "allow"}, "containers": [{"name": "*"}]})");
    v1::SetPolicyResponse resp;
    ExpectDenied("set policy", stub().SetPolicy(CallContext().get(), set, &resp),
                 R"(policy: SetPolicy denied: rule rpcs.SetPolicy is "deny")");
  }
  EXPECT_GE(denied_, 10);

  // The agent still serves, and the worker as allowed can still be made.
  v1::HealthResponse health;
  ASSERT_TRUE(stub().Health(CallContext().get(), {}, &health).ok());
  EXPECT_TRUE(health.serving());
  s = Create("worker", image_, Spec({"echo", "working"}));
  EXPECT_TRUE(s.ok()) << s.error_message();
  // The guest logged the refusals with their reasons.
  EXPECT_THAT(guest_->ConsoleTail(400),
              HasSubstr(R"(ExecProcess refused: policy: exec denied: argv[0] "/bin/sh")"));
}

TEST_F(PolicyGuestTest, NoPolicyInInitDataMeansTheBuiltInDefault) {
  ASSERT_NO_FATAL_FAILURE(BootWithInitData(InitData("")));
  grpc::Status s = Create("c1", image_, Spec({"sh", "-c", "echo hello"}));
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(Start("c1").ok());
  std::string out;
  ASSERT_TRUE(Read("c1", "", &out).ok());
  EXPECT_EQ(out, "hello\n");
  ExpectDenied("exec under default", Exec("c1", "sh", {"/bin/sh"}),
               R"(policy: ExecProcess denied: rule rpcs.ExecProcess is "deny" (built-in default policy)");
  v1::SetPolicyRequest set;
  set.set_policy(R"({"version": "1"})");
  v1::SetPolicyResponse resp;
  ExpectDenied("set policy under default", stub().SetPolicy(CallContext().get(), set, &resp),
               "built-in default policy");
}

TEST_F(PolicyGuestTest, AnInvalidPolicyRefusesTheSandbox) {
  GuestOptions options;
  options.sandbox_id = "policy-guest-bad";
  options.hostname = "policy-guest-bad";
  auto guest = GuestHarness::Boot(options);
  ASSERT_TRUE(guest.ok()) << guest.status();
  guest_ = std::move(*guest);
  v1::CreateSandboxRequest create = BuildCreateSandboxRequest(options);
  create.set_initdata(InitData(R"({"version": "1", "containers": [{"name": "a", "typo": 1}]})"));
  v1::CreateSandboxResponse created;
  grpc::Status s = stub().CreateSandbox(CallContext().get(), create, &created);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("containers[0].typo: unknown key"));
}

// Image signatures (policy "image_signatures", docs/policy.md): the guest
// checks the sigstore attachment before it asks for any blob of the image.
// One key signs "signed"; "wrongkey" is signed by another key; "unsigned"
// has no signature; "pinned" has none either, but the policy names its
// digest. The registry's access log shows which blobs the guest fetched.
TEST_F(PolicyGuestTest, ImageSignaturesAreVerifiedInTheGuestBeforeAnyLayer) {
  auto key = testutil::MakeSigstoreKeyPair("guest test");
  auto other = testutil::MakeSigstoreKeyPair("guest test");
  ASSERT_TRUE(key.ok() && other.ok());
  const std::string host = absl::StrCat("127.0.0.1:", port_);
  std::string digest;
  for (const char* repo : {"signed", "unsigned", "wrongkey", "pinned"}) {
    ASSERT_EQ(Run({"skopeo", "copy", "--dest-tls-verify=false", "oci:" + d_ + "/oci:guest",
                   absl::StrCat("docker://", host, "/", repo, ":v1")}),
              0);
  }
  testutil::CommandResult inspect = testutil::RunCommand(
      {"skopeo", "inspect", "--tls-verify=false", absl::StrCat("docker://", host, "/signed:v1")});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  digest = json::parse(inspect.output).value("Digest", "");
  ASSERT_FALSE(digest.empty());
  // The identity is the name the guest pulls by.
  for (auto [repo, signer] : {std::pair{"signed", &*key}, std::pair{"wrongkey", &*other}}) {
    std::string payload =
        testutil::SimpleSigningPayload(absl::StrCat(guest_registry_, "/", repo, ":v1"), digest);
    auto sig = testutil::SignPayload(signer->private_der, payload);
    ASSERT_TRUE(sig.ok()) << sig.status();
    absl::Status pushed = testutil::PushSigstoreAttachment(
        absl::StrCat(d_, "/att-", repo), absl::StrCat(host, "/", repo), digest, {{payload, *sig}});
    ASSERT_TRUE(pushed.ok()) << pushed;
  }
  json policy = {
      {"version", "1"},
      {"containers", {{{"name", "*"}, {"args", {"sh", "-c", "echo signed-ok"}}}}},
      {"image_signatures",
       {{"default", {{{"type", "reject"}}}},
        {"scopes",
         {{guest_registry_, {{{"type", "sigstoreSigned"}, {"keys", {key->public_pem}}}}},
          {absl::StrCat(guest_registry_, "/pinned@", digest),
           {{{"type", "insecureAcceptAnything"}}}}}}}}};
  ASSERT_NO_FATAL_FAILURE(BootWithInitData(InitData(policy.dump(2))));

  // Which of the image's blobs the guest asked `repo` for.
  json index = json::parse(Slurp(d_ + "/oci/index.json"));
  std::string m = index["manifests"][0]["digest"];
  json manifest = json::parse(Slurp(d_ + "/oci/blobs/sha256/" + m.substr(7)));
  std::vector<std::string> blobs = {manifest["config"]["digest"]};
  for (const json& l : manifest["layers"]) blobs.push_back(l["digest"]);
  auto blob_gets = [&](const std::string& repo) {
    int n = 0;
    for (absl::string_view line : absl::StrSplit(Slurp(d_ + "/registry.log"), '\n')) {
      if (!absl::StrContains(line, "http.request.method=GET")) continue;
      for (const std::string& b : blobs) {
        n += absl::StrContains(line, absl::StrCat("/v2/", repo, "/blobs/", b)) ? 1 : 0;
      }
    }
    return n;
  };

  // skopeo inspect read a config blob: count what the guest adds.
  const int unsigned_before = blob_gets("unsigned"), wrongkey_before = blob_gets("wrongkey"),
            pinned_before = blob_gets("pinned"), signed_before = blob_gets("signed");
  const json spec = Spec({"sh", "-c", "echo signed-ok"});
  ExpectDenied("unsigned image", Create("u", guest_registry_ + "/unsigned:v1", spec),
               "a sigstore signature is required and the image has none");
  EXPECT_EQ(blob_gets("unsigned") - unsigned_before, 0);
  ExpectDenied("image signed by another key", Create("k", guest_registry_ + "/wrongkey:v1", spec),
               "does not verify with the policy's key");
  EXPECT_EQ(blob_gets("wrongkey") - wrongkey_before, 0);
  ExpectDenied("pinned by tag only", Create("t", guest_registry_ + "/pinned:v1", spec),
               "the image has none");
  EXPECT_EQ(blob_gets("pinned") - pinned_before, 0);

  for (const std::string& ref :
       {guest_registry_ + "/signed:v1", absl::StrCat(guest_registry_, "/pinned@", digest)}) {
    const std::string id = absl::StrContains(ref, "pinned") ? "p" : "s";
    grpc::Status s = Create(id, ref, spec);
    ASSERT_TRUE(s.ok()) << ref << ": " << s.error_message();
    ASSERT_TRUE(Start(id).ok());
    std::string out;
    ASSERT_TRUE(Read(id, "", &out).ok());
    EXPECT_EQ(out, "signed-ok\n") << ref;
  }
  EXPECT_EQ(blob_gets("signed") - signed_before, 2);
  EXPECT_EQ(blob_gets("pinned") - pinned_before, 2);
  EXPECT_THAT(guest_->ConsoleTail(400), HasSubstr("signature accepted under scope"));
}

}  // namespace
}  // namespace cloak::guest_test
