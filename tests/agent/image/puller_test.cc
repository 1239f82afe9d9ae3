// RegistryImagePuller against an in-process fake registry on 127.0.0.1:
// index selection, bearer auth, redirects, and every verification failure.
#include "agent/image/puller.h"

#include <filesystem>

#include "agent/image/digest.h"
#include "agent/image/registry_client.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/image/test_util.h"

namespace cloak::agent::image {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::FakeRegistry;
using testing::LayerMediaType;
using testing::MakeImage;
using testing::ReadFileOrEmpty;
using testing::TarBuilder;
using testing::TestImage;

constexpr char kConfig[] =
    R"({"Entrypoint":["/bin/app"],"Cmd":["--serve"],"Env":["A=1"],"WorkingDir":"/srv"})";

class PullerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("cloak-puller-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(*dir));
    ASSERT_TRUE(registry_.Start().ok());
    auto puller = RegistryImagePuller::Create(Options());
    ASSERT_TRUE(puller.ok()) << puller.status();
    puller_ = std::move(*puller);
  }

  // Retries as by default, with waits short enough for a unit test.
  PullerOptions Options(int retries = kDefaultRetries) {
    PullerOptions options;
    options.registry.insecure_registries = {registry_.hostport()};
    options.work_dir = dir_->path().string();
    options.registry.retries = retries;
    options.registry.retry_backoff = absl::Milliseconds(5);
    options.registry.retry_max_backoff = absl::Milliseconds(40);
    return options;
  }

  std::string Ref(const std::string& rest) { return registry_.hostport() + "/cloak/test" + rest; }
  std::string Rootfs(const std::string& name) { return dir_->Join(name); }

  TestImage GoodImage() {
    return MakeImage(kConfig,
                     {{LayerMediaType(Compression::kGzip),
                       TarBuilder()
                           .File("bin/app", "app v1", 0755)
                           .File("etc/old", "old")
                           .Build(Compression::kGzip)},
                      {LayerMediaType(Compression::kZstd),
                       TarBuilder()
                           .File("etc/.wh.old", "")
                           .File("etc/new", "new")
                           .Build(Compression::kZstd)},
                      {LayerMediaType(Compression::kNone),
                       TarBuilder().File("srv/data", "plain tar").Build()}});
  }

  std::optional<TempDir> dir_;
  FakeRegistry registry_;
  std::unique_ptr<ImagePuller> puller_;
};

TEST_F(PullerTest, PullsIndexWithBearerAuthAndRedirects) {
  TestImage image = GoodImage();
  TestImage arm = MakeImage(R"({"Cmd":["arm"]})", {}, "arm64");
  registry_.AddImage("cloak/test", "unused", image);
  registry_.AddImage("cloak/test", "unused-arm", arm);
  std::string index = testing::MakeIndex(
      {{arm.manifest_digest, static_cast<int64_t>(arm.manifest_json.size()), "arm64"},
       {image.manifest_digest, static_cast<int64_t>(image.manifest_json.size()), "amd64"}});
  registry_.AddManifest("cloak/test", "1", index, kOciIndex);
  registry_.set_require_token(true);
  registry_.set_redirect_blobs(true);

  auto pulled = puller_->Pull(Ref(":1"), Rootfs("rootfs"));
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->index_digest, Sha256Digest(index));
  EXPECT_EQ(pulled->manifest_digest, image.manifest_digest);
  EXPECT_EQ(pulled->config_digest, image.config_digest);
  ASSERT_EQ(pulled->layer_digests.size(), 3u);
  EXPECT_EQ(pulled->layer_digests[1], image.layers[1].digest);
  EXPECT_EQ(pulled->config.working_dir, "/srv");
  EXPECT_GE(registry_.token_requests(), 1);
  EXPECT_THAT(registry_.last_scope(), HasSubstr("cloak%2Ftest"));
  EXPECT_FALSE(pulled->timings.empty());

  std::string root = Rootfs("rootfs");
  EXPECT_EQ(ReadFileOrEmpty(root + "/bin/app"), "app v1");
  EXPECT_FALSE(fs::exists(root + "/etc/old"));
  EXPECT_EQ(ReadFileOrEmpty(root + "/etc/new"), "new");
  EXPECT_EQ(ReadFileOrEmpty(root + "/srv/data"), "plain tar");
  // Staged blobs are gone.
  int staged = 0;
  for (const auto& e : fs::directory_iterator(dir_->path())) {
    staged += e.path().filename().string().rfind("cloak-pull-", 0) == 0;
  }
  EXPECT_EQ(staged, 0);
}

