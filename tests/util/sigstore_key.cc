#include "tests/util/sigstore_key.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"
#include "nlohmann/json.hpp"
#include "tests/util/host.h"

namespace cloak::testutil {
namespace {

constexpr uint64_t kScryptN = 32768;
constexpr uint64_t kScryptR = 8;
constexpr uint64_t kScryptP = 1;
constexpr size_t kSaltBytes = 32;

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

absl::StatusOr<std::string> Scrypt(absl::string_view passphrase, absl::string_view salt,
                                   uint64_t n, uint64_t r, uint64_t p) {
  std::string key(crypto_secretbox_KEYBYTES, '\0');
  if (EVP_PBE_scrypt(passphrase.data(), passphrase.size(),
                     reinterpret_cast<const unsigned char*>(salt.data()), salt.size(), n, r, p,
                     /*maxmem=*/uint64_t{256} << 20, reinterpret_cast<unsigned char*>(key.data()),
                     key.size()) != 1) {
    return absl::InternalError("scrypt (OpenSSL EVP_PBE_scrypt) failed");
  }
  return key;
}

std::string PemEncode(absl::string_view type, absl::string_view der) {
  std::string b64 = tee::Base64Encode(der);
  std::string out = absl::StrCat("-----BEGIN ", type, "-----\n");
  for (size_t i = 0; i < b64.size(); i += 64) absl::StrAppend(&out, b64.substr(i, 64), "\n");
  absl::StrAppend(&out, "-----END ", type, "-----\n");
  return out;
}

}  // namespace

absl::StatusOr<std::string> EncryptSigstoreKey(absl::string_view plaintext,
                                               absl::string_view passphrase) {
  if (sodium_init() < 0) return absl::InternalError("libsodium cannot be initialised");
  std::string salt(kSaltBytes, '\0');
  std::string nonce(crypto_secretbox_NONCEBYTES, '\0');
  randombytes_buf(salt.data(), salt.size());
  randombytes_buf(nonce.data(), nonce.size());
  ASSIGN_OR_RETURN(std::string key, Scrypt(passphrase, salt, kScryptN, kScryptR, kScryptP));
  std::string box(crypto_secretbox_MACBYTES + plaintext.size(), '\0');
  crypto_secretbox_easy(reinterpret_cast<unsigned char*>(box.data()),
                        reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
                        reinterpret_cast<const unsigned char*>(nonce.data()),
                        reinterpret_cast<const unsigned char*>(key.data()));
  nlohmann::ordered_json doc = {
      {"kdf",
       {{"name", "scrypt"},
        {"params", {{"N", kScryptN}, {"r", kScryptR}, {"p", kScryptP}}},
        {"salt", tee::Base64Encode(salt)}}},
      {"cipher", {{"name", "nacl/secretbox"}, {"nonce", tee::Base64Encode(nonce)}}},
      {"ciphertext", tee::Base64Encode(box)},
  };
  return doc.dump();
}

absl::StatusOr<std::string> DecryptSigstoreKey(absl::string_view document,
                                               absl::string_view passphrase) {
  if (sodium_init() < 0) return absl::InternalError("libsodium cannot be initialised");
  nlohmann::json doc = nlohmann::json::parse(document, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("kdf") || !doc.contains("cipher") ||
      !doc.contains("ciphertext")) {
    return absl::InvalidArgumentError("not a sigstore encrypted key document");
  }
  const nlohmann::json& kdf = doc["kdf"];
  const nlohmann::json& cipher = doc["cipher"];
  if (kdf.value("name", "") != "scrypt" || cipher.value("name", "") != "nacl/secretbox" ||
      !kdf.contains("params") || !kdf["params"].is_object()) {
    return absl::InvalidArgumentError("unsupported kdf or cipher");
  }
  const nlohmann::json& params = kdf["params"];
  ASSIGN_OR_RETURN(std::string salt, tee::Base64Decode(kdf.value("salt", "")));
  ASSIGN_OR_RETURN(std::string nonce, tee::Base64Decode(cipher.value("nonce", "")));
  ASSIGN_OR_RETURN(std::string box, tee::Base64Decode(doc["ciphertext"].get<std::string>()));
  if (nonce.size() != crypto_secretbox_NONCEBYTES || box.size() < crypto_secretbox_MACBYTES) {
    return absl::InvalidArgumentError("bad nonce or ciphertext length");
  }
  ASSIGN_OR_RETURN(std::string key, Scrypt(passphrase, salt, params.value("N", uint64_t{0}),
                                           params.value("r", uint64_t{0}),
                                           params.value("p", uint64_t{0})));
  std::string plain(box.size() - crypto_secretbox_MACBYTES, '\0');
  if (crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(plain.data()),
                                 reinterpret_cast<const unsigned char*>(box.data()), box.size(),
                                 reinterpret_cast<const unsigned char*>(nonce.data()),
                                 reinterpret_cast<const unsigned char*>(key.data())) != 0) {
    return absl::PermissionDeniedError("wrong passphrase or corrupted key");
  }
  return plain;
}

