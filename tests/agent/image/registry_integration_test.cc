// The puller against Debian's docker-registry on 127.0.0.1, with images the
// test builds itself (busybox-static rootfs, gzip and zstd layers) and
// pushes with skopeo.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "agent/image/digest.h"
#include "agent/image/image_config.h"
#include "agent/image/puller.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/image/test_util.h"
#include "tests/util/host.h"
#include "tests/util/skip.h"

namespace cloak::agent::image {
namespace {

using ::cloak::testutil::FreePort;
using ::cloak::testutil::CanConnect;

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ReadFileOrEmpty;
using testing::TarBuilder;

constexpr char kRegistryBinary[] = "/usr/bin/docker-registry";
constexpr char kSkopeoBinary[] = "/usr/bin/skopeo";
constexpr char kBusybox[] = "/bin/busybox";

class RegistryIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* bin : {kRegistryBinary, kSkopeoBinary, kBusybox}) {
      if (access(bin, X_OK) != 0) {
        CLOAK_SKIP() << bin << " is missing; install docker-registry, skopeo and busybox-static "
                     << "(scripts/install-deps) to run this test";
      }
    }
    auto dir = TempDir::Create("cloak-registry-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    port_ = FreePort();
    hostport_ = absl::StrCat("127.0.0.1:", port_);
    std::string config = absl::StrCat("version: 0.1\nlog:\n  level: warn\nstorage:\n",
                                      "  filesystem:\n    rootdirectory: ", dir_->Join("storage"),
                                      "\nhttp:\n  addr: ", hostport_, "\n");
    ASSERT_TRUE(testing::WriteFile(dir_->Join("registry.yml"), config).ok());
    SpawnOptions o;
    o.stdout_path = o.stderr_path = dir_->Join("registry.log");
    auto p = Subprocess::Spawn({kRegistryBinary, "serve", dir_->Join("registry.yml")}, o);
    ASSERT_TRUE(p.ok()) << p.status();
    registry_.emplace(std::move(*p));
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!CanConnect(port_)) {
      ASSERT_FALSE(registry_->Poll().has_value())
          << "docker-registry exited: " << ReadFileOrEmpty(dir_->Join("registry.log"));
      ASSERT_LT(absl::Now(), deadline) << "docker-registry did not listen on " << hostport_;
      absl::SleepFor(absl::Milliseconds(50));
    }
  }

  void TearDown() override {
    if (registry_.has_value()) registry_->Stop(absl::Seconds(5));  // by pid, always
  }

  // Builds the test image with layers compressed as `c` and pushes it as
  // cloak/test:<tag>.
  void BuildAndPush(Compression c, const std::string& tag) {
    std::string busybox = ReadFileOrEmpty(kBusybox);
    ASSERT_GT(busybox.size(), 100000u);
    TarBuilder base;
    base.Dir("bin")
        .File("bin/busybox", busybox, 0755)
        .Symlink("bin/sh", "busybox")
        .Symlink("bin/cat", "busybox")
        .Symlink("bin/echo", "busybox")
        .Dir("etc")
        .File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
        .File("etc/group", "root:x:0:\napp:x:1000:\nwheel:x:10:app\n")
        .Dir("home/app")
        .File("tmp/remove-me", "lower layer");
    TarBuilder top;
    top.File("tmp/.wh.remove-me", "").File("hello.txt", "hello from cloak\n");
    std::string config = R"({"Entrypoint":["/bin/sh","-c"],"Cmd":["cat /hello.txt"],)"
                         R"("Env":["PATH=/bin","GREETING=hi"],"WorkingDir":"/home/app",)"
                         R"("User":"app"})";
    TestImageHolder h;
    h.image = testing::MakeImage(
        config,
        {{testing::LayerMediaType(c), base.Build(c)}, {testing::LayerMediaType(c), top.Build(c)}},
        "amd64", {Sha256Digest(base.Build()), Sha256Digest(top.Build())});
    std::string layout = dir_->Join("layout-" + tag);
    ASSERT_TRUE(testing::WriteOciLayout(layout, h.image, "test").ok());
    SpawnOptions o;
    o.stdout_path = o.stderr_path = dir_->Join("skopeo-" + tag + ".log");
    o.env = {"HOME=" + dir_->path().string()};
    auto p = Subprocess::Spawn({kSkopeoBinary, "--insecure-policy", "copy", "--quiet",
                                "--dest-tls-verify=false", "oci:" + layout + ":test",
                                absl::StrCat("docker://", hostport_, "/cloak/test:", tag)},
                               o);
    ASSERT_TRUE(p.ok()) << p.status();
    auto e = p->Wait(absl::Seconds(120));
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_EQ(e->exit_code, 0) << "skopeo copy failed: "
                               << ReadFileOrEmpty(dir_->Join("skopeo-" + tag + ".log"));
    pushed_[tag] = h.image;
  }

  std::unique_ptr<ImagePuller> MakePuller(const std::string& registry = "",
                                          int retries = kDefaultRetries) {
    PullerOptions options;
    options.registry.insecure_registries = {registry.empty() ? hostport_ : registry};
    options.work_dir = dir_->path().string();
    options.registry.retries = retries;
    auto puller = RegistryImagePuller::Create(options);
    EXPECT_TRUE(puller.ok()) << puller.status();
    return puller.ok() ? std::move(*puller) : nullptr;
  }

  static void PrintTimings(const std::string& what, const PulledImage& image) {
    std::cout << "[ timing ] " << what << ": pull+unpack " << absl::FormatDuration(image.total)
              << " (" << image.bytes_downloaded << " layer bytes)";
    for (const StepTiming& t : image.timings) {
      std::cout << "; " << t.step << " " << absl::FormatDuration(t.duration);
    }
    std::cout << std::endl;
  }

  struct TestImageHolder {
    testing::TestImage image;
  };
  std::optional<TempDir> dir_;
  std::optional<Subprocess> registry_;
  int port_ = 0;
  std::string hostport_;
  std::map<std::string, testing::TestImage> pushed_;
};

