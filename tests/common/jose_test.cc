// common/jose over libjose: tee keys and their JWKs, the key broker's
// resource JWE opened by the guest, the RSA-OAEP content-key wrap Cloak
// does itself (checked against plain OpenSSL), and HS256 tokens.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <memory>
#include <string>

#include "common/jose/jose.h"
#include "common/tee/encoding.h"

namespace cloak::jose {
namespace {

using ::testing::HasSubstr;

struct KeyPair {
  PrivateKey key;
  PublicJwk jwk;
};

// "P-256" / "P-384" / "P-521" EC keys (ECDH-ES+A256KW) or "RSA" (RSA-OAEP-256).
KeyPair MakeKey(const std::string& kind, int rsa_bits = 2048) {
  EVP_PKEY* raw =
      kind == "RSA" ? EVP_RSA_gen(static_cast<unsigned int>(rsa_bits)) : EVP_EC_gen(kind.c_str());
  PrivateKey key = *PrivateKey::FromEvp(raw);
  EVP_PKEY_free(raw);
  absl::StatusOr<nlohmann::json> pub = key.PublicJwk();
  absl::StatusOr<PublicJwk> jwk = ParsePublicJwk(*pub);
  return KeyPair{key, jwk.ok() ? *jwk : PublicJwk{*pub}};
}

nlohmann::json Header(const nlohmann::json& jwe) {
  return nlohmann::json::parse(*tee::Base64UrlDecode(jwe["protected"].get<std::string>()));
}

TEST(JwkTest, PublicJwkHasOnlyTheDefinedMembers) {
  KeyPair ec = MakeKey("P-256");
  EXPECT_EQ(ec.jwk.json.size(), 5u);
  EXPECT_EQ(ec.jwk.json["alg"], kAlgEcdhEsA256kw);
  EXPECT_EQ(tee::Base64UrlDecode(ec.jwk.json["x"].get<std::string>())->size(), 32u);
  EXPECT_EQ(tee::Base64UrlDecode(MakeKey("P-521").jwk.json["y"].get<std::string>())->size(), 66u);
  KeyPair rsa = MakeKey("RSA");
  EXPECT_EQ(rsa.jwk.json.size(), 4u);
  EXPECT_EQ(rsa.jwk.json["alg"], kAlgRsaOaep256);
  EXPECT_EQ(ec.key.Describe(), "EC P-256");
  EXPECT_EQ(rsa.key.Describe(), "RSA-2048");

  nlohmann::json sent = ec.jwk.json;
  sent["kid"] = "extra";
  sent["use"] = "enc";
  EXPECT_EQ(ParsePublicJwk(sent)->json, ec.jwk.json);
}

TEST(JwkTest, RefusesBadKeys) {
  KeyPair key = MakeKey("P-256");
  nlohmann::json j = key.jwk.json;
  j["alg"] = "ECDH-ES";
  EXPECT_THAT(ParsePublicJwk(j).status().message(), HasSubstr("not supported"));
  j = key.jwk.json;
  j["crv"] = "secp256k1";
  EXPECT_THAT(ParsePublicJwk(j).status().message(), HasSubstr("unsupported EC curve"));
  j = key.jwk.json;
  j["x"] = tee::Base64UrlEncode(std::string(32, '\x01'));  // not on the curve
  EXPECT_THAT(ParsePublicJwk(j).status().message(), HasSubstr("not a valid curve point"));
  j = key.jwk.json;
  j["y"] = "!!";
  EXPECT_EQ(ParsePublicJwk(j).status().code(), absl::StatusCode::kInvalidArgument);
  j.erase("y");
  EXPECT_THAT(ParsePublicJwk(j).status().message(), HasSubstr("\"y\" missing"));
  EXPECT_EQ(ParsePublicJwk(nlohmann::json{{"kty", "oct"}, {"alg", "A256KW"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  KeyPair small = MakeKey("RSA", 1024);
  EXPECT_THAT(ParsePublicJwk(small.jwk.json).status().message(), HasSubstr("too small"));
}

TEST(PrivateKeyTest, FromPemRefusesWithoutEchoingTheKey) {
  absl::StatusOr<PrivateKey> bad = PrivateKey::FromPem("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), ::testing::Not(HasSubstr("c2VjcmV0")));
  EXPECT_FALSE(PrivateKey::GenerateEc("P-192").ok());
  EXPECT_TRUE(PrivateKey::GenerateEc().ok());
}

class JweTest : public ::testing::TestWithParam<std::string> {};

TEST_P(JweTest, KeyBrokerJweOpensWithTheTeeKey) {
  KeyPair key = MakeKey(GetParam());
  const std::string secret("the image key \x00\x01\xff", 17);
  for (const std::string& plaintext : {secret, std::string(), std::string(100000, 'k')}) {
    absl::StatusOr<nlohmann::json> jwe = EncryptJwe(plaintext, key.jwk);
    ASSERT_TRUE(jwe.ok()) << jwe.status();
    EXPECT_EQ(jwe->size(), 5u);
    for (const char* field : {"protected", "encrypted_key", "iv", "ciphertext", "tag"}) {
      ASSERT_TRUE((*jwe)[field].is_string()) << field;
      EXPECT_EQ((*jwe)[field].get<std::string>().find('='), std::string::npos) << field;
    }
    nlohmann::json header = Header(*jwe);
    EXPECT_EQ(header["enc"], "A256GCM");
    EXPECT_EQ(header["alg"], key.jwk.json["alg"]);
    EXPECT_EQ(tee::Base64UrlDecode((*jwe)["iv"].get<std::string>())->size(), 12u);
    EXPECT_EQ(tee::Base64UrlDecode((*jwe)["tag"].get<std::string>())->size(), 16u);
    if (GetParam() != "RSA") {
      EXPECT_EQ(header["epk"]["crv"], GetParam());
      EXPECT_EQ(tee::Base64UrlDecode((*jwe)["encrypted_key"].get<std::string>())->size(), 40u);
    }
    absl::StatusOr<std::string> opened = DecryptJwe(*jwe, key.key);
    ASSERT_TRUE(opened.ok()) << opened.status() << " (" << plaintext.size() << " bytes)";
    EXPECT_EQ(*opened, plaintext);
    EXPECT_EQ(*DecryptJweText(jwe->dump(), key.key), plaintext);
  }
}

TEST_P(JweTest, TamperingOrTheWrongKeyFails) {
  KeyPair key = MakeKey(GetParam());
  KeyPair other = MakeKey(GetParam());
  absl::StatusOr<nlohmann::json> jwe = EncryptJwe("secret", key.jwk);
  ASSERT_TRUE(jwe.ok());
  EXPECT_EQ(DecryptJwe(*jwe, other.key).status().code(), absl::StatusCode::kPermissionDenied);
  for (const char* field : {"ciphertext", "tag", "iv", "encrypted_key"}) {
    nlohmann::json tampered = *jwe;
    std::string raw = *tee::Base64UrlDecode(tampered[field].get<std::string>());
    raw[0] = static_cast<char>(raw[0] ^ 1);
    tampered[field] = tee::Base64UrlEncode(raw);
    EXPECT_FALSE(DecryptJwe(tampered, key.key).ok()) << field;
  }
  // The protected header is the GCM AAD: a re-serialized header fails.
  nlohmann::json tampered = *jwe;
  tampered["protected"] = tee::Base64UrlEncode(Header(*jwe).dump(1));
  EXPECT_FALSE(DecryptJwe(tampered, key.key).ok());
}

INSTANTIATE_TEST_SUITE_P(Keys, JweTest, ::testing::Values("P-256", "P-384", "P-521", "RSA"));

TEST(JweTest, MalformedInputIsInvalidArgument) {
  KeyPair key = MakeKey("P-256");
  EXPECT_EQ(DecryptJweText("not json", key.key).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecryptJwe(nlohmann::json{{"protected", 1}}, key.key).status().code(),
            absl::StatusCode::kInvalidArgument);
  nlohmann::json jwe = *EncryptJwe("x", key.jwk);
  nlohmann::json header = Header(jwe);
  header["enc"] = "A128CBC-HS256";
  jwe["protected"] = tee::Base64UrlEncode(header.dump());
  EXPECT_THAT(DecryptJwe(jwe, key.key).status().message(), HasSubstr("unsupported enc"));
}

// A general-serialization JWE (as ocicrypt writes it) with two recipients:
// the one whose key we hold opens it.
TEST(JweTest, GeneralSerializationTriesEveryRecipient) {
  KeyPair ec = MakeKey("P-256");
  KeyPair rsa = MakeKey("RSA");
  nlohmann::json flat = *EncryptJwe("layer key", rsa.jwk);
  nlohmann::json general = {{"protected", flat["protected"]},
                            {"iv", flat["iv"]},
                            {"ciphertext", flat["ciphertext"]},
                            {"tag", flat["tag"]},
                            {"recipients",
                             {{{"encrypted_key", tee::Base64UrlEncode(std::string(40, 'x'))}},
                              {{"encrypted_key", flat["encrypted_key"]}}}}};
  EXPECT_EQ(*DecryptJwe(general, rsa.key), "layer key");
  EXPECT_EQ(DecryptJwe(general, ec.key).status().code(), absl::StatusCode::kPermissionDenied);
}

// The RSA-OAEP-256 wrap is Cloak's own code (libjose 11 lacks it with
// OpenSSL 3): the content key must open with plain OpenSSL EVP calls.
TEST(JweTest, RsaOaep256WrapOpensWithPlainOpenSsl) {
  KeyPair key = MakeKey("RSA");
  absl::StatusOr<nlohmann::json> jwe = EncryptJwe("plain openssl", key.jwk);
  ASSERT_TRUE(jwe.ok());
  const std::string ek = *tee::Base64UrlDecode((*jwe)["encrypted_key"].get<std::string>());
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new(key.key.get(), nullptr), EVP_PKEY_CTX_free);
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
  const std::string aad = (*jwe)["protected"].get<std::string>();
  const std::string iv = *tee::Base64UrlDecode((*jwe)["iv"].get<std::string>());
  const std::string ct = *tee::Base64UrlDecode((*jwe)["ciphertext"].get<std::string>());
  std::string tag = *tee::Base64UrlDecode((*jwe)["tag"].get<std::string>());
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> gcm(EVP_CIPHER_CTX_new(),
                                                                      EVP_CIPHER_CTX_free);
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
  int fin = 0;
  ASSERT_EQ(
      EVP_DecryptFinal_ex(gcm.get(), reinterpret_cast<unsigned char*>(out.data()) + len, &fin), 1);
  EXPECT_EQ(out, "plain openssl");
}

TEST(JweTest, Rsa15IsStillAccepted) {
  KeyPair key = MakeKey("RSA");
  PublicJwk legacy = key.jwk;
  legacy.json["alg"] = kAlgRsa15;
  absl::StatusOr<nlohmann::json> jwe = EncryptJwe("legacy", legacy);
  ASSERT_TRUE(jwe.ok()) << jwe.status();
  EXPECT_EQ(*DecryptJwe(*jwe, key.key), "legacy");
}

TEST(Hs256Test, SignsAndVerifies) {
  const std::string key(32, 'k');
  absl::StatusOr<std::string> token = SignHs256(R"({"a":1})", key);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(std::count(token->begin(), token->end(), '.'), 2);
  EXPECT_EQ(nlohmann::json::parse(*tee::Base64UrlDecode(token->substr(0, token->find('.')))),
            (nlohmann::json{{"alg", "HS256"}, {"typ", "JWT"}}));
  EXPECT_EQ(*VerifyHs256(*token, key), R"({"a":1})");
  EXPECT_EQ(VerifyHs256(*token, std::string(32, 'x')).status().code(),
            absl::StatusCode::kUnauthenticated);
  std::string tampered = *token;
  tampered[tampered.size() - 2] = tampered[tampered.size() - 2] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(VerifyHs256(tampered, key).ok());
  const std::string none =
      tee::Base64UrlEncode(R"({"alg":"none"})") + "." + tee::Base64UrlEncode(R"({"a":1})") + ".";
  EXPECT_THAT(VerifyHs256(none, key).status().message(), HasSubstr("signature is not valid"));
  // Signed with the right key but another algorithm: refused too.
  const std::string hs512_header = tee::Base64UrlEncode(R"({"alg":"HS512"})");
  EXPECT_FALSE(VerifyHs256(hs512_header + token->substr(token->find('.')), key).ok());
  EXPECT_FALSE(VerifyHs256("a.b", key).ok());
  EXPECT_FALSE(SignHs256("x", "short").ok());  // RFC 7518 §3.2: at least 256 bits
}

}  // namespace
}  // namespace cloak::jose
