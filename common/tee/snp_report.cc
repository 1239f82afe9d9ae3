#include "common/tee/snp_report.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/tee/bytes.h"

namespace cloak::tee {
namespace {

// R and S are 72-byte little-endian fields; only the low 48 bytes matter.
std::string ReversedSignificant(absl::string_view le72) {
  std::string be(le72.substr(0, 48));
  std::reverse(be.begin(), be.end());
  return be;
}

}  // namespace

absl::StatusOr<SnpReport> ParseSnpReport(absl::string_view raw) {
  if (raw.size() != kSnpReportSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("SEV-SNP report must be ", kSnpReportSize, " bytes, got ", raw.size()));
  }
  SnpReport r;
  r.version = Le32(raw, kSnpVersionOffset);
  if (r.version < 2 || r.version > 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported SEV-SNP report version ", r.version, " (want 2..5)"));
  }
  r.guest_svn = Le32(raw, kSnpGuestSvnOffset);
  r.policy = Le64(raw, kSnpPolicyOffset);
  r.vmpl = Le32(raw, kSnpVmplOffset);
  r.signature_algo = Le32(raw, kSnpSignatureAlgoOffset);
  if (r.signature_algo != kSnpSignatureAlgoEcdsaP384) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported SEV-SNP signature algorithm ",
                                                   r.signature_algo, " (want 1, ECDSA P-384)"));
  }
  r.current_tcb = Le64(raw, kSnpCurrentTcbOffset);
  r.platform_info = Le64(raw, kSnpPlatformInfoOffset);
  r.key_info = Le32(raw, kSnpKeyInfoOffset);
  r.report_data = std::string(raw.substr(kSnpReportDataOffset, kSnpReportDataSize));
  r.measurement = std::string(raw.substr(kSnpMeasurementOffset, kSnpMeasurementSize));
  r.host_data = std::string(raw.substr(kSnpHostDataOffset, kSnpHostDataSize));
  r.id_key_digest = std::string(raw.substr(kSnpIdKeyDigestOffset, 48));
  r.author_key_digest = std::string(raw.substr(kSnpAuthorKeyDigestOffset, 48));
  r.reported_tcb = Le64(raw, kSnpReportedTcbOffset);
  if (r.version >= 3) {
    r.cpuid_fam_id = static_cast<uint8_t>(raw[kSnpCpuidFamilyOffset]);
    r.cpuid_mod_id = static_cast<uint8_t>(raw[kSnpCpuidModelOffset]);
  }
  r.chip_id = std::string(raw.substr(kSnpChipIdOffset, kSnpChipIdSize));
  r.committed_tcb = Le64(raw, kSnpCommittedTcbOffset);
  r.launch_tcb = Le64(raw, kSnpLaunchTcbOffset);
  r.signed_bytes = std::string(raw.substr(0, kSnpSignedSize));
  r.sig_r_be = ReversedSignificant(raw.substr(kSnpSignatureROffset, kSnpSignatureComponentSize));
  r.sig_s_be = ReversedSignificant(raw.substr(kSnpSignatureSOffset, kSnpSignatureComponentSize));
  return r;
}

absl::string_view SnpProductName(SnpProduct product) {
  switch (product) {
    case SnpProduct::kMilan:
      return "Milan";
    case SnpProduct::kGenoa:
      return "Genoa";
    case SnpProduct::kTurin:
      return "Turin";
  }
  return "?";
}

absl::StatusOr<SnpProduct> ParseSnpProduct(absl::string_view name) {
  std::string lower = absl::AsciiStrToLower(name);
  if (lower == "milan") return SnpProduct::kMilan;
  if (lower == "genoa") return SnpProduct::kGenoa;
  if (lower == "turin") return SnpProduct::kTurin;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown SEV-SNP product \"", name, "\" (want Milan, Genoa or Turin)"));
}

std::string SnpTcb::ToString() const {
  std::string out = absl::StrCat("bl=", bootloader, " tee=", tee, " snp=", snp, " ucode=",
                                 microcode);
  if (fmc != 0) absl::StrAppend(&out, " fmc=", fmc);
  return out;
}

SnpTcb DecodeSnpTcb(uint64_t raw, SnpProduct product) {
  auto byte = [raw](int i) { return static_cast<uint8_t>((raw >> (8 * i)) & 0xff); };
  SnpTcb t;
  if (product == SnpProduct::kTurin) {
    t.fmc = byte(0);
    t.bootloader = byte(1);
    t.tee = byte(2);
    t.snp = byte(3);
  } else {
    t.bootloader = byte(0);
    t.tee = byte(1);
    t.snp = byte(6);
  }
  t.microcode = byte(7);
  return t;
}

uint64_t EncodeSnpTcb(const SnpTcb& t, SnpProduct product) {
  auto at = [](uint8_t v, int byte) { return static_cast<uint64_t>(v) << (8 * byte); };
  if (product == SnpProduct::kTurin) {
    return at(t.fmc, 0) | at(t.bootloader, 1) | at(t.tee, 2) | at(t.snp, 3) | at(t.microcode, 7);
  }
  return at(t.bootloader, 0) | at(t.tee, 1) | at(t.snp, 6) | at(t.microcode, 7);
}

}  // namespace cloak::tee
