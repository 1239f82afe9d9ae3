#include "shim/simsp/chain.h"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace cloak::simsp {
namespace {

constexpr char kChipIdPrefix[] = "CLOAK-TEST-CHIP!";  // 16 bytes
constexpr char kIdentityFile[] = "simsp/identity.json";
constexpr char kVcekKeyFile[] = "simsp/vcek_key.pem";

// AMD's VCEK extension OIDs (the KDS certificates; docs/formats.md).
constexpr char kOidStructVersion[] = "1.3.6.1.4.1.3704.1.1";
constexpr char kOidProductName[] = "1.3.6.1.4.1.3704.1.2";
constexpr char kOidBlSpl[] = "1.3.6.1.4.1.3704.1.3.1";
constexpr char kOidTeeSpl[] = "1.3.6.1.4.1.3704.1.3.2";
constexpr char kOidSnpSpl[] = "1.3.6.1.4.1.3704.1.3.3";
constexpr char kOidUcodeSpl[] = "1.3.6.1.4.1.3704.1.3.8";
constexpr char kOidFmcSpl[] = "1.3.6.1.4.1.3704.1.3.9";
constexpr char kOidHwId[] = "1.3.6.1.4.1.3704.1.4";

struct NameDeleter {
  void operator()(X509_NAME* n) const { X509_NAME_free(n); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

std::string Lower(Product p) { return absl::AsciiStrToLower(ProductName(p)); }

std::unique_ptr<X509_NAME, NameDeleter> TestName(const std::string& cn) {
  std::unique_ptr<X509_NAME, NameDeleter> name(X509_NAME_new());
  auto add = [&](const char* field, const std::string& value) {
    X509_NAME_add_entry_by_txt(name.get(), field, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1, 0);
  };
  add("O", kTestOrganization);
  add("OU", kTestUnit);
  add("CN", cn);
  return name;
}

// The DER of `value` as an ASN.1 INTEGER (02 len bytes).
std::string DerInteger(long value) {
  ASN1_INTEGER* i = ASN1_INTEGER_new();
  ASN1_INTEGER_set(i, value);
  unsigned char* der = nullptr;
  int len = i2d_ASN1_INTEGER(i, &der);
  ASN1_INTEGER_free(i);
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len > 0 ? len : 0));
  OPENSSL_free(der);
  return out;
}

std::string DerIa5(const std::string& s) {
  ASN1_IA5STRING* str = ASN1_IA5STRING_new();
  ASN1_STRING_set(str, s.data(), static_cast<int>(s.size()));
  unsigned char* der = nullptr;
  int len = i2d_ASN1_IA5STRING(str, &der);
  ASN1_IA5STRING_free(str);
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len > 0 ? len : 0));
  OPENSSL_free(der);
  return out;
}

// Adds a non-critical extension whose extnValue holds exactly `value`.
absl::Status AddRawExtension(X509* cert, const char* oid, const std::string& value) {
  ASN1_OBJECT* obj = OBJ_txt2obj(oid, 1);
  ASN1_OCTET_STRING* data = ASN1_OCTET_STRING_new();
  if (obj == nullptr || data == nullptr ||
      ASN1_OCTET_STRING_set(data, reinterpret_cast<const unsigned char*>(value.data()),
                            static_cast<int>(value.size())) != 1) {
    ASN1_OBJECT_free(obj);
    ASN1_OCTET_STRING_free(data);
    return OpenSslError(absl::StrCat("extension ", oid));
  }
  X509_EXTENSION* ext = X509_EXTENSION_create_by_OBJ(nullptr, obj, 0, data);
  ASN1_OBJECT_free(obj);
  ASN1_OCTET_STRING_free(data);
  if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) {
    X509_EXTENSION_free(ext);
    return OpenSslError(absl::StrCat("add extension ", oid));
  }
  X509_EXTENSION_free(ext);
  return absl::OkStatus();
}

absl::Status AddConfExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) {
    X509_EXTENSION_free(ext);
    return OpenSslError(absl::StrCat("extension ", OBJ_nid2sn(nid)));
  }
  X509_EXTENSION_free(ext);
  return absl::OkStatus();
}

