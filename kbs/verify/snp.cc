#include "kbs/verify/snp.h"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kbs/verify/trust_anchors.h"

namespace cloak::kbs {
namespace {

// The raw bytes inside the extension with dotted `oid`, or NotFound.
absl::StatusOr<Bytes> ExtensionBytes(X509* cert, const char* oid, absl::string_view what) {
  ASN1_OBJECT* obj = OBJ_txt2obj(oid, 1);
  if (obj == nullptr) return absl::InternalError(absl::StrCat("bad OID ", oid));
  int idx = X509_get_ext_by_OBJ(cert, obj, -1);
  ASN1_OBJECT_free(obj);
  if (idx < 0) return absl::NotFoundError(absl::StrCat(what, " has no extension ", oid));
  ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(X509_get_ext(cert, idx));
  return Bytes(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
               static_cast<size_t>(ASN1_STRING_length(data)));
}

// AMD's SPL extensions hold a DER INTEGER (02 len value).
absl::StatusOr<uint8_t> ExtensionSpl(X509* cert, const char* oid, const char* name,
                                     absl::string_view what) {
  auto der = ExtensionBytes(cert, oid, what);
  if (!der.ok()) {
    return absl::PermissionDeniedError(absl::StrCat(
        der.status().message(), " (", name, "): not a ", what, " certificate as AMD issues them"));
  }
  if (der->size() < 3 || (*der)[0] != 0x02 ||
      static_cast<size_t>((*der)[1]) != der->size() - 2 || der->size() > 4) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " extension ", name, " (", oid, ") is not a small DER INTEGER"));
  }
  uint32_t v = 0;
  for (size_t i = 2; i < der->size(); ++i) {
    v = (v << 8) | static_cast<unsigned char>((*der)[i]);
  }
  if (v > 255) return absl::InvalidArgumentError(absl::StrCat(what, " ", name, " out of range"));
  return static_cast<uint8_t>(v);
}

absl::Status CheckValidity(X509* cert, absl::string_view what) {
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
    return absl::PermissionDeniedError(absl::StrCat(what, " certificate is not yet valid"));
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
    return absl::PermissionDeniedError(absl::StrCat(what, " certificate has expired"));
  }
  return absl::OkStatus();
}

