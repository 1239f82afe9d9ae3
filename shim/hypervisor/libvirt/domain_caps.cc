#include "shim/hypervisor/libvirt/domain_caps.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cloak::shim::hypervisor {
namespace {

struct DocFree {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
struct XPathContextFree {
  void operator()(xmlXPathContext* c) const { xmlXPathFreeContext(c); }
};
struct XPathObjectFree {
  void operator()(xmlXPathObject* o) const { xmlXPathFreeObject(o); }
};

std::string NodeText(xmlNode* node) {
  xmlChar* text = xmlNodeGetContent(node);
  if (text == nullptr) return "";
  std::string out(reinterpret_cast<const char*>(text));
  xmlFree(text);
  return out;
}

// Text of every node `path` selects.
std::vector<std::string> Select(xmlXPathContext* ctx, const char* path) {
  std::vector<std::string> out;
  std::unique_ptr<xmlXPathObject, XPathObjectFree> result(
      xmlXPathEvalExpression(reinterpret_cast<const xmlChar*>(path), ctx));
  if (result == nullptr || result->nodesetval == nullptr) return out;
  for (int i = 0; i < result->nodesetval->nodeNr; ++i) {
    out.push_back(NodeText(result->nodesetval->nodeTab[i]));
  }
  return out;
}

std::string First(xmlXPathContext* ctx, const char* path) {
  std::vector<std::string> all = Select(ctx, path);
  return all.empty() ? "" : all.front();
}

std::string VersionString(const LibvirtVersion& v) { return QemuVersionString(v); }

std::string ListOrNone(const std::vector<std::string>& items) {
  return items.empty() ? "none" : absl::StrJoin(items, ",");
}

bool Has(const std::vector<std::string>& items, absl::string_view item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

}  // namespace

LibvirtVersion LibvirtVersionFromNumber(unsigned long number) {
  return LibvirtVersion{static_cast<int>(number / 1000000),
                        static_cast<int>((number / 1000) % 1000), static_cast<int>(number % 1000)};
}

absl::StatusOr<DomainCapabilities> ParseDomainCapabilities(absl::string_view xml) {
  std::unique_ptr<xmlDoc, DocFree> doc(
      xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "domcapabilities.xml", nullptr,
                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
  if (doc == nullptr) {
    return absl::InvalidArgumentError("libvirt's domain capabilities are not well-formed XML");
  }
  xmlNode* root = xmlDocGetRootElement(doc.get());
  if (root == nullptr || xmlStrcmp(root->name, BAD_CAST "domainCapabilities") != 0) {
    return absl::InvalidArgumentError(
        "libvirt's domain capabilities have no <domainCapabilities> root element");
  }
  std::unique_ptr<xmlXPathContext, XPathContextFree> ctx(xmlXPathNewContext(doc.get()));
  if (ctx == nullptr) return absl::ResourceExhaustedError("libxml2: no XPath context");
  DomainCapabilities caps;
  caps.available = true;
  caps.emulator = First(ctx.get(), "/domainCapabilities/path");
  caps.machine = First(ctx.get(), "/domainCapabilities/machine");
  caps.firmware = Select(ctx.get(), "/domainCapabilities/os/enum[@name='firmware']/value");
  std::vector<std::string> ls = Select(
      ctx.get(),
      "/domainCapabilities/features/launchSecurity[@supported='yes']/enum[@name='sectype']/value");
  if (!Select(ctx.get(), "/domainCapabilities/features/sev[@supported='yes']").empty()) {
    ls.push_back("sev");
  }
  if (!Select(ctx.get(), "/domainCapabilities/features/s390-pv[@supported='yes']").empty()) {
    ls.push_back("s390-pv");
  }
  std::sort(ls.begin(), ls.end());
  ls.erase(std::unique(ls.begin(), ls.end()), ls.end());
  caps.launch_security = std::move(ls);
  return caps;
}

std::string LibvirtCapabilities::Summary() const {
  if (!reachable) return absl::StrCat(uri, " unreachable: ", error);
  return absl::StrCat(uri, " libvirt ", VersionString(version), " qemu ",
                      QemuVersionString(hypervisor_version), " kvm=", kvm.available ? "yes" : "no",
                      " tcg=", tcg.available ? "yes" : "no",
                      " launch-security=", ListOrNone(kvm.launch_security));
}

absl::StatusOr<AccelChoice> ResolveLibvirtAccel(const VmConfig& config,
                                                const LibvirtCapabilities& libvirt,
                                                const HostCapabilities& host) {
  if (!libvirt.reachable) {
    return absl::FailedPreconditionError(absl::StrCat(
        "libvirt at ", libvirt.uri, " is not reachable: ", libvirt.error,
        ": start libvirtd (and virtlogd) or set hypervisor.libvirt_uri"));
  }
  const bool kvm_ok = libvirt.kvm.available && host.KvmUsable();
  auto why_not_kvm = [&]() -> std::string {
    if (!libvirt.kvm.available) {
      return absl::StrCat("libvirt at ", libvirt.uri, " offers no kvm domains (",
                          libvirt.kvm.error, ")");
    }
    return host.kvm_pvm ? "this host's KVM is kvm_pvm (nested, no VT-x/SVM): stock guests hang"
                        : "/dev/kvm cannot be opened";
  };
  if (config.tee != TeeType::kNone || config.accel == Accel::kKvm) {
    if (!kvm_ok) {
      return absl::FailedPreconditionError(absl::StrCat(
          config.tee != TeeType::kNone ? absl::StrCat("tee=", TeeTypeName(config.tee))
                                       : std::string("accel=kvm"),
          " needs a kvm domain, but ", why_not_kvm()));
    }
    return AccelChoice{Accel::kKvm, "domain type kvm as configured"};
  }
  if (config.accel == Accel::kTcg || !kvm_ok) {
    if (!libvirt.tcg.available) {
      return absl::FailedPreconditionError(absl::StrCat(
          "libvirt at ", libvirt.uri, " offers neither kvm nor qemu (TCG) domains: ",
          libvirt.tcg.error));
    }
    return AccelChoice{Accel::kTcg, config.accel == Accel::kTcg
                                        ? std::string("domain type qemu (TCG) as configured")
                                        : absl::StrCat(why_not_kvm(), "; domain type qemu (TCG)")};
  }
  return AccelChoice{Accel::kKvm, "libvirt offers kvm domains and KVM runs stock guests"};
}

absl::Status CheckLibvirtTeeSupport(TeeType tee, const LibvirtCapabilities& libvirt) {
  if (tee == TeeType::kNone) return absl::OkStatus();
  const bool snp = tee == TeeType::kSnp;
  const absl::string_view type = snp ? "sev-snp" : "tdx";
  const LibvirtVersion min = snp ? kMinLibvirtForSnp : kMinLibvirtForTdx;
  const std::string need =
      absl::StrCat("tee=", TeeTypeName(tee), " through libvirt needs libvirt ≥ ",
                   VersionString(min), " (<launchSecurity type='", type, "'>) with ", type,
                   " in its kvm domain capabilities");
  if (!libvirt.reachable) {
    return absl::FailedPreconditionError(
        absl::StrCat(need, "; libvirt at ", libvirt.uri, " is not reachable: ", libvirt.error));
  }
  std::vector<std::string> missing;
  if (libvirt.version < min) {
    missing.push_back(absl::StrCat("runs libvirt ", VersionString(libvirt.version),
                                   ", whose domain XML has no launchSecurity type '", type, "'"));
  }
  if (!libvirt.kvm.available) {
    missing.push_back(absl::StrCat("offers no kvm domains (", libvirt.kvm.error, ")"));
  } else if (!Has(libvirt.kvm.launch_security, type)) {
    missing.push_back(absl::StrCat("lists launch security: ",
                                   ListOrNone(libvirt.kvm.launch_security),
                                   " in its kvm domain capabilities (QEMU ",
                                   QemuVersionString(libvirt.hypervisor_version), ")"));
  }
  if (missing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(need, "; ", libvirt.uri, " ", absl::StrJoin(missing, ", and ")));
}

}  // namespace cloak::shim::hypervisor
