#include "kbs/jose.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cloak::kbs {
namespace {

constexpr char kAlgEcdhEsA256kw[] = "ECDH-ES+A256KW";
constexpr char kAlgRsaOaep256[] = "RSA-OAEP-256";
constexpr char kAlgRsa15[] = "RSA1_5";
constexpr char kEncA256gcm[] = "A256GCM";

absl::Status CheckIntegersOnly(const nlohmann::json& v) {
  if (v.is_number_float()) {
    return absl::InvalidArgumentError("canonical JSON: non-integer numbers are not supported");
  }
  if (v.is_structured()) {
    for (const auto& item : v) RETURN_IF_ERROR(CheckIntegersOnly(item));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Member(const nlohmann::json& j, const char* key,
                                   absl::string_view what) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": member \"", key, "\" missing or not a string"));
  }
  return it->get<std::string>();
}

absl::StatusOr<Bytes> B64UrlMember(const nlohmann::json& j, const char* key,
                                   absl::string_view what) {
  ASSIGN_OR_RETURN(std::string text, Member(j, key, what));
  auto bytes = Base64UrlDecode(text);
  if (!bytes.ok()) return Annotate(bytes.status(), absl::StrCat(what, " member \"", key, "\""));
  return bytes;
}

absl::StatusOr<PkeyPtr> RsaPublicKey(absl::string_view n, absl::string_view e) {
  BIGNUM* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                           static_cast<int>(n.size()), nullptr);
  BIGNUM* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                           static_cast<int>(e.size()), nullptr);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM* params = nullptr;
  if (bn_n != nullptr && bn_e != nullptr && bld != nullptr &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1) {
    params = OSSL_PARAM_BLD_to_param(bld);
  }
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn_n);
  BN_free(bn_e);
  if (params == nullptr) return absl::InvalidArgumentError("RSA JWK: cannot build key parameters");
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* key = nullptr;
  int rc = ctx ? EVP_PKEY_fromdata_init(ctx.get()) : 0;
  if (rc == 1) rc = EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params);
  OSSL_PARAM_free(params);
  if (rc != 1 || key == nullptr) {
    return absl::InvalidArgumentError(OpenSslErrors("RSA JWK: not a valid RSA public key"));
  }
  PkeyPtr out(key);
  if (EVP_PKEY_get_bits(key) < 2048) {
    return absl::InvalidArgumentError(absl::StrCat("RSA JWK: ", EVP_PKEY_get_bits(key),
                                                   "-bit modulus is too small (want >= 2048)"));
  }
  return out;
}

absl::StatusOr<Bytes> BnParam(EVP_PKEY* key, const char* name, size_t pad) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1 || bn == nullptr) {
    return absl::InternalError(OpenSslErrors(absl::StrCat("key parameter ", name)));
  }
  size_t size = pad != 0 ? pad : static_cast<size_t>(BN_num_bytes(bn));
  Bytes out(size, '\0');
  int rc = BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(size));
  BN_free(bn);
  if (rc < 0) return absl::InternalError(absl::StrCat("key parameter ", name, " too large"));
  return out;
}

struct CurveInfo {
  const char* jwk_name;
  const char* group;
  size_t size;
};
absl::StatusOr<CurveInfo> CurveOf(EVP_PKEY* key) {
  char group[64] = {};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                     &len) != 1) {
    return absl::InvalidArgumentError("EC key without a named group");
  }
  std::string g(group, len);
  if (g == SN_X9_62_prime256v1) return CurveInfo{"P-256", SN_X9_62_prime256v1, 32};
  if (g == SN_secp384r1) return CurveInfo{"P-384", SN_secp384r1, 48};
  if (g == SN_secp521r1) return CurveInfo{"P-521", SN_secp521r1, 66};
  return absl::InvalidArgumentError(absl::StrCat("unsupported EC group ", g));
}

absl::StatusOr<nlohmann::json> EcPublicJwk(EVP_PKEY* key) {
  ASSIGN_OR_RETURN(CurveInfo curve, CurveOf(key));
  ASSIGN_OR_RETURN(Bytes x, BnParam(key, OSSL_PKEY_PARAM_EC_PUB_X, curve.size));
  ASSIGN_OR_RETURN(Bytes y, BnParam(key, OSSL_PKEY_PARAM_EC_PUB_Y, curve.size));
  return nlohmann::json{{"kty", "EC"},
                        {"crv", curve.jwk_name},
                        {"x", Base64UrlEncode(x)},
                        {"y", Base64UrlEncode(y)}};
}