absl::Status CheckSignedBy(X509* cert, X509* issuer, absl::string_view what,
                           absl::string_view issuer_what) {
  if (X509_get_signature_nid(cert) != NID_rsassaPss) {
    return absl::PermissionDeniedError(absl::StrCat(
        what, " certificate is not signed with RSASSA-PSS as AMD issues them (signature "
              "algorithm ",
        OBJ_nid2sn(X509_get_signature_nid(cert)), ")"));
  }
  if (X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(issuer)) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(what, " certificate was issued by \"",
                                                    IssuerCommonName(cert), "\", not by the ",
                                                    issuer_what, " \"", SubjectCommonName(issuer),
                                                    "\""));
  }
  ERR_clear_error();
  EVP_PKEY* key = X509_get0_pubkey(issuer);
  if (key == nullptr || X509_verify(cert, key) != 1) {
    ERR_clear_error();
    return absl::PermissionDeniedError(absl::StrCat("the signature on the ", what,
                                                    " certificate does not verify with the ",
                                                    issuer_what, " \"", SubjectCommonName(issuer),
                                                    "\" key"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view SnpSigningKeyName(SnpSigningKey key) {
  return key == SnpSigningKey::kVlek ? "VLEK" : "VCEK";
}

absl::string_view SnpIntermediateName(SnpSigningKey key) {
  return key == SnpSigningKey::kVlek ? "ASVK" : "ASK";
}

absl::StatusOr<SnpSigningKey> SnpReportSigningKey(const SnpReport& report) {
  switch (report.signing_key()) {
    case 0:
      return SnpSigningKey::kVcek;
    case 1:
      return SnpSigningKey::kVlek;
    case 7:
      return absl::PermissionDeniedError(
          "SEV-SNP report is not signed (KEY_INFO signing key 7): nothing vouches for it");
    default:
      return absl::PermissionDeniedError(
          absl::StrCat("SEV-SNP report names the reserved signing key ", report.signing_key(),
                       " (KEY_INFO bits 4:2); only VCEK (0) and VLEK (1) are defined"));
  }
}

absl::Status VerifySnpReportSignature(const SnpReport& report, X509* endorsement_key,
                                      SnpSigningKey kind) {
  EVP_PKEY* key = X509_get0_pubkey(endorsement_key);
  if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC || EVP_PKEY_get_bits(key) != 384) {
    return absl::InvalidArgumentError(
        absl::StrCat(SnpSigningKeyName(kind), " public key is not an ECDSA P-384 key"));
  }
  ASSIGN_OR_RETURN(Bytes der, RawEcdsaToDer(report.sig_r_be, report.sig_s_be));
  return VerifySignature(key, EVP_sha384(), report.signed_bytes, der,
                         absl::StrCat("SEV-SNP report signature (ECDSA P-384 over bytes "
                                      "0x000-0x29F) with the ",
                                      SnpSigningKeyName(kind), " key"));
}

absl::string_view PinnedArkSha256(SnpProduct product) {
  switch (product) {
    case SnpProduct::kMilan:
      return kAmdArkMilanSha256;
    case SnpProduct::kGenoa:
      return kAmdArkGenoaSha256;
    case SnpProduct::kTurin:
      return kAmdArkTurinSha256;
  }
  return "";
}

absl::StatusOr<SnpProduct> SnpEndorsementKeyProduct(X509* cert, SnpSigningKey kind) {
  const absl::string_view name = SnpSigningKeyName(kind);
  const std::string prefix = kind == SnpSigningKey::kVlek ? "SEV-VLEK-" : "SEV-";
  std::string issuer = IssuerCommonName(cert);
  if (kind == SnpSigningKey::kVcek && issuer.rfind("SEV-VLEK-", 0) == 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the certificate presented as VCEK was issued by \"", issuer,
        "\": it is a VLEK, but the report's KEY_INFO says the VCEK signed it"));
  }
  if (issuer.rfind(prefix, 0) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        name, " issuer \"", issuer, "\" is not an AMD SEV signing key (want ", prefix,
        "<product>)",
        kind == SnpSigningKey::kVlek && issuer.rfind("SEV-", 0) == 0
            ? ": it is a VCEK, but the report's KEY_INFO says a VLEK signed it"
            : ""));
  }
  auto product = ParseSnpProduct(issuer.substr(prefix.size()));
  if (!product.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat(name, " issuer \"", issuer, "\": ", product.status().message()));
  }
  return *product;
}

absl::StatusOr<X509Ptr> VerifySnpIntermediate(const SnpTrustAnchors& anchors, SnpSigningKey kind) {
  const std::string inter_name(SnpIntermediateName(kind));
  const std::string& inter_data = kind == SnpSigningKey::kVlek ? anchors.asvk : anchors.ask;
  if (inter_data.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no AMD ", inter_name, " certificate is configured for this product; ",
        kind == SnpSigningKey::kVlek ? "VLEK-signed reports need <product>_asvk.pem from AMD KDS"
                                     : "VCEK-signed reports need <product>_ask.pem from AMD KDS"));
  }
  ASSIGN_OR_RETURN(X509Ptr ark, ParseCertificate(anchors.ark, "ARK"));
  ASSIGN_OR_RETURN(X509Ptr inter, ParseCertificate(inter_data, inter_name));
  // ARK: a self-signed root.
  if (X509_NAME_cmp(X509_get_subject_name(ark.get()), X509_get_issuer_name(ark.get())) != 0) {
    return absl::PermissionDeniedError("configured ARK is not self-signed (subject != issuer)");
  }
  RETURN_IF_ERROR(CheckSignedBy(ark.get(), ark.get(), "ARK", "ARK itself"));
  RETURN_IF_ERROR(CheckValidity(ark.get(), "ARK"));
  RETURN_IF_ERROR(CheckSignedBy(inter.get(), ark.get(), inter_name, "ARK"));
  RETURN_IF_ERROR(CheckValidity(inter.get(), inter_name));
  return inter;
}

