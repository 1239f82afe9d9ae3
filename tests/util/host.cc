#include "tests/util/host.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <exception>
#include <fstream>
#include <iterator>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/process.h"
#include "common/temp_dir.h"

namespace cloak::testutil {
namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

}  // namespace

std::string Which(const std::string& name) {
  const char* path = std::getenv("PATH");
  const std::string dirs = std::string(path ? path : "") + ":/usr/sbin:/sbin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string cand = dirs.substr(start, end - start) + "/" + name;
    if (end > start && ::access(cand.c_str(), X_OK) == 0) return cand;
    start = end + 1;
  }
  return "";
}

bool Exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = Loopback(0);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool CanConnect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = Loopback(port);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  // libstdc++ throws from the read of a /proc file whose process ended
  // meanwhile (ESRCH): that file is then as good as empty.
  try {
    return std::string(std::istreambuf_iterator<char>(f), {});
  } catch (const std::exception&) {
    return "";
  }
}

bool PidAlive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno != ESRCH); }

std::vector<pid_t> PidsMentioning(const std::string& needle) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    const pid_t pid = std::atoi(e->d_name);
    if (pid <= 1 || pid == ::getpid()) continue;
    // Arguments are NUL-separated; a needle never spans two.
    const std::string cmdline = Slurp("/proc/" + std::to_string(pid) + "/cmdline");
    size_t start = 0;
    while (start < cmdline.size()) {
      size_t end = cmdline.find('\0', start);
      if (end == std::string::npos) end = cmdline.size();
      if (cmdline.substr(start, end - start).find(needle) != std::string::npos) {
        out.push_back(pid);
        break;
      }
      start = end + 1;
    }
  }
  ::closedir(d);
  return out;
}

void KillMentioning(const std::string& needle) {
  for (pid_t pid : PidsMentioning(needle)) ::kill(pid, SIGKILL);
  for (int i = 0; i < 20 && !PidsMentioning(needle).empty(); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
}

void UnmountUnder(const std::string& prefix) {
  std::vector<std::string> ours;
  for (absl::string_view line : absl::StrSplit(Slurp("/proc/self/mounts"), '\n')) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() > 1 && absl::StartsWith(f[1], prefix)) ours.push_back(f[1]);
  }
  for (auto it = ours.rbegin(); it != ours.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
}

int RunToFile(const std::vector<std::string>& argv, const std::string& output_path,
              absl::Duration timeout) {
  SpawnOptions o;
  o.stdout_path = o.stderr_path = output_path;
  std::filesystem::remove(output_path);
  auto p = Subprocess::Spawn(argv, o);
  if (!p.ok()) return -1;
  auto exit = p->Wait(timeout);
  if (!exit.ok()) {
    p->Stop(absl::Seconds(1));
    return -1;
  }
  return exit->exit_code;
}

long PssKib(const std::vector<pid_t>& pids) {
  long total = 0;
  for (pid_t pid : pids) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
    std::string key;
    long kib = 0;
    while (in >> key) {
      if (key == "Pss:" && in >> kib) {
        total += kib;
        break;
      }
    }
  }
  return total;
}

int Shell(const std::string& command, std::string* output) {
  CommandResult r = RunCommand({"sh", "-c", command});
  if (output != nullptr) *output = std::move(r.output);
  return r.exit_code;
}

CommandResult RunCommand(const std::vector<std::string>& argv, absl::Duration timeout) {
  CommandResult r;
  absl::StatusOr<TempDir> dir = TempDir::Create("cloak-run-");
  if (!dir.ok()) {
    r.output = dir.status().ToString();
    return r;
  }
  const absl::Time start = absl::Now();
  r.exit_code = RunToFile(argv, dir->Join("out"), timeout);
  r.took = absl::Now() - start;
  r.output = Slurp(dir->Join("out"));
  if (r.exit_code < 0) {
    r.output += absl::StrCat("\n(did not start, or ran over ", absl::FormatDuration(timeout), ")");
  }
  return r;
}

std::string RandomMarker(const std::string& prefix) {
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  char raw[16] = {};
  urandom.read(raw, sizeof(raw));
  return prefix + absl::BytesToHexString(std::string(raw, sizeof(raw)));
}

std::string FilesHoldingMarker(const std::string& marker, const std::vector<std::string>& dirs) {
  std::vector<std::string> argv = {
      "env", "MARKER=" + marker, "sh", "-c",
      "find \"$@\" -type f -size -64M 2>/dev/null | while read -r f; do "
      "zcat -f \"$f\" 2>/dev/null | grep -qF \"$MARKER\" && echo \"$f\"; done; true",
      "find-marker"};
  argv.insert(argv.end(), dirs.begin(), dirs.end());
  return RunCommand(argv, absl::Seconds(300)).output;
}

}  // namespace cloak::testutil