absl::StatusOr<Bytes> Ecdh(EVP_PKEY* own, EVP_PKEY* peer) {
  ERR_clear_error();
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, own, nullptr));
  size_t len = 0;
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer) != 1 ||
      EVP_PKEY_derive(ctx.get(), nullptr, &len) != 1) {
    return absl::InvalidArgumentError(OpenSslErrors("ECDH key agreement"));
  }
  Bytes z(len, '\0');
  if (EVP_PKEY_derive(ctx.get(), reinterpret_cast<unsigned char*>(z.data()), &len) != 1) {
    return absl::InvalidArgumentError(OpenSslErrors("ECDH key agreement"));
  }
  z.resize(len);
  return z;
}

std::string U32Be(uint32_t v) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
  return out;
}

// RFC 7518 §4.6.2 Concat KDF with SHA-256, empty apu/apv, 256-bit output.
Bytes ConcatKdf(absl::string_view z, absl::string_view alg) {
  std::string other = absl::StrCat(U32Be(static_cast<uint32_t>(alg.size())), alg, U32Be(0),
                                   U32Be(0), U32Be(256));
  // One round of SHA-256 yields the 32 bytes A256KW needs.
  return Sha256(absl::StrCat(U32Be(1), z, other));
}

absl::StatusOr<Bytes> AesKeyWrap(absl::string_view kek, absl::string_view key, bool wrap) {
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return absl::ResourceExhaustedError("EVP_CIPHER_CTX_new");
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  const auto* k = reinterpret_cast<const unsigned char*>(kek.data());
  int ok = wrap ? EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_wrap(), nullptr, k, nullptr)
                : EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_wrap(), nullptr, k, nullptr);
  Bytes out(key.size() + 16, '\0');
  int len = 0, fin = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  const auto* in = reinterpret_cast<const unsigned char*>(key.data());
  if (ok == 1) {
    ok = wrap ? EVP_EncryptUpdate(ctx.get(), o, &len, in, static_cast<int>(key.size()))
              : EVP_DecryptUpdate(ctx.get(), o, &len, in, static_cast<int>(key.size()));
  }
  if (ok == 1) {
    ok = wrap ? EVP_EncryptFinal_ex(ctx.get(), o + len, &fin)
              : EVP_DecryptFinal_ex(ctx.get(), o + len, &fin);
  }
  if (ok != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(wrap ? "AES key wrap failed"
                                           : "AES key unwrap failed (wrong key or tampered)");
  }
  out.resize(static_cast<size_t>(len + fin));
  return out;
}

absl::StatusOr<Bytes> RsaCrypt(EVP_PKEY* key, absl::string_view alg, absl::string_view in,
                               bool encrypt) {
  ERR_clear_error();
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  if (!ctx) return absl::ResourceExhaustedError("EVP_PKEY_CTX_new");
  int ok = encrypt ? EVP_PKEY_encrypt_init(ctx.get()) : EVP_PKEY_decrypt_init(ctx.get());
  if (ok == 1 && alg == kAlgRsaOaep256) {
    ok = EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) == 1;
  } else if (ok == 1) {
    ok = EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING);
  }
  const auto* i = reinterpret_cast<const unsigned char*>(in.data());
  size_t len = 0;
  if (ok == 1) {
    ok = encrypt ? EVP_PKEY_encrypt(ctx.get(), nullptr, &len, i, in.size())
                 : EVP_PKEY_decrypt(ctx.get(), nullptr, &len, i, in.size());
  }
  Bytes out(len, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (ok == 1) {
    ok = encrypt ? EVP_PKEY_encrypt(ctx.get(), o, &len, i, in.size())
                 : EVP_PKEY_decrypt(ctx.get(), o, &len, i, in.size());
  }
  if (ok != 1) {
    return absl::InvalidArgumentError(
        OpenSslErrors(absl::StrCat(alg, encrypt ? " encryption" : " decryption", " failed")));
  }
  out.resize(len);
  return out;
}

}  // namespace

absl::StatusOr<std::string> CanonicalJson(const nlohmann::json& value) {
  RETURN_IF_ERROR(CheckIntegersOnly(value));
  try {
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("canonical JSON: ", e.what()));
  }
}

