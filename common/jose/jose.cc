#include "common/jose/jose.h"

// libjose's headers declare C functions without extern "C".
extern "C" {
#include <jose/jose.h>
#include <jose/openssl.h>
}
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"

namespace cloak::jose {
namespace {

struct JsonDecref {
  void operator()(json_t* j) const { json_decref(j); }
};
using Json = std::unique_ptr<json_t, JsonDecref>;

struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

std::shared_ptr<EVP_PKEY> Own(EVP_PKEY* key) {
  return std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
}

// A libjose configuration that keeps the last error message.
class Cfg {
 public:
  Cfg() : cfg_(jose_cfg()) { jose_cfg_set_err_func(cfg_, &Cfg::OnError, this); }
  ~Cfg() { jose_cfg_decref(cfg_); }
  Cfg(const Cfg&) = delete;
  Cfg& operator=(const Cfg&) = delete;
  jose_cfg_t* get() { return cfg_; }
  std::string Why(absl::string_view what) const {
    return error_.empty() ? std::string(what) : absl::StrCat(what, " (", error_, ")");
  }

 private:
  static void OnError(void* misc, const char* /*file*/, int /*line*/, uint64_t /*err*/,
                      const char* fmt, va_list ap) {
    char buf[256];
    std::vsnprintf(buf, sizeof(buf), fmt, ap);
    static_cast<Cfg*>(misc)->error_ = buf;
  }
  jose_cfg_t* cfg_;
  std::string error_;
};

Json ToJansson(const nlohmann::json& j) {
  const std::string text = j.dump();
  return Json(json_loadb(text.data(), text.size(), 0, nullptr));
}

nlohmann::json FromJansson(const json_t* j) {
  char* text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  if (text == nullptr) return nlohmann::json();
  nlohmann::json out = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  std::free(text);
  return out;
}

std::string StringMember(const json_t* obj, const char* name) {
  const char* s = json_string_value(json_object_get(obj, name));
  return s == nullptr ? "" : s;
}

// The private JWK libjose works with.
absl::StatusOr<Json> PrivateJwk(Cfg& cfg, EVP_PKEY* key) {
  Json jwk(jose_openssl_jwk_from_EVP_PKEY(cfg.get(), key));
  if (!jwk) return absl::InternalError(cfg.Why("cannot express the private key as a JWK"));
  return jwk;
}

absl::StatusOr<Json> OctJwk(absl::string_view key) {
  const std::string k = tee::Base64UrlEncode(key);
  Json jwk(json_pack("{s:s,s:s%}", "kty", "oct", "k", k.data(), k.size()));
  if (!jwk) return absl::InternalError("cannot build a symmetric JWK");
  return jwk;
}

std::string CurveName(EVP_PKEY* key) {
  char name[64] = {0};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name), &len) !=
      1) {
    return "";
  }
  const std::string group(name, len);
  if (group == "prime256v1" || group == "P-256") return "P-256";
  if (group == "secp384r1" || group == "P-384") return "P-384";
  if (group == "secp521r1" || group == "P-521") return "P-521";
  return "";
}

size_t EncKeySize(absl::string_view enc) {
  if (enc == "A128GCM") return 16;
  if (enc == "A192GCM") return 24;
  if (enc == "A256GCM") return 32;
  return 0;
}

bool IsRsaOaep(absl::string_view alg) { return alg == kAlgRsaOaep || alg == kAlgRsaOaep256; }
bool IsEcdhKw(absl::string_view alg) {
  return alg == "ECDH-ES+A128KW" || alg == "ECDH-ES+A192KW" || alg == kAlgEcdhEsA256kw;
}

