// Building a SEV-SNP ATTESTATION_REPORT the way the PSP does, signed by the
// simulated SP's VCEK key, on common/tee's layout (docs/formats.md).
#ifndef CLOAK_SHIM_SIMSP_REPORT_H_
#define CLOAK_SHIM_SIMSP_REPORT_H_

#include <openssl/evp.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "shim/simsp/chain.h"
#include "common/tee/snp_report.h"

namespace cloak::simsp {

// Guest policy (docs/formats.md): SMT allowed (bit 16), reserved bit 17 set,
// debug (bit 19) off. QEMU's default.
inline constexpr uint64_t kDefaultPolicy = 0x30000;
inline constexpr uint64_t kPolicyDebugBit = tee::kSnpPolicyDebugBit;

struct ReportFields {
  uint32_t version = 3;      // 3: with CPUID family/model (2..5 are valid)
  uint32_t guest_svn = 0;
  uint64_t policy = kDefaultPolicy;
  uint32_t vmpl = 0;
  Product product = Product::kMilan;
  Tcb tcb;                   // current, reported, committed and launch TCB
  std::string chip_id;       // 64 bytes
  std::string report_data;   // 64 bytes from the guest
  std::string measurement;   // 48 bytes
  std::string host_data;     // 32 bytes (the init-data digest; zeros: none)
  std::string report_id;     // 32 bytes; empty: zeros
  // Firmware version reported as CURRENT/COMMITTED (major.minor.build).
  uint8_t fw_major = 1, fw_minor = 55, fw_build = 21;
};

// The fields for `chain` with everything but report_data, measurement and
// host_data filled in.
ReportFields FieldsForChain(const DevChain& chain);

// The 1184-byte report: fields little-endian at their offsets, KEY_INFO 0
// (VCEK), SIGNATURE_ALGO 1, PLATFORM_INFO SMT_EN, and R/S of an ECDSA
// P-384/SHA-384 signature over bytes 0x000-0x29F by `vcek_key`, each as 72
// little-endian bytes at 0x2A0 / 0x2E8 (AMD's layout). InvalidArgument for
// wrong field sizes or a key that is not P-384.
absl::StatusOr<std::string> BuildReport(const ReportFields& fields, EVP_PKEY* vcek_key);

}  // namespace cloak::simsp

#endif  // CLOAK_SHIM_SIMSP_REPORT_H_
