#include "shim/hypervisor/vm_config.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cloak::shim::hypervisor {

absl::string_view AccelName(Accel accel) {
  switch (accel) {
    case Accel::kAuto:
      return "auto";
    case Accel::kKvm:
      return "kvm";
    case Accel::kTcg:
      return "tcg";
  }
  return "?";
}

absl::string_view TeeTypeName(TeeType tee) {
  switch (tee) {
    case TeeType::kNone:
      return "none";
    case TeeType::kSnp:
      return "snp";
    case TeeType::kTdx:
      return "tdx";
  }
  return "?";
}

absl::string_view AgentChannelName(AgentChannel channel) {
  switch (channel) {
    case AgentChannel::kAuto:
      return "auto";
    case AgentChannel::kVsock:
      return "vsock";
    case AgentChannel::kSerial:
      return "serial";
  }
  return "?";
}

absl::StatusOr<Accel> ParseAccel(absl::string_view name) {
  for (Accel a : {Accel::kAuto, Accel::kKvm, Accel::kTcg}) {
    if (name == AccelName(a)) return a;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown accel \"", name, "\": use auto, kvm or tcg"));
}

absl::StatusOr<TeeType> ParseTeeType(absl::string_view name) {
  for (TeeType t : {TeeType::kNone, TeeType::kSnp, TeeType::kTdx}) {
    if (name == TeeTypeName(t)) return t;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown TEE type \"", name, "\": use none, snp or tdx"));
}

absl::StatusOr<AgentChannel> ParseAgentChannel(absl::string_view name) {
  for (AgentChannel c : {AgentChannel::kAuto, AgentChannel::kVsock, AgentChannel::kSerial}) {
    if (name == AgentChannelName(c)) return c;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown agent channel \"", name, "\": use auto, vsock or serial"));
}

}  // namespace cloak::shim::hypervisor