// RSA-OAEP (SHA-1) and RSA-OAEP-256 of the content key: the part libjose 11
// cannot do with OpenSSL 3.
absl::StatusOr<std::string> RsaOaep(EVP_PKEY* key, absl::string_view alg, absl::string_view in,
                                    bool encrypt) {
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new(key, nullptr));
  const EVP_MD* md = alg == kAlgRsaOaep256 ? EVP_sha256() : EVP_sha1();
  bool ok = ctx &&
            (encrypt ? EVP_PKEY_encrypt_init(ctx.get()) : EVP_PKEY_decrypt_init(ctx.get())) == 1 &&
            EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) == 1 &&
            EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), md) == 1 &&
            EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), md) == 1;
  const auto* i = reinterpret_cast<const unsigned char*>(in.data());
  size_t len = 0;
  ok = ok && (encrypt ? EVP_PKEY_encrypt(ctx.get(), nullptr, &len, i, in.size())
                      : EVP_PKEY_decrypt(ctx.get(), nullptr, &len, i, in.size())) == 1;
  std::string out(len, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  ok = ok && (encrypt ? EVP_PKEY_encrypt(ctx.get(), o, &len, i, in.size())
                      : EVP_PKEY_decrypt(ctx.get(), o, &len, i, in.size())) == 1;
  ERR_clear_error();
  if (!ok) {
    return encrypt ? absl::InternalError(absl::StrCat(alg, " encryption of the content key failed"))
                   : absl::PermissionDeniedError(
                         absl::StrCat(alg, " decryption of the content key failed (wrong key)"));
  }
  out.resize(len);
  return out;
}

struct IoDecref {
  void operator()(jose_io_t* io) const { jose_io_decref(io); }
};
using Io = std::unique_ptr<jose_io_t, IoDecref>;

// The content, decrypted and authenticated through libjose's streaming
// interface (its one-shot jose_jwe_dec_cek cannot tell an empty plaintext
// from a failure). Compressed ("zip") content is refused.
absl::StatusOr<std::string> Decrypt(Cfg& cfg, const json_t* jwe, const json_t* header,
                                    const json_t* cek) {
  if (json_object_get(header, "zip") != nullptr) {
    return absl::InvalidArgumentError("JWE: compressed (\"zip\") content is not supported");
  }
  absl::StatusOr<std::string> ciphertext =
      tee::Base64UrlDecode(StringMember(jwe, "ciphertext"));
  if (!ciphertext.ok()) return Annotate(ciphertext.status(), "JWE: ciphertext");
  // GCM: the plaintext is exactly as long as the ciphertext.
  std::string out(ciphertext->size(), '\0');
  size_t len = out.size();
  Io sink(jose_io_buffer(cfg.get(), out.data(), &len));
  Io decrypt(sink ? jose_jwe_dec_cek_io(cfg.get(), jwe, cek, sink.get()) : nullptr);
  const bool ok = decrypt && decrypt->feed(decrypt.get(), ciphertext->data(), ciphertext->size()) &&
                  decrypt->done(decrypt.get());
  if (!ok) {
    OPENSSL_cleanse(out.data(), out.size());
    return absl::PermissionDeniedError(
        cfg.Why("JWE: content decryption failed (authentication tag mismatch: tampered or wrong "
                "key)"));
  }
  out.resize(len);
  return out;
}

}  // namespace

absl::StatusOr<PrivateKey> PrivateKey::FromPem(absl::string_view pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        "not a PEM private key (want PKCS#8, PKCS#1 RSA or SEC1 EC, unencrypted)");
  }
  PrivateKey out(Own(key));
  const int id = EVP_PKEY_get_base_id(key);
  if (id != EVP_PKEY_RSA && id != EVP_PKEY_EC) {
    return absl::InvalidArgumentError("private key is neither RSA nor EC");
  }
  return out;
}

absl::StatusOr<PrivateKey> PrivateKey::FromEvp(EVP_PKEY* key) {
  const int id = key == nullptr ? 0 : EVP_PKEY_get_base_id(key);
  if (id != EVP_PKEY_RSA && id != EVP_PKEY_EC) {
    return absl::InvalidArgumentError("private key is neither RSA nor EC");
  }
  EVP_PKEY_up_ref(key);
  return PrivateKey(Own(key));
}

absl::StatusOr<PrivateKey> PrivateKey::GenerateEc(absl::string_view curve) {
  if (curve != "P-256" && curve != "P-384" && curve != "P-521") {
    return absl::InvalidArgumentError(
        absl::StrCat("EC curve \"", curve, "\" is not P-256, P-384 or P-521"));
  }
  const std::string name(curve);
  EVP_PKEY* key = EVP_EC_gen(name.c_str());
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot generate an EC key on ", curve));
  }
  return PrivateKey(Own(key));
}

