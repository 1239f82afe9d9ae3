// The vendor roots pinned in code (docs/attestation.md, "Trust anchors"):
// evidence is trusted because its chain ends at one of these certificates,
// identified by the SHA-256 of its DER, not because a file was configured.
//
//   AMD ARK-Milan  69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd
//   AMD ARK-Genoa  4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1
//   AMD ARK-Turin  1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a
//   Intel SGX Root CA (SGX/TDX PCK chains)
//                  44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3
//
// Any other root is refused unless the verifier is told to allow unpinned
// roots; then every claim names it. Cloak's simulated SP signs with a TEST
// root whose subject says so: its evidence is classified as simulated.
#ifndef CLOAK_KBS_VERIFY_TRUST_ANCHORS_H_
#define CLOAK_KBS_VERIFY_TRUST_ANCHORS_H_

#include <openssl/x509.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::kbs {

inline constexpr char kAmdArkMilanSha256[] =
    "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd";
inline constexpr char kAmdArkGenoaSha256[] =
    "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1";
inline constexpr char kAmdArkTurinSha256[] =
    "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a";
inline constexpr char kIntelSgxRootCaSha256[] =
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3";

// The organization Cloak's simulated SP puts in its TEST ARK's subject
// (docs/simulated-snp.md).
inline constexpr char kSimulatedSpOrganization[] = "Cloak TEST chain - NOT AMD";

// Lowercase hex SHA-256 of the certificate's DER.
std::string CertificateSha256(X509* cert);

enum class RootKind { kPinned, kSimulated, kUnpinned };

struct RootVerdict {
  RootKind kind = RootKind::kUnpinned;
  std::string fingerprint;
  // What claims report: "AMD ARK-Milan (pinned) sha256:…" and so on.
  std::string description;
};

// `vendor_root` names the expected pinned root ("AMD ARK-Milan", "Intel SGX
// Root CA") and `pinned_sha256` its fingerprint. A simulated-SP root is only
// recognised for AMD (`simulated_possible`). Unpinned roots are refused
// (PermissionDenied, naming the fingerprint and the flag) unless
// `allow_unpinned`.
absl::StatusOr<RootVerdict> ClassifyRoot(X509* root, absl::string_view vendor_root,
                                         absl::string_view pinned_sha256, bool simulated_possible,
                                         bool allow_unpinned);

}  // namespace cloak::kbs

#endif  // CLOAK_KBS_VERIFY_TRUST_ANCHORS_H_