TEST_F(RegistryIntegrationTest, PullsGzipImageByTagAndDigestAndAppliesConfig) {
  ASSERT_NO_FATAL_FAILURE(BuildAndPush(Compression::kGzip, "1"));
  auto puller = MakePuller();
  ASSERT_NE(puller, nullptr);
  std::string rootfs = dir_->Join("rootfs");
  std::string ref = absl::StrCat(hostport_, "/cloak/test:1");
  auto pulled = puller->Pull(ref, rootfs);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  PrintTimings("gzip image by tag", *pulled);
  EXPECT_EQ(pulled->layer_digests.size(), 2u);
  EXPECT_EQ(pulled->config_digest, pushed_["1"].config_digest);

  // Files, whiteout, and a runnable busybox.
  EXPECT_EQ(ReadFileOrEmpty(rootfs + "/hello.txt"), "hello from cloak\n");
  EXPECT_FALSE(fs::exists(rootfs + "/tmp/remove-me"));
  EXPECT_EQ(fs::read_symlink(rootfs + "/bin/sh"), "busybox");
  SpawnOptions o;
  o.stdout_path = dir_->Join("busybox.out");
  auto bb = Subprocess::Spawn({rootfs + "/bin/busybox", "cat", rootfs + "/hello.txt"}, o);
  ASSERT_TRUE(bb.ok()) << bb.status();
  auto bb_exit = bb->Wait(absl::Seconds(10));
  ASSERT_TRUE(bb_exit.ok());
  EXPECT_EQ(bb_exit->exit_code, 0);
  EXPECT_EQ(ReadFileOrEmpty(dir_->Join("busybox.out")), "hello from cloak\n");

  // Config application as containerd would do it.
  auto process = ApplyImageConfig(pulled->config, ProcessRequest{});
  ASSERT_TRUE(process.ok()) << process.status();
  EXPECT_THAT(process->args, ElementsAre("/bin/sh", "-c", "cat /hello.txt"));
  EXPECT_THAT(process->env, ElementsAre("PATH=/bin", "GREETING=hi"));
  EXPECT_EQ(process->cwd, "/home/app");
  ProcessRequest ctr_run;
  ctr_run.args = {"echo hi"};
  ctr_run.env = {"GREETING=from-spec"};
  auto overridden = ApplyImageConfig(pulled->config, ctr_run);
  ASSERT_TRUE(overridden.ok());
  EXPECT_THAT(overridden->args, ElementsAre("/bin/sh", "-c", "echo hi"));
  EXPECT_THAT(overridden->env, ElementsAre("PATH=/bin", "GREETING=from-spec"));
  auto user = ResolveUserInRootfs(process->user, rootfs);
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->uid, 1000u);
  EXPECT_EQ(user->gid, 1000u);
  EXPECT_THAT(user->additional_gids, ElementsAre(10u));

  // By digest.
  std::string by_digest = absl::StrCat(hostport_, "/cloak/test@", pulled->manifest_digest);
  auto again = puller->Pull(by_digest, dir_->Join("rootfs-digest"));
  ASSERT_TRUE(again.ok()) << again.status();
  PrintTimings("gzip image by digest", *again);
  EXPECT_EQ(again->manifest_digest, pulled->manifest_digest);
  EXPECT_EQ(again->layer_digests, pulled->layer_digests);
  EXPECT_EQ(ReadFileOrEmpty(dir_->Join("rootfs-digest") + "/hello.txt"), "hello from cloak\n");

  // Unknown tag.
  std::string missing = absl::StrCat(hostport_, "/cloak/test:does-not-exist");
  auto nf = puller->Pull(missing, dir_->Join("rootfs-missing"));
  ASSERT_FALSE(nf.ok());
  EXPECT_EQ(nf.status().code(), absl::StatusCode::kNotFound) << nf.status();
  EXPECT_THAT(nf.status().message(), HasSubstr(missing));
  std::cout << "[ error  ] wrong tag: " << nf.status() << std::endl;
}

