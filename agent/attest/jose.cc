#include "agent/attest/jose.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/attest/crypto.h"
#include "common/status_macros.h"

namespace cloak::agent::attest {
namespace {

struct CtxDeleter {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
  void operator()(BIO* b) const { BIO_free(b); }
  void operator()(BIGNUM* b) const { BN_free(b); }
};
template <typename T>
using Ptr = std::unique_ptr<T, CtxDeleter>;

std::shared_ptr<EVP_PKEY> Own(EVP_PKEY* key) { return std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free); }

std::string OpensslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

std::string BnParam(EVP_PKEY* key, const char* name, int pad_to = 0) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) return "";
  Ptr<BIGNUM> owned(bn);
  int len = pad_to > 0 ? pad_to : BN_num_bytes(bn);
  std::string out(static_cast<size_t>(len), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), len);
  return out;
}

std::string CurveName(EVP_PKEY* key) {
  char name[64] = {0};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name), &len) != 1) {
    return "";
  }
  return std::string(name, len);
}

// JWK curve name and coordinate size of an OpenSSL group name.
bool JwkCurve(const std::string& group, std::string* crv, int* size) {
  if (group == "prime256v1" || group == "P-256") {
    *crv = "P-256", *size = 32;
  } else if (group == "secp384r1" || group == "P-384") {
    *crv = "P-384", *size = 48;
  } else if (group == "secp521r1" || group == "P-521") {
    *crv = "P-521", *size = 66;
  } else {
    return false;
  }
  return true;
}

absl::StatusOr<std::string> Field(const nlohmann::json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || !it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat("JWE: \"", name, "\" missing or not a string"));
  }
  ASSIGN_OR_RETURN(std::string decoded, Base64Decode(it->get<std::string>()));
  return decoded;
}

absl::StatusOr<std::string> RsaDecrypt(const PrivateKey& key, const std::string& alg,
                                       const std::string& encrypted_key) {
  Ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new(key.get(), nullptr));
  if (!ctx || EVP_PKEY_decrypt_init(ctx.get()) != 1) return absl::InternalError(OpensslError());
  if (alg == "RSA1_5") {
    EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING);
  } else {
    EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING);
    const EVP_MD* md = alg == "RSA-OAEP-256" ? EVP_sha256() : EVP_sha1();
    EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), md);
    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), md);
  }
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(encrypted_key.data());
  if (EVP_PKEY_decrypt(ctx.get(), nullptr, &len, in, encrypted_key.size()) != 1) {
    ERR_clear_error();
    return absl::PermissionDeniedError("RSA decryption of the content key failed");
  }
  std::string out(len, '\0');
  if (EVP_PKEY_decrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, in,
                       encrypted_key.size()) != 1) {
    ERR_clear_error();
    return absl::PermissionDeniedError("RSA decryption of the content key failed (wrong key)");
  }
  out.resize(len);
  return out;
}

absl::StatusOr<std::shared_ptr<EVP_PKEY>> EcPublicFromJwk(const nlohmann::json& epk) {
  if (!epk.is_object() || !epk.contains("crv") || !epk["crv"].is_string() || !epk.contains("x") ||
      !epk["x"].is_string() || !epk.contains("y") || !epk["y"].is_string()) {
    return absl::InvalidArgumentError("JWE: epk must be an EC JWK {crv, x, y}");
  }
  std::string crv = epk["crv"].get<std::string>();
  const char* group = crv == "P-256"   ? "prime256v1"
                      : crv == "P-384" ? "secp384r1"
                      : crv == "P-521" ? "secp521r1"
                                       : nullptr;
  if (group == nullptr) return absl::InvalidArgumentError(absl::StrCat("JWE: epk curve ", crv));
  ASSIGN_OR_RETURN(std::string x, Base64Decode(epk["x"].get<std::string>()));
  ASSIGN_OR_RETURN(std::string y, Base64Decode(epk["y"].get<std::string>()));
  std::string point = absl::StrCat(std::string(1, '\x04'), x, y);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(group), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
      OSSL_PARAM_construct_end()};
  Ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* key = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("JWE: epk is not a point on its curve");
  }
  return Own(key);
}