// A certificate for `key` named `subject`, issued by `issuer_name`, valid
// from a day ago for `days`.
absl::StatusOr<X509Ptr> NewCertificate(EVP_PKEY* key, X509_NAME* subject, X509_NAME* issuer_name,
                                       int days) {
  X509Ptr cert(X509_new());
  unsigned char serial[16];
  if (!cert || RAND_bytes(serial, sizeof(serial)) != 1) return OpenSslError("new certificate");
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  bool ok = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get())) != nullptr;
  BN_free(bn);
  ok = ok && X509_set_version(cert.get(), 2) == 1 &&
       X509_gmtime_adj(X509_getm_notBefore(cert.get()), -24L * 3600) != nullptr &&
       X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24L * 3600 * days) != nullptr &&
       X509_set_pubkey(cert.get(), key) == 1 && X509_set_subject_name(cert.get(), subject) == 1 &&
       X509_set_issuer_name(cert.get(), issuer_name) == 1;
  if (!ok) return OpenSslError("fill certificate");
  return cert;
}

// RSASSA-PSS, SHA-384, MGF1-SHA-384, 48-byte salt: how AMD signs ASK and VCEK.
absl::Status SignPss(X509* cert, EVP_PKEY* issuer_key) {
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> md(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!md || EVP_DigestSignInit(md.get(), &pctx, EVP_sha384(), nullptr, issuer_key) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 48) != 1 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()) != 1 || X509_sign_ctx(cert, md.get()) <= 0) {
    return OpenSslError("RSASSA-PSS certificate signature");
  }
  return absl::OkStatus();
}

absl::StatusOr<uint8_t> JsonByte(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned() || it->get<uint64_t>() > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat(kIdentityFile, ": tcb.", key, " missing or not a byte"));
  }
  return static_cast<uint8_t>(it->get<uint64_t>());
}

}  // namespace

std::string TcbFileHex(uint64_t raw) {
  std::string le;
  for (int i = 0; i < 8; ++i) le += static_cast<char>((raw >> (8 * i)) & 0xff);
  return tee::HexEncode(le);
}

