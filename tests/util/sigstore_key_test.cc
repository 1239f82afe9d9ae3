// The sigstore test-key helper: the encrypted-key document decrypts the
// public vector of the format's reference implementation, and a key it
// makes round-trips and signs.
#include "tests/util/sigstore_key.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "common/tee/encoding.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace cloak::testutil {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// go-securesystemslib encrypted/encrypted_test.go (TestDecrypt): "reallyimportant"
// under the passphrase "supersecret".
constexpr char kPublicVector[] =
    R"({"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"N9a7x5JFGbrtB2uBR81jPwp0eiLR4A7FV3mjVAQrg1g="},"cipher":{"name":"nacl/secretbox","nonce":"2h8HxMmgRfuYdpswZBQaU3xJ1nkA/5Ik"},"ciphertext":"SEW6sUh0jf2wfdjJGPNS9+bkk2uB+Cxamf32zR8XkQ=="})";

TEST(SigstoreKey, DecryptsTheReferenceVector) {
  absl::StatusOr<std::string> plain = DecryptSigstoreKey(kPublicVector, "supersecret");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(*plain, "reallyimportant");
  EXPECT_FALSE(DecryptSigstoreKey(kPublicVector, "supersecreT").ok());
}

TEST(SigstoreKey, MakesAnEncryptedP256KeyThatRoundTrips) {
  absl::StatusOr<SigstoreKeyPair> pair = MakeSigstoreKeyPair("pass phrase");
  ASSERT_TRUE(pair.ok()) << pair.status();
  EXPECT_THAT(pair->private_pem, StartsWith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
  EXPECT_THAT(pair->public_pem, StartsWith("-----BEGIN PUBLIC KEY-----\n"));
  // The PEM body is the JSON document, whose ciphertext opens to the DER.
  std::string body = pair->private_pem.substr(pair->private_pem.find('\n') + 1);
  body = body.substr(0, body.find("-----END"));
  body.erase(std::remove(body.begin(), body.end(), '\n'), body.end());
  absl::StatusOr<std::string> doc = tee::Base64Decode(body);
  ASSERT_TRUE(doc.ok()) << doc.status();
  nlohmann::json j = nlohmann::json::parse(*doc);
  EXPECT_EQ(j["kdf"]["name"], "scrypt");
  EXPECT_EQ(j["kdf"]["params"]["N"], 32768);
  EXPECT_EQ(j["cipher"]["name"], "nacl/secretbox");
  absl::StatusOr<std::string> der = DecryptSigstoreKey(*doc, "pass phrase");
  ASSERT_TRUE(der.ok()) << der.status();
  EXPECT_EQ(*der, pair->private_der);
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der->data());
  EVP_PKEY* key = d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(der->size()));
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(EVP_PKEY_get_bits(key), 256);
  EVP_PKEY_free(key);
}

TEST(SigstoreKey, SignsAPayloadTheKeyVerifies) {
  absl::StatusOr<SigstoreKeyPair> pair = MakeSigstoreKeyPair("x");
  ASSERT_TRUE(pair.ok()) << pair.status();
  const std::string payload = SimpleSigningPayload("127.0.0.1:5000/a:1", "sha256:" + std::string(64, 'a'));
  EXPECT_THAT(payload, HasSubstr(R"("type":"cosign container image signature")"));
  absl::StatusOr<std::string> sig = SignPayload(pair->private_der, payload);
  ASSERT_TRUE(sig.ok()) << sig.status();
  absl::StatusOr<std::string> raw = tee::Base64Decode(*sig);
  ASSERT_TRUE(raw.ok());
  BIO* bio = BIO_new_mem_buf(pair->public_pem.data(), static_cast<int>(pair->public_pem.size()));
  EVP_PKEY* pub = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ASSERT_NE(pub, nullptr);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ASSERT_EQ(EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, pub), 1);
  EXPECT_EQ(EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(raw->data()), raw->size(),
                             reinterpret_cast<const unsigned char*>(payload.data()), payload.size()),
            1);
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pub);
}

}  // namespace
}  // namespace cloak::testutil
