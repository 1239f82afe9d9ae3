#include "cli/cloak/host_check.h"

// toml++ throws on a parse error (TOML_EXCEPTIONS=1); caught below.
#include <toml++/toml.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/cloak/containerd_config.h"
#include "shim/hypervisor/libvirt/libvirt_connection.h"
#include "common/files.h"
#include "common/process.h"

namespace cloak::cli {
namespace {

namespace hv = ::cloak::shim::hypervisor;

constexpr absl::Duration kCommandTimeout = absl::Seconds(10);

std::string Under(const std::string& root, absl::string_view path) {
  if (root.empty() || root == "/") return std::string(path);
  return absl::StrCat(root, path);
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// The file's text, or nothing when it cannot be read (a host without it).
std::optional<std::string> ReadIfPresent(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return std::nullopt;
  return *std::move(text);
}

// The CPU's flags and vendor from the first processor of /proc/cpuinfo.
void ParseCpuinfo(absl::string_view text, HostFacts& facts) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, absl::MaxSplits(':', 1));
    absl::string_view key = absl::StripAsciiWhitespace(kv.first);
    absl::string_view value = absl::StripAsciiWhitespace(kv.second);
    if (key == "vendor_id" && facts.cpu_vendor.empty()) facts.cpu_vendor = std::string(value);
    if (key == "flags" && facts.cpu_flags.empty()) {
      for (absl::string_view f : absl::StrSplit(value, ' ', absl::SkipEmpty())) {
        facts.cpu_flags.emplace(f);
      }
    }
  }
}

void ReadContainerdConfig(const std::string& path, ContainerdFacts& out) {
  std::optional<std::string> text = ReadIfPresent(path);
  out.config_exists = text.has_value();
  if (!text.has_value()) return;
  toml::table root;
  try {
    root = toml::parse(*text, path);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    out.config_error = absl::StrCat("not valid TOML (", where.str(), "): ", std::string(e.description()));
    return;
  }
  // Version 2 (containerd 1.x) and version 3 (2.x) name the CRI plugin apart.
  for (const char* plugin : {kCriPlugin, "io.containerd.cri.v1.runtime"}) {
    const toml::table* runtimes =
        root["plugins"][plugin]["containerd"]["runtimes"].as_table();
    if (runtimes == nullptr) continue;
    for (const auto& [name, node] : *runtimes) {
      const toml::table* t = node.as_table();
      std::string type = t != nullptr ? (*t)["runtime_type"].value_or(std::string()) : "";
      out.runtimes[std::string(name.str())] = type;
    }
  }
  out.snapshotter_address =
      root["proxy_plugins"][kSnapshotterName]["address"].value_or(std::string());
}

std::string YesNo(bool b) { return b ? "yes" : "no"; }

const std::vector<std::pair<std::string, hv::TeeType>>& RuntimeClasses() {
  static const auto* classes = new std::vector<std::pair<std::string, hv::TeeType>>{
      {"cloak-dev", hv::TeeType::kNone},
      {"cloak-snp", hv::TeeType::kSnp},
      {"cloak-tdx", hv::TeeType::kTdx},
  };
  return *classes;
}

// CheckTeeSupport's verdict plus what the CPU flags say.
absl::Status TeeVerdict(hv::TeeType tee, const HostFacts& facts) {
  absl::Status status = hv::CheckTeeSupport(tee, facts.caps);
  const char* flag = tee == hv::TeeType::kSnp ? "sev_snp" : "tdx_host_platform";
  if (facts.cpu_flags.empty() || facts.cpu_flags.contains(flag)) return status;
  std::string missing = absl::StrCat("a CPU that reports the \"", flag,
                                     "\" flag in /proc/cpuinfo (this one is ",
                                     facts.cpu_vendor.empty() ? "unknown" : facts.cpu_vendor,
                                     " without it)");
  if (status.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("tee=", hv::TeeTypeName(tee), " needs ", missing));
  }
  return absl::FailedPreconditionError(absl::StrCat(status.message(), "; and ", missing));
}

}  // namespace