absl::StatusOr<DevChain> GenerateDevChain(const std::string& dir, const DevChainOptions& options) {
  if (options.rsa_bits < 2048) {
    return absl::InvalidArgumentError(
        absl::StrCat("ARK/ASK RSA keys must have at least 2048 bits, not ", options.rsa_bits));
  }
  if (options.validity_days < 1) {
    return absl::InvalidArgumentError("validity_days must be at least 1");
  }
  std::string chip_id = options.chip_id;
  if (chip_id.empty()) {
    chip_id = kChipIdPrefix;
    std::string random(48, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(random.data()), 48) != 1) {
      return OpenSslError("RAND_bytes");
    }
    chip_id += random;
  }
  if (chip_id.size() != 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("chip id must be 64 bytes, got ", chip_id.size()));
  }
  const Product product = options.product;
  const std::string name = ProductName(product);
  const std::string ark_path = absl::StrCat(dir, "/", Lower(product), "_ark.pem");
  const std::string ask_path = absl::StrCat(dir, "/", Lower(product), "_ask.pem");
  const std::string identity_path = absl::StrCat(dir, "/", kIdentityFile);
  if (!options.overwrite &&
      (std::filesystem::exists(ark_path) || std::filesystem::exists(identity_path))) {
    return absl::AlreadyExistsError(absl::StrCat(
        dir, " already holds a ", name, " chain (", ark_path, " or ", identity_path,
        "); pick another directory or overwrite it"));
  }
  RETURN_IF_ERROR(MakeDirs(dir, 0755));
  RETURN_IF_ERROR(MakeDirs(absl::StrCat(dir, "/vcek"), 0755));
  const std::string private_dir = absl::StrCat(dir, "/simsp");
  RETURN_IF_ERROR(MakeDirs(private_dir, 0700));
  if (::chmod(private_dir.c_str(), 0700) != 0) return ErrnoError(errno, "chmod ", private_dir);

  ERR_clear_error();
  PkeyPtr ark_key(EVP_RSA_gen(static_cast<unsigned int>(options.rsa_bits)));
  PkeyPtr ask_key(EVP_RSA_gen(static_cast<unsigned int>(options.rsa_bits)));
  PkeyPtr vcek_key(EVP_EC_gen("P-384"));
  if (!ark_key || !ask_key || !vcek_key) return OpenSslError("key generation");

  auto ark_name = TestName(absl::StrCat("Cloak TEST ARK-", name, " NOT AMD"));
  auto ask_name = TestName(absl::StrCat("SEV-", name));
  auto vcek_name = TestName("Cloak TEST SEV-VCEK NOT AMD");

  ASSIGN_OR_RETURN(X509Ptr ark,
                   NewCertificate(ark_key.get(), ark_name.get(), ark_name.get(),
                                  options.validity_days));
  RETURN_IF_ERROR(AddConfExtension(ark.get(), ark.get(), NID_basic_constraints,
                                   "critical,CA:TRUE"));
  RETURN_IF_ERROR(AddConfExtension(ark.get(), ark.get(), NID_key_usage,
                                   "critical,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(AddConfExtension(ark.get(), ark.get(), NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(SignPss(ark.get(), ark_key.get()));

  ASSIGN_OR_RETURN(X509Ptr ask,
                   NewCertificate(ask_key.get(), ask_name.get(), ark_name.get(),
                                  options.validity_days));
  RETURN_IF_ERROR(AddConfExtension(ask.get(), ark.get(), NID_basic_constraints,
                                   "critical,CA:TRUE,pathlen:0"));
  RETURN_IF_ERROR(AddConfExtension(ask.get(), ark.get(), NID_key_usage,
                                   "critical,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(AddConfExtension(ask.get(), ark.get(), NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(SignPss(ask.get(), ark_key.get()));

  ASSIGN_OR_RETURN(X509Ptr vcek,
                   NewCertificate(vcek_key.get(), vcek_name.get(), ask_name.get(),
                                  options.validity_days));
  const Tcb& t = options.tcb;
  RETURN_IF_ERROR(AddRawExtension(vcek.get(), kOidStructVersion, DerInteger(1)));
  RETURN_IF_ERROR(AddRawExtension(vcek.get(), kOidProductName, DerIa5(name + "-TEST")));
  RETURN_IF_ERROR(AddRawExtension(vcek.get(), kOidBlSpl, DerInteger(t.bootloader)));
  RETURN_IF_ERROR(AddRawExtension(vcek.get(), kOidTeeSpl, DerInteger(t.tee)));
  RETURN_IF_ERROR(AddRawExtension(vcek.get(), kOidSnpSpl, DerInteger(t.snp)));
  RETURN_IF_ERROR(AddRawExtension(vcek.get(), kOidUcodeSpl, DerInteger(t.microcode)));
  if (product == Product::kTurin) {
    RETURN_IF_ERROR(AddRawExtension(vcek.get(), kOidFmcSpl, DerInteger(t.fmc)));
  }
  // hwID: the raw CHIP_ID bytes (not DER-wrapped), as in AMD's VCEKs; Turin
  // VCEKs carry only the first 8 bytes.
  std::string hwid = product == Product::kTurin ? chip_id.substr(0, 8) : chip_id;
  RETURN_IF_ERROR(AddRawExtension(vcek.get(), kOidHwId, hwid));
  RETURN_IF_ERROR(SignPss(vcek.get(), ask_key.get()));

  ASSIGN_OR_RETURN(std::string ark_pem, CertificatePem(ark.get()));
  ASSIGN_OR_RETURN(std::string ask_pem, CertificatePem(ask.get()));
  ASSIGN_OR_RETURN(std::string vcek_der, CertificateDer(vcek.get()));
  ASSIGN_OR_RETURN(std::string vcek_key_pem, PrivateKeyPem(vcek_key.get()));
  uint64_t raw_tcb = tee::EncodeSnpTcb(t, product);
  std::string vcek_rel =
      absl::StrCat("vcek/", tee::HexEncode(hwid), "_", TcbFileHex(raw_tcb), ".der");

  nlohmann::json identity = {
      {"warning",
       "Cloak TEST SEV-SNP chain for the simulated SP - NOT AMD; never configure it "
       "in a production KBS"},
      {"product", name},
      {"chip_id", tee::HexEncode(chip_id)},
      {"tcb",
       {{"fmc", t.fmc},
        {"bootloader", t.bootloader},
        {"tee", t.tee},
        {"snp", t.snp},
        {"microcode", t.microcode}}},
      {"reported_tcb_hex", TcbFileHex(raw_tcb)},
      {"ark", absl::StrCat(Lower(product), "_ark.pem")},
      {"ask", absl::StrCat(Lower(product), "_ask.pem")},
      {"vcek", vcek_rel},
      {"vcek_key", kVcekKeyFile},
  };
  RETURN_IF_ERROR(WriteFileAtomic(ark_path, ark_pem, 0644));
  RETURN_IF_ERROR(WriteFileAtomic(ask_path, ask_pem, 0644));
  RETURN_IF_ERROR(WriteFileAtomic(absl::StrCat(dir, "/", vcek_rel), vcek_der, 0644));
  RETURN_IF_ERROR(WriteFileAtomic(absl::StrCat(dir, "/", kVcekKeyFile), vcek_key_pem, 0600));
  RETURN_IF_ERROR(WriteFileAtomic(identity_path, identity.dump(2) + "\n", 0644));
  return LoadDevChain(dir);
}

absl::StatusOr<DevChain> LoadDevChain(const std::string& dir) {
  const std::string identity_path = absl::StrCat(dir, "/", kIdentityFile);
  ASSIGN_OR_RETURN(std::string text, ReadFile(identity_path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(identity_path, ": not JSON"));
  auto str = [&](const char* key) -> absl::StatusOr<std::string> {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(identity_path, ": \"", key, "\" missing or not a string"));
    }
    return it->get<std::string>();
  };
  DevChain chain;
  chain.dir = dir;
  ASSIGN_OR_RETURN(std::string product, str("product"));
  ASSIGN_OR_RETURN(chain.product, tee::ParseSnpProduct(product));
  ASSIGN_OR_RETURN(std::string chip_hex, str("chip_id"));
  auto chip = tee::HexDecode(chip_hex);
  if (!chip.ok() || chip->size() != 64) {
    return absl::InvalidArgumentError(absl::StrCat(identity_path, ": chip_id is not 64 bytes of hex"));
  }
  chain.chip_id = *chip;
  auto tcb = j.find("tcb");
  if (tcb == j.end() || !tcb->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(identity_path, ": \"tcb\" missing"));
  }
  ASSIGN_OR_RETURN(chain.tcb.fmc, JsonByte(*tcb, "fmc"));
  ASSIGN_OR_RETURN(chain.tcb.bootloader, JsonByte(*tcb, "bootloader"));
  ASSIGN_OR_RETURN(chain.tcb.tee, JsonByte(*tcb, "tee"));
  ASSIGN_OR_RETURN(chain.tcb.snp, JsonByte(*tcb, "snp"));
  ASSIGN_OR_RETURN(chain.tcb.microcode, JsonByte(*tcb, "microcode"));
  ASSIGN_OR_RETURN(std::string ark, str("ark"));
  ASSIGN_OR_RETURN(std::string ask, str("ask"));
  ASSIGN_OR_RETURN(std::string vcek, str("vcek"));
  ASSIGN_OR_RETURN(std::string vcek_key, str("vcek_key"));
  for (const std::string* rel : {&ark, &ask, &vcek, &vcek_key}) {
    if (rel->empty() || rel->front() == '/' || rel->find("..") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(identity_path, ": \"", *rel, "\" is not a path inside ", dir));
    }
  }
  chain.ark_path = absl::StrCat(dir, "/", ark);
  chain.ask_path = absl::StrCat(dir, "/", ask);
  chain.vcek_path = absl::StrCat(dir, "/", vcek);
  chain.vcek_key_path = absl::StrCat(dir, "/", vcek_key);
  ASSIGN_OR_RETURN(chain.ark_pem, ReadFile(chain.ark_path));
  ASSIGN_OR_RETURN(chain.ask_pem, ReadFile(chain.ask_path));
  ASSIGN_OR_RETURN(chain.vcek_der, ReadFile(chain.vcek_path));
  ASSIGN_OR_RETURN(std::string key_pem, ReadFile(chain.vcek_key_path));
  ASSIGN_OR_RETURN(chain.vcek_key, ParsePrivateKeyPem(key_pem, chain.vcek_key_path));
  ASSIGN_OR_RETURN(X509Ptr cert, ParseCertificate(chain.vcek_der, chain.vcek_path));
  if (EVP_PKEY_get_base_id(chain.vcek_key.get()) != EVP_PKEY_EC ||
      EVP_PKEY_get_bits(chain.vcek_key.get()) != 384) {
    return absl::InvalidArgumentError(
        absl::StrCat(chain.vcek_key_path, " is not an EC P-384 private key"));
  }
  if (X509_check_private_key(cert.get(), chain.vcek_key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(chain.vcek_key_path, " is not the key of ",
                                                   chain.vcek_path));
  }
  return chain;
}

}  // namespace cloak::simsp
