#include "agent/attest/ocicrypt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tee/encoding.h"

namespace cloak::agent::attest {
namespace {

constexpr char kCipher[] = "AES_256_CTR_HMAC_SHA256";
constexpr size_t kChunk = 256 * 1024;

absl::StatusOr<std::string> B64Field(const nlohmann::json& obj, const char* name,
                                     absl::string_view what) {
  auto it = obj.find(name);
  if (it == obj.end() || !it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": \"", name, "\" missing"));
  }
  absl::StatusOr<std::string> v =
      tee::Base64Decode(it->get<std::string>(), tee::Base64Alphabet::kEither);
  if (!v.ok()) return absl::InvalidArgumentError(absl::StrCat(what, ": \"", name, "\" is not base64"));
  return v;
}

absl::StatusOr<LayerKey> ParseOptsData(absl::string_view optsdata) {
  nlohmann::json j = nlohmann::json::parse(optsdata.begin(), optsdata.end(), nullptr, false);
  if (!j.is_object()) return absl::InvalidArgumentError("layer key options are not JSON");
  LayerKey k;
  ASSIGN_OR_RETURN(k.symkey, B64Field(j, "symkey", "layer key options"));
  if (k.symkey.size() != 32) return absl::InvalidArgumentError("layer key is not 32 bytes");
  auto opts = j.find("cipheroptions");
  if (opts == j.end() || !opts->is_object()) {
    return absl::InvalidArgumentError("layer key options: no cipheroptions");
  }
  ASSIGN_OR_RETURN(k.nonce, B64Field(*opts, "nonce", "layer cipher options"));
  if (k.nonce.size() != 16) return absl::InvalidArgumentError("layer nonce is not 16 bytes");
  if (auto d = j.find("digest"); d != j.end() && d->is_string()) k.digest = d->get<std::string>();
  return k;
}

}  // namespace

absl::StatusOr<LayerKey> UnwrapLayerKey(const image::Descriptor& layer,
                                        const std::vector<jose::PrivateKey>& keys) {
  auto it = layer.annotations.find(kEncKeysJwe);
  if (it == layer.annotations.end()) {
    std::vector<std::string> schemes;
    for (const auto& [k, v] : layer.annotations) {
      if (absl::StartsWith(k, kEncKeysPrefix)) schemes.push_back(k.substr(strlen(kEncKeysPrefix)));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "layer ", layer.digest, " has no JWE key recipients (",
        schemes.empty() ? "no " + std::string(kEncKeysPrefix) + "* annotation"
                        : "schemes: " + absl::StrJoin(schemes, ", "),
        "); only the jwe scheme is supported"));
  }
  std::vector<std::string> reasons;
  for (absl::string_view blob : absl::StrSplit(it->second, ',', absl::SkipEmpty())) {
    absl::StatusOr<std::string> jwe =
        tee::Base64Decode(absl::StripAsciiWhitespace(blob), tee::Base64Alphabet::kEither);
    if (!jwe.ok()) {
      reasons.push_back("a recipient blob is not base64");
      continue;
    }
    for (const jose::PrivateKey& key : keys) {
      absl::StatusOr<std::string> optsdata = jose::DecryptJweText(*jwe, key);
      if (!optsdata.ok()) {
        reasons.push_back(absl::StrCat(key.Describe(), ": ", optsdata.status().message()));
        continue;
      }
      absl::StatusOr<LayerKey> k = ParseOptsData(*optsdata);
      if (!k.ok()) return Annotate(k.status(), absl::StrCat("layer ", layer.digest));
      return k;
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat("layer ", layer.digest, ": none of the ", keys.size(),
                   " key(s) released to this guest unwraps its key (",
                   reasons.empty() ? "no keys" : absl::StrJoin(reasons, "; "), ")"));
}