absl::StatusOr<SnpProduct> VerifySnpCertChain(X509* endorsement_key,
                                              const SnpTrustAnchors& anchors,
                                              SnpSigningKey kind) {
  // The product comes from the key's issuer ("SEV-Milan" / "SEV-VLEK-Milan"),
  // and the anchors must be that product's.
  ASSIGN_OR_RETURN(SnpProduct product, SnpEndorsementKeyProduct(endorsement_key, kind));
  std::string name(SnpProductName(product));
  const std::string key_name(SnpSigningKeyName(kind));
  const std::string inter_name(SnpIntermediateName(kind));
  ASSIGN_OR_RETURN(X509Ptr inter, VerifySnpIntermediate(anchors, kind));
  absl::Status key_status = CheckSignedBy(endorsement_key, inter.get(), key_name, inter_name);
  if (!key_status.ok()) {
    ASSIGN_OR_RETURN(X509Ptr ark, ParseCertificate(anchors.ark, "ARK"));
    return absl::PermissionDeniedError(absl::StrCat(
        key_status.message(), " (the ", key_name, " says its product is ", name,
        "; are the configured ARK/", inter_name, " ", SubjectCommonName(ark.get()), "/",
        SubjectCommonName(inter.get()), " the ones for ", name, "?)"));
  }
  RETURN_IF_ERROR(CheckValidity(endorsement_key, key_name));
  return product;
}

