// The guest's attestation path against the real cloak-kbs binary and a
// docker-registry on 127.0.0.1, with an image encrypted by skopeo at test
// time: the agent's puller with the ocicrypt decryptor attests (sample
// evidence, as on a host without a TEE), gets the key, decrypts and unpacks.
// The refusals (policy forbids sample, init-data digest not the reference
// value, no such key, KBS down) fail the pull with the KBS's reason.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/attest/ocicrypt.h"
#include "agent/attest/session.h"
#include "agent/image/puller.h"
#include "common/jose/jose.h"
#include "common/process.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/attest/attest_test_util.h"
#include "tests/util/host.h"
#include "tests/util/skip.h"

namespace cloak::agent::attest {
namespace {

using ::cloak::testutil::FreePort;
using ::cloak::testutil::CanConnect;

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::ReadFile;
using testing::WriteFile;

// Shared by the suite: keys, images in a registry, a running cloak-kbs.
struct Env {
  std::optional<TempDir> dir;
  std::optional<Subprocess> registry;
  std::optional<Subprocess> kbs;
  std::string registry_hostport;
  std::string kbs_url;
  std::string skip;
};
Env* env = nullptr;

class AttestKbsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    env = new Env();
    std::string missing = testing::MissingTools();
    if (access("/usr/bin/docker-registry", X_OK) != 0) missing += "/usr/bin/docker-registry ";
    if (!missing.empty()) {
      env->skip = "missing " + missing + "(scripts/install-deps installs them)";
      return;
    }
    auto dir = TempDir::Create("cloak-attest-kbs-");
    ASSERT_TRUE(dir.ok());
    env->dir.emplace(std::move(*dir));
    const std::string d = env->dir->path().string();
    ASSERT_TRUE(testing::MakeEncryptedImage(d).ok());

    // Registry.
    int rport = FreePort();
    env->registry_hostport = absl::StrCat("127.0.0.1:", rport);
    WriteFile(d + "/registry.yml",
              absl::StrCat("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                           "    rootdirectory: ",
                           d, "/storage\nhttp:\n  addr: ", env->registry_hostport, "\n"));
    SpawnOptions ro;
    ro.stdout_path = ro.stderr_path = d + "/registry.log";
    auto reg = Subprocess::Spawn({"/usr/bin/docker-registry", "serve", d + "/registry.yml"}, ro);
    ASSERT_TRUE(reg.ok()) << reg.status();
    env->registry.emplace(std::move(*reg));
    for (int i = 0; i < 400 && !CanConnect(rport); ++i) absl::SleepFor(absl::Milliseconds(50));
    ASSERT_TRUE(CanConnect(rport)) << ReadFile(d + "/registry.log");
    for (auto [src, ref] : {std::pair<std::string, std::string>{"dst", "cloak/enc:1"},
                            {"src", "cloak/plain:1"}}) {
      auto s = testing::Run({"skopeo", "--insecure-policy", "copy", "--quiet",
                             "--dest-tls-verify=false", "oci:" + d + "/" + src + ":t",
                             absl::StrCat("docker://", env->registry_hostport, "/", ref)},
                            d + "/push.log");
      ASSERT_TRUE(s.ok()) << s;
    }

