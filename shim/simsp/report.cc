#include "shim/simsp/report.h"

#include <openssl/bn.h>
#include <openssl/ecdsa.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "shim/simsp/crypto.h"
#include "common/status_macros.h"
#include "common/tee/bytes.h"

namespace cloak::simsp {
namespace {

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

absl::Status CheckSize(const std::string& field, size_t want, const char* what) {
  if (field.size() != want) {
    return absl::InvalidArgumentError(
        absl::StrCat("report ", what, " must be ", want, " bytes, got ", field.size()));
  }
  return absl::OkStatus();
}

// CPUID family / model of a typical part of each product (docs/formats.md).
std::pair<uint8_t, uint8_t> CpuidFor(Product product) {
  switch (product) {
    case Product::kMilan:
      return {0x19, 0x01};
    case Product::kGenoa:
      return {0x19, 0x11};
    case Product::kTurin:
      return {0x1A, 0x02};
  }
  return {0, 0};
}

}  // namespace

ReportFields FieldsForChain(const DevChain& chain) {
  ReportFields f;
  f.product = chain.product;
  f.tcb = chain.tcb;
  f.chip_id = chain.chip_id;
  return f;
}

absl::StatusOr<std::string> BuildReport(const ReportFields& f, EVP_PKEY* vcek_key) {
  if (f.version < 2 || f.version > 5) {
    return absl::InvalidArgumentError(absl::StrCat("report version ", f.version, " is not 2..5"));
  }
  RETURN_IF_ERROR(CheckSize(f.chip_id, 64, "chip_id"));
  RETURN_IF_ERROR(CheckSize(f.report_data, 64, "report_data"));
  RETURN_IF_ERROR(CheckSize(f.measurement, 48, "measurement"));
  RETURN_IF_ERROR(CheckSize(f.host_data, 32, "host_data"));
  if (!f.report_id.empty()) RETURN_IF_ERROR(CheckSize(f.report_id, 32, "report_id"));
  if (vcek_key == nullptr || EVP_PKEY_get_base_id(vcek_key) != EVP_PKEY_EC ||
      EVP_PKEY_get_bits(vcek_key) != 384) {
    return absl::InvalidArgumentError("report signing key is not an EC P-384 key");
  }

  std::string raw(tee::kSnpReportSize, '\0');
  const uint64_t tcb = tee::EncodeSnpTcb(f.tcb, f.product);
  tee::PutLe(raw, tee::kSnpVersionOffset, 4, f.version);
  tee::PutLe(raw, tee::kSnpGuestSvnOffset, 4, f.guest_svn);
  tee::PutLe(raw, tee::kSnpPolicyOffset, 8, f.policy);
  // 0x010 FAMILY_ID, 0x020 IMAGE_ID: zero (no ID block).
  tee::PutLe(raw, tee::kSnpVmplOffset, 4, f.vmpl);
  tee::PutLe(raw, tee::kSnpSignatureAlgoOffset, 4, tee::kSnpSignatureAlgoEcdsaP384);
  tee::PutLe(raw, tee::kSnpCurrentTcbOffset, 8, tcb);
  tee::PutLe(raw, tee::kSnpPlatformInfoOffset, 8, 1);  // SMT_EN
  tee::PutLe(raw, tee::kSnpKeyInfoOffset, 4, 0);       // signed by the VCEK, chip id not masked
  raw.replace(tee::kSnpReportDataOffset, tee::kSnpReportDataSize, f.report_data);
  raw.replace(tee::kSnpMeasurementOffset, tee::kSnpMeasurementSize, f.measurement);
  raw.replace(tee::kSnpHostDataOffset, tee::kSnpHostDataSize, f.host_data);
  // 0x0E0 ID_KEY_DIGEST, 0x110 AUTHOR_KEY_DIGEST: zero (no ID block).
  if (!f.report_id.empty()) raw.replace(tee::kSnpReportIdOffset, 32, f.report_id);
  // 0x160 REPORT_ID_MA: zero (no migration agent).
  tee::PutLe(raw, tee::kSnpReportedTcbOffset, 8, tcb);
  if (f.version >= 3) {
    auto [family, model] = CpuidFor(f.product);
    raw[tee::kSnpCpuidFamilyOffset] = static_cast<char>(family);
    raw[tee::kSnpCpuidModelOffset] = static_cast<char>(model);
    raw[tee::kSnpCpuidSteppingOffset] = 1;
  }
  raw.replace(tee::kSnpChipIdOffset, tee::kSnpChipIdSize, f.chip_id);
  tee::PutLe(raw, tee::kSnpCommittedTcbOffset, 8, tcb);
  for (size_t off : {tee::kSnpCurrentVersionOffset, tee::kSnpCommittedVersionOffset}) {
    raw[off] = static_cast<char>(f.fw_build);
    raw[off + 1] = static_cast<char>(f.fw_minor);
    raw[off + 2] = static_cast<char>(f.fw_major);
  }
  tee::PutLe(raw, tee::kSnpLaunchTcbOffset, 8, tcb);

  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> md(EVP_MD_CTX_new());
  size_t sig_len = 0;
  if (!md || EVP_DigestSignInit(md.get(), nullptr, EVP_sha384(), nullptr, vcek_key) != 1 ||
      EVP_DigestSign(md.get(), nullptr, &sig_len,
                     reinterpret_cast<const unsigned char*>(raw.data()),
                     tee::kSnpSignedSize) != 1) {
    return OpenSslError("ECDSA P-384 report signature");
  }
  std::string der(sig_len, '\0');
  if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(der.data()), &sig_len,
                     reinterpret_cast<const unsigned char*>(raw.data()),
                     tee::kSnpSignedSize) != 1) {
    return OpenSslError("ECDSA P-384 report signature");
  }
  der.resize(sig_len);
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  if (sig == nullptr) return OpenSslError("parse ECDSA signature");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig, &r, &s);
  for (auto [bn, off] :
       {std::pair{r, tee::kSnpSignatureROffset}, std::pair{s, tee::kSnpSignatureSOffset}}) {
    unsigned char be[48];
    if (BN_bn2binpad(bn, be, sizeof(be)) != 48) {
      ECDSA_SIG_free(sig);
      return OpenSslError("ECDSA signature component");
    }
    // Little-endian into the 72-byte field; the upper 24 bytes stay zero.
    std::reverse_copy(be, be + 48, reinterpret_cast<unsigned char*>(raw.data() + off));
  }
  ECDSA_SIG_free(sig);
  return raw;
}

}  // namespace cloak::simsp
