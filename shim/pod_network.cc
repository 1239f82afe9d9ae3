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
    const std::string& netns_path, const std::string& sandbox_id, TapMode mode) {
  const absl::Time start = absl::Now();
  std::unique_ptr<PodNetworkAttachment> att(
      new PodNetworkAttachment(netns_path, sandbox_id, mode));
  absl::Status s = netlink::RunInNetns(netns_path, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(netlink::NetworkState state, netlink::ReadNetworkState());
    att->network_ = netlink::SelectPodNetwork(state);
    if (att->network_.interfaces.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the pod's network namespace ", netns_path,
          " has no interface with an address: did the CNI plugin run? (check containerd's log "
          "and the CNI configuration)"));
    }
    if (mode == TapMode::kByName) return absl::OkStatus();
    for (size_t i = 0; i < att->network_.interfaces.size(); ++i) {
      const netlink::PodInterface& pod = att->network_.interfaces[i];
      Tap tap;
      tap.name = absl::StrCat("tap", i, "_cloak");
      tap.pod_index = pod.index;
      ASSIGN_OR_RETURN(tap.fd, netlink::CreateTap(tap.name));
      ASSIGN_OR_RETURN(tap.tap_index, netlink::LinkIndex(tap.name));
      RETURN_IF_ERROR(netlink::SetLinkUp(tap.tap_index, pod.mtu));
      tap.in_pod = true;
      att->taps_.push_back(std::move(tap));
      const Tap& t = att->taps_.back();
      RETURN_IF_ERROR(netlink::AddIngressRedirect(pod.index, t.tap_index));
      RETURN_IF_ERROR(netlink::AddIngressRedirect(t.tap_index, pod.index));
    }
    return absl::OkStatus();
  });
  if (s.ok() && mode == TapMode::kByName) {
    // In the host's namespace, where libvirt opens taps by name.
    for (size_t i = 0; i < att->network_.interfaces.size() && s.ok(); ++i) {
      Tap tap;
      tap.name = HostTapName(sandbox_id, i);
      tap.pod_index = att->network_.interfaces[i].index;
      (void)netlink::DeleteLink(tap.name);  // a leftover of a killed shim
      s = netlink::CreatePersistentTap(tap.name);
      if (s.ok()) att->taps_.push_back(std::move(tap));
    }
  }
  if (!s.ok()) {
    att->Detach();
    return Annotate(s, absl::StrCat("sandbox ", sandbox_id, ": wire the VM into the pod network"));
  }
  for (size_t i = 0; i < att->taps_.size(); ++i) {
    Log()->info("sandbox={} pod interface {} ↔ {} ({})", sandbox_id,
                Describe(att->network_.interfaces[i]), att->taps_[i].name,
                mode == TapMode::kFd ? "tc redirect" : "tap in the host namespace until launch");
  }
  for (const netlink::PodRoute& r : att->network_.routes) {
    Log()->info("sandbox={} pod route {}{} dev {}", sandbox_id, r.destination.ToString(),
                r.gateway.empty() ? "" : " via " + r.gateway, r.device);
  }
  Log()->info("sandbox={} step=pod-network took={}", sandbox_id,
              absl::FormatDuration(absl::Now() - start));
  return att;
}

absl::Status PodNetworkAttachment::MoveTapsIntoPod() {
  if (mode_ != TapMode::kByName) return absl::OkStatus();
  const absl::Time start = absl::Now();
  for (size_t i = 0; i < taps_.size(); ++i) {
    Tap& t = taps_[i];
    if (t.in_pod) continue;
    ASSIGN_OR_RETURN(int host_index, netlink::LinkIndex(t.name));
    RETURN_IF_ERROR(netlink::MoveLinkToNetns(host_index, netns_path_));
    t.in_pod = true;
    const uint32_t mtu = network_.interfaces[i].mtu;
    absl::Status wired = netlink::RunInNetns(netns_path_, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(t.tap_index, netlink::LinkIndex(t.name));
      RETURN_IF_ERROR(netlink::SetLinkUp(t.tap_index, mtu));
      RETURN_IF_ERROR(netlink::AddIngressRedirect(t.pod_index, t.tap_index));
      return netlink::AddIngressRedirect(t.tap_index, t.pod_index);
    });
    if (!wired.ok()) return wired;
    Log()->info("sandbox={} {} moved into the pod namespace, ↔ {} (tc redirect)", sandbox_id_,
                t.name, network_.interfaces[i].name);
  }
  Log()->info("sandbox={} step=pod-network-wire took={}", sandbox_id_,
              absl::FormatDuration(absl::Now() - start));
  return absl::OkStatus();
}

PodNetworkAttachment::~PodNetworkAttachment() { Detach(); }

void PodNetworkAttachment::Detach() {
  if (detached_) return;
  detached_ = true;
  std::vector<int> pod_links;
  std::vector<std::string> pod_taps;
  for (const Tap& t : taps_) {
    if (!t.in_pod) {
      // Still in the host's namespace (the VM never launched).
      if (mode_ == TapMode::kByName) (void)netlink::DeleteLink(t.name);
      continue;
    }
    pod_links.push_back(t.pod_index);
    if (mode_ == TapMode::kByName) pod_taps.push_back(t.name);
  }
  if (!pod_links.empty()) {
    absl::Status s = netlink::RunInNetns(netns_path_, [&]() -> absl::Status {
      for (const std::string& name : pod_taps) (void)netlink::DeleteLink(name);
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
    out.push_back({.fd = taps_[i].fd ? taps_[i].fd.get() : -1,
                   .name = taps_[i].name,
                   .mac = network_.interfaces[i].mac});
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

std::string HostTapName(const std::string& sandbox_id, size_t index) {
  // FNV-1a.
  uint32_t h = 2166136261u;
  for (unsigned char c : sandbox_id) {
    h ^= c;
    h *= 16777619u;
  }
  return absl::StrCat("cl", absl::Hex(h, absl::kZeroPad8), "t", index);
}

void RemoveHostTaps(const std::string& sandbox_id) {
  for (size_t i = 0; i < 16; ++i) {
    absl::Status s = netlink::DeleteLink(HostTapName(sandbox_id, i));
    if (absl::IsNotFound(s)) break;
  }
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