TEST_F(RegistryIntegrationTest, PullsZstdImage) {
  ASSERT_NO_FATAL_FAILURE(BuildAndPush(Compression::kZstd, "zstd"));
  auto puller = MakePuller();
  ASSERT_NE(puller, nullptr);
  std::string rootfs = dir_->Join("rootfs-zstd");
  auto pulled = puller->Pull(absl::StrCat(hostport_, "/cloak/test:zstd"), rootfs);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  PrintTimings("zstd image by tag", *pulled);
  EXPECT_EQ(ReadFileOrEmpty(rootfs + "/hello.txt"), "hello from cloak\n");
  EXPECT_FALSE(fs::exists(rootfs + "/tmp/remove-me"));
  EXPECT_TRUE(fs::is_regular_file(rootfs + "/bin/busybox"));
}

// The real registry behind a proxy that drops the first connections and
// cuts the first layer downloads midway: the puller retries with backoff
// (the defaults: 4 retries from 500 ms) and the image arrives whole.
TEST_F(RegistryIntegrationTest, RetriesThroughAProxyThatDropsAndCuts) {
  ASSERT_NO_FATAL_FAILURE(BuildAndPush(Compression::kGzip, "flaky"));
  testing::FlakyProxy proxy(port_);
  ASSERT_TRUE(proxy.Start().ok());
  proxy.DropConnections(2);
  proxy.CutBlobs(2, 64 * 1024);
  auto puller = MakePuller(proxy.hostport());
  ASSERT_NE(puller, nullptr);
  const std::string rootfs = dir_->Join("rootfs-flaky");
  const absl::Time start = absl::Now();
  auto pulled = puller->Pull(absl::StrCat(proxy.hostport(), "/cloak/test:flaky"), rootfs);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  std::cout << "[ faults ] " << proxy.dropped() << " connections dropped, " << proxy.cut()
            << " blob downloads cut at 64 KiB; pulled in "
            << absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1)))
            << std::endl;
  EXPECT_EQ(proxy.dropped(), 2);
  EXPECT_EQ(proxy.cut(), 2);
  EXPECT_EQ(ReadFileOrEmpty(rootfs + "/hello.txt"), "hello from cloak\n");
  EXPECT_EQ(ReadFileOrEmpty(rootfs + "/bin/busybox"), ReadFileOrEmpty(kBusybox));

  // A proxy that cuts every layer download: bounded retries, then an error
  // naming the layer, the registry and the attempts.
  auto bounded = MakePuller(proxy.hostport(), /*retries=*/2);
  ASSERT_NE(bounded, nullptr);
  proxy.CutBlobs(1000, 64 * 1024);
  auto failed = bounded->Pull(absl::StrCat(proxy.hostport(), "/cloak/test:flaky"),
                              dir_->Join("rootfs-cut"));
  ASSERT_FALSE(failed.ok());
  std::cout << "[ error  ] every blob cut: " << failed.status() << std::endl;
  EXPECT_THAT(failed.status().message(), HasSubstr("from registry " + proxy.hostport()));
  EXPECT_THAT(failed.status().message(), HasSubstr("layer sha256:"));
  EXPECT_THAT(failed.status().message(), HasSubstr("failed after 3 attempts"));
}

}  // namespace
}  // namespace cloak::agent::image
