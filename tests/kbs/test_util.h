// Helpers for the kbs tests: test vectors and throw-away certificates.
#ifndef CLOAK_KBS_TESTS_TEST_UTIL_H_
#define CLOAK_KBS_TESTS_TEST_UTIL_H_

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <filesystem>
#include <string>

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

}  // namespace cloak::kbs::testing

#endif  // CLOAK_KBS_TESTS_TEST_UTIL_H_