absl::StatusOr<Jwk> ParseJwk(const nlohmann::json& json) {
  if (!json.is_object()) return absl::InvalidArgumentError("tee-pubkey: not a JSON object");
  ASSIGN_OR_RETURN(std::string kty, Member(json, "kty", "tee-pubkey"));
  ASSIGN_OR_RETURN(std::string alg, Member(json, "alg", "tee-pubkey"));
  Jwk jwk;
  if (kty == "RSA") {
    if (alg != kAlgRsaOaep256 && alg != kAlgRsa15) {
      return absl::InvalidArgumentError(absl::StrCat("tee-pubkey: RSA alg \"", alg,
                                                     "\" not supported (want RSA-OAEP-256 or "
                                                     "RSA1_5)"));
    }
    ASSIGN_OR_RETURN(std::string n, Member(json, "n", "tee-pubkey"));
    ASSIGN_OR_RETURN(std::string e, Member(json, "e", "tee-pubkey"));
    jwk.json = {{"kty", kty}, {"alg", alg}, {"n", n}, {"e", e}};
  } else if (kty == "EC") {
    if (alg != kAlgEcdhEsA256kw) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tee-pubkey: EC alg \"", alg, "\" not supported (want ECDH-ES+A256KW)"));
    }
    ASSIGN_OR_RETURN(std::string crv, Member(json, "crv", "tee-pubkey"));
    ASSIGN_OR_RETURN(std::string x, Member(json, "x", "tee-pubkey"));
    ASSIGN_OR_RETURN(std::string y, Member(json, "y", "tee-pubkey"));
    jwk.json = {{"kty", kty}, {"crv", crv}, {"alg", alg}, {"x", x}, {"y", y}};
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("tee-pubkey: kty \"", kty, "\" not supported (want RSA or EC)"));
  }
  RETURN_IF_ERROR(JwkPublicKey(jwk).status());
  return jwk;
}

absl::StatusOr<PkeyPtr> JwkPublicKey(const Jwk& jwk) {
  ASSIGN_OR_RETURN(std::string kty, Member(jwk.json, "kty", "JWK"));
  if (kty == "RSA") {
    ASSIGN_OR_RETURN(Bytes n, B64UrlMember(jwk.json, "n", "RSA JWK"));
    ASSIGN_OR_RETURN(Bytes e, B64UrlMember(jwk.json, "e", "RSA JWK"));
    return RsaPublicKey(n, e);
  }
  if (kty == "EC") {
    ASSIGN_OR_RETURN(std::string crv, Member(jwk.json, "crv", "EC JWK"));
    ASSIGN_OR_RETURN(Bytes x, B64UrlMember(jwk.json, "x", "EC JWK"));
    ASSIGN_OR_RETURN(Bytes y, B64UrlMember(jwk.json, "y", "EC JWK"));
    auto key = EcPublicKeyFromXY(crv, x, y);
    if (!key.ok()) return Annotate(key.status(), "EC JWK");
    return key;
  }
  return absl::InvalidArgumentError(absl::StrCat("JWK kty \"", kty, "\" not supported"));
}

absl::StatusOr<Jwk> JwkFromPublicKey(EVP_PKEY* key) {
  Jwk jwk;
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
    ASSIGN_OR_RETURN(jwk.json, EcPublicJwk(key));
    jwk.json["alg"] = kAlgEcdhEsA256kw;
    return jwk;
  }
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
    ASSIGN_OR_RETURN(Bytes n, BnParam(key, OSSL_PKEY_PARAM_RSA_N, 0));
    ASSIGN_OR_RETURN(Bytes e, BnParam(key, OSSL_PKEY_PARAM_RSA_E, 0));
    jwk.json = {{"kty", "RSA"},
                {"alg", kAlgRsaOaep256},
                {"n", Base64UrlEncode(n)},
                {"e", Base64UrlEncode(e)}};
    return jwk;
  }
  return absl::InvalidArgumentError("only EC and RSA keys have a JWK form here");
}

absl::StatusOr<nlohmann::json> EncryptJwe(absl::string_view plaintext, const Jwk& recipient) {
  ASSIGN_OR_RETURN(PkeyPtr key, JwkPublicKey(recipient));
  ASSIGN_OR_RETURN(std::string alg, Member(recipient.json, "alg", "JWK"));
  ASSIGN_OR_RETURN(Bytes cek, RandomBytes(32));
  ASSIGN_OR_RETURN(Bytes iv, RandomBytes(12));
  nlohmann::json header = {{"alg", alg}, {"enc", kEncA256gcm}};
  Bytes encrypted_key;
  if (alg == kAlgEcdhEsA256kw) {
    ASSIGN_OR_RETURN(CurveInfo curve, CurveOf(key.get()));
    PkeyPtr ephemeral(EVP_EC_gen(curve.group));
    if (!ephemeral) return absl::InternalError(OpenSslErrors("EC key generation"));
    ASSIGN_OR_RETURN(Bytes z, Ecdh(ephemeral.get(), key.get()));
    Bytes kek = ConcatKdf(z, kAlgEcdhEsA256kw);
    ASSIGN_OR_RETURN(encrypted_key, AesKeyWrap(kek, cek, /*wrap=*/true));
    ASSIGN_OR_RETURN(header["epk"], EcPublicJwk(ephemeral.get()));
  } else {
    ASSIGN_OR_RETURN(encrypted_key, RsaCrypt(key.get(), alg, cek, /*encrypt=*/true));
  }
  std::string protected_b64 = Base64UrlEncode(header.dump());

  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return absl::ResourceExhaustedError("EVP_CIPHER_CTX_new");
  Bytes ciphertext(plaintext.size(), '\0');
  Bytes tag(16, '\0');
  int len = 0, fin = 0;
  bool ok =
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) == 1 &&
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr,
                         reinterpret_cast<const unsigned char*>(cek.data()),
                         reinterpret_cast<const unsigned char*>(iv.data())) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(protected_b64.data()),
                        static_cast<int>(protected_b64.size())) == 1 &&
      EVP_EncryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(ciphertext.data()), &len,
                        reinterpret_cast<const unsigned char*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) == 1 &&
      EVP_EncryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(ciphertext.data()) + len,
                          &fin) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, tag.data()) == 1;
  if (!ok) return absl::InternalError(OpenSslErrors("AES-256-GCM encryption"));
  return nlohmann::json{{"protected", protected_b64},
                        {"encrypted_key", Base64UrlEncode(encrypted_key)},
                        {"iv", Base64UrlEncode(iv)},
                        {"ciphertext", Base64UrlEncode(ciphertext)},
                        {"tag", Base64UrlEncode(tag)}};
}

