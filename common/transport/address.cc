#include "common/transport/address.h"

#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace cloak::transport {
namespace {

constexpr uint32_t kVsockAny = std::numeric_limits<uint32_t>::max();

absl::Status Invalid(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid agent address \"", absl::CEscape(text), "\": ", why));
}

// Strict decimal uint32: digits only (no sign, no spaces, no hex).
bool ParseDecimalU32(absl::string_view s, uint32_t* out) {
  if (s.empty() || s.size() > 10) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return absl::SimpleAtoi(s, out);
}

absl::StatusOr<std::string> ParsePath(absl::string_view text, absl::string_view path) {
  if (path.empty()) return Invalid(text, "the socket path is empty");
  if (path.front() != '/') {
    return Invalid(text, "the socket path must be absolute (write unix:///abs/path)");
  }
  if (absl::StrContains(path, absl::string_view("\0", 1))) {
    return Invalid(text, "the socket path contains a NUL byte");
  }
  if (path.size() > kMaxUnixPathLength) {
    return Invalid(text,
                   absl::StrCat("the socket path is ", path.size(),
                                " bytes; a unix socket path holds at most ", kMaxUnixPathLength));
  }
  return std::string(path);
}

}  // namespace

std::string AgentAddress::ToString() const {
  switch (kind) {
    case Kind::kVsock:
      return absl::StrCat("vsock://", cid, ":", port);
    case Kind::kSerial:
      return absl::StrCat("serial://", path);
    case Kind::kUnix:
      return absl::StrCat("unix://", path);
  }
  return "invalid://";
}

absl::StatusOr<AgentAddress> ParseAgentAddress(absl::string_view text) {
  AgentAddress addr;
  absl::string_view rest = text;
  if (absl::ConsumePrefix(&rest, "vsock://")) {
    addr.kind = AgentAddress::Kind::kVsock;
    size_t colon = rest.find(':');
    if (colon == absl::string_view::npos) {
      return Invalid(text, "expected vsock://<cid>:<port>");
    }
    absl::string_view cid = rest.substr(0, colon);
    absl::string_view port = rest.substr(colon + 1);
    if (!ParseDecimalU32(cid, &addr.cid)) {
      return Invalid(text, absl::StrCat("the CID \"", absl::CEscape(cid),
                                        "\" is not a decimal number below 2^32"));
    }
    if (addr.cid == kVsockAny) {
      return Invalid(text, "the CID is VMADDR_CID_ANY, which only a listener may use");
    }
    if (!ParseDecimalU32(port, &addr.port)) {
      return Invalid(text, absl::StrCat("the port \"", absl::CEscape(port),
                                        "\" is not a decimal number below 2^32"));
    }
    if (addr.port == kVsockAny) {
      return Invalid(text, "the port is VMADDR_PORT_ANY, which cannot be connected to");
    }
    return addr;
  }
  if (absl::ConsumePrefix(&rest, "serial://")) {
    addr.kind = AgentAddress::Kind::kSerial;
  } else if (absl::ConsumePrefix(&rest, "unix://")) {
    addr.kind = AgentAddress::Kind::kUnix;
  } else {
    return Invalid(text,
                   "unknown scheme; use vsock://<cid>:<port>, serial://<path> or "
                   "unix://<path>");
  }
  auto path = ParsePath(text, rest);
  if (!path.ok()) return path.status();
  addr.path = *std::move(path);
  return addr;
}

}  // namespace cloak::transport