absl::StatusOr<nlohmann::json> PrivateKey::PublicJwk() const {
  Cfg cfg;
  ASSIGN_OR_RETURN(Json jwk, PrivateJwk(cfg, key_.get()));
  if (!jose_jwk_pub(cfg.get(), jwk.get())) {
    return absl::InternalError(cfg.Why("cannot take the public half of the key"));
  }
  if (EVP_PKEY_get_base_id(key_.get()) == EVP_PKEY_RSA) {
    return nlohmann::json{{"kty", "RSA"},
                          {"alg", kAlgRsaOaep256},
                          {"n", StringMember(jwk.get(), "n")},
                          {"e", StringMember(jwk.get(), "e")}};
  }
  const std::string crv = StringMember(jwk.get(), "crv");
  if (crv != "P-256" && crv != "P-384" && crv != "P-521") {
    return absl::InvalidArgumentError(absl::StrCat("unsupported EC curve \"", crv, "\""));
  }
  return nlohmann::json{{"kty", "EC"},
                        {"crv", crv},
                        {"alg", kAlgEcdhEsA256kw},
                        {"x", StringMember(jwk.get(), "x")},
                        {"y", StringMember(jwk.get(), "y")}};
}

std::string PrivateKey::Describe() const {
  if (EVP_PKEY_get_base_id(key_.get()) == EVP_PKEY_RSA) {
    return absl::StrCat("RSA-", EVP_PKEY_get_bits(key_.get()));
  }
  const std::string crv = CurveName(key_.get());
  return crv.empty() ? "EC" : "EC " + crv;
}

absl::StatusOr<PublicJwk> ParsePublicJwk(const nlohmann::json& json) {
  auto member = [&json](const char* key) -> absl::StatusOr<std::string> {
    auto it = json.find(key);
    if (it == json.end() || !it->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tee-pubkey: member \"", key, "\" missing or not a string"));
    }
    return it->get<std::string>();
  };
  if (!json.is_object()) return absl::InvalidArgumentError("tee-pubkey: not a JSON object");
  ASSIGN_OR_RETURN(std::string kty, member("kty"));
  ASSIGN_OR_RETURN(std::string alg, member("alg"));
  PublicJwk out;
  if (kty == "RSA") {
    if (alg != kAlgRsaOaep256 && alg != kAlgRsa15) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tee-pubkey: RSA alg \"", alg, "\" not supported (want RSA-OAEP-256 or RSA1_5)"));
    }
    ASSIGN_OR_RETURN(std::string n, member("n"));
    ASSIGN_OR_RETURN(std::string e, member("e"));
    out.json = {{"kty", kty}, {"alg", alg}, {"n", n}, {"e", e}};
  } else if (kty == "EC") {
    if (alg != kAlgEcdhEsA256kw) {
      return absl::InvalidArgumentError(
          absl::StrCat("tee-pubkey: EC alg \"", alg, "\" not supported (want ECDH-ES+A256KW)"));
    }
    ASSIGN_OR_RETURN(std::string crv, member("crv"));
    if (crv != "P-256" && crv != "P-384" && crv != "P-521") {
      return absl::InvalidArgumentError(absl::StrCat("tee-pubkey: unsupported EC curve \"", crv,
                                                     "\" (want P-256, P-384 or P-521)"));
    }
    ASSIGN_OR_RETURN(std::string x, member("x"));
    ASSIGN_OR_RETURN(std::string y, member("y"));
    out.json = {{"kty", kty}, {"crv", crv}, {"alg", alg}, {"x", x}, {"y", y}};
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("tee-pubkey: kty \"", kty, "\" not supported (want RSA or EC)"));
  }
  for (const char* key : {"n", "e", "x", "y"}) {
    if (out.json.contains(key) && !tee::Base64UrlDecode(out.json[key].get<std::string>()).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tee-pubkey: member \"", key, "\" is not base64url"));
    }
  }
  Cfg cfg;
  Json jwk = ToJansson(out.json);
  EVP_PKEY* key = jwk ? jose_openssl_jwk_to_EVP_PKEY(cfg.get(), jwk.get()) : nullptr;
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(cfg.Why(absl::StrCat(
        "tee-pubkey: ", kty == "EC" ? "not a valid curve point" : "not a valid RSA public key")));
  }
  std::shared_ptr<EVP_PKEY> owned = Own(key);
  if (kty == "RSA" && EVP_PKEY_get_bits(key) < 2048) {
    return absl::InvalidArgumentError(absl::StrCat("tee-pubkey: RSA ", EVP_PKEY_get_bits(key),
                                                   "-bit modulus is too small (want >= 2048)"));
  }
  return out;
}

