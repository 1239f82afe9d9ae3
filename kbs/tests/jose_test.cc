// Canonical JSON, JWK parsing and the resource JWE (encrypted here, decrypted
// with OpenSSL).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/rsa.h>

#include "kbs/jose.h"
#include "kbs/tests/kbs_client.h"

namespace cloak::kbs {
namespace {

using ::testing::HasSubstr;
using testing::MakeTeeKey;

TEST(CanonicalJsonTest, SortsKeysWithoutWhitespace) {
  nlohmann::json j = nlohmann::json::parse(R"({"b": 1, "a": {"d": "x", "c": [2, 1]}, "A": null})");
  EXPECT_EQ(*CanonicalJson(j), R"({"A":null,"a":{"c":[2,1],"d":"x"},"b":1})");
}

TEST(CanonicalJsonTest, EscapesAsJcsRequires) {
  nlohmann::json j = {{"s", std::string("a\"b\\c\n\t\x01/\xc3\xa9")}};
  EXPECT_EQ(*CanonicalJson(j), "{\"s\":\"a\\\"b\\\\c\\n\\t\\u0001/\xc3\xa9\"}");
  EXPECT_EQ(CanonicalJson(nlohmann::json{{"f", 1.5}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CanonicalJsonTest, RuntimeDataDigestFollowsFactsD3) {
  Jwk jwk{{{"kty", "EC"}, {"crv", "P-256"}, {"alg", "ECDH-ES+A256KW"}, {"x", "X"}, {"y", "Y"}}};
  std::string expected = Sha384(
      R"({"additional-evidence":"","nonce":"N","tee-pubkey":{"alg":"ECDH-ES+A256KW","crv":"P-256","kty":"EC","x":"X","y":"Y"}})");
  EXPECT_EQ(*RuntimeDataDigest("N", jwk, ""), expected);
}

TEST(JwkTest, KeepsOnlyTheDefinedMembers) {
  auto key = MakeTeeKey("P-256");
  nlohmann::json sent = key.jwk.json;
  sent["kid"] = "extra";
  sent["use"] = "enc";
  auto jwk = ParseJwk(sent);
  ASSERT_TRUE(jwk.ok()) << jwk.status();
  EXPECT_EQ(jwk->json, key.jwk.json);
  EXPECT_EQ(jwk->json.size(), 5u);
  auto rsa = MakeTeeKey("RSA");
  auto rsa_jwk = ParseJwk(rsa.jwk.json);
  ASSERT_TRUE(rsa_jwk.ok());
  EXPECT_EQ(rsa_jwk->json.size(), 4u);
}

TEST(JwkTest, RefusesBadKeys) {
  auto key = MakeTeeKey("P-256");
  nlohmann::json j = key.jwk.json;
  j["alg"] = "ECDH-ES";
  EXPECT_THAT(ParseJwk(j).status().message(), HasSubstr("not supported"));
  j = key.jwk.json;
  j["crv"] = "secp256k1";
  EXPECT_THAT(ParseJwk(j).status().message(), HasSubstr("unsupported EC curve"));
  j = key.jwk.json;
  j["x"] = Base64UrlEncode(std::string(32, '\x01'));  // not on the curve
  EXPECT_THAT(ParseJwk(j).status().message(), HasSubstr("not a valid curve point"));
  j = key.jwk.json;
  j["y"] = "!!";
  EXPECT_EQ(ParseJwk(j).status().code(), absl::StatusCode::kInvalidArgument);
  j.erase("y");
  EXPECT_THAT(ParseJwk(j).status().message(), HasSubstr("\"y\" missing"));
  EXPECT_EQ(ParseJwk(nlohmann::json{{"kty", "oct"}, {"alg", "A256KW"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  PkeyPtr small(EVP_RSA_gen(1024));
  auto small_jwk = JwkFromPublicKey(small.get());
  ASSERT_TRUE(small_jwk.ok());
  EXPECT_THAT(ParseJwk(small_jwk->json).status().message(), HasSubstr("too small"));
}

class JweTest : public ::testing::TestWithParam<std::string> {};

TEST_P(JweTest, EncryptsToTheTeeKey) {
  auto key = MakeTeeKey(GetParam());
  std::string secret = "the image key \x00\x01\xff";
  for (const std::string& plaintext : {secret, std::string(), std::string(100000, 'k')}) {
    auto jwe = EncryptJwe(plaintext, key.jwk);
    ASSERT_TRUE(jwe.ok()) << jwe.status();
    EXPECT_EQ(jwe->size(), 5u);
    for (const char* field : {"protected", "encrypted_key", "iv", "ciphertext", "tag"}) {
      ASSERT_TRUE((*jwe)[field].is_string()) << field;
      EXPECT_EQ((*jwe)[field].get<std::string>().find('='), std::string::npos) << field;
    }
    auto header = nlohmann::json::parse(*Base64UrlDecode((*jwe)["protected"].get<std::string>()));
    EXPECT_EQ(header["enc"], "A256GCM");
    EXPECT_EQ(header["alg"], key.jwk.json["alg"]);
    EXPECT_EQ(Base64UrlDecode((*jwe)["iv"].get<std::string>())->size(), 12u);
    EXPECT_EQ(Base64UrlDecode((*jwe)["tag"].get<std::string>())->size(), 16u);
    if (GetParam() != "RSA") {
      EXPECT_EQ(header["epk"]["crv"], GetParam());
      EXPECT_EQ(Base64UrlDecode((*jwe)["encrypted_key"].get<std::string>())->size(), 40u);
    }
    auto decrypted = DecryptJwe(*jwe, key.key.get());
    ASSERT_TRUE(decrypted.ok()) << decrypted.status();
    EXPECT_EQ(*decrypted, plaintext);
  }
}

TEST_P(JweTest, TamperingOrTheWrongKeyFails) {
  auto key = MakeTeeKey(GetParam());
  auto other = MakeTeeKey(GetParam());
  auto jwe = EncryptJwe("secret", key.jwk);
  ASSERT_TRUE(jwe.ok());
  EXPECT_FALSE(DecryptJwe(*jwe, other.key.get()).ok());
  for (const char* field : {"ciphertext", "tag", "iv"}) {
    nlohmann::json tampered = *jwe;
    std::string raw = *Base64UrlDecode(tampered[field].get<std::string>());
    raw[0] = static_cast<char>(raw[0] ^ 1);
    tampered[field] = Base64UrlEncode(raw);
    EXPECT_FALSE(DecryptJwe(tampered, key.key.get()).ok()) << field;
  }
  // The protected header is the GCM AAD: a re-serialized header fails.
  nlohmann::json tampered = *jwe;
  auto header = nlohmann::json::parse(*Base64UrlDecode(tampered["protected"].get<std::string>()));
  tampered["protected"] = Base64UrlEncode(header.dump(1));
  EXPECT_FALSE(DecryptJwe(tampered, key.key.get()).ok());
}

INSTANTIATE_TEST_SUITE_P(Keys, JweTest, ::testing::Values("P-256", "P-384", "RSA"));

// RSA-OAEP-256 + A256GCM decrypted step by step with OpenSSL EVP calls alone.
TEST(JweTest, RsaOaepDecryptsWithPlainOpenSsl) {
  auto key = MakeTeeKey("RSA");
  auto jwe = EncryptJwe("plain openssl", key.jwk);
  ASSERT_TRUE(jwe.ok());
  std::string ek = *Base64UrlDecode((*jwe)["encrypted_key"].get<std::string>());
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(key.key.get(), nullptr));
  ASSERT_EQ(EVP_PKEY_decrypt_init(ctx.get()), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()), 1);
  unsigned char cek[512];
  size_t cek_len = sizeof(cek);
  ASSERT_EQ(EVP_PKEY_decrypt(ctx.get(), cek, &cek_len,
                             reinterpret_cast<const unsigned char*>(ek.data()), ek.size()),
            1);
  ASSERT_EQ(cek_len, 32u);
  std::string aad = (*jwe)["protected"].get<std::string>();
  std::string iv = *Base64UrlDecode((*jwe)["iv"].get<std::string>());
  std::string ct = *Base64UrlDecode((*jwe)["ciphertext"].get<std::string>());
  std::string tag = *Base64UrlDecode((*jwe)["tag"].get<std::string>());
  CipherCtxPtr gcm(EVP_CIPHER_CTX_new());
  std::string out(ct.size(), '\0');
  int len = 0;
  ASSERT_EQ(EVP_DecryptInit_ex(gcm.get(), EVP_aes_256_gcm(), nullptr, cek,
                               reinterpret_cast<const unsigned char*>(iv.data())),
            1);
  ASSERT_EQ(EVP_DecryptUpdate(gcm.get(), nullptr, &len,
                              reinterpret_cast<const unsigned char*>(aad.data()),
                              static_cast<int>(aad.size())),
            1);
  ASSERT_EQ(EVP_DecryptUpdate(gcm.get(), reinterpret_cast<unsigned char*>(out.data()), &len,
                              reinterpret_cast<const unsigned char*>(ct.data()),
                              static_cast<int>(ct.size())),
            1);
  ASSERT_EQ(EVP_CIPHER_CTX_ctrl(gcm.get(), EVP_CTRL_GCM_SET_TAG, 16, tag.data()), 1);
  ASSERT_EQ(EVP_DecryptFinal_ex(gcm.get(), reinterpret_cast<unsigned char*>(out.data()) + len,
                                &len),
            1);
  EXPECT_EQ(out, "plain openssl");
}

TEST(JweTest, Rsa15IsStillAccepted) {
  auto key = MakeTeeKey("RSA");
  Jwk old = key.jwk;
  old.json["alg"] = "RSA1_5";
  auto jwe = EncryptJwe("legacy", old);
  ASSERT_TRUE(jwe.ok()) << jwe.status();
  EXPECT_EQ(*DecryptJwe(*jwe, key.key.get()), "legacy");
}

}  // namespace
}  // namespace cloak::kbs