    // cloak-kbs: the image key under three names with three policies.
    std::string state = d + "/kbs-state";
    auto admin = [&](std::vector<std::string> args) {
      args.insert(args.begin(), CLOAK_KBS_BINARY);
      return testing::Run(args, d + "/kbs-admin.log");
    };
    WriteFile(d + "/allow-sample.json", R"({"allowed_tees": ["sample"]})");
    WriteFile(d + "/hw-only.json", R"({"allowed_tees": ["snp", "tdx"], "allow_any_launch": true})");
    WriteFile(d + "/pinned.json",
              absl::StrCat(R"({"allowed_tees": ["sample"], "init_data_digests": [")",
                           std::string(96, 'a'), R"("]})"));
    for (auto [name, policy] : {std::pair<std::string, std::string>{"image1", "allow-sample"},
                                {"hw-only", "hw-only"},
                                {"pinned", "pinned"}}) {
      ASSERT_TRUE(admin({"admin", "put-resource", "--state-dir", state, "default/key/" + name,
                         "--file", d + "/k.pem"})
                      .ok());
      ASSERT_TRUE(admin({"admin", "set-policy", "--state-dir", state, "default/key/" + name,
                         "--file", d + "/" + policy + ".json"})
                      .ok());
    }
    // default policy: sample allowed (so "missing" is refused as not found).
    ASSERT_TRUE(admin({"admin", "set-policy", "--state-dir", state, "default", "--file",
                       d + "/allow-sample.json"})
                    .ok());
    SpawnOptions ko;
    ko.stdout_path = ko.stderr_path = d + "/kbs.log";
    auto kbs = Subprocess::Spawn({CLOAK_KBS_BINARY, "serve", "--state-dir", state, "--listen",
                                  "127.0.0.1:0", "--insecure-http", "--port-file", d + "/kbs.port"},
                                 ko);
    ASSERT_TRUE(kbs.ok()) << kbs.status();
    env->kbs.emplace(std::move(*kbs));
    int kport = 0;
    for (int i = 0; i < 400; ++i) {
      std::string t(absl::StripAsciiWhitespace(ReadFile(d + "/kbs.port")));
      if (!t.empty() && absl::SimpleAtoi(t, &kport) && kport > 0) break;
      ASSERT_FALSE(env->kbs->Poll().has_value()) << ReadFile(d + "/kbs.log");
      absl::SleepFor(absl::Milliseconds(50));
    }
    ASSERT_GT(kport, 0) << ReadFile(d + "/kbs.log");
    env->kbs_url = absl::StrCat("http://127.0.0.1:", kport);
  }

  static void TearDownTestSuite() {
    if (env->kbs.has_value()) env->kbs->Stop(absl::Seconds(5));  // by pid
    if (env->registry.has_value()) env->registry->Stop(absl::Seconds(5));
    delete env;
    env = nullptr;
  }

  void SetUp() override {
    if (env == nullptr || !env->skip.empty()) CLOAK_SKIP() << (env ? env->skip : "no env");
    ASSERT_TRUE(env->dir.has_value()) << "suite setup failed";
    auto dir = TempDir::Create("cloak-attest-case-");
    ASSERT_TRUE(dir.ok());
    case_.emplace(std::move(*dir));
  }

  // An init-data document for `keys`, written where CreateSandbox puts it.
  std::string InitData(const std::string& keys, const std::string& url = "") {
    std::string doc = absl::StrCat("version = \"0.1.0\"\nalgorithm = \"sha384\"\n\n[data]\n",
                                   "kbs_url = \"", url.empty() ? env->kbs_url : url, "\"\n",
                                   "image_keys = [", keys, "]\n");
    WriteFile(case_->Join("initdata.toml"), doc);
    return doc;
  }

  std::shared_ptr<AttestationSession> Session() {
    SessionOptions o;
    o.initdata_path = case_->Join("initdata.toml");
    // A host without a TEE: no configfs-tsm, no guest devices → sample.
    o.attester.tsm_report_dir = case_->Join("no-tsm");
    o.dev_class = true;  // http://127.0.0.1: the dev rule (CheckKbsTransport)
    o.attester.sev_guest_device = case_->Join("no-sev-guest");
    o.attester.tdx_guest_device = case_->Join("no-tdx-guest");
    return std::make_shared<AttestationSession>(o);
  }

  absl::StatusOr<image::PulledImage> Pull(std::shared_ptr<AttestationSession> session,
                                          const std::string& ref, const std::string& rootfs) {
    image::PullerOptions o;
    o.registry.insecure_registries = {env->registry_hostport};
    o.work_dir = case_->path().string();
    o.decryptor = std::make_shared<OcicryptDecryptor>(session);
    auto puller = image::RegistryImagePuller::Create(o);
    if (!puller.ok()) return puller.status();
    return (*puller)->Pull(absl::StrCat(env->registry_hostport, "/", ref), case_->Join(rootfs));
  }

  std::optional<TempDir> case_;
};