absl::StatusOr<SigstoreKeyPair> MakeSigstoreKeyPair(absl::string_view passphrase) {
  std::unique_ptr<EVP_PKEY, PkeyFree> key(EVP_EC_gen("P-256"));
  if (key == nullptr) return absl::InternalError("EC P-256 key generation failed");
  // PKCS#8 DER of the private key: what sigstore encrypts.
  std::unique_ptr<BIO, BioFree> der_bio(BIO_new(BIO_s_mem()));
  if (der_bio == nullptr || i2d_PKCS8PrivateKey_bio(der_bio.get(), key.get(), nullptr, nullptr, 0,
                                                    nullptr, nullptr) != 1) {
    return absl::InternalError("PKCS#8 encoding of the private key failed");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(der_bio.get(), &data);
  std::string der(data, static_cast<size_t>(len));
  SigstoreKeyPair pair;
  ASSIGN_OR_RETURN(std::string encrypted, EncryptSigstoreKey(der, passphrase));
  pair.private_der = std::move(der);
  pair.private_pem = PemEncode("ENCRYPTED SIGSTORE PRIVATE KEY", encrypted);

  std::unique_ptr<BIO, BioFree> pub_bio(BIO_new(BIO_s_mem()));
  if (pub_bio == nullptr || PEM_write_bio_PUBKEY(pub_bio.get(), key.get()) != 1) {
    return absl::InternalError("PEM encoding of the public key failed");
  }
  len = BIO_get_mem_data(pub_bio.get(), &data);
  pair.public_pem.assign(data, static_cast<size_t>(len));
  return pair;
}

std::string SimpleSigningPayload(absl::string_view docker_reference,
                                 absl::string_view manifest_digest) {
  // Key order and spacing as Go's encoding/json writes maps (sorted, compact).
  return absl::StrCat(R"({"critical":{"identity":{"docker-reference":")", docker_reference,
                      R"("},"image":{"docker-manifest-digest":")", manifest_digest,
                      R"("},"type":"cosign container image signature"},)",
                      R"("optional":{"creator":"cloak tests","timestamp":1700000000}})");
}

absl::StatusOr<std::string> SignPayload(absl::string_view private_der, absl::string_view payload) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(private_der.data());
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(private_der.size())));
  if (key == nullptr) return absl::InvalidArgumentError("not a PKCS#8 private key");
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  std::string sig;
  bool ok = ctx != nullptr &&
            EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
            EVP_DigestSign(ctx, nullptr, &len,
                           reinterpret_cast<const unsigned char*>(payload.data()),
                           payload.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                        reinterpret_cast<const unsigned char*>(payload.data()),
                        payload.size()) == 1;
    sig.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) return absl::InternalError("ECDSA signing failed");
  return tee::Base64Encode(sig);
}

absl::Status PushSigstoreAttachment(const std::string& work_dir, const std::string& repository,
                                    absl::string_view manifest_digest,
                                    const std::vector<SignatureLayer>& layers) {
  const std::string blobs = absl::StrCat(work_dir, "/blobs/sha256");
  RETURN_IF_ERROR(MakeDirs(blobs));
  auto put_blob = [&](absl::string_view bytes) -> absl::StatusOr<std::string> {
    std::string hex = tee::HexEncode(tee::Sha256(bytes));
    RETURN_IF_ERROR(WriteFileAtomic(absl::StrCat(blobs, "/", hex), bytes));
    return absl::StrCat("sha256:", hex);
  };
  nlohmann::ordered_json manifest_layers = nlohmann::ordered_json::array();
  std::vector<std::string> diff_ids;
  for (const SignatureLayer& l : layers) {
    ASSIGN_OR_RETURN(std::string digest, put_blob(l.payload));
    diff_ids.push_back(digest);
    manifest_layers.push_back(
        {{"mediaType", "application/vnd.dev.cosign.simplesigning.v1+json"},
         {"digest", digest},
         {"size", l.payload.size()},
         {"annotations", {{"dev.cosignproject.cosign/signature", l.signature_base64}}}});
  }
  nlohmann::ordered_json config = {{"architecture", ""},
                                   {"created", "0001-01-01T00:00:00Z"},
                                   {"os", ""},
                                   {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}},
                                   {"config", nlohmann::ordered_json::object()}};
  const std::string config_text = config.dump();
  ASSIGN_OR_RETURN(std::string config_digest, put_blob(config_text));
  nlohmann::ordered_json manifest = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"config",
       {{"mediaType", "application/vnd.oci.image.config.v1+json"},
        {"digest", config_digest},
        {"size", config_text.size()}}},
      {"layers", manifest_layers}};
  const std::string manifest_text = manifest.dump();
  ASSIGN_OR_RETURN(std::string manifest_blob, put_blob(manifest_text));
  std::string tag(manifest_digest);
  tag[tag.find(':')] = '-';
  tag += ".sig";
  nlohmann::ordered_json index = {
      {"schemaVersion", 2},
      {"manifests",
       {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
         {"digest", manifest_blob},
         {"size", manifest_text.size()},
         {"annotations", {{"org.opencontainers.image.ref.name", tag}}}}}}};
  RETURN_IF_ERROR(WriteFileAtomic(absl::StrCat(work_dir, "/index.json"), index.dump()));
  RETURN_IF_ERROR(
      WriteFileAtomic(absl::StrCat(work_dir, "/oci-layout"), R"({"imageLayoutVersion":"1.0.0"})"));
  CommandResult r = RunCommand({"skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                                absl::StrCat("oci:", work_dir, ":", tag),
                                absl::StrCat("docker://", repository, ":", tag)});
  if (r.exit_code != 0) {
    return absl::InternalError(absl::StrCat("skopeo copy of the sigstore attachment to ",
                                            repository, ":", tag, " failed: ", r.output));
  }
  return absl::OkStatus();
}

}  // namespace cloak::testutil