TEST_F(PullerTest, PullByDigestAndManifestTampering) {
  TestImage image = GoodImage();
  registry_.AddImage("cloak/test", "1", image);
  auto pulled = puller_->Pull(Ref("@" + image.manifest_digest), Rootfs("by-digest"));
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->manifest_digest, image.manifest_digest);

  // The registry answers a digest with other content.
  std::string wanted = Sha256Digest("some other manifest");
  registry_.AddManifest("cloak/test", wanted, image.manifest_json, kOciManifest);
  auto bad = puller_->Pull(Ref("@" + wanted), Rootfs("tampered"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(bad.status().message(), HasSubstr(wanted));
}

TEST(HostRegistryTest, OnlyLoopbackLocalhostAndQemuHost) {
  for (const char* host : {"127.0.0.1:5000", "127.9.9.9", "localhost:80", "localhost",
                           "10.0.2.2:5000", "[::1]:5000"}) {
    EXPECT_TRUE(IsHostRegistry(host)) << host;
  }
  for (const char* other : {"10.0.2.3:5000", "docker.io", "registry.local:5000", "[::2]:5000",
                            "128.0.0.1", "localhost.example:5000", "[::1"}) {
    EXPECT_FALSE(IsHostRegistry(other)) << other;
  }
}

// The dev class's rule: a registry on the host is plain HTTP without being
// listed; otherwise an unlisted registry is HTTPS (and the plain-HTTP fake
// registry cannot answer).
TEST_F(PullerTest, PlainHttpToTheHostOnlyWithTheDevRule) {
  registry_.AddImage("cloak/test", "1", GoodImage());
  PullerOptions options;
  options.work_dir = dir_->path().string();
  options.registry.plain_http_to_host = true;
  auto dev = RegistryImagePuller::Create(options);
  ASSERT_TRUE(dev.ok()) << dev.status();
  auto pulled = (*dev)->Pull(Ref(":1"), Rootfs("dev"));
  EXPECT_TRUE(pulled.ok()) << pulled.status();
  options.registry.plain_http_to_host = false;
  auto tee = RegistryImagePuller::Create(options);
  ASSERT_TRUE(tee.ok()) << tee.status();
  EXPECT_FALSE((*tee)->Pull(Ref(":1"), Rootfs("tee")).ok());
}

TEST_F(PullerTest, UnknownTagIsNotFoundNamingTheImage) {
  registry_.AddImage("cloak/test", "1", GoodImage());
  auto r = puller_->Pull(Ref(":nope"), Rootfs("x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr(Ref(":nope")));
  EXPECT_THAT(r.status().message(), HasSubstr("MANIFEST_UNKNOWN"));
}

TEST_F(PullerTest, LayerDigestMismatchIsDataLossNamingTheBlob) {
  TestImage image = GoodImage();
  registry_.AddImage("cloak/test", "1", image);
  // Same size, different bytes.
  std::string evil = image.layers[0].data;
  evil[evil.size() / 2] ^= 0x55;
  registry_.AddBlob(image.layers[0].digest, evil);
  auto r = puller_->Pull(Ref(":1"), Rootfs("x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr(image.layers[0].digest));
  EXPECT_FALSE(fs::exists(Rootfs("x") + "/bin/app")) << "unverified content was unpacked";
}

TEST_F(PullerTest, OversizedAndTruncatedBlobsAreDataLoss) {
  TestImage image = GoodImage();
  registry_.AddImage("cloak/test", "1", image);
  registry_.AddBlob(image.config_digest, image.config_json + "  ");
  auto big = puller_->Pull(Ref(":1"), Rootfs("x"));
  EXPECT_EQ(big.status().code(), absl::StatusCode::kDataLoss) << big.status();
  EXPECT_THAT(big.status().message(), HasSubstr(image.config_digest));

  registry_.AddBlob(image.config_digest, image.config_json);
  registry_.TruncateBlob(image.layers[1].digest, 10);
  auto cut = puller_->Pull(Ref(":1"), Rootfs("y"));
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kDataLoss) << cut.status();
  EXPECT_THAT(cut.status().message(), HasSubstr(image.layers[1].digest));
  EXPECT_THAT(cut.status().message(), HasSubstr("truncated"));
}

TEST_F(PullerTest, EncryptedLayerWithoutKeyIsFailedPrecondition) {
  std::string data = TarBuilder().File("a", "a").Build(Compression::kGzip);
  TestImage image =
      MakeImage(kConfig, {{"application/vnd.oci.image.layer.v1.tar+gzip+encrypted", data}});
  registry_.AddImage("cloak/test", "enc", image);
  auto r = puller_->Pull(Ref(":enc"), Rootfs("x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(),
            "layer " + image.layers[0].digest + " is encrypted; no key available");
}

class FakeDecryptor final : public LayerDecryptor {
 public:
  absl::StatusOr<std::string> Decrypt(const Descriptor&, const std::string& encrypted_path,
                                      const std::string& plaintext_path) override {
    // "Decryption" is the identity here.
    fs::copy_file(encrypted_path, plaintext_path);
    ++calls;
    return std::string("application/vnd.oci.image.layer.v1.tar+gzip");
  }
  int calls = 0;
};

TEST_F(PullerTest, EncryptedLayerGoesThroughTheDecryptorHook) {
  auto decryptor = std::make_shared<FakeDecryptor>();
  PullerOptions options;
  options.registry.insecure_registries = {registry_.hostport()};
  options.decryptor = decryptor;
  auto puller = RegistryImagePuller::Create(options);
  ASSERT_TRUE(puller.ok());
  std::string data = TarBuilder().File("secret", "plain").Build(Compression::kGzip);
  registry_.AddImage(
      "cloak/test", "enc",
      MakeImage(kConfig, {{"application/vnd.oci.image.layer.v1.tar+gzip+encrypted", data}}));
  auto r = (*puller)->Pull(Ref(":enc"), Rootfs("dec"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(decryptor->calls, 1);
  EXPECT_EQ(ReadFileOrEmpty(Rootfs("dec") + "/secret"), "plain");
}

TEST_F(PullerTest, HostileLayerIsRefusedAndThePullerKeepsWorking) {
  TestImage hostile = MakeImage(
      kConfig, {{LayerMediaType(Compression::kGzip),
                 TarBuilder().File("ok", "ok").File("../escape", "x").Build(Compression::kGzip)}});
  registry_.AddImage("cloak/test", "hostile", hostile);
  registry_.AddImage("cloak/test", "1", GoodImage());
  auto bad = puller_->Pull(Ref(":hostile"), Rootfs("bad"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(bad.status().message(), HasSubstr("entry \"../escape\""));
  EXPECT_THAT(bad.status().message(), HasSubstr(hostile.layers[0].digest));
  EXPECT_FALSE(fs::exists(dir_->Join("escape")));

  auto good = puller_->Pull(Ref(":1"), Rootfs("good"));
  ASSERT_TRUE(good.ok()) << good.status();
}

// image.max_concurrent_downloads reaches the puller: with slow blobs, N
// workers have N layer downloads in flight at once, and 1 means strictly one
// at a time. The rootfs is the same either way (layers are applied in order).
TEST(PullerConcurrencyTest, MaxConcurrentDownloadsBoundsTheLayersInFlight) {
  for (int parallel : {1, 3}) {
    SCOPED_TRACE(parallel);
    auto dir = TempDir::Create("cloak-puller-");
    ASSERT_TRUE(dir.ok());
    FakeRegistry registry;
    registry.set_blob_delay(absl::Milliseconds(300));
    ASSERT_TRUE(registry.Start().ok());
    std::vector<std::pair<std::string, std::string>> layers;
    for (int i = 0; i < 4; ++i) {
      layers.push_back({LayerMediaType(Compression::kNone),
                        TarBuilder().File(absl::StrCat("layer", i), absl::StrCat(i)).Build()});
    }
    registry.AddImage("cloak/test", "4", MakeImage(kConfig, layers));
    PullerOptions options;
    options.registry.insecure_registries = {registry.hostport()};
    options.work_dir = dir->path().string();
    options.max_concurrent_downloads = parallel;
    auto puller = RegistryImagePuller::Create(options);
    ASSERT_TRUE(puller.ok()) << puller.status();
    auto pulled = (*puller)->Pull(registry.hostport() + "/cloak/test:4", dir->Join("rootfs"));
    ASSERT_TRUE(pulled.ok()) << pulled.status();
    EXPECT_EQ(pulled->layer_digests.size(), 4u);
    for (int i = 0; i < 4; ++i) {
      EXPECT_TRUE(std::filesystem::exists(dir->Join(absl::StrCat("rootfs/layer", i))));
    }
    EXPECT_EQ(pulled->peak_concurrent_downloads, parallel);
    EXPECT_EQ(registry.peak_blobs_in_flight(), parallel);
  }
}

TEST_F(PullerTest, MaxConcurrentDownloadsOutOfRangeIsRefused) {
  for (int bad : {0, -1, 17}) {
    PullerOptions options;
    options.max_concurrent_downloads = bad;
    auto puller = RegistryImagePuller::Create(options);
    ASSERT_FALSE(puller.ok()) << bad;
    EXPECT_EQ(puller.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(puller.status().message()), HasSubstr("max_concurrent_downloads"));
  }
}

TEST_F(PullerTest, HttpsIsTheDefault) {
  // The fake registry speaks plain HTTP; without listing it as insecure the
  // puller insists on TLS and fails with a hint.
  PullerOptions options;
  auto puller = RegistryImagePuller::Create(options);
  ASSERT_TRUE(puller.ok());
  registry_.AddImage("cloak/test", "1", GoodImage());
  auto r = (*puller)->Pull(Ref(":1"), Rootfs("x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("https://"));
}

TEST_F(PullerTest, WrongPlatformAndBadOptions) {
  registry_.AddImage("cloak/test", "arm", MakeImage(R"({"Cmd":["x"]})", {}, "arm64"));
  auto r = puller_->Pull(Ref(":arm"), Rootfs("x"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("linux/arm64"));

  PullerOptions options;
  options.registry.ca_file = "/nonexistent/ca.pem";
  EXPECT_FALSE(RegistryImagePuller::Create(options).ok());
  auto bad_ref = puller_->Pull("UPPER/case", Rootfs("x"));
  EXPECT_EQ(bad_ref.status().code(), absl::StatusCode::kInvalidArgument);
}

// A registry that drops connections (refuses, resets) is tried again with
// backoff; the pull succeeds once it answers.
TEST_F(PullerTest, DroppedConnectionsAreRetried) {
  TestImage image = GoodImage();
  registry_.AddImage("cloak/test", "1", image);
  registry_.DropConnections(3);
  auto r = puller_->Pull(Ref(":1"), Rootfs("x"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadFileOrEmpty(Rootfs("x") + "/etc/new"), "new");
  EXPECT_GE(registry_.connections(), 4);
}

// A layer cut midway is fetched again from its first byte: the staged
// bytes of the failed attempt do not end up in the layer.
TEST_F(PullerTest, BlobCutMidwayIsFetchedAgainFromItsStart) {
  TestImage image = GoodImage();
  registry_.AddImage("cloak/test", "1", image);
  const std::string& digest = image.layers[0].digest;
  registry_.TruncateBlob(digest, 20, /*times=*/2);
  auto r = puller_->Pull(Ref(":1"), Rootfs("x"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(registry_.blob_requests(digest), 3);
  EXPECT_EQ(ReadFileOrEmpty(Rootfs("x") + "/bin/app"), "app v1");
  EXPECT_EQ(ReadFileOrEmpty(Rootfs("x") + "/srv/data"), "plain tar");
}

// The retries are bounded (data.agent.pull_retries), and the error then
// names the layer, the registry and the attempts.
TEST_F(PullerTest, RetriesAreBoundedAndTheErrorNamesRegistryAndLayer) {
  auto puller = RegistryImagePuller::Create(Options(/*retries=*/2));
  ASSERT_TRUE(puller.ok());
  TestImage image = GoodImage();
  registry_.AddImage("cloak/test", "1", image);
  const std::string& digest = image.layers[1].digest;
  registry_.TruncateBlob(digest, 10);
  auto r = (*puller)->Pull(Ref(":1"), Rootfs("x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("layer " + digest));
  EXPECT_THAT(r.status().message(), HasSubstr("from registry " + registry_.hostport()));
  EXPECT_THAT(r.status().message(), HasSubstr("failed after 3 attempts"));
  EXPECT_THAT(r.status().message(), HasSubstr("truncated"));
  EXPECT_EQ(registry_.blob_requests(digest), 3);

  // A registry that refuses every connection: the manifest is tried 3 times.
  registry_.DropConnections(1000);
  const int before = registry_.connections();
  auto down = (*puller)->Pull(Ref(":1"), Rootfs("y"));
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
  EXPECT_THAT(down.status().message(), HasSubstr("from registry " + registry_.hostport()));
  EXPECT_THAT(down.status().message(), HasSubstr("failed after 3 attempts"));
  EXPECT_EQ(registry_.connections() - before, 3);
  registry_.DropConnections(0);
}

// What will not pass is not retried: an unknown image, a blob whose content
// is wrong.
TEST_F(PullerTest, PermanentErrorsAreNotRetried) {
  TestImage image = GoodImage();
  registry_.AddImage("cloak/test", "1", image);
  const int before = registry_.connections();
  auto missing = puller_->Pull(Ref(":nope"), Rootfs("x"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_EQ(registry_.connections() - before, 1);
  registry_.AddBlob(image.layers[0].digest, std::string(image.layers[0].data.size(), 'z'));
  auto wrong = puller_->Pull(Ref(":1"), Rootfs("y"));
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kDataLoss) << wrong.status();
  EXPECT_EQ(registry_.blob_requests(image.layers[0].digest), 1);
}

TEST(RetryDelayTest, DoublesUpToTheCapWithJitter) {
  RegistryOptions o;
  o.retry_backoff = absl::Milliseconds(500);
  o.retry_max_backoff = absl::Seconds(8);
  EXPECT_EQ(RetryDelay(o, 1, 1.0), absl::Milliseconds(500));
  EXPECT_EQ(RetryDelay(o, 2, 1.0), absl::Seconds(1));
  EXPECT_EQ(RetryDelay(o, 4, 1.0), absl::Seconds(4));
  EXPECT_EQ(RetryDelay(o, 5, 1.0), absl::Seconds(8));
  EXPECT_EQ(RetryDelay(o, 60, 1.0), absl::Seconds(8));
  EXPECT_EQ(RetryDelay(o, 1, 0.5), absl::Milliseconds(250));
  EXPECT_EQ(RetryDelay(o, 5, 1.49), absl::Milliseconds(11920));
  EXPECT_EQ(RetryDelay(o, 1, 7.0), absl::Milliseconds(750));  // jitter clamped
}

}  // namespace
}  // namespace cloak::agent::image
