// Helpers for the kbs tests: test vectors and throw-away certificates.
#ifndef CLOAK_KBS_TESTS_TEST_UTIL_H_
#define CLOAK_KBS_TESTS_TEST_UTIL_H_

#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "kbs/verify/openssl_util.h"

namespace cloak::kbs::testing {

inline std::string TestdataPath(const std::string& rel) {
  return std::string(CLOAK_TESTDATA_DIR) + "/" + rel;
}
inline bool HaveTestdata() { return std::filesystem::exists(TestdataPath("README.md")); }

inline std::string Slurp(const std::string& rel) {
  auto data = ReadFile(TestdataPath(rel));
  return data.ok() ? *data : std::string();
}

// A certificate for a fresh P-384 (or RSA-2048) key, signed by that same
// key, with subject CN `cn` and issuer CN `issuer_cn` (default: `cn`), as PEM.
inline std::string SelfSignedPem(const std::string& cn, bool rsa = false,
                                 const std::string& issuer_cn = "") {
  EVP_PKEY* key = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-384");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600L * 24 * 365);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Advanced Micro Devices"), -1,
                             -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_NAME* issuer = X509_NAME_new();
  X509_NAME_add_entry_by_txt(issuer, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Advanced Micro Devices"), -1,
                             -1, 0);
  const std::string& icn = issuer_cn.empty() ? cn : issuer_cn;
  X509_NAME_add_entry_by_txt(issuer, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(icn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, issuer);
  X509_NAME_free(issuer);
  X509_sign(cert, key, EVP_sha384());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  X509_free(cert);
  EVP_PKEY_free(key);
  return pem;
}

// A fresh key: "RSA" (2048 bits), "P-256" or "P-384".
inline PkeyPtr NewKey(const std::string& kind) {
  return PkeyPtr(kind == "RSA" ? EVP_RSA_gen(2048) : EVP_EC_gen(kind.c_str()));
}

// What MakeCert puts in a test certificate.
struct CertSpec {
  std::string cn = "";
  std::string org = "Cloak test chain";
  // Signer: nullptr issuer = self-signed with the certificate's own key.
  X509* issuer = nullptr;
  EVP_PKEY* issuer_key = nullptr;
  bool rsa_pss = false;  // RSASSA-PSS / SHA-384 as AMD signs, else the key's default with SHA-256/384
  bool ca = false;       // basicConstraints CA:TRUE, keyUsage keyCertSign + cRLSign
  long not_before = -3600;  // seconds from now
  long not_after = 3600L * 24 * 365;
  long serial = 1;
  // Extensions by dotted OID with their DER value (the extnValue contents).
  std::vector<std::pair<std::string, std::string>> extensions = {};
};

inline std::string DerInteger(uint8_t v) {
  return v < 0x80 ? std::string{'\x02', '\x01', static_cast<char>(v)}
                  : std::string{'\x02', '\x02', '\x00', static_cast<char>(v)};
}

inline bool SignWith(X509* cert, EVP_PKEY* key, bool pss) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  bool ok = EVP_DigestSignInit(ctx, &pctx, EVP_sha384(), nullptr, key) == 1;
  if (ok && pss) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 48) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()) == 1;
  }
  ok = ok && X509_sign_ctx(cert, ctx) > 0;
  EVP_MD_CTX_free(ctx);
  return ok;
}

// A certificate for `key` as `spec` says (issuer name from spec.issuer).
inline X509Ptr MakeCert(EVP_PKEY* key, const CertSpec& spec) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), spec.serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.not_before);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.not_after);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(spec.org.c_str()), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
  X509* issuer = spec.issuer != nullptr ? spec.issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer));
  if (spec.ca) {
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, cert.get(), nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                              std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
      X509_add_ext(cert.get(), ext, -1);
      X509_EXTENSION_free(ext);
    }
  }
  for (const auto& [oid, der] : spec.extensions) {
    ASN1_OBJECT* obj = OBJ_txt2obj(oid.c_str(), 1);
    ASN1_OCTET_STRING* data = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(data, reinterpret_cast<const unsigned char*>(der.data()),
                          static_cast<int>(der.size()));
    X509_EXTENSION* ext = X509_EXTENSION_create_by_OBJ(nullptr, obj, 0, data);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(data);
    ASN1_OBJECT_free(obj);
  }
  SignWith(cert.get(), spec.issuer_key != nullptr ? spec.issuer_key : key, spec.rsa_pss);
  return cert;
}

inline std::string CertPem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

inline std::string CertDer(X509* cert) {
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

// ECDSA over `data` with SHA-`bits` (256 or 384), as raw big-endian r||s.
inline std::string EcdsaRaw(EVP_PKEY* key, const std::string& data, int bits) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const EVP_MD* md = bits == 384 ? EVP_sha384() : EVP_sha256();
  size_t len = 0;
  EVP_DigestSignInit(ctx, nullptr, md, nullptr, key);
  EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                 data.size());
  std::string der(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(der.data()), &len,
                 reinterpret_cast<const unsigned char*>(data.data()), data.size());
  der.resize(len);
  EVP_MD_CTX_free(ctx);
  auto raw = DerEcdsaToRaw(der, bits / 8);
  return raw.ok() ? *raw : std::string();
}

}  // namespace cloak::kbs::testing

#endif  // CLOAK_KBS_TESTS_TEST_UTIL_H_
