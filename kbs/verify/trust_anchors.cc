#include "kbs/verify/trust_anchors.h"

#include <openssl/evp.h>
#include <openssl/objects.h>

#include "absl/strings/str_cat.h"
#include "common/tee/encoding.h"
#include "kbs/verify/openssl_util.h"

namespace cloak::kbs {
namespace {

std::string SubjectOrganization(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(name, NID_organizationName, -1);
  if (idx < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                     static_cast<size_t>(ASN1_STRING_length(data)));
}

}  // namespace

std::string CertificateSha256(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return "";
  return tee::HexEncode(absl::string_view(reinterpret_cast<const char*>(md), len));
}

absl::StatusOr<RootVerdict> ClassifyRoot(X509* root, absl::string_view vendor_root,
                                         absl::string_view pinned_sha256, bool simulated_possible,
                                         bool allow_unpinned) {
  RootVerdict v;
  v.fingerprint = CertificateSha256(root);
  if (v.fingerprint == pinned_sha256) {
    v.kind = RootKind::kPinned;
    v.description = absl::StrCat(vendor_root, " (pinned) sha256:", v.fingerprint);
    return v;
  }
  if (simulated_possible && SubjectOrganization(root) == kSimulatedSpOrganization) {
    v.kind = RootKind::kSimulated;
    v.description =
        absl::StrCat("SIMULATED SP test root (not ", vendor_root, ") sha256:", v.fingerprint);
    return v;
  }
  if (!allow_unpinned) {
    return absl::PermissionDeniedError(
        absl::StrCat("the configured root \"", SubjectCommonName(root), "\" (sha256 ",
                     v.fingerprint, ") is not ", vendor_root, " (sha256 ", pinned_sha256,
                     "); refusing it. Configure the vendor's root, or start cloak-kbs with "
                     "--allow-unpinned-root to trust another root (reported in every claim)"));
  }
  v.kind = RootKind::kUnpinned;
  v.description = absl::StrCat("UNPINNED root \"", SubjectCommonName(root),
                               "\" sha256:", v.fingerprint, " (allowed by --allow-unpinned-root)");
  return v;
}

}  // namespace cloak::kbs
