#include "common/tee/sp_protocol.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/tee/snp_report.h"
#include "common/status_macros.h"

namespace cloak::simsp {
namespace {

uint32_t Le32(absl::string_view b, size_t off) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[off + i]);
  return v;
}
void AppendLe32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

// poll(2)'s timeout: -1 (forever) for an infinite deadline.
int MillisUntil(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return -1;
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  if (left > absl::Seconds(1000)) return 1'000'000;  // poll again later
  return static_cast<int>(absl::ToInt64Milliseconds(left) + 1);
}

}  // namespace

absl::StatusOr<std::string> EncodeRequest(absl::string_view report_data) {
  if (report_data.size() != kReportDataSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "REPORT_DATA must be ", kReportDataSize, " bytes, got ", report_data.size()));
  }
  return absl::StrCat(absl::string_view(kRequestMagic, kMagicSize), report_data);
}

absl::StatusOr<std::string> DecodeRequest(absl::string_view request) {
  if (request.size() < kMagicSize ||
      request.substr(0, kMagicSize) != absl::string_view(kRequestMagic, kMagicSize)) {
    return absl::InvalidArgumentError("simulated SP request: bad magic (want \"CSQ1\")");
  }
  if (request.size() != kRequestSize) {
    return absl::InvalidArgumentError(absl::StrCat("simulated SP request must be ", kRequestSize,
                                                   " bytes, got ", request.size()));
  }
  return std::string(request.substr(kMagicSize));
}

absl::StatusOr<std::string> EncodeResponse(const SpResponse& r) {
  uint32_t status = static_cast<uint32_t>(r.status);
  if (status > static_cast<uint32_t>(SpStatus::kInternal)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown SP status ", status));
  }
  if (r.status == SpStatus::kOk && r.report.size() != tee::kSnpReportSize) {
    return absl::InvalidArgumentError(absl::StrCat("an OK response needs a ", tee::kSnpReportSize,
                                                   "-byte report, not ", r.report.size()));
  }
  if (r.status != SpStatus::kOk && (!r.report.empty() || !r.vcek_der.empty())) {
    return absl::InvalidArgumentError("an error response carries no report and no VCEK");
  }
  if (r.vcek_der.size() > kMaxVcekSize) {
    return absl::InvalidArgumentError(absl::StrCat("VCEK of ", r.vcek_der.size(), " bytes exceeds ",
                                                   kMaxVcekSize));
  }
  absl::string_view message = r.message;
  if (message.size() > kMaxMessageSize) message = message.substr(0, kMaxMessageSize);
  std::string out(kResponseMagic, kMagicSize);
  AppendLe32(out, status);
  AppendLe32(out, static_cast<uint32_t>(r.report.size()));
  AppendLe32(out, static_cast<uint32_t>(r.vcek_der.size()));
  AppendLe32(out, static_cast<uint32_t>(message.size()));
  absl::StrAppend(&out, r.report, r.vcek_der, message);
  return out;
}

absl::StatusOr<size_t> ResponseBodySize(absl::string_view header) {
  if (header.size() < kResponseHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat("simulated SP response header must be ",
                                                   kResponseHeaderSize, " bytes, got ",
                                                   header.size()));
  }
  if (header.substr(0, kMagicSize) != absl::string_view(kResponseMagic, kMagicSize)) {
    return absl::InvalidArgumentError("simulated SP response: bad magic (want \"CSR1\")");
  }
  uint32_t status = Le32(header, 4);
  uint32_t report_len = Le32(header, 8);
  uint32_t vcek_len = Le32(header, 12);
  uint32_t message_len = Le32(header, 16);
  if (status > static_cast<uint32_t>(SpStatus::kInternal)) {
    return absl::InvalidArgumentError(absl::StrCat("simulated SP response: unknown status ", status));
  }
  if (status == 0 && report_len != tee::kSnpReportSize) {
    return absl::InvalidArgumentError(absl::StrCat("simulated SP response: OK with a report of ",
                                                   report_len, " bytes (want ", tee::kSnpReportSize,
                                                   ")"));
  }
  if (status != 0 && (report_len != 0 || vcek_len != 0)) {
    return absl::InvalidArgumentError(
        "simulated SP response: an error status with a report or VCEK");
  }
  if (vcek_len > kMaxVcekSize || message_len > kMaxMessageSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "simulated SP response: VCEK (", vcek_len, ") or message (", message_len,
        ") longer than allowed (", kMaxVcekSize, ", ", kMaxMessageSize, ")"));
  }
  return size_t{report_len} + vcek_len + message_len;
}

