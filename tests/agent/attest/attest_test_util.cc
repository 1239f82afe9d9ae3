#include "tests/agent/attest/attest_test_util.h"

#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace cloak::agent::attest::testing {

std::string ReadFile(const std::string& path) { return cloak::ReadFile(path).value_or(""); }

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

absl::Status Run(const std::vector<std::string>& argv, const std::string& log) {
  SpawnOptions o;
  o.stdout_path = o.stderr_path = log;
  ASSIGN_OR_RETURN(Subprocess p, Subprocess::Spawn(argv, o));
  ASSIGN_OR_RETURN(ExitInfo e, p.Wait(absl::Seconds(120)));
  if (e.exit_code != 0) {
    std::string text = ReadFile(log);
    if (text.size() > 2000) text = text.substr(text.size() - 2000);
    return absl::InternalError(absl::StrCat(argv[0], " exited ", e.exit_code, ": ", text));
  }
  return absl::OkStatus();
}

std::string MissingTools() {
  std::string missing;
  for (const char* tool : {"/usr/bin/openssl", "/usr/bin/skopeo", "/bin/busybox"}) {
    if (access(tool, X_OK) != 0) absl::StrAppend(&missing, tool, " ");
  }
  return missing;
}

absl::Status MakeEncryptedImage(const std::string& dir) {
  std::string log = dir + "/tools.log";
  RETURN_IF_ERROR(Run({"openssl", "genrsa", "-out", dir + "/k.pem", "2048"}, log));
  RETURN_IF_ERROR(
      Run({"openssl", "rsa", "-in", dir + "/k.pem", "-pubout", "-out", dir + "/pub.pem"}, log));
  RETURN_IF_ERROR(
      Run({std::string(CLOAK_SOURCE_DIR) + "/scripts/make-busybox-image", dir + "/src", "t"}, log));
  return Run({"skopeo", "--insecure-policy", "copy", "--quiet", "--encryption-key",
              "jwe:" + dir + "/pub.pem", "oci:" + dir + "/src:t", "oci:" + dir + "/dst:t"},
             log);
}

absl::StatusOr<std::vector<LayoutLayer>> LayoutLayers(const std::string& dir) {
  nlohmann::json index = nlohmann::json::parse(ReadFile(dir + "/index.json"), nullptr, false);
  if (!index.is_object() || !index.contains("manifests") || index["manifests"].empty()) {
    return absl::NotFoundError(absl::StrCat("no manifest in ", dir));
  }
  std::string digest = index["manifests"][0]["digest"].get<std::string>();
  std::string path = dir + "/blobs/sha256/" + digest.substr(7);
  ASSIGN_OR_RETURN(image::ImageManifest m, image::ParseImageManifest(ReadFile(path), digest));
  std::vector<LayoutLayer> out;
  for (const image::Descriptor& d : m.layers) {
    out.push_back({d, dir + "/blobs/sha256/" + d.digest.substr(7)});
  }
  return out;
}

}  // namespace cloak::agent::attest::testing
