// Image signatures against Debian's docker-registry on 127.0.0.1: images
// pushed with skopeo, sigstore attachments made with a test key
// (tests/util/sigstore_key.h) and pushed with skopeo, pulled by the guest's
// puller under an "image_signatures" policy. An image the policy refuses
// must be refused before any of its blobs is requested: the registry's own
// access log is the witness.
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/image/puller.h"
#include "agent/image/signature.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "policy/image_signatures.h"
#include "tests/util/host.h"
#include "tests/util/registry.h"
#include "tests/util/sigstore_key.h"
#include "tests/util/skip.h"

#ifndef CLOAK_SOURCE_DIR
#error "CLOAK_SOURCE_DIR must be defined"
#endif

namespace cloak::agent::image {
namespace {

using ::cloak::testutil::RunCommand;
using ::testing::HasSubstr;
using nlohmann::json;

class SignatureRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {"docker-registry", "skopeo", "busybox"}) {
      if (testutil::Which(tool).empty()) {
        CLOAK_SKIP() << tool << " is not installed (scripts/install-deps)";
      }
    }
    auto dir = TempDir::Create("cloak-sigreg-", "/tmp");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    d_ = dir_->path().string();
    port_ = testutil::FreePort();
    host_ = absl::StrCat("127.0.0.1:", port_);
    auto registry = testutil::StartLocalRegistry(d_, port_);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_.emplace(std::move(*registry));
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!testutil::CanConnect(port_)) {
      ASSERT_LT(absl::Now(), deadline) << "docker-registry did not listen on " << host_;
      absl::SleepFor(absl::Milliseconds(50));
    }
    auto key = testutil::MakeSigstoreKeyPair("test passphrase");
    ASSERT_TRUE(key.ok()) << key.status();
    key_ = *key;
    auto other = testutil::MakeSigstoreKeyPair("test passphrase");
    ASSERT_TRUE(other.ok()) << other.status();
    other_ = *other;
    // Two images with different digests (one carries a marker file).
    ASSERT_EQ(RunCommand({std::string(CLOAK_SOURCE_DIR) + "/scripts/make-busybox-image",
                          d_ + "/oci", "base"}).exit_code, 0);
    ASSERT_TRUE(WriteMarker().ok());
    ASSERT_EQ(RunCommand({std::string(CLOAK_SOURCE_DIR) + "/scripts/make-busybox-image",
                          d_ + "/oci2", "other", d_ + "/marker"}).exit_code, 0);
  }

  void TearDown() override {
    if (registry_.has_value()) registry_->Stop(absl::Seconds(5));
  }

  absl::Status WriteMarker() {
    return RunCommand({"sh", "-c", "echo other > " + d_ + "/marker"}).exit_code == 0
               ? absl::OkStatus()
               : absl::InternalError("marker");
  }

  // Pushes the base image as <repo>:v1; its manifest digest.
  std::string Push(const std::string& repo, const std::string& layout = "oci:BASE:base") {
    std::string src = layout == "oci:BASE:base" ? "oci:" + d_ + "/oci:base" : layout;
    testutil::CommandResult r = RunCommand({"skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                                            src, absl::StrCat("docker://", host_, "/", repo, ":v1")});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    r = RunCommand({"skopeo", "inspect", "--tls-verify=false",
                    absl::StrCat("docker://", host_, "/", repo, ":v1")});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    json j = json::parse(r.output, nullptr, false);
    return j.is_object() ? j.value("Digest", "") : "";
  }

  // Signs `identity` + `digest` with `key` and pushes it as <repo>'s
  // attachment for `attach_to`.
  void Sign(const testutil::SigstoreKeyPair& key, const std::string& repo,
            const std::string& attach_to, const std::string& identity, const std::string& digest) {
    std::string payload = testutil::SimpleSigningPayload(identity, digest);
    auto sig = testutil::SignPayload(key.private_der, payload);
    ASSERT_TRUE(sig.ok()) << sig.status();
    absl::Status s = testutil::PushSigstoreAttachment(
        absl::StrCat(d_, "/att-", repo), absl::StrCat(host_, "/", repo), attach_to,
        {{payload, *sig}});
    ASSERT_TRUE(s.ok()) << s;
  }

  std::shared_ptr<const policy::ImageSignaturePolicy> Policy(const std::string& pinned_digest) {
    json doc = {{"default", {{{"type", "reject"}}}},
                {"scopes",
                 {{host_, {{{"type", "sigstoreSigned"}, {"keys", {key_.public_pem}}}}},
                  {absl::StrCat(host_, "/pinned@", pinned_digest),
                   {{{"type", "insecureAcceptAnything"}}}}}}};
    auto p = policy::ParseImageSignatures(doc, "image_signatures");
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : nullptr;
  }

  absl::StatusOr<PulledImage> Pull(const std::string& ref,
                                   std::shared_ptr<const policy::ImageSignaturePolicy> rules) {
    PullerOptions options;
    options.registry.insecure_registries = {host_};
    options.work_dir = d_;
    options.signature_policy = [rules] { return rules; };
    auto puller = RegistryImagePuller::Create(options);
    if (!puller.ok()) return puller.status();
    return (*puller)->Pull(ref, absl::StrCat(d_, "/rootfs-", ++pulls_));
  }

  // The config and layer digests of the OCI layout's one image.
  std::vector<std::string> ImageBlobs(const std::string& layout) {
    json index = json::parse(testutil::Slurp(layout + "/index.json"), nullptr, false);
    std::string m = index["manifests"][0]["digest"].get<std::string>();
    json manifest =
        json::parse(testutil::Slurp(layout + "/blobs/sha256/" + m.substr(7)), nullptr, false);
    std::vector<std::string> out = {manifest["config"]["digest"].get<std::string>()};
    for (const json& l : manifest["layers"]) out.push_back(l["digest"].get<std::string>());
    return out;
  }

  // GET requests the registry logged for the base image's config and layer
  // blobs under `repo` (signature payloads are blobs too, and not counted).
  int ImageBlobGets(const std::string& repo) {
    const std::vector<std::string> blobs = ImageBlobs(d_ + "/oci");
    int n = 0;
    for (absl::string_view line : absl::StrSplit(testutil::Slurp(d_ + "/registry.log"), '\n')) {
      if (!absl::StrContains(line, "http.request.method=GET")) continue;
      for (const std::string& b : blobs) {
        if (absl::StrContains(line, absl::StrCat("/v2/", repo, "/blobs/", b))) ++n;
      }
    }
    return n;
  }

  std::string d_, host_;
  int port_ = 0;
  int pulls_ = 0;
  std::optional<TempDir> dir_;
  std::optional<Subprocess> registry_;
  testutil::SigstoreKeyPair key_, other_;
};