absl::StatusOr<nlohmann::json> EncryptJwe(absl::string_view plaintext, const PublicJwk& recipient) {
  Cfg cfg;
  Json jwk = ToJansson(recipient.json);
  if (!jwk) return absl::InvalidArgumentError("JWK is not JSON");
  const std::string alg = StringMember(jwk.get(), "alg");
  Json jwe(json_pack("{s:{s:s}}", "protected", "enc", kEncA256gcm));
  Json cek;
  if (alg == kAlgRsaOaep256) {
    EVP_PKEY* key = jose_openssl_jwk_to_EVP_PKEY(cfg.get(), jwk.get());
    if (key == nullptr) return absl::InvalidArgumentError(cfg.Why("JWK is not an RSA public key"));
    std::shared_ptr<EVP_PKEY> owned = Own(key);
    ASSIGN_OR_RETURN(std::string raw_cek, tee::RandomBytes(32));
    ASSIGN_OR_RETURN(std::string wrapped, RsaOaep(key, alg, raw_cek, /*encrypt=*/true));
    ASSIGN_OR_RETURN(cek, OctJwk(raw_cek));
    OPENSSL_cleanse(raw_cek.data(), raw_cek.size());
    json_object_set_new(json_object_get(jwe.get(), "protected"), "alg", json_string(alg.c_str()));
    const std::string ek = tee::Base64UrlEncode(wrapped);
    json_object_set_new(jwe.get(), "encrypted_key", json_stringn(ek.data(), ek.size()));
  } else if (alg == kAlgEcdhEsA256kw || alg == kAlgRsa15) {
    cek.reset(json_object());
    if (!jose_jwe_enc_jwk(cfg.get(), jwe.get(), nullptr, jwk.get(), cek.get())) {
      return absl::InternalError(cfg.Why(absl::StrCat("JWE: ", alg, " key wrap failed")));
    }
    // Everything in the protected header (it is authenticated as the AAD).
    if (json_t* header = json_object_get(jwe.get(), "header")) {
      json_object_update(json_object_get(jwe.get(), "protected"), header);
      json_object_del(jwe.get(), "header");
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat("JWE: alg \"", alg, "\" not supported"));
  }
  if (!jose_jwe_enc_cek(cfg.get(), jwe.get(), cek.get(), plaintext.data(), plaintext.size())) {
    return absl::InternalError(cfg.Why("JWE: A256GCM encryption failed"));
  }
  nlohmann::json out = FromJansson(jwe.get());
  nlohmann::json flat = nlohmann::json::object();
  for (const char* k : {"protected", "encrypted_key", "iv", "ciphertext", "tag"}) {
    if (!out.contains(k)) return absl::InternalError(absl::StrCat("JWE: libjose wrote no ", k));
    flat[k] = out[k];
  }
  return flat;
}

