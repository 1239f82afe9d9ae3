// Fuzzes the TEE evidence parsers (common/tee/snp_report.h, tdx_quote.h):
// the evidence a guest sends to cloak-kbs is attacker-controlled until it is
// verified, and it is parsed before its signature is checked.
//
// Input: the first byte selects the parser (even: SEV-SNP report, odd: TDX
// quote); the rest is the evidence.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "common/tee/snp_report.h"
#include "common/tee/tdx_quote.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  absl::string_view raw(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    auto report = cloak::tee::ParseSnpReport(raw);
    if (report.ok()) {
      (void)report->debug();
      (void)report->signing_key();
      for (auto product : {cloak::tee::SnpProduct::kMilan, cloak::tee::SnpProduct::kGenoa}) {
        const auto tcb = cloak::tee::DecodeSnpTcb(report->reported_tcb, product);
        (void)cloak::tee::EncodeSnpTcb(tcb, product);
      }
    }
  } else {
    auto quote = cloak::tee::ParseTdxQuote(raw);
    if (quote.ok()) (void)quote->debug();
  }
  return 0;
}