absl::StatusOr<Bytes> DecryptJwe(const nlohmann::json& jwe, EVP_PKEY* private_key) {
  if (!jwe.is_object()) return absl::InvalidArgumentError("JWE: not a JSON object");
  ASSIGN_OR_RETURN(std::string protected_b64, Member(jwe, "protected", "JWE"));
  ASSIGN_OR_RETURN(Bytes header_text, B64UrlMember(jwe, "protected", "JWE"));
  ASSIGN_OR_RETURN(Bytes encrypted_key, B64UrlMember(jwe, "encrypted_key", "JWE"));
  ASSIGN_OR_RETURN(Bytes iv, B64UrlMember(jwe, "iv", "JWE"));
  ASSIGN_OR_RETURN(Bytes ciphertext, B64UrlMember(jwe, "ciphertext", "JWE"));
  ASSIGN_OR_RETURN(Bytes tag, B64UrlMember(jwe, "tag", "JWE"));
  nlohmann::json header = nlohmann::json::parse(header_text, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) return absl::InvalidArgumentError("JWE protected header is not JSON");
  ASSIGN_OR_RETURN(std::string alg, Member(header, "alg", "JWE header"));
  ASSIGN_OR_RETURN(std::string enc, Member(header, "enc", "JWE header"));
  if (enc != kEncA256gcm) {
    return absl::InvalidArgumentError(absl::StrCat("JWE enc \"", enc, "\" not supported"));
  }
  if (iv.size() != 12 || tag.size() != 16) {
    return absl::InvalidArgumentError("JWE: A256GCM wants a 12-byte iv and a 16-byte tag");
  }
  Bytes cek;
  if (alg == kAlgEcdhEsA256kw) {
    if (!header.contains("epk")) return absl::InvalidArgumentError("JWE header: no epk");
    ASSIGN_OR_RETURN(std::string crv, Member(header["epk"], "crv", "JWE epk"));
    ASSIGN_OR_RETURN(Bytes x, B64UrlMember(header["epk"], "x", "JWE epk"));
    ASSIGN_OR_RETURN(Bytes y, B64UrlMember(header["epk"], "y", "JWE epk"));
    ASSIGN_OR_RETURN(PkeyPtr epk, EcPublicKeyFromXY(crv, x, y));
    ASSIGN_OR_RETURN(Bytes z, Ecdh(private_key, epk.get()));
    ASSIGN_OR_RETURN(cek, AesKeyWrap(ConcatKdf(z, kAlgEcdhEsA256kw), encrypted_key,
                                     /*wrap=*/false));
  } else if (alg == kAlgRsaOaep256 || alg == kAlgRsa15) {
    ASSIGN_OR_RETURN(cek, RsaCrypt(private_key, alg, encrypted_key, /*encrypt=*/false));
  } else {
    return absl::InvalidArgumentError(absl::StrCat("JWE alg \"", alg, "\" not supported"));
  }
  if (cek.size() != 32) return absl::InvalidArgumentError("JWE: content key is not 32 bytes");
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return absl::ResourceExhaustedError("EVP_CIPHER_CTX_new");
  Bytes plaintext(ciphertext.size(), '\0');
  int len = 0, fin = 0;
  bool ok =
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) == 1 &&
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr,
                         reinterpret_cast<const unsigned char*>(cek.data()),
                         reinterpret_cast<const unsigned char*>(iv.data())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(protected_b64.data()),
                        static_cast<int>(protected_b64.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plaintext.data()), &len,
                        reinterpret_cast<const unsigned char*>(ciphertext.data()),
                        static_cast<int>(ciphertext.size())) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16, tag.data()) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plaintext.data()) + len,
                          &fin) == 1;
  ERR_clear_error();
  if (!ok) {
    return absl::InvalidArgumentError("JWE: AES-256-GCM authentication failed (tampered)");
  }
  return plaintext;
}

}  // namespace cloak::kbs
