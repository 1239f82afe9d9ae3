// The simulated SP's wire protocol on the guest channel (docs/simulated-snp.md).
// One request, one response, on a byte stream (unix socket, vsock,
// virtio-serial); all integers little-endian.
//
//   request  (68 bytes):  "CSQ1" | REPORT_DATA (64)
//   response (20 + n):    "CSR1" | status u32 | report_len u32 | vcek_len u32
//                         | message_len u32 | report | vcek DER | message
//
// status 0 (OK) carries a 1184-byte report and, optionally, the VCEK (DER)
// the guest forwards as SNP evidence's cert_chain; any other status carries
// neither, only a short UTF-8 message. Pure encode/decode functions plus a
// blocking client call.
#ifndef CLOAK_COMMON_TEE_SP_PROTOCOL_H_
#define CLOAK_COMMON_TEE_SP_PROTOCOL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cloak::simsp {

inline constexpr char kRequestMagic[] = "CSQ1";
inline constexpr char kResponseMagic[] = "CSR1";
inline constexpr size_t kMagicSize = 4;
inline constexpr size_t kReportDataSize = 64;
inline constexpr size_t kRequestSize = kMagicSize + kReportDataSize;  // 68
inline constexpr size_t kResponseHeaderSize = 20;
inline constexpr size_t kMaxVcekSize = 16 * 1024;
inline constexpr size_t kMaxMessageSize = 1024;

enum class SpStatus : uint32_t {
  kOk = 0,
  kBadRequest = 1,  // malformed request (wrong magic or size)
  kInternal = 2,    // the SP could not build or sign the report
};

struct SpResponse {
  SpStatus status = SpStatus::kOk;
  std::string report;    // 1184 bytes when kOk
  std::string vcek_der;  // optional, only with kOk
  std::string message;   // optional; why, for errors
};

// `report_data` must be exactly 64 bytes (pad a shorter binding with zeros
// yourself, as the SNP ABI does).
absl::StatusOr<std::string> EncodeRequest(absl::string_view report_data);
// The 64 bytes of REPORT_DATA; InvalidArgument for a wrong size or magic.
absl::StatusOr<std::string> DecodeRequest(absl::string_view request);

// Clamps an over-long message; InvalidArgument for an inconsistent response
// (OK without a 1184-byte report, an error with a report, oversized VCEK).
absl::StatusOr<std::string> EncodeResponse(const SpResponse& response);
// From the 20-byte header: how many bytes follow. InvalidArgument when the
// header is malformed (magic, unknown status, sizes out of bounds).
absl::StatusOr<size_t> ResponseBodySize(absl::string_view header);
// A whole response (header and body); InvalidArgument when malformed or
// when its length disagrees with the header.
absl::StatusOr<SpResponse> DecodeResponse(absl::string_view response);

// Client side: sends one request on the connected `fd` and reads the
// response, within `timeout`. A non-OK SP status becomes an error status
// carrying the SP's message (InvalidArgument for kBadRequest, Internal
// otherwise); DeadlineExceeded on timeout.
absl::StatusOr<SpResponse> RequestReport(int fd, absl::string_view report_data,
                                         absl::Duration timeout = absl::Seconds(10));
// Connects to the SP's unix socket at `path` and calls RequestReport.
absl::StatusOr<SpResponse> RequestReportFromSocket(const std::string& path,
                                                   absl::string_view report_data,
                                                   absl::Duration timeout = absl::Seconds(10));

// Stream helpers shared by client and server: read exactly `n` bytes /
// write everything before `deadline`. Reads: OutOfRange on EOF before the
// first byte, DataLoss on EOF mid-way. Writes never raise SIGPIPE on
// sockets.
absl::StatusOr<std::string> ReadExactBefore(int fd, size_t n, absl::Time deadline,
                                            int stop_fd = -1);
absl::Status WriteAllBefore(int fd, absl::string_view data, absl::Time deadline);

}  // namespace cloak::simsp

#endif  // CLOAK_COMMON_TEE_SP_PROTOCOL_H_