void Be32(std::string* out, uint32_t v) {
  out->push_back(static_cast<char>(v >> 24));
  out->push_back(static_cast<char>(v >> 16));
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}

absl::StatusOr<std::string> AesKeyUnwrap(const std::string& kek, const std::string& wrapped) {
  const EVP_CIPHER* cipher = kek.size() == 16   ? EVP_aes_128_wrap()
                             : kek.size() == 24 ? EVP_aes_192_wrap()
                                                : EVP_aes_256_wrap();
  Ptr<EVP_CIPHER_CTX> ctx(EVP_CIPHER_CTX_new());
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  std::string out(wrapped.size() + 16, '\0');
  int len = 0, fin = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (EVP_DecryptInit_ex(ctx.get(), cipher, nullptr,
                         reinterpret_cast<const unsigned char*>(kek.data()), nullptr) != 1 ||
      EVP_DecryptUpdate(ctx.get(), o, &len, reinterpret_cast<const unsigned char*>(wrapped.data()),
                        static_cast<int>(wrapped.size())) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), o + len, &fin) != 1) {
    ERR_clear_error();
    return absl::PermissionDeniedError("AES key unwrap failed (wrong key)");
  }
  out.resize(static_cast<size_t>(len + fin));
  return out;
}

absl::StatusOr<std::string> EcdhUnwrap(const PrivateKey& key, const std::string& alg,
                                       const nlohmann::json& header,
                                       const std::string& encrypted_key) {
  auto epk_it = header.find("epk");
  if (epk_it == header.end()) return absl::InvalidArgumentError("JWE: ECDH-ES without epk");
  ASSIGN_OR_RETURN(std::shared_ptr<EVP_PKEY> peer, EcPublicFromJwk(*epk_it));
  Ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new(key.get(), nullptr));
  size_t zlen = 0;
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), nullptr, &zlen) != 1) {
    ERR_clear_error();
    return absl::PermissionDeniedError("ECDH with the JWE's epk failed (different curve?)");
  }
  std::string z(zlen, '\0');
  if (EVP_PKEY_derive(ctx.get(), reinterpret_cast<unsigned char*>(z.data()), &zlen) != 1) {
    ERR_clear_error();
    return absl::PermissionDeniedError("ECDH failed");
  }
  z.resize(zlen);
  uint32_t bits = alg == "ECDH-ES+A128KW" ? 128 : alg == "ECDH-ES+A192KW" ? 192 : 256;
  std::string apu, apv;
  if (auto it = header.find("apu"); it != header.end() && it->is_string()) {
    ASSIGN_OR_RETURN(apu, Base64Decode(it->get<std::string>()));
  }
  if (auto it = header.find("apv"); it != header.end() && it->is_string()) {
    ASSIGN_OR_RETURN(apv, Base64Decode(it->get<std::string>()));
  }
  // Concat KDF, RFC 7518 §4.6.2 (one SHA-256 round gives up to 256 bits).
  std::string input;
  Be32(&input, 1);
  input += z;
  Be32(&input, static_cast<uint32_t>(alg.size()));
  input += alg;
  Be32(&input, static_cast<uint32_t>(apu.size()));
  input += apu;
  Be32(&input, static_cast<uint32_t>(apv.size()));
  input += apv;
  Be32(&input, bits);
  std::string kek = Sha256(input).substr(0, bits / 8);
  return AesKeyUnwrap(kek, encrypted_key);
}