absl::StatusOr<Claims> VerifySnpAttestation(absl::string_view report_raw,
                                            absl::string_view endorsement_pem_or_der,
                                            const SnpTrustAnchors& anchors,
                                            const SnpVerifyOptions& options) {
  if (options.expected_report_data.size() != 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected report_data must be 64 bytes, got ", options.expected_report_data.size()));
  }
  ASSIGN_OR_RETURN(SnpReport report, ParseSnpReport(report_raw));
  ASSIGN_OR_RETURN(SnpSigningKey kind, SnpReportSigningKey(report));
  const std::string key_name(SnpSigningKeyName(kind));
  ASSIGN_OR_RETURN(X509Ptr vcek, ParseCertificate(endorsement_pem_or_der, key_name));  // or VLEK
  ASSIGN_OR_RETURN(SnpProduct product, VerifySnpCertChain(vcek.get(), anchors, kind));
  ASSIGN_OR_RETURN(X509Ptr ark, ParseCertificate(anchors.ark, "ARK"));
  ASSIGN_OR_RETURN(RootVerdict root,
                   ClassifyRoot(ark.get(), absl::StrCat("AMD ARK-", SnpProductName(product)),
                                PinnedArkSha256(product), /*simulated_possible=*/true,
                                options.allow_unpinned_root));

  // A VCEK is per chip and per TCB: it must be the one for this report. A
  // VLEK is per cloud provider and per TCB: it carries no hwID, and the
  // report's CHIP_ID is not tied to it.
  std::string csp_id;
  if (kind == SnpSigningKey::kVlek) {
    auto csp = ExtensionBytes(vcek.get(), "1.3.6.1.4.1.3704.1.5", "VLEK");
    // csp_id: an IA5String naming the cloud provider AMD issued the VLEK to.
    if (csp.ok() && csp->size() > 2 && (*csp)[0] == 0x16 &&
        static_cast<size_t>((*csp)[1]) == csp->size() - 2) {
      csp_id = csp->substr(2);
    }
  }
  if (kind == SnpSigningKey::kVcek) {
    auto hwid = ExtensionBytes(vcek.get(), "1.3.6.1.4.1.3704.1.4", "VCEK");
    if (!hwid.ok()) return absl::PermissionDeniedError(hwid.status().message());
    if (!report.mask_chip_id()) {
      absl::string_view chip = report.chip_id;
      if (product == SnpProduct::kTurin) chip = chip.substr(0, 8);
      if (*hwid != chip) {
        return absl::PermissionDeniedError(
            absl::StrCat("VCEK belongs to chip ", tee::HexEncode(*hwid).substr(0, 16),
                         "..., the report's CHIP_ID is ", tee::HexEncode(chip).substr(0, 16),
                         "...: wrong VCEK for this report"));
      }
    }
  }
  SnpTcb reported = DecodeSnpTcb(report.reported_tcb, product);
  ASSIGN_OR_RETURN(uint8_t bl,
                   ExtensionSpl(vcek.get(), "1.3.6.1.4.1.3704.1.3.1", "blSPL", key_name));
  ASSIGN_OR_RETURN(uint8_t tee,
                   ExtensionSpl(vcek.get(), "1.3.6.1.4.1.3704.1.3.2", "teeSPL", key_name));
  ASSIGN_OR_RETURN(uint8_t snp,
                   ExtensionSpl(vcek.get(), "1.3.6.1.4.1.3704.1.3.3", "snpSPL", key_name));
  ASSIGN_OR_RETURN(uint8_t uc,
                   ExtensionSpl(vcek.get(), "1.3.6.1.4.1.3704.1.3.8", "ucodeSPL", key_name));
  SnpTcb cert_tcb{.fmc = reported.fmc, .bootloader = bl, .tee = tee, .snp = snp, .microcode = uc};
  if (product == SnpProduct::kTurin) {
    ASSIGN_OR_RETURN(cert_tcb.fmc,
                     ExtensionSpl(vcek.get(), "1.3.6.1.4.1.3704.1.3.9", "fmcSPL", key_name));
  }
  if (cert_tcb.bootloader != reported.bootloader || cert_tcb.tee != reported.tee ||
      cert_tcb.snp != reported.snp || cert_tcb.microcode != reported.microcode ||
      cert_tcb.fmc != reported.fmc) {
    return absl::PermissionDeniedError(absl::StrCat(key_name, " was issued for TCB ",
                                                    cert_tcb.ToString(), " but the report's "
                                                    "REPORTED_TCB is ",
                                                    reported.ToString(), ": fetch the ",
                                                    key_name, " for this TCB"));
  }

  RETURN_IF_ERROR(VerifySnpReportSignature(report, vcek.get(), kind));

  if ((report.policy & kSnpPolicyReservedBit) == 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "SEV-SNP guest policy 0x", absl::Hex(report.policy), " has reserved bit 17 clear"));
  }
  if (!tee::SecureEquals(report.report_data, options.expected_report_data)) {
    return absl::PermissionDeniedError(
        absl::StrCat("SEV-SNP REPORT_DATA ", tee::HexEncode(report.report_data).substr(0, 32),
                     "... does not match the expected binding ",
                     tee::HexEncode(options.expected_report_data).substr(0, 32),
                     "... (evidence made for another nonce or key)"));
  }
  if (options.min_tcb.has_value()) {
    const SnpTcb& min = *options.min_tcb;
    auto below = [&](const char* what, uint8_t have, uint8_t want) -> absl::Status {
      if (have < want) {
        return absl::PermissionDeniedError(absl::StrCat("SEV-SNP REPORTED_TCB ", what, " ", have,
                                                        " is below the minimum ", want));
      }
      return absl::OkStatus();
    };
    RETURN_IF_ERROR(below("bootloader", reported.bootloader, min.bootloader));
    RETURN_IF_ERROR(below("tee", reported.tee, min.tee));
    RETURN_IF_ERROR(below("snp", reported.snp, min.snp));
    RETURN_IF_ERROR(below("microcode", reported.microcode, min.microcode));
    RETURN_IF_ERROR(below("fmc", reported.fmc, min.fmc));
  }

  Claims claims;
  claims.tee = kTeeSnp;
  claims.report_data = report.report_data;
  claims.measurements["measurement"] = tee::HexEncode(report.measurement);
  claims.measurements["host_data"] = tee::HexEncode(report.host_data);
  if (report.host_data != Bytes(32, '\0'))
    claims.init_data_digest = tee::HexEncode(report.host_data);
  claims.debug = report.debug();
  claims.signature_verified = true;
  claims.trust_anchor = root.description;
  claims.simulated = root.kind == RootKind::kSimulated;
  claims.vmpl = report.vmpl;
  claims.snp_policy = report.policy;
  claims.product = std::string(SnpProductName(product));
  claims.tcb = {{"bootloader", reported.bootloader},
                {"tee", reported.tee},
                {"snp", reported.snp},
                {"microcode", reported.microcode}};
  if (product == SnpProduct::kTurin) claims.tcb["fmc"] = reported.fmc;
  claims.signing_key = key_name;
  claims.detail = absl::StrCat(
      "SEV-SNP ", SnpProductName(product), " report v", report.version,
      claims.simulated ? ", SIMULATED SP chain verified, TCB "
                       : absl::StrCat(", ", key_name, " chain verified",
                                      csp_id.empty() ? "" : absl::StrCat(" (VLEK of ", csp_id, ")"),
                                      ", TCB "),
      reported.ToString(), ", root ", root.description);
  RETURN_IF_ERROR(CheckReferenceValues(claims, options.reference));
  return claims;
}

}  // namespace cloak::kbs
