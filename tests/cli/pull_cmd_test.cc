// `cloak pull`'s pure parts: key files, the puller's options from the flags,
// the rootfs target check and the report. The pull itself against a real
// registry is in pull_integration_test.cc.
#include "cli/cloak/pull_cmd.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <filesystem>
#include <fstream>

#include "common/temp_dir.h"

namespace cloak::cli {
namespace {

using ::testing::HasSubstr;

std::string RsaPrivatePem() {
  EVP_PKEY* key = EVP_RSA_gen(2048);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  EVP_PKEY_free(key);
  return pem;
}

TEST(PullCmdTest, ParsesPemKeysAndNamesTheFileThatIsNotOne) {
  absl::StatusOr<std::vector<jose::PrivateKey>> keys =
      ParseDecryptionKeys({{"a.pem", RsaPrivatePem()}, {"b.pem", RsaPrivatePem()}});
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->size(), 2u);

  absl::StatusOr<std::vector<jose::PrivateKey>> bad =
      ParseDecryptionKeys({{"a.pem", RsaPrivatePem()}, {"pub.pem", "-----BEGIN PUBLIC KEY-----"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("--decryption-key pub.pem"));
  EXPECT_THAT(bad.status().message(), HasSubstr("private key"));
}

TEST(PullCmdTest, KeySourceHandsOutTheKeysOrSaysNoneWasGiven) {
  StaticKeySource none({});
  absl::StatusOr<agent::attest::KeySet> empty = none.ImageKeys();
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->keys.empty());
  ASSERT_EQ(empty->refusals.size(), 1u);
  EXPECT_THAT(empty->refusals[0], HasSubstr("no --decryption-key"));

  absl::StatusOr<std::vector<jose::PrivateKey>> keys =
      ParseDecryptionKeys({{"k.pem", RsaPrivatePem()}});
  ASSERT_TRUE(keys.ok());
  StaticKeySource one(*keys);
  absl::StatusOr<agent::attest::KeySet> set = one.ImageKeys();
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->keys.size(), 1u);
  EXPECT_TRUE(set->refusals.empty());
}

TEST(PullCmdTest, FlagsBecomeThePullersOptions) {
  PullFlags flags;
  flags.insecure_registries = {"registry.local:5000"};
  flags.plain_http = true;
  flags.max_concurrent_downloads = 5;
  absl::StatusOr<agent::image::PullerOptions> o = PullerOptionsFor(flags, {}, "/stage");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->registry.insecure_registries, flags.insecure_registries);
  EXPECT_TRUE(o->registry.plain_http_to_host);
  EXPECT_EQ(o->work_dir, "/stage");
  EXPECT_EQ(o->max_concurrent_downloads, 5);
  EXPECT_NE(o->decryptor, nullptr);

  for (int bad : {0, agent::image::kMaxConcurrentDownloads + 1}) {
    flags.max_concurrent_downloads = bad;
    absl::StatusOr<agent::image::PullerOptions> refused = PullerOptionsFor(flags, {}, "/stage");
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(refused.status().message(), HasSubstr("--max-concurrent-downloads"));
  }
}

TEST(PullCmdTest, RootfsMustBeAbsentOrEmpty) {
  absl::StatusOr<TempDir> dir = TempDir::Create("cloak-pull-cmd-");
  ASSERT_TRUE(dir.ok());
  const std::string rootfs = dir->Join("rootfs");
  EXPECT_TRUE(CheckRootfsTarget(rootfs).ok());
  std::filesystem::create_directory(rootfs);
  EXPECT_TRUE(CheckRootfsTarget(rootfs).ok());
  std::ofstream(rootfs + "/old") << "x";
  absl::Status full = CheckRootfsTarget(rootfs);
  EXPECT_EQ(full.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(full.message(), HasSubstr("not empty"));
  const std::string file = dir->Join("file");
  std::ofstream(file) << "x";
  absl::Status not_dir = CheckRootfsTarget(file);
  EXPECT_EQ(not_dir.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(not_dir.message(), HasSubstr("not a directory"));
}

TEST(PullCmdTest, ReportListsEveryStepAndTheTotal) {
  agent::image::PulledImage image;
  image.reference = "127.0.0.1:5000/app:1";
  image.manifest_digest = "sha256:aa";
  image.config_digest = "sha256:bb";
  image.layer_digests = {"sha256:cc", "sha256:dd"};
  image.bytes_downloaded = 2 * 1024 * 1024;
  image.peak_concurrent_downloads = 2;
  image.timings = {{"fetch layer 1/2", absl::Milliseconds(120)},
                   {"decrypt layer 1/2", absl::Milliseconds(30)},
                   {"unpack layer 1/2", absl::Milliseconds(450)}};
  std::string text = PullReportText(image, absl::Seconds(1));
  EXPECT_THAT(text, HasSubstr("pulled 127.0.0.1:5000/app:1"));
  EXPECT_THAT(text, HasSubstr("2 downloads at once"));
  EXPECT_THAT(text, HasSubstr("decrypt layer 1/2"));
  EXPECT_THAT(text, HasSubstr("30.0 ms"));
  EXPECT_THAT(text, HasSubstr("1000.0 ms (2.0 MiB/s"));
  nlohmann::json j = PullReportJson(image, absl::Seconds(1));
  EXPECT_EQ(j["steps"].size(), 3u);
  EXPECT_EQ(j["steps"][2]["step"], "unpack layer 1/2");
  EXPECT_DOUBLE_EQ(j["steps"][2]["ms"].get<double>(), 450.0);
  EXPECT_DOUBLE_EQ(j["total_ms"].get<double>(), 1000.0);
}

}  // namespace
}  // namespace cloak::cli
