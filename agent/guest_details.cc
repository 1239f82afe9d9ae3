#include "agent/guest_details.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "agent/cgroup_stats.h"
#include "common/files.h"
#include "common/version.h"

namespace cloak::agent {

const char* AgentVersion() { return VersionString(); }

std::string DetectTee(const std::string& root) {
  if (::access((root + "/dev/sev-guest").c_str(), F_OK) == 0) return "snp";
  if (::access((root + "/dev/tdx_guest").c_str(), F_OK) == 0) return "tdx";
  // configfs-tsm: each report directory names its provider.
  std::string reports = root + "/sys/kernel/config/tsm/report";
  std::string tee = "none";
  if (DIR* d = ::opendir(reports.c_str())) {
    std::string probe = reports + "/cloak-probe";
    if (::mkdir(probe.c_str(), 0700) == 0 || errno == EEXIST) {
      absl::StatusOr<std::string> provider = ReadFile(probe + "/provider", 256, Symlinks::kRefuse);
      if (provider.ok()) {
        if (absl::StrContains(*provider, "sev")) tee = "snp";
        if (absl::StrContains(*provider, "tdx")) tee = "tdx";
      }
      ::rmdir(probe.c_str());
    }
    ::closedir(d);
  }
  return tee;
}

}  // namespace cloak::agent
