// The ocicrypt decryptor against real skopeo-encrypted layers (JWE
// recipients, AES_256_CTR_HMAC_SHA256), generated at test time.
#include "agent/attest/ocicrypt.h"

#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/jose/jose.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/attest/attest_test_util.h"
#include "tests/util/skip.h"

namespace cloak::agent::attest {
namespace {

using ::testing::HasSubstr;
using testing::ReadFile;
using testing::WriteFile;

class FixedKeys final : public KeySource {
 public:
  explicit FixedKeys(absl::StatusOr<KeySet> keys) : keys_(std::move(keys)) {}
  absl::StatusOr<KeySet> ImageKeys() override {
    ++calls;
    return keys_;
  }
  int calls = 0;

 private:
  absl::StatusOr<KeySet> keys_;
};

class OcicryptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string missing = testing::MissingTools(); !missing.empty()) {
      CLOAK_SKIP() << "missing " << missing << "(scripts/install-deps installs them)";
    }
    auto dir = TempDir::Create("cloak-ocicrypt-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(*dir));
    ASSERT_TRUE(testing::MakeEncryptedImage(dir_->path().string()).ok());
    auto src = testing::LayoutLayers(dir_->Join("src"));
    auto dst = testing::LayoutLayers(dir_->Join("dst"));
    ASSERT_TRUE(src.ok() && dst.ok());
    ASSERT_EQ(src->size(), 1u);
    ASSERT_EQ(dst->size(), 1u);
    plain_ = (*src)[0];
    enc_ = (*dst)[0];
    auto key = jose::PrivateKey::FromPem(ReadFile(dir_->Join("k.pem")));
    ASSERT_TRUE(key.ok()) << key.status();
    key_.emplace(*key);
  }

  std::shared_ptr<FixedKeys> Keys() { return std::make_shared<FixedKeys>(KeySet{{*key_}, {}}); }

  std::optional<TempDir> dir_;
  testing::LayoutLayer plain_, enc_;
  std::optional<jose::PrivateKey> key_;
};

TEST_F(OcicryptTest, DecryptsSkopeoLayerToTheOriginalBlob) {
  EXPECT_EQ(enc_.descriptor.media_type, "application/vnd.oci.image.layer.v1.tar+gzip+encrypted");
  EXPECT_NE(enc_.descriptor.digest, plain_.descriptor.digest);
  auto keys = Keys();
  OcicryptDecryptor decryptor(keys);
  std::string out = dir_->Join("plain");
  absl::Time start = absl::Now();
  auto type = decryptor.Decrypt(enc_.descriptor, enc_.blob_path, out);
  absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(type.ok()) << type.status();
  EXPECT_EQ(*type, "application/vnd.oci.image.layer.v1.tar+gzip");
  EXPECT_EQ(ReadFile(out), ReadFile(plain_.blob_path));
  EXPECT_EQ(keys->calls, 1);
  std::cout << "decrypted " << enc_.descriptor.size << " bytes in " << absl::FormatDuration(took)
            << "\n";
}

TEST_F(OcicryptTest, ThroughputOfTheLayerCipher) {
  auto k = UnwrapLayerKey(enc_.descriptor, {*key_});
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->digest, plain_.descriptor.digest);  // ocicrypt: digest of the plaintext blob
  absl::Time start = absl::Now();
  int rounds = 20;
  for (int i = 0; i < rounds; ++i) {
    ASSERT_TRUE(DecryptLayerFile(enc_.descriptor, *k, enc_.blob_path, dir_->Join("p")).ok());
  }
  double secs = absl::ToDoubleSeconds(absl::Now() - start);
  std::cout << "decrypt throughput: "
            << static_cast<double>(enc_.descriptor.size) * rounds / secs / (1 << 20)
            << " MiB/s\n";
}

TEST_F(OcicryptTest, WrongKeyIsFailedPreconditionNamingTheLayer) {
  ASSERT_TRUE(testing::Run({"openssl", "genrsa", "-out", dir_->Join("other.pem"), "2048"},
                           dir_->Join("o.log"))
                  .ok());
  auto other = jose::PrivateKey::FromPem(ReadFile(dir_->Join("other.pem")));
  ASSERT_TRUE(other.ok());
  OcicryptDecryptor decryptor(std::make_shared<FixedKeys>(
      KeySet{{*other}, {"KBS http://x refused resource default/key/k2: PolicyDeny: no"}}));
  auto type = decryptor.Decrypt(enc_.descriptor, enc_.blob_path, dir_->Join("p"));
  ASSERT_FALSE(type.ok());
  EXPECT_EQ(type.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(type.status().message()), HasSubstr(enc_.descriptor.digest));
  EXPECT_THAT(std::string(type.status().message()), HasSubstr("PolicyDeny: no"));
  EXPECT_FALSE(std::filesystem::exists(dir_->Join("p")));
}

