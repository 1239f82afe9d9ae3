#include "common/tee/report_data.h"

#include "common/status_macros.h"
#include "common/tee/canonical_json.h"
#include "common/tee/digest.h"
#include "common/tee/initdata.h"

namespace cloak::tee {

absl::StatusOr<std::string> RuntimeDataDigest(absl::string_view nonce,
                                              const nlohmann::json& tee_pubkey,
                                              absl::string_view additional_evidence) {
  const nlohmann::json runtime = {{"additional-evidence", std::string(additional_evidence)},
                                  {"nonce", std::string(nonce)},
                                  {"tee-pubkey", tee_pubkey}};
  ASSIGN_OR_RETURN(std::string canonical, CanonicalJson(runtime));
  return Sha384(canonical);
}

std::string ReportData64(absl::string_view digest) {
  return DigestForField(digest, kReportDataSize);
}

}  // namespace cloak::tee
