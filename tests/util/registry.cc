#include "tests/util/registry.h"

#include <filesystem>
#include <fstream>

namespace cloak::testutil {

absl::StatusOr<Subprocess> StartLocalRegistry(const std::string& dir, int port,
                                              const std::string& address) {
  std::error_code ec;
  std::filesystem::create_directories(dir + "/registry", ec);
  std::ofstream(dir + "/registry.yml") << "version: 0.1\nstorage:\n  filesystem:\n"
                                       << "    rootdirectory: " << dir << "/registry\n"
                                       << "http:\n  addr: " << address << ":" << port << "\n";
  SpawnOptions options;
  options.stdout_path = options.stderr_path = dir + "/registry.log";
  return Subprocess::Spawn({"docker-registry", "serve", dir + "/registry.yml"}, options);
}

}  // namespace cloak::testutil
