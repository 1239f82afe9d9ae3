// Key broker secrets as files (docs/policy.md "kbs_files"): the resources a
// container's policy rule names are fetched by the agent after attestation
// (agent/attest/session.h), written to the guest's tmpfs (mode 0400, owned
// by the container's user) and bound read-only into the container. Nothing
// of them passes through the host.
#ifndef CLOAK_AGENT_KBS_FILES_H_
#define CLOAK_AGENT_KBS_FILES_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace cloak::agent {

// One file: the KBS resource ("repo/type/tag") and where it appears in the
// container.
struct KbsFile {
  std::string resource;
  std::string destination;
};

// The container process's uid and gid (process.user of the final spec; 0
// when absent).
struct FileOwner {
  uid_t uid = 0;
  gid_t gid = 0;
};
FileOwner ProcessOwner(const nlohmann::json& spec);

// Writes `contents[i]` (the resource of `files[i]`) to `dir`/<i> with mode
// 0400, owned by `owner`, and returns the OCI mounts that bind each one
// read-only (nosuid, nodev, noexec) at its destination. `dir` is made 0700.
// With `require_tmpfs`, `dir` must be on a tmpfs (the guest's /run), so the
// secret never reaches a disk. FailedPrecondition otherwise; errno errors
// name the file.
absl::StatusOr<std::vector<nlohmann::json>> WriteKbsFiles(const std::string& dir,
                                                          const std::vector<KbsFile>& files,
                                                          const std::vector<std::string>& contents,
                                                          FileOwner owner, bool require_tmpfs);

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_KBS_FILES_H_