HostFacts ProbeHostFacts(const CheckOptions& options) {
  HostFacts facts;
  hv::ProbeOptions probe;
  probe.root = options.root;
  probe.qemu_path = options.qemu_path;
  if (options.run) probe.run_qemu = options.run;
  facts.caps = hv::ProbeHost(probe);
  if (std::optional<std::string> cpuinfo = ReadIfPresent(Under(options.root, "/proc/cpuinfo"))) {
    ParseCpuinfo(*cpuinfo, facts);
  }
  facts.kvm_amd_loaded = Exists(Under(options.root, "/sys/module/kvm_amd"));
  facts.kvm_intel_loaded = Exists(Under(options.root, "/sys/module/kvm_intel"));

  if (!options.libvirt_uri.empty()) {
    facts.libvirt = options.probe_libvirt ? options.probe_libvirt(options.libvirt_uri)
                                          : hv::ProbeLibvirt(options.libvirt_uri);
  }

  ContainerdFacts& c = facts.containerd;
  CommandRunner run = options.run ? options.run : [](const std::vector<std::string>& argv) {
    return RunForOutput(argv, kCommandTimeout);
  };
  absl::StatusOr<std::string> version = run({options.containerd_path, "--version"});
  if (!version.ok()) {
    c.version = std::string(version.status().message());
  } else {
    absl::StatusOr<ContainerdVersion> v = ParseContainerdVersionOutput(*version);
    if (v.ok()) {
      c.found = true;
      c.major = v->major;
      c.minor = v->minor;
      std::vector<absl::string_view> words =
          absl::StrSplit(*version, absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
      for (absl::string_view w : words) {
        if (!w.empty() && (absl::ascii_isdigit(w[0]) || (w[0] == 'v' && w.size() > 1 &&
                                                         absl::ascii_isdigit(w[1])))) {
          c.version = std::string(w);
          break;
        }
      }
    } else {
      c.version = std::string(v.status().message());
    }
  }
  c.config_path = options.containerd_config;
  ReadContainerdConfig(Under(options.root, options.containerd_config), c);
  return facts;
}

bool CheckReport::AnyUsable() const {
  for (const RuntimeVerdict& v : verdicts) {
    if (v.usable) return true;
  }
  return false;
}

namespace {

// The libvirt driver: reachable, versions, domain types, launch-security
// types, and what each RuntimeClass would get through it.
Finding LibvirtFinding(const HostFacts& facts) {
  const hv::LibvirtCapabilities& lv = facts.libvirt;
  if (!lv.reachable) {
    return {"libvirt", "unreachable",
            absl::StrCat(lv.error, " (only needed for hypervisor.driver = \"libvirt\")")};
  }
  auto list = [](const std::vector<std::string>& v) {
    return v.empty() ? std::string("none") : absl::StrJoin(v, ",");
  };
  std::string detail = absl::StrCat(
      lv.uri, ": libvirt ", hv::QemuVersionString(lv.version), " with QEMU ",
      hv::QemuVersionString(lv.hypervisor_version), "; domain types kvm=", YesNo(lv.kvm.available),
      " qemu(TCG)=", YesNo(lv.tcg.available), "; launch security: ",
      list(lv.kvm.launch_security));
  for (const auto& [name, tee] : RuntimeClasses()) {
    hv::VmConfig vm;
    vm.tee = tee;
    absl::Status s = hv::CheckLibvirtTeeSupport(tee, lv);
    absl::StatusOr<hv::AccelChoice> accel = hv::ResolveLibvirtAccel(vm, lv, facts.caps);
    if (s.ok() && !accel.ok()) s = accel.status();
    absl::StrAppend(&detail, "; ", name, " through libvirt: ",
                    s.ok() ? absl::StrCat("yes (domain type ",
                                          accel->accel == hv::Accel::kKvm ? "kvm" : "qemu", ")")
                           : absl::StrCat("no: ", s.message()));
  }
  return {"libvirt", hv::QemuVersionString(lv.version), detail};
}

}  // namespace

CheckReport Evaluate(const HostFacts& facts) {
  CheckReport report;
  const hv::HostCapabilities& caps = facts.caps;

  hv::VmConfig plain;  // accel auto, channel auto, no TEE
  absl::StatusOr<hv::AccelChoice> accel = hv::ResolveAccel(plain, caps);
  std::string kvm_state = !caps.kvm_present ? "absent"
                          : caps.kvm_pvm     ? "pvm"
                          : caps.kvm_openable ? "yes"
                                              : "not-openable";
  std::string accel_reason =
      accel.ok() ? absl::StrCat(accel->reason, accel->accel == hv::Accel::kTcg
                                                   ? " (software emulation: a pod's VM boots in "
                                                     "seconds, not milliseconds)"
                                                   : "")
                 : std::string(accel.status().message());
  report.findings.push_back({"kvm", kvm_state, accel_reason});

  for (const auto& [name, tee] : RuntimeClasses()) {
    if (tee == hv::TeeType::kNone) continue;
    absl::Status s = TeeVerdict(tee, facts);
    const bool snp = tee == hv::TeeType::kSnp;
    std::string detail;
    if (s.ok()) {
      detail = snp ? "kvm_amd has sev_snp=Y, /dev/sev exists, QEMU has sev-snp-guest"
                   : "kvm_intel has tdx=Y, QEMU has tdx-guest";
    } else {
      detail = std::string(s.message());
    }
    report.findings.push_back({snp ? "sev-snp" : "tdx", YesNo(s.ok()), detail});
  }

  absl::StatusOr<hv::ChannelChoice> channel = hv::ResolveChannel(plain, caps);
  report.findings.push_back(
      {"vhost-vsock", YesNo(caps.vhost_vsock),
       channel.ok() ? channel->reason : std::string(channel.status().message())});

  const hv::QemuInfo& q = caps.qemu;
  if (q.found) {
    report.findings.push_back(
        {"qemu", hv::QemuVersionString(q.version),
         absl::StrCat(q.path, " (", q.version_line, "); objects: sev-guest=", YesNo(q.has_sev_guest),
                      " sev-snp-guest=", YesNo(q.has_sev_snp_guest),
                      " tdx-guest=", YesNo(q.has_tdx_guest))});
  } else {
    report.findings.push_back(
        {"qemu", "missing", absl::StrCat(q.error, "; install qemu-system-x86 (Debian)")});
  }

  if (!facts.libvirt.uri.empty()) report.findings.push_back(LibvirtFinding(facts));

  const ContainerdFacts& c = facts.containerd;
  std::string cd_detail;
  if (!c.found) {
    cd_detail = absl::StrCat("not usable: ", c.version);
  } else {
    cd_detail = absl::StrCat("version ", c.version, "; ");
    if (!c.config_exists) {
      absl::StrAppend(&cd_detail, c.config_path,
                      " does not exist (containerd's defaults; `cloak containerd-config --config ",
                      c.config_path, "` writes one)");
    } else if (!c.config_error.empty()) {
      absl::StrAppend(&cd_detail, c.config_path, ": ", c.config_error);
    } else {
      std::vector<std::string> ours;
      for (const auto& [h, type] : c.runtimes) {
        if (type == kCloakRuntimeType) ours.push_back(h);
      }
      absl::StrAppend(&cd_detail, c.config_path, " has ",
                      ours.empty() ? "no Cloak runtimes" : absl::StrCat("Cloak runtimes ",
                                                                        absl::StrJoin(ours, ", ")),
                      c.snapshotter_address.empty()
                          ? "; no cloak snapshotter"
                          : absl::StrCat("; snapshotter cloak at ", c.snapshotter_address));
    }
    if (c.major == 1 && c.minor < 7) {
      absl::StrAppend(&cd_detail,
                      "; containerd 1.6 uses one snapshotter for every pod (1.7+ binds it to the "
                      "Cloak handlers only)");
    }
  }
  report.findings.push_back({"containerd", c.found ? c.version : "missing", cd_detail});

  for (const auto& [name, tee] : RuntimeClasses()) {
    RuntimeVerdict v;
    v.runtime_class = name;
    auto it = c.runtimes.find(name);
    v.configured = it != c.runtimes.end() && it->second == kCloakRuntimeType;
    if (tee == hv::TeeType::kNone) {
      v.usable = q.found;
      v.reason = q.found ? absl::StrCat("a plain VM (no TEE; dev evidence only) with QEMU ",
                                        hv::QemuVersionString(q.version), "; ", accel_reason)
                         : absl::StrCat("no usable QEMU: ", q.error,
                                        "; install qemu-system-x86");
    } else {
      absl::Status s = TeeVerdict(tee, facts);
      v.usable = s.ok();
      v.reason = s.ok() ? absl::StrCat("the host and QEMU ", hv::QemuVersionString(q.version),
                                       " support it")
                        : std::string(s.message());
    }
    report.node_labels[absl::StrCat(kNodeLabelPrefix, name)] = v.usable ? "true" : "false";
    report.verdicts.push_back(std::move(v));
  }
  return report;
}

nlohmann::json ReportToJson(const CheckReport& report) {
  nlohmann::json j;
  for (const Finding& f : report.findings) {
    j["host"][f.name] = {{"state", f.state}, {"detail", f.detail}};
  }
  j["runtime_classes"] = nlohmann::json::array();
  for (const RuntimeVerdict& v : report.verdicts) {
    j["runtime_classes"].push_back({{"name", v.runtime_class},
                                    {"usable", v.usable},
                                    {"configured", v.configured},
                                    {"reason", v.reason}});
  }
  j["node_labels"] = report.node_labels;
  return j;
}

std::string ReportToText(const CheckReport& report) {
  std::string out;
  for (const Finding& f : report.findings) {
    absl::StrAppendFormat(&out, "%-12s %-10s %s\n", f.name, f.state, f.detail);
  }
  out += "\n";
  absl::StrAppendFormat(&out, "%-12s %-7s %-11s %s\n", "RuntimeClass", "usable", "configured",
                        "reason");
  for (const RuntimeVerdict& v : report.verdicts) {
    absl::StrAppendFormat(&out, "%-12s %-7s %-11s %s\n", v.runtime_class, YesNo(v.usable),
                          YesNo(v.configured), v.reason);
  }
  return out;
}

}  // namespace cloak::cli