absl::StatusOr<std::string> GcmDecrypt(const std::string& cek, const std::string& iv,
                                       const std::string& ciphertext, const std::string& tag,
                                       const std::string& aad) {
  const EVP_CIPHER* cipher = cek.size() == 16   ? EVP_aes_128_gcm()
                             : cek.size() == 24 ? EVP_aes_192_gcm()
                             : cek.size() == 32 ? EVP_aes_256_gcm()
                                                : nullptr;
  if (cipher == nullptr || tag.size() != 16) {
    return absl::InvalidArgumentError("JWE: content key or tag of the wrong size");
  }
  Ptr<EVP_CIPHER_CTX> ctx(EVP_CIPHER_CTX_new());
  std::string out(ciphertext.size(), '\0');
  int len = 0, fin = 0;
  bool ok =
      EVP_DecryptInit_ex(ctx.get(), cipher, nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(iv.size()), nullptr) ==
          1 &&
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr,
                         reinterpret_cast<const unsigned char*>(cek.data()),
                         reinterpret_cast<const unsigned char*>(iv.data())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len,
                        reinterpret_cast<const unsigned char*>(ciphertext.data()),
                        static_cast<int>(ciphertext.size())) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16,
                          const_cast<char*>(tag.data())) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + len, &fin) == 1;
  if (!ok) {
    ERR_clear_error();
    return absl::PermissionDeniedError("JWE: content authentication tag mismatch");
  }
  out.resize(static_cast<size_t>(len + fin));
  return out;
}

size_t EncKeySize(const std::string& enc) {
  if (enc == "A128GCM") return 16;
  if (enc == "A192GCM") return 24;
  if (enc == "A256GCM") return 32;
  return 0;
}

}  // namespace

absl::StatusOr<PrivateKey> PrivateKey::FromPem(absl::string_view pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "not a PEM private key (want PKCS#8, PKCS#1 RSA or SEC1 EC, unencrypted)");
  }
  PrivateKey out(Own(key));
  int id = EVP_PKEY_get_base_id(key);
  if (id != EVP_PKEY_RSA && id != EVP_PKEY_EC) {
    return absl::InvalidArgumentError("private key is neither RSA nor EC");
  }
  return out;
}

absl::StatusOr<PrivateKey> PrivateKey::GenerateEcP256() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) return absl::InternalError(absl::StrCat("EC key generation: ", OpensslError()));
  return PrivateKey(Own(key));
}

absl::StatusOr<nlohmann::json> PrivateKey::PublicJwk() const {
  EVP_PKEY* key = key_.get();
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
    return nlohmann::json{{"kty", "RSA"},
                          {"alg", "RSA-OAEP-256"},
                          {"n", Base64UrlEncode(BnParam(key, OSSL_PKEY_PARAM_RSA_N))},
                          {"e", Base64UrlEncode(BnParam(key, OSSL_PKEY_PARAM_RSA_E))}};
  }
  std::string crv;
  int size = 0;
  if (!JwkCurve(CurveName(key), &crv, &size)) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported curve ", CurveName(key)));
  }
  return nlohmann::json{{"kty", "EC"},
                        {"crv", crv},
                        {"alg", "ECDH-ES+A256KW"},
                        {"x", Base64UrlEncode(BnParam(key, OSSL_PKEY_PARAM_EC_PUB_X, size))},
                        {"y", Base64UrlEncode(BnParam(key, OSSL_PKEY_PARAM_EC_PUB_Y, size))}};
}

std::string PrivateKey::Describe() const {
  if (EVP_PKEY_get_base_id(key_.get()) == EVP_PKEY_RSA) {
    return absl::StrCat("RSA-", EVP_PKEY_get_bits(key_.get()));
  }
  std::string crv;
  int size = 0;
  return JwkCurve(CurveName(key_.get()), &crv, &size) ? "EC " + crv : "EC";
}

