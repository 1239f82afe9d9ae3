#include "shim/pod_network.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace cloak::shim {
namespace {

auto Log() { return Logger("network"); }

std::string Describe(const netlink::PodInterface& i) {
  std::vector<std::string> addrs;
  for (const netlink::IpPrefix& a : i.addresses) addrs.push_back(a.ToString());
  return absl::StrCat(i.name, " ", i.mac, " mtu ", i.mtu, " ", absl::StrJoin(addrs, ","));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PodNetworkAttachment>> PodNetworkAttachment::Attach(
    const std::string& netns_path, const std::string& sandbox_id) {
  const absl::Time start = absl::Now();
  std::unique_ptr<PodNetworkAttachment> att(new PodNetworkAttachment(netns_path, sandbox_id));
  absl::Status s = netlink::RunInNetns(netns_path, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(netlink::NetworkState state, netlink::ReadNetworkState());
    att->network_ = netlink::SelectPodNetwork(state);
    if (att->network_.interfaces.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the pod's network namespace ", netns_path,
          " has no interface with an address: did the CNI plugin run? (check containerd's log "
          "and the CNI configuration)"));
    }
    for (size_t i = 0; i < att->network_.interfaces.size(); ++i) {
      const netlink::PodInterface& pod = att->network_.interfaces[i];
      Tap tap;
      tap.name = absl::StrCat("tap", i, "_cloak");
      tap.pod_index = pod.index;
      ASSIGN_OR_RETURN(tap.fd, netlink::CreateTap(tap.name));
      ASSIGN_OR_RETURN(tap.tap_index, netlink::LinkIndex(tap.name));
      RETURN_IF_ERROR(netlink::SetLinkUp(tap.tap_index, pod.mtu));
      att->taps_.push_back(std::move(tap));
      const Tap& t = att->taps_.back();
      RETURN_IF_ERROR(netlink::AddIngressRedirect(pod.index, t.tap_index));
      RETURN_IF_ERROR(netlink::AddIngressRedirect(t.tap_index, pod.index));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) {
    att->Detach();
    return Annotate(s, absl::StrCat("sandbox ", sandbox_id, ": wire the VM into the pod network"));
  }
  for (size_t i = 0; i < att->taps_.size(); ++i) {
    Log()->info("sandbox={} pod interface {} ↔ {} (tc redirect)", sandbox_id,
                Describe(att->network_.interfaces[i]), att->taps_[i].name);
  }
  for (const netlink::PodRoute& r : att->network_.routes) {
    Log()->info("sandbox={} pod route {}{} dev {}", sandbox_id, r.destination.ToString(),
                r.gateway.empty() ? "" : " via " + r.gateway, r.device);
  }
  Log()->info("sandbox={} step=pod-network took={}", sandbox_id,
              absl::FormatDuration(absl::Now() - start));
  return att;
}

PodNetworkAttachment::~PodNetworkAttachment() { Detach(); }

void PodNetworkAttachment::Detach() {
  if (detached_) return;
  detached_ = true;
  std::vector<int> pod_links;
  for (const Tap& t : taps_) pod_links.push_back(t.pod_index);
  if (!pod_links.empty()) {
    absl::Status s = netlink::RunInNetns(netns_path_, [&]() -> absl::Status {
      for (int index : pod_links) RETURN_IF_ERROR(netlink::RemoveIngress(index));
      return absl::OkStatus();
    });
    // The namespace (or the veth) may be gone already: CNI DEL and
    // containerd remove them; the taps' filters go with the taps.
    if (!s.ok() && !absl::IsNotFound(s)) {
      Log()->warn("sandbox={} remove the tc filters of the pod interfaces: {}", sandbox_id_,
                  s.ToString());
    }
  }
  taps_.clear();  // closes the fds
}

std::vector<hypervisor::VmConfig::TapNic> PodNetworkAttachment::Taps() const {
  std::vector<hypervisor::VmConfig::TapNic> out;
  for (size_t i = 0; i < taps_.size(); ++i) {
    out.push_back({.fd = taps_[i].fd.get(), .mac = network_.interfaces[i].mac});
  }
  return out;
}

std::vector<GuestInterface> PodNetworkAttachment::GuestInterfaces() const {
  std::vector<GuestInterface> out;
  for (const netlink::PodInterface& i : network_.interfaces) {
    GuestInterface g{.name = i.name, .mac = i.mac, .addresses = {}, .mtu = i.mtu};
    for (const netlink::IpPrefix& a : i.addresses) {
      g.addresses.push_back({.address = a.address, .prefix_length = a.prefix_length});
    }
    out.push_back(std::move(g));
  }
  return out;
}

std::vector<GuestRoute> PodNetworkAttachment::GuestRoutes() const {
  std::vector<GuestRoute> out;
  for (const netlink::PodRoute& r : network_.routes) {
    out.push_back({.destination = r.destination.ToString(), .gateway = r.gateway,
                   .device = r.device});
  }
  return out;
}

std::vector<std::string> ResolvConfLines(absl::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.size() > 512 || out.size() >= 64) continue;
    for (absl::string_view key : {"nameserver", "search", "domain", "options"}) {
      if (absl::StartsWith(line, key) && line.size() > key.size() &&
          absl::ascii_isspace(line[key.size()])) {
        out.emplace_back(line);
        break;
      }
    }
  }
  return out;
}

}  // namespace cloak::shim
