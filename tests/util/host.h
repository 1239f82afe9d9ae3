// Helpers the integration and e2e tests share for the host they run on:
// finding tools, loopback ports, files, and processes by command line.
#ifndef CLOAK_TESTS_UTIL_HOST_H_
#define CLOAK_TESTS_UTIL_HOST_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace cloak::testutil {

// Absolute path of `name` on $PATH (or /usr/sbin, /sbin), "" if absent.
std::string Which(const std::string& name);
bool Exists(const std::string& path);
// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();
// Whether something accepts TCP connections on 127.0.0.1:`port`.
bool CanConnect(int port);
// The whole file, "" if it cannot be read.
std::string Slurp(const std::string& path);
bool PidAlive(pid_t pid);
// Pids (not this process, not init) whose command line mentions `needle`.
std::vector<pid_t> PidsMentioning(const std::string& needle);
// SIGKILLs those processes and waits up to 2 s for them to go.
void KillMentioning(const std::string& needle);
// Detaches every mount at or below `prefix` (deepest first).
void UnmountUnder(const std::string& prefix);
// Runs argv to completion with stdout and stderr in `output_path`
// (replaced); its exit code, or -1 if it could not start or overran
// `timeout` (then it is stopped).
int RunToFile(const std::vector<std::string>& argv, const std::string& output_path,
              absl::Duration timeout);
// Sum of the processes' proportional set size (smaps_rollup), KiB.
long PssKib(const std::vector<pid_t>& pids);
// Runs `command` with sh -c; its exit status (-1 if it could not run), and
// its stdout and stderr together in `output` when given.
int Shell(const std::string& command, std::string* output = nullptr);

struct CommandResult {
  int exit_code = -1;  // -1: could not start, or still running at the deadline (then killed)
  std::string output;  // stdout and stderr together
  absl::Duration took;
};
// Runs argv (looked up in PATH) to completion or `timeout`.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         absl::Duration timeout = absl::Seconds(120));

// "<prefix><32 random hex digits>", a string no file holds by chance.
std::string RandomMarker(const std::string& prefix);
// Regular files below `dirs` (under 64 MiB) whose bytes, plain or
// gunzipped, hold `marker`: one path per line, "" for none. Finds a leaked
// layer blob as well as an unpacked file.
std::string FilesHoldingMarker(const std::string& marker, const std::vector<std::string>& dirs);

}  // namespace cloak::testutil

#endif  // CLOAK_TESTS_UTIL_HOST_H_