absl::StatusOr<std::string> DecryptJwe(const nlohmann::json& jwe, const PrivateKey& key) {
  if (!jwe.is_object() || !jwe.contains("protected") || !jwe["protected"].is_string()) {
    return absl::InvalidArgumentError("JWE: not a JSON serialization with a \"protected\" header");
  }
  const std::string protected_b64 = jwe["protected"].get<std::string>();
  ASSIGN_OR_RETURN(std::string protected_json, Base64Decode(protected_b64));
  nlohmann::json header = nlohmann::json::parse(protected_json, nullptr, false);
  if (!header.is_object()) return absl::InvalidArgumentError("JWE: protected header is not JSON");
  if (auto it = jwe.find("unprotected"); it != jwe.end() && it->is_object()) {
    for (auto& [k, v] : it->items()) header[k] = v;
  }
  ASSIGN_OR_RETURN(std::string iv, Field(jwe, "iv"));
  ASSIGN_OR_RETURN(std::string ciphertext, Field(jwe, "ciphertext"));
  ASSIGN_OR_RETURN(std::string tag, Field(jwe, "tag"));
  std::string aad = protected_b64;
  if (auto it = jwe.find("aad"); it != jwe.end() && it->is_string()) {
    absl::StrAppend(&aad, ".", it->get<std::string>());
  }

  // Recipients: general form, or the flattened form's single one.
  std::vector<nlohmann::json> recipients;
  if (auto it = jwe.find("recipients"); it != jwe.end() && it->is_array()) {
    for (const auto& r : *it) recipients.push_back(r);
  } else {
    nlohmann::json r = nlohmann::json::object();
    if (jwe.contains("encrypted_key")) r["encrypted_key"] = jwe["encrypted_key"];
    if (jwe.contains("header")) r["header"] = jwe["header"];
    recipients.push_back(std::move(r));
  }
  const bool rsa = EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_RSA;
  absl::Status last = absl::PermissionDeniedError(
      absl::StrCat("JWE has no recipient for a ", key.Describe(), " key"));
  for (const nlohmann::json& r : recipients) {
    nlohmann::json h = header;
    if (auto it = r.find("header"); it != r.end() && it->is_object()) {
      for (auto& [k, v] : it->items()) h[k] = v;
    }
    if (!h.contains("alg") || !h["alg"].is_string() || !h.contains("enc") || !h["enc"].is_string()) {
      return absl::InvalidArgumentError("JWE: header needs \"alg\" and \"enc\"");
    }
    const std::string alg = h["alg"].get<std::string>();
    const std::string enc = h["enc"].get<std::string>();
    size_t cek_size = EncKeySize(enc);
    if (cek_size == 0) {
      return absl::InvalidArgumentError(absl::StrCat("JWE: unsupported enc \"", enc, "\""));
    }
    std::string encrypted_key;
    if (r.contains("encrypted_key")) {
      ASSIGN_OR_RETURN(encrypted_key, Field(r, "encrypted_key"));
    }
    absl::StatusOr<std::string> cek;
    if (alg == "RSA-OAEP" || alg == "RSA-OAEP-256" || alg == "RSA1_5") {
      if (!rsa) continue;
      cek = RsaDecrypt(key, alg, encrypted_key);
    } else if (alg == "ECDH-ES+A128KW" || alg == "ECDH-ES+A192KW" || alg == "ECDH-ES+A256KW") {
      if (rsa) continue;
      cek = EcdhUnwrap(key, alg, h, encrypted_key);
    } else {
      last = absl::InvalidArgumentError(absl::StrCat("JWE: unsupported alg \"", alg, "\""));
      continue;
    }
    if (!cek.ok()) {
      last = cek.status();
      continue;
    }
    if (cek->size() != cek_size) {
      last = absl::PermissionDeniedError("JWE: content key of the wrong size (wrong key)");
      continue;
    }
    return GcmDecrypt(*cek, iv, ciphertext, tag, aad);
  }
  return last;
}

absl::StatusOr<std::string> DecryptJweText(absl::string_view jwe_json, const PrivateKey& key) {
  nlohmann::json jwe = nlohmann::json::parse(jwe_json.begin(), jwe_json.end(), nullptr, false);
  if (jwe.is_discarded()) return absl::InvalidArgumentError("JWE: not JSON");
  return DecryptJwe(jwe, key);
}

}  // namespace cloak::agent::attest