TEST_F(OcicryptTest, NoKeyReleasedCarriesTheKbsReason) {
  OcicryptDecryptor decryptor(std::make_shared<FixedKeys>(absl::PermissionDeniedError(
      "KBS http://127.0.0.1:1 refused attestation: AttestationError: sample not allowed")));
  auto type = decryptor.Decrypt(enc_.descriptor, enc_.blob_path, dir_->Join("p"));
  EXPECT_EQ(type.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(type.status().message()),
              HasSubstr(absl::StrCat("layer ", enc_.descriptor.digest, " is encrypted")));
  EXPECT_THAT(std::string(type.status().message()), HasSubstr("sample not allowed"));
}

TEST_F(OcicryptTest, TamperedCiphertextIsRefusedByTheHmac) {
  std::string blob = ReadFile(enc_.blob_path);
  blob[blob.size() / 2] ^= 0x01;
  WriteFile(dir_->Join("tampered"), blob);
  OcicryptDecryptor decryptor(Keys());
  auto type = decryptor.Decrypt(enc_.descriptor, dir_->Join("tampered"), dir_->Join("p"));
  ASSERT_FALSE(type.ok());
  EXPECT_EQ(type.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(type.status().message()), HasSubstr("HMAC"));
  EXPECT_FALSE(std::filesystem::exists(dir_->Join("p")));
}

TEST_F(OcicryptTest, TamperedOrMissingPuboptsIsRefused) {
  image::Descriptor d = enc_.descriptor;
  auto pub = nlohmann::json::parse(
      *tee::Base64Decode(d.annotations.at(kEncPubOpts), tee::Base64Alphabet::kEither));
  std::string hmac =
      *tee::Base64Decode(pub["hmac"].get<std::string>(), tee::Base64Alphabet::kEither);
  hmac[0] ^= 0x80;
  pub["hmac"] = tee::Base64Encode(hmac);
  d.annotations[kEncPubOpts] = tee::Base64Encode(pub.dump());
  OcicryptDecryptor decryptor(Keys());
  auto type = decryptor.Decrypt(d, enc_.blob_path, dir_->Join("p"));
  EXPECT_EQ(type.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(type.status().message()), HasSubstr("HMAC"));

  d.annotations.erase(kEncPubOpts);
  type = decryptor.Decrypt(d, enc_.blob_path, dir_->Join("p"));
  EXPECT_EQ(type.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(type.status().message()), HasSubstr("pubopts"));
}

TEST_F(OcicryptTest, TamperedWrappedKeyIsRefused) {
  image::Descriptor d = enc_.descriptor;
  std::string jwe = *tee::Base64Decode(d.annotations.at(kEncKeysJwe), tee::Base64Alphabet::kEither);
  auto j = nlohmann::json::parse(jwe);
  std::string ct =
      *tee::Base64Decode(j["ciphertext"].get<std::string>(), tee::Base64Alphabet::kEither);
  ct[3] ^= 0x01;
  j["ciphertext"] = tee::Base64UrlEncode(ct);
  d.annotations[kEncKeysJwe] = tee::Base64Encode(j.dump());
  OcicryptDecryptor decryptor(Keys());
  auto type = decryptor.Decrypt(d, enc_.blob_path, dir_->Join("p"));
  EXPECT_EQ(type.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(type.status().message()), HasSubstr("tag mismatch"));
}

TEST_F(OcicryptTest, OtherKeySchemesAreNamed) {
  image::Descriptor d = enc_.descriptor;
  d.annotations.erase(kEncKeysJwe);
  d.annotations["org.opencontainers.image.enc.keys.provider.attestation-agent"] = "e30=";
  OcicryptDecryptor decryptor(Keys());
  auto type = decryptor.Decrypt(d, enc_.blob_path, dir_->Join("p"));
  EXPECT_EQ(type.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(type.status().message()), HasSubstr("provider.attestation-agent"));
}

TEST_F(OcicryptTest, EcRecipientKeysWorkToo) {
  std::string dir = dir_->path().string();
  std::string log = dir + "/ec.log";
  ASSERT_TRUE(testing::Run({"openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-out", dir + "/ec.pem"},
                           log)
                  .ok());
  ASSERT_TRUE(
      testing::Run({"openssl", "pkey", "-in", dir + "/ec.pem", "-pubout", "-out", dir + "/ecpub.pem"},
                   log)
          .ok());
  auto s = testing::Run({"skopeo", "--insecure-policy", "copy", "--quiet", "--encryption-key",
                         "jwe:" + dir + "/ecpub.pem", "oci:" + dir + "/src:t", "oci:" + dir + "/ec:t"},
                        log);
  ASSERT_TRUE(s.ok()) << s;
  auto layers = testing::LayoutLayers(dir + "/ec");
  ASSERT_TRUE(layers.ok());
  auto key = jose::PrivateKey::FromPem(ReadFile(dir + "/ec.pem"));
  ASSERT_TRUE(key.ok());
  // Both keys offered: the RSA one has no recipient here, the EC one opens it.
  OcicryptDecryptor decryptor(std::make_shared<FixedKeys>(KeySet{{*key_, *key}, {}}));
  auto type = decryptor.Decrypt((*layers)[0].descriptor, (*layers)[0].blob_path, dir + "/p");
  ASSERT_TRUE(type.ok()) << type.status();
  EXPECT_EQ(ReadFile(dir + "/p"), ReadFile(plain_.blob_path));
}

}  // namespace
}  // namespace cloak::agent::attest