TEST_F(AttestKbsTest, EncryptedImageIsDecryptedAfterAttesting) {
  std::string doc = InitData(R"("default/key/image1")");
  auto session = Session();
  absl::Time start = absl::Now();
  auto pulled = Pull(session, "cloak/enc:1", "rootfs");
  absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(pulled.ok()) << pulled.status() << "\nKBS log:\n" << ReadFile(env->dir->Join("kbs.log"));
  EXPECT_GT(fs::file_size(case_->Join("rootfs/bin/busybox")), 100000u);
  EXPECT_TRUE(fs::is_symlink(case_->Join("rootfs/bin/sh")));
  AttestationStatus st = session->Status();
  EXPECT_EQ(st.state, AttestationStatus::State::kAttested);
  EXPECT_EQ(st.tee, "sample");
  EXPECT_EQ(st.kbs_url, env->kbs_url);
  EXPECT_EQ(st.initdata_digest, tee::HexEncode(tee::Hash(tee::HashAlgorithm::kSha384, doc)));
  std::cout << "attestation: " << st.detail << "; whole pull " << absl::FormatDuration(took)
            << "\n";

  // The second encrypted pull uses the keys in memory: no new KBS session.
  std::string log_before = ReadFile(env->dir->Join("kbs.log"));
  auto again = Pull(session, "cloak/enc:1", "rootfs2");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(ReadFile(env->dir->Join("kbs.log")), log_before);
}

TEST_F(AttestKbsTest, UnencryptedImageNeedsNoInitData) {
  auto session = Session();  // no initdata.toml at all
  auto pulled = Pull(session, "cloak/plain:1", "rootfs");
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_TRUE(fs::exists(case_->Join("rootfs/bin/busybox")));
  EXPECT_EQ(session->Status().state, AttestationStatus::State::kNone);

  auto encrypted = Pull(session, "cloak/enc:1", "rootfs2");
  ASSERT_FALSE(encrypted.ok());
  EXPECT_EQ(encrypted.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(encrypted.status().message()), HasSubstr("no init-data"));
}

TEST_F(AttestKbsTest, PolicyThatForbidsSampleEvidenceIsReported) {
  InitData(R"("default/key/hw-only")");
  auto session = Session();
  auto pulled = Pull(session, "cloak/enc:1", "rootfs");
  ASSERT_FALSE(pulled.ok());
  std::string msg(pulled.status().message());
  std::cout << "error: " << msg << "\n";
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(msg, HasSubstr("is encrypted"));
  EXPECT_THAT(msg, HasSubstr("PolicyDeny"));
  EXPECT_THAT(msg, HasSubstr("\"sample\" is not allowed"));
  EXPECT_FALSE(fs::exists(case_->Join("rootfs/bin/busybox")));
}

TEST_F(AttestKbsTest, InitDataDigestOtherThanThePolicysIsRefused) {
  InitData(R"("default/key/pinned")");
  auto pulled = Pull(Session(), "cloak/enc:1", "rootfs");
  ASSERT_FALSE(pulled.ok());
  std::string msg(pulled.status().message());
  std::cout << "error: " << msg << "\n";
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(msg, HasSubstr("PolicyDeny"));
  EXPECT_THAT(msg, HasSubstr("init"));
}

TEST_F(AttestKbsTest, MissingKeyResourceIsNamed) {
  InitData(R"("default/key/missing")");
  auto pulled = Pull(Session(), "cloak/enc:1", "rootfs");
  ASSERT_FALSE(pulled.ok());
  std::string msg(pulled.status().message());
  std::cout << "error: " << msg << "\n";
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(msg, HasSubstr("default/key/missing"));
  EXPECT_THAT(msg, HasSubstr("404"));
}

TEST_F(AttestKbsTest, UnreachableKbsIsReportedAsSuch) {
  InitData(R"("default/key/image1")", absl::StrCat("http://127.0.0.1:", FreePort()));
  auto session = Session();
  auto pulled = Pull(session, "cloak/enc:1", "rootfs");
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("unreachable"));
  EXPECT_EQ(session->Status().state, AttestationStatus::State::kUnreachable);
}

