// cloak-kbs subcommands (docs/kbs.md): `serve` and `admin ...`.
#ifndef CLOAK_KBS_CLI_H_
#define CLOAK_KBS_CLI_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kbs/verify/snp.h"

namespace cloak::kbs {

// "bl=3,tee=0,snp=8,ucode=115[,fmc=1]" → SnpTcb. InvalidArgument otherwise.
absl::StatusOr<SnpTcb> ParseSnpTcb(absl::string_view text);

// Runs cloak-kbs with argv; returns the process exit code (0 ok, 1 failure,
// 2 usage).
int RunKbsCli(int argc, char** argv);

}  // namespace cloak::kbs

#endif  // CLOAK_KBS_CLI_H_