absl::StatusOr<std::string> DecryptJwe(const nlohmann::json& jwe_json, const PrivateKey& key) {
  if (!jwe_json.is_object() || !jwe_json.contains("protected") ||
      !jwe_json["protected"].is_string() || !jwe_json.contains("ciphertext")) {
    return absl::InvalidArgumentError(
        "JWE: not a JSON serialization with a \"protected\" header and a ciphertext");
  }
  Cfg cfg;
  Json jwe = ToJansson(jwe_json);
  if (!jwe) return absl::InvalidArgumentError("JWE: not JSON");
  ASSIGN_OR_RETURN(Json private_jwk, PrivateJwk(cfg, key.get()));
  const bool rsa = EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_RSA;

  // Recipients: the general form's, or the flattened form's single one.
  std::vector<const json_t*> recipients;
  if (const json_t* list = json_object_get(jwe.get(), "recipients"); json_is_array(list)) {
    for (size_t i = 0; i < json_array_size(list); ++i)
      recipients.push_back(json_array_get(list, i));
  } else {
    recipients.push_back(nullptr);
  }
  absl::Status last = absl::PermissionDeniedError(
      absl::StrCat("JWE has no recipient for a ", key.Describe(), " key"));
  for (const json_t* rcp : recipients) {
    Json header(jose_jwe_hdr(jwe.get(), rcp));
    if (!header) return absl::InvalidArgumentError("JWE: header is not JSON");
    const std::string alg = StringMember(header.get(), "alg");
    const std::string enc = StringMember(header.get(), "enc");
    if (alg.empty() || enc.empty()) {
      return absl::InvalidArgumentError("JWE: header needs \"alg\" and \"enc\"");
    }
    const size_t cek_size = EncKeySize(enc);
    if (cek_size == 0) {
      return absl::InvalidArgumentError(absl::StrCat("JWE: unsupported enc \"", enc, "\""));
    }
    Json cek;
    if (IsRsaOaep(alg)) {
      if (!rsa) continue;
      const std::string ek = StringMember(rcp != nullptr ? rcp : jwe.get(), "encrypted_key");
      absl::StatusOr<std::string> wrapped = tee::Base64UrlDecode(ek);
      if (!wrapped.ok()) return Annotate(wrapped.status(), "JWE: encrypted_key");
      absl::StatusOr<std::string> raw_cek = RsaOaep(key.get(), alg, *wrapped, /*encrypt=*/false);
      if (!raw_cek.ok()) {
        last = raw_cek.status();
        continue;
      }
      if (raw_cek->size() != cek_size) {
        last = absl::PermissionDeniedError("JWE: content key of the wrong size (wrong key)");
        continue;
      }
      ASSIGN_OR_RETURN(cek, OctJwk(*raw_cek));
      OPENSSL_cleanse(raw_cek->data(), raw_cek->size());
    } else if (alg == kAlgRsa15 || IsEcdhKw(alg)) {
      if (rsa != (alg == kAlgRsa15)) continue;
      cek.reset(jose_jwe_dec_jwk(cfg.get(), jwe.get(), rcp, private_jwk.get()));
      if (!cek) {
        last = absl::PermissionDeniedError(
            cfg.Why(absl::StrCat("JWE: ", alg, " unwrap of the content key failed (wrong key)")));
        continue;
      }
    } else {
      last = absl::InvalidArgumentError(absl::StrCat("JWE: unsupported alg \"", alg, "\""));
      continue;
    }
    return Decrypt(cfg, jwe.get(), header.get(), cek.get());
  }
  return last;
}

absl::StatusOr<std::string> DecryptJweText(absl::string_view jwe_json, const PrivateKey& key) {
  nlohmann::json jwe = nlohmann::json::parse(jwe_json.begin(), jwe_json.end(), nullptr, false);
  if (jwe.is_discarded()) return absl::InvalidArgumentError("JWE: not JSON");
  return DecryptJwe(jwe, key);
}

absl::StatusOr<std::string> SignHs256(absl::string_view payload, absl::string_view key) {
  Cfg cfg;
  ASSIGN_OR_RETURN(Json jwk, OctJwk(key));
  const std::string payload_b64 = tee::Base64UrlEncode(payload);
  Json jws(json_pack("{s:s%}", "payload", payload_b64.data(), payload_b64.size()));
  Json sig(json_pack("{s:{s:s,s:s}}", "protected", "alg", "HS256", "typ", "JWT"));
  if (!jose_jws_sig(cfg.get(), jws.get(), sig.get(), jwk.get())) {
    return absl::InternalError(cfg.Why("HS256 signature failed"));
  }
  return absl::StrCat(StringMember(jws.get(), "protected"), ".", payload_b64, ".",
                      StringMember(jws.get(), "signature"));
}

absl::StatusOr<std::string> VerifyHs256(absl::string_view token, absl::string_view key) {
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) return absl::UnauthenticatedError("token is not a compact JWS");
  // The signature first: nothing of an unverified token is looked at.
  Cfg cfg;
  ASSIGN_OR_RETURN(Json jwk, OctJwk(key));
  json_object_set_new(jwk.get(), "alg", json_string("HS256"));
  Json jws(json_pack("{s:s,s:s,s:s}", "protected", parts[0].c_str(), "payload", parts[1].c_str(),
                     "signature", parts[2].c_str()));
  if (!jws || !jose_jws_ver(cfg.get(), jws.get(), nullptr, jwk.get(), false)) {
    return absl::UnauthenticatedError("token signature is not valid");
  }
  absl::StatusOr<std::string> header_text = tee::Base64UrlDecode(parts[0]);
  absl::StatusOr<std::string> payload = tee::Base64UrlDecode(parts[1]);
  if (!header_text.ok() || !payload.ok()) {
    return absl::UnauthenticatedError("token is not base64url");
  }
  nlohmann::json header = nlohmann::json::parse(*header_text, nullptr, false);
  if (!header.is_object() || !header.contains("alg") || header["alg"] != "HS256") {
    return absl::UnauthenticatedError("token is not signed with HS256");
  }
  return *std::move(payload);
}

}  // namespace cloak::jose
