// The Intel TDX quote, versions 4 and 5: its layout (docs/formats.md, "TDX
// quote") and the one parser the agent and the key broker use. Pure.
#ifndef CLOAK_COMMON_TEE_TDX_QUOTE_H_
#define CLOAK_COMMON_TEE_TDX_QUOTE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::tee {

inline constexpr uint32_t kTdxTeeType = 0x81;
inline constexpr uint64_t kTdxAttributeDebug = 1;
inline constexpr size_t kTdxHeaderSize = 48;
inline constexpr size_t kTdxBody10Size = 584;  // TD report body, TDX 1.0
inline constexpr size_t kTdxBody15Size = 648;  // TDX 1.5
// Offsets inside the body.
inline constexpr size_t kTdxMrConfigIdOffset = 184;
inline constexpr size_t kTdxReportDataOffset = 520;
inline constexpr size_t kTdxMrConfigIdSize = 48;

struct TdxQuote {
  uint16_t version = 0;       // 4 or 5
  uint16_t att_key_type = 0;  // 2 = ECDSA P-256
  uint32_t tee_type = 0;      // 0x81
  uint16_t body_type = 2;     // v5: 2 = TDX 1.0, 3 = TDX 1.5; v4: 2
  std::string tee_tcb_svn;
  std::string mrseam;
  std::string mrsignerseam;  // 48: the TDX module's signer (zero for Intel's)
  uint64_t seam_attributes = 0;
  uint64_t td_attributes = 0;
  uint64_t xfam = 0;
  std::string mrtd;
  std::string mrconfigid;
  std::string mrowner;
  std::string mrownerconfig;
  std::array<std::string, 4> rtmr;
  std::string report_data;  // 64
  // Header and body: what the attestation key signs.
  std::string signed_bytes;
  // The ECDSA quote signature data: exactly the declared length after the
  // length field.
  std::string signature_data;
  // Bytes after the declared signature data (a fixed-size buffer's
  // padding), ignored.
  size_t trailing_bytes = 0;

  bool debug() const { return (td_attributes & kTdxAttributeDebug) != 0; }
};

// Parses a TDX quote, version 4 or 5, by its declared lengths: bytes after
// the declared signature data are accepted (and counted). InvalidArgument
// naming the problem on short data, a declared length that overruns the
// data, another TEE type, or an unknown body type.
absl::StatusOr<TdxQuote> ParseTdxQuote(absl::string_view raw);

}  // namespace cloak::tee

#endif  // CLOAK_COMMON_TEE_TDX_QUOTE_H_
