// Integration: a private containerd (Debian's /usr/bin/containerd) receives
// a TaskExit from our publisher on its ttrpc socket, and `ctr events` shows
// it. Needs root; skips itself otherwise.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "shim/ttrpc/client.h"
#include "shim/ttrpc/events_publisher.h"
#include "containerd/events/task.pb.h"
#include "gtest/gtest.h"
#include "tests/util/skip.h"

namespace cloak::ttrpc {
namespace {

// Full path of `name` in $PATH, or "".
std::string FindInPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

TEST(ttrpc_containerd, PublishedTaskExitReachesCtrEvents) {
  if (::geteuid() != 0) CLOAK_SKIP() << "needs root to run containerd";
  const std::string containerd = FindInPath("containerd");
  const std::string ctr = FindInPath("ctr");
  if (containerd.empty() || ctr.empty()) {
    CLOAK_SKIP() << "containerd or ctr not installed (apt-get install containerd)";
  }
  const absl::Time start = absl::Now();

  // Short base: unix socket paths are limited to 108 bytes. Declared first
  // so it is removed after the processes below are stopped.
  auto dir = TempDir::Create("ck-", "/tmp");
  ASSERT_TRUE(dir.ok()) << dir.status();
  const std::string sock = dir->Join("c.sock");
  const std::string ttrpc_sock = sock + ".ttrpc";
  const std::string config = dir->Join("config.toml");
  {
    std::ofstream out(config);
    out << "version = 2\n"
        << "root = \"" << dir->Join("root") << "\"\n"
        << "state = \"" << dir->Join("state") << "\"\n"
        << "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
        << "[grpc]\n  address = \"" << sock << "\"\n"
        << "[ttrpc]\n  address = \"" << ttrpc_sock << "\"\n"
        << "[debug]\n  address = \"\"\n"
        << "[metrics]\n  address = \"\"\n"
        << "[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"" << dir->Join("opt")
        << "\"\n";
  }
  const std::string containerd_log = dir->Join("containerd.log");
  SpawnOptions copts;
  copts.stdout_path = containerd_log;
  copts.stderr_path = containerd_log;
  auto daemon = Subprocess::Spawn({containerd, "--config", config}, copts);
  ASSERT_TRUE(daemon.ok()) << daemon.status();

  // Wait for the ttrpc socket to accept connections.
  bool up = false;
  for (absl::Time deadline = absl::Now() + absl::Seconds(30); absl::Now() < deadline;) {
    if (daemon->Poll().has_value()) break;
    if (Client::Connect(ttrpc_sock).ok()) {
      up = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(up) << "containerd did not come up; log:\n"
                  << cloak::ReadFile(containerd_log).value_or("");
  const absl::Duration startup = absl::Now() - start;

  const std::string events_out = dir->Join("events.out");
  SpawnOptions eopts;
  eopts.stdout_path = events_out;
  eopts.stderr_path = dir->Join("events.err");
  auto events = Subprocess::Spawn({ctr, "--address", sock, "events"}, eopts);
  ASSERT_TRUE(events.ok()) << events.status();

  EventsPublisherOptions popts;
  popts.address = ttrpc_sock;
  popts.namespace_name = "default";
  auto publisher = EventsPublisher::Create(popts);
  ASSERT_TRUE(publisher.ok()) << publisher.status();

  containerd::events::TaskExit exit;
  exit.set_container_id("cloak-ttrpc-it");
  exit.set_id("cloak-ttrpc-it");
  exit.set_pid(4242);
  exit.set_exit_status(7);
  exit.mutable_exited_at()->set_seconds(absl::ToUnixSeconds(absl::Now()));

  // ctr gives no sign that it has subscribed, so publish until it shows.
  std::string seen;
  for (absl::Time deadline = absl::Now() + absl::Seconds(20); absl::Now() < deadline;) {
    absl::Status s = (*publisher)->Publish("/tasks/exit", exit);
    ASSERT_TRUE(s.ok()) << s << "\ncontainerd log:\n"
                        << cloak::ReadFile(containerd_log).value_or("");
    absl::SleepFor(absl::Milliseconds(200));
    seen = cloak::ReadFile(events_out).value_or("");
    if (seen.find("/tasks/exit") != std::string::npos) break;
  }
  EXPECT_NE(seen.find("/tasks/exit"), std::string::npos)
      << "ctr events printed:\n" << seen << "\nstderr:\n"
      << cloak::ReadFile(dir->Join("events.err")).value_or("")
      << "\ncontainerd log:\n" << cloak::ReadFile(containerd_log).value_or("");
  EXPECT_NE(seen.find("cloak-ttrpc-it"), std::string::npos) << seen;
  EXPECT_NE(seen.find("default"), std::string::npos) << seen;
  std::cerr << "containerd up in " << absl::FormatDuration(startup) << ", event seen after "
            << absl::FormatDuration(absl::Now() - start) << "; ctr printed: " << seen;

  (*publisher)->Close();
  events->Stop(absl::Seconds(2));
  auto ended = daemon->Stop(absl::Seconds(10));
  (void)ended;
}

}  // namespace
}  // namespace cloak::ttrpc