// The KBS is down when the pod's first container needs its key: the error
// names the KBS; once it is up, the next container's pull (the same pod's
// session) attests and decrypts.
TEST_F(AttestKbsTest, KbsDownAtPodStartThenUpTheNextPullSucceeds) {
  const int port = FreePort();
  const std::string url = absl::StrCat("http://127.0.0.1:", port);
  InitData(R"("default/key/image1")", url);
  auto session = Session();
  auto down = Pull(session, "cloak/enc:1", "rootfs-1");
  ASSERT_FALSE(down.ok());
  std::cout << "KBS down: " << down.status() << std::endl;
  EXPECT_EQ(down.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(down.status().message()), HasSubstr("KBS " + url));
  EXPECT_THAT(std::string(down.status().message()), HasSubstr("unreachable"));
  EXPECT_EQ(session->Status().state, AttestationStatus::State::kUnreachable);

  // The KBS comes up on that address (its own copy of the suite's state).
  const std::string state = case_->Join("kbs-state");
  ASSERT_TRUE(testing::Run({"cp", "-a", env->dir->Join("kbs-state"), state}, case_->Join("cp.log"))
                  .ok());
  SpawnOptions ko;
  ko.stdout_path = ko.stderr_path = case_->Join("kbs.log");
  auto kbs = Subprocess::Spawn({CLOAK_KBS_BINARY, "serve", "--state-dir", state, "--listen",
                                absl::StrCat("127.0.0.1:", port), "--insecure-http"},
                               ko);
  ASSERT_TRUE(kbs.ok()) << kbs.status();
  for (int i = 0; i < 400 && !CanConnect(port); ++i) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(CanConnect(port)) << ReadFile(case_->Join("kbs.log"));
  auto up = Pull(session, "cloak/enc:1", "rootfs-2");
  ASSERT_TRUE(up.ok()) << up.status() << "\nKBS log:\n" << ReadFile(case_->Join("kbs.log"));
  EXPECT_GT(fs::file_size(case_->Join("rootfs-2/bin/busybox")), 100000u);
  EXPECT_EQ(session->Status().state, AttestationStatus::State::kAttested);
  kbs->Stop(absl::Seconds(5));
}

TEST_F(AttestKbsTest, InitDataTamperedAfterLaunchIsRefusedByTheKbs) {
  // The sample evidence binds the digest of the init-data the guest holds;
  // a KBS policy pinning the launched digest refuses any other document.
  std::string launched = InitData(R"("default/key/image1")");
  std::string pin = tee::HexEncode(tee::Hash(tee::HashAlgorithm::kSha384, launched));
  WriteFile(case_->Join("pin.json"),
            absl::StrCat(R"({"allowed_tees": ["sample"], "init_data_digests": [")", pin, R"("]})"));
  std::string state = env->dir->Join("kbs-state");
  ASSERT_TRUE(testing::Run({CLOAK_KBS_BINARY, "admin", "put-resource", "--state-dir", state,
                            "default/key/pin2", "--file", env->dir->Join("k.pem")},
                           case_->Join("a.log"))
                  .ok());
  ASSERT_TRUE(testing::Run({CLOAK_KBS_BINARY, "admin", "set-policy", "--state-dir", state,
                            "default/key/pin2", "--file", case_->Join("pin.json")},
                           case_->Join("a.log"))
                  .ok());
  InitData(R"("default/key/pin2")");  // a different document: other digest
  auto refused = Pull(Session(), "cloak/enc:1", "rootfs");
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("PolicyDeny"));
}

TEST_F(AttestKbsTest, KbsFilesAreFetchedAfterAttestingWithTheBrokersReasons) {
  // docs/policy.md "kbs_files": any resource, not only image keys; the
  // init-data needs no image_keys for it.
  auto none = Session()->Resources({"default/key/image1"});  // no init-data yet
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("no init-data"));

  InitData("");
  auto session = Session();
  auto got = session->Resources({"default/key/image1", "default/key/image1"});
  ASSERT_TRUE(got.ok()) << got.status() << "\nKBS log:\n" << ReadFile(env->dir->Join("kbs.log"));
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0], ReadFile(env->dir->Join("k.pem")));
  EXPECT_EQ((*got)[1], (*got)[0]);
  EXPECT_EQ(session->Status().state, AttestationStatus::State::kAttested);

  auto missing = session->Resources({"default/key/image1", "default/key/missing"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("default/key/missing"));
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("ResourceNotFound"));

  auto denied = session->Resources({"default/key/hw-only"});
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(denied.status().message()), HasSubstr("PolicyDeny"));
  EXPECT_THAT(std::string(denied.status().message()), HasSubstr("\"sample\" is not allowed"));
}

}  // namespace
}  // namespace cloak::agent::attest
