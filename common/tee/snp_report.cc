#include "common/tee/snp_report.h"

#include <algorithm>

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

}  // namespace cloak::tee