TEST_F(SignatureRegistryTest, OnlyCorrectlySignedOrPinnedImagesAreFetched) {
  const std::string digest = Push("signed");
  ASSERT_FALSE(digest.empty());
  ASSERT_NO_FATAL_FAILURE(Sign(key_, "signed", digest, host_ + "/signed:v1", digest));
  ASSERT_EQ(Push("unsigned"), digest);
  ASSERT_EQ(Push("wrongkey"), digest);
  ASSERT_NO_FATAL_FAILURE(Sign(other_, "wrongkey", digest, host_ + "/wrongkey:v1", digest));
  const std::string other_digest = Push("other", "oci:" + d_ + "/oci2:other");
  ASSERT_NE(other_digest, digest);
  ASSERT_EQ(Push("wrongdigest"), digest);
  // A genuine signature, for another image, replayed as this one's.
  ASSERT_NO_FATAL_FAILURE(
      Sign(key_, "wrongdigest", digest, host_ + "/wrongdigest:v1", other_digest));
  ASSERT_EQ(Push("wrongidentity"), digest);
  // A genuine signature of these very bytes, but under another name.
  ASSERT_NO_FATAL_FAILURE(Sign(key_, "wrongidentity", digest, host_ + "/signed:v1", digest));
  ASSERT_EQ(Push("pinned"), digest);
  auto rules = Policy(digest);
  ASSERT_NE(rules, nullptr);

  struct Refused {
    std::string repo, ref, why;
  } refused[] = {
      {"unsigned", host_ + "/unsigned:v1", "a sigstore signature is required and the image has none"},
      {"wrongkey", host_ + "/wrongkey:v1", "does not verify with the policy's key"},
      {"wrongdigest", host_ + "/wrongdigest:v1",
       absl::StrCat("it signs manifest ", other_digest, ", not this image's ", digest)},
      {"wrongidentity", host_ + "/wrongidentity:v1",
       "does not satisfy signedIdentity matchRepoDigestOrExact"},
      // Pinned by tag is not pinned: only the digest scope opts out.
      {"pinned", host_ + "/pinned:v1", "the image has none"},
  };
  // skopeo inspect read each config blob once already: count what the pulls add.
  for (const Refused& r : refused) {
    const int before = ImageBlobGets(r.repo);
    absl::StatusOr<PulledImage> p = Pull(r.ref, rules);
    ASSERT_FALSE(p.ok()) << r.ref << " was pulled";
    EXPECT_TRUE(absl::IsPermissionDenied(p.status())) << p.status();
    EXPECT_THAT(p.status().message(), HasSubstr(r.why)) << r.ref;
    EXPECT_THAT(p.status().message(), HasSubstr("image signature policy: " + r.ref));
    EXPECT_EQ(ImageBlobGets(r.repo) - before, 0)
        << r.ref << ": a blob was requested before the refusal";
  }

  int before = ImageBlobGets("signed");
  absl::StatusOr<PulledImage> ok = Pull(host_ + "/signed:v1", rules);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->manifest_digest, digest);
  EXPECT_EQ(ImageBlobGets("signed") - before, 2) << "config and layer";
  // By digest, any tag's signature of the repository will do (matchRepoDigestOrExact).
  absl::StatusOr<PulledImage> by_digest = Pull(host_ + "/signed@" + digest, rules);
  ASSERT_TRUE(by_digest.ok()) << by_digest.status();

  // The policy names this digest: it runs unsigned.
  before = ImageBlobGets("pinned");
  absl::StatusOr<PulledImage> pinned = Pull(host_ + "/pinned@" + digest, rules);
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_EQ(ImageBlobGets("pinned") - before, 2);

  // Without rules the unsigned image pulls (the check is what refused it),
  // and the log shows it: the counts above can fail.
  before = ImageBlobGets("unsigned");
  ASSERT_TRUE(Pull(host_ + "/unsigned:v1", nullptr).ok());
  EXPECT_EQ(ImageBlobGets("unsigned") - before, 2);
}

}  // namespace
}  // namespace cloak::agent::image