absl::StatusOr<SpResponse> DecodeResponse(absl::string_view response) {
  ASSIGN_OR_RETURN(size_t body, ResponseBodySize(response));
  if (response.size() != kResponseHeaderSize + body) {
    return absl::InvalidArgumentError(absl::StrCat("simulated SP response: header announces ",
                                                   kResponseHeaderSize + body, " bytes, got ",
                                                   response.size()));
  }
  SpResponse r;
  r.status = static_cast<SpStatus>(Le32(response, 4));
  size_t off = kResponseHeaderSize;
  uint32_t report_len = Le32(response, 8), vcek_len = Le32(response, 12);
  r.report = std::string(response.substr(off, report_len));
  off += report_len;
  r.vcek_der = std::string(response.substr(off, vcek_len));
  off += vcek_len;
  r.message = std::string(response.substr(off));
  return r;
}

absl::StatusOr<std::string> ReadExactBefore(int fd, size_t n, absl::Time deadline, int stop_fd) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    int ready = ::poll(fds, stop_fd >= 0 ? 2 : 1, MillisUntil(deadline));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "poll");
    }
    if (stop_fd >= 0 && (fds[1].revents & POLLIN)) return absl::CancelledError("stopping");
    if (ready == 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("timed out after ", got, " of ", n, " bytes"));
    }
    ssize_t r = ::read(fd, out.data() + got, n - got);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoError(errno, "read");
    }
    if (r == 0) {
      if (got == 0) return absl::OutOfRangeError("end of stream");
      return absl::DataLossError(absl::StrCat("end of stream after ", got, " of ", n, " bytes"));
    }
    got += static_cast<size_t>(r);
  }
  return out;
}

absl::Status WriteAllBefore(int fd, absl::string_view data, absl::Time deadline) {
  bool is_socket = true;
  while (!data.empty()) {
    pollfd pfd{fd, POLLOUT, 0};
    int ready = ::poll(&pfd, 1, MillisUntil(deadline));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "poll");
    }
    if (ready == 0) return absl::DeadlineExceededError("timed out writing");
    ssize_t w = is_socket ? ::send(fd, data.data(), data.size(), MSG_NOSIGNAL)
                          : ::write(fd, data.data(), data.size());
    if (w < 0 && errno == ENOTSOCK) {
      is_socket = false;
      continue;
    }
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoError(errno, "write");
    }
    data.remove_prefix(static_cast<size_t>(w));
  }
  return absl::OkStatus();
}

absl::StatusOr<SpResponse> RequestReport(int fd, absl::string_view report_data,
                                         absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  ASSIGN_OR_RETURN(std::string request, EncodeRequest(report_data));
  RETURN_IF_ERROR(WriteAllBefore(fd, request, deadline));
  ASSIGN_OR_RETURN(std::string header, ReadExactBefore(fd, kResponseHeaderSize, deadline));
  ASSIGN_OR_RETURN(size_t body_size, ResponseBodySize(header));
  ASSIGN_OR_RETURN(std::string body, ReadExactBefore(fd, body_size, deadline));
  ASSIGN_OR_RETURN(SpResponse response, DecodeResponse(header + body));
  switch (response.status) {
    case SpStatus::kOk:
      return response;
    case SpStatus::kBadRequest:
      return absl::InvalidArgumentError(absl::StrCat("simulated SP: ", response.message));
    default:
      return absl::InternalError(absl::StrCat("simulated SP: ", response.message));
  }
}

absl::StatusOr<SpResponse> RequestReportFromSocket(const std::string& path,
                                                   absl::string_view report_data,
                                                   absl::Duration timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("unix socket path too long: ", path));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError(errno, "socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoError(errno, "connect ", path);
  }
  return RequestReport(fd.get(), report_data, timeout);
}

}  // namespace cloak::simsp