absl::Status DecryptLayerFile(const image::Descriptor& layer, const LayerKey& key,
                              const std::string& encrypted_path,
                              const std::string& plaintext_path) {
  // Public options: cipher and HMAC (a missing annotation has no HMAC and fails).
  std::string hmac_want;
  {
    auto it = layer.annotations.find(kEncPubOpts);
    if (it == layer.annotations.end()) {
      return absl::DataLossError(absl::StrCat("layer ", layer.digest, ": no ", kEncPubOpts,
                                              " annotation, so no HMAC to check"));
    }
    absl::StatusOr<std::string> json = tee::Base64Decode(it->second, tee::Base64Alphabet::kEither);
    nlohmann::json pub = json.ok() ? nlohmann::json::parse(*json, nullptr, false)
                                   : nlohmann::json(nullptr);
    if (!pub.is_object()) {
      return absl::DataLossError(absl::StrCat("layer ", layer.digest, ": bad ", kEncPubOpts));
    }
    std::string cipher = pub.value("cipher", "");
    if (cipher != kCipher) {
      return absl::FailedPreconditionError(absl::StrCat(
          "layer ", layer.digest, ": cipher \"", cipher, "\" unsupported (want ", kCipher, ")"));
    }
    absl::StatusOr<std::string> hmac = B64Field(pub, "hmac", "pubopts");
    if (!hmac.ok() || hmac->size() != 32) {
      return absl::DataLossError(absl::StrCat("layer ", layer.digest, ": pubopts has no HMAC"));
    }
    hmac_want = std::move(*hmac);
  }

  std::ifstream in(encrypted_path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("open ", encrypted_path));
  std::ofstream out(plaintext_path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("create ", plaintext_path));
  struct Fail {
    std::string path;
    bool armed = true;
    ~Fail() {
      if (armed) std::remove(path.c_str());
    }
  } fail{plaintext_path};

  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                     EVP_CIPHER_CTX_free);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> sha(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_MAC* mac_alg = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> mctx(EVP_MAC_CTX_new(mac_alg),
                                                                 EVP_MAC_CTX_free);
  EVP_MAC_free(mac_alg);
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", const_cast<char*>("SHA256"), 0),
                         OSSL_PARAM_construct_end()};
  if (!ctx || !sha || !mctx ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_ctr(), nullptr,
                         reinterpret_cast<const unsigned char*>(key.symkey.data()),
                         reinterpret_cast<const unsigned char*>(key.nonce.data())) != 1 ||
      EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_MAC_init(mctx.get(), reinterpret_cast<const unsigned char*>(key.symkey.data()),
                   key.symkey.size(), params) != 1) {
    return absl::InternalError("OpenSSL cipher setup failed");
  }
  std::string buf(kChunk, '\0'), plain(kChunk + 32, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    std::streamsize n = in.gcount();
    if (n <= 0) break;
    auto* cin = reinterpret_cast<const unsigned char*>(buf.data());
    int len = 0;
    if (EVP_MAC_update(mctx.get(), cin, static_cast<size_t>(n)) != 1 ||
        EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &len, cin,
                          static_cast<int>(n)) != 1 ||
        EVP_DigestUpdate(sha.get(), plain.data(), static_cast<size_t>(len)) != 1) {
      return absl::InternalError("OpenSSL decrypt failed");
    }
    out.write(plain.data(), len);
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("read ", encrypted_path));
  unsigned char mac_out[EVP_MAX_MD_SIZE];
  size_t mac_len = 0;
  EVP_MAC_final(mctx.get(), mac_out, &mac_len, sizeof(mac_out));
  if (mac_len != 32 || CRYPTO_memcmp(mac_out, hmac_want.data(), 32) != 0) {
    return absl::DataLossError(absl::StrCat(
        "layer ", layer.digest,
        ": HMAC of the ciphertext does not match the image's pubopts (tampered layer or "
        "annotation); refusing its plaintext"));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EVP_DigestFinal_ex(sha.get(), digest, &digest_len);
  std::string got = absl::StrCat(
      "sha256:", tee::HexEncode(absl::string_view(reinterpret_cast<char*>(digest), digest_len)));
  if (!key.digest.empty() && key.digest != got) {
    return absl::DataLossError(absl::StrCat("layer ", layer.digest, ": plaintext digest ", got,
                                            " is not the ", key.digest,
                                            " its wrapped key options name"));
  }
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("write ", plaintext_path));
  fail.armed = false;
  return absl::OkStatus();
}

absl::StatusOr<std::string> OcicryptDecryptor::Decrypt(const image::Descriptor& layer,
                                                       const std::string& encrypted_path,
                                                       const std::string& plaintext_path) {
  absl::string_view plain_type = layer.media_type;
  if (!absl::ConsumeSuffix(&plain_type, "+encrypted")) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", layer.digest, ": media type ", layer.media_type, " is not encrypted"));
  }
  if (keys_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("layer ", layer.digest, " is encrypted; no key source configured"));
  }
  absl::StatusOr<KeySet> keys = keys_->ImageKeys();
  if (!keys.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("layer ", layer.digest,
                                                      " is encrypted and no key was released: ",
                                                      keys.status().message()));
  }
  absl::StatusOr<LayerKey> key = UnwrapLayerKey(layer, keys->keys);
  if (!key.ok()) {
    std::string msg(key.status().message());
    if (!keys->refusals.empty()) {
      absl::StrAppend(&msg, "; refused by the KBS: ", absl::StrJoin(keys->refusals, "; "));
    }
    return absl::Status(key.status().code(), msg);
  }
  absl::Time start = absl::Now();
  RETURN_IF_ERROR(DecryptLayerFile(layer, *key, encrypted_path, plaintext_path));
  absl::Duration took = absl::Now() - start;
  double mib = static_cast<double>(layer.size) / (1 << 20);
  Logger("attest")->info("step=decrypt layer={} bytes={} duration_ms={:.2f} ({:.1f} MiB/s)",
                         layer.digest, layer.size, absl::ToDoubleMilliseconds(took),
                         mib / std::max(absl::ToDoubleSeconds(took), 1e-6));
  return std::string(plain_type);
}

}  // namespace cloak::agent::attest
