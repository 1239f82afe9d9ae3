#include "common/tee/tdx_quote.h"

#include "absl/strings/str_cat.h"
#include "common/tee/bytes.h"

namespace cloak::tee {

absl::StatusOr<TdxQuote> ParseTdxQuote(absl::string_view raw) {
  if (raw.size() < kTdxHeaderSize + kTdxBody10Size + 4) {
    return absl::InvalidArgumentError(absl::StrCat("TDX quote too short: ", raw.size(), " bytes"));
  }
  TdxQuote q;
  q.version = Le16(raw, 0);
  q.att_key_type = Le16(raw, 2);
  q.tee_type = Le32(raw, 4);
  if (q.version != 4 && q.version != 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported TDX quote version ", q.version, " (want 4 or 5)"));
  }
  if (q.tee_type != kTdxTeeType) {
    return absl::InvalidArgumentError(
        absl::StrCat("quote TEE type is 0x", absl::Hex(q.tee_type), ", not TDX (0x81)"));
  }
  if (q.att_key_type != 2) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported TDX attestation key type ",
                                                   q.att_key_type, " (want 2, ECDSA P-256)"));
  }
  size_t body = kTdxHeaderSize;
  size_t body_size = kTdxBody10Size;
  if (q.version == 5) {
    q.body_type = Le16(raw, kTdxHeaderSize);
    uint32_t size = Le32(raw, kTdxHeaderSize + 2);
    body = kTdxHeaderSize + 6;
    if (q.body_type == 2 && size == kTdxBody10Size) {
      body_size = kTdxBody10Size;
    } else if (q.body_type == 3 && size == kTdxBody15Size) {
      body_size = kTdxBody15Size;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unsupported TDX v5 quote body type ",
                                                     q.body_type, " of size ", size,
                                                     " (want 2/584 or 3/648)"));
    }
  }
  if (raw.size() < body + body_size + 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("TDX quote too short for its body: ", raw.size(), " bytes"));
  }
  absl::string_view b = raw.substr(body, body_size);
  q.tee_tcb_svn = std::string(b.substr(0, 16));
  q.mrseam = std::string(b.substr(16, 48));
  q.mrsignerseam = std::string(b.substr(64, 48));
  q.seam_attributes = Le64(b, 112);
  q.td_attributes = Le64(b, 120);
  q.xfam = Le64(b, 128);
  q.mrtd = std::string(b.substr(136, 48));
  q.mrconfigid = std::string(b.substr(kTdxMrConfigIdOffset, kTdxMrConfigIdSize));
  q.mrowner = std::string(b.substr(232, 48));
  q.mrownerconfig = std::string(b.substr(280, 48));
  for (size_t i = 0; i < 4; ++i) q.rtmr[i] = std::string(b.substr(328 + 48 * i, 48));
  q.report_data = std::string(b.substr(kTdxReportDataOffset, 64));
  const size_t sig_len_off = body + body_size;
  const uint32_t sig_len = Le32(raw, sig_len_off);
  // By the declared length, as Intel's quote verification library reads
  // it: real quotes come in fixed-size buffers with zeros after the
  // signature data; a length that overruns the data is refused.
  const size_t available = raw.size() - sig_len_off - 4;
  if (sig_len > available) {
    return absl::InvalidArgumentError(
        absl::StrCat("TDX quote signature data length ", sig_len, " overruns the ", available,
                     " bytes that follow"));
  }
  q.trailing_bytes = available - sig_len;
  q.signed_bytes = std::string(raw.substr(0, sig_len_off));
  q.signature_data = std::string(raw.substr(sig_len_off + 4, sig_len));
  return q;
}

}  // namespace cloak::tee
