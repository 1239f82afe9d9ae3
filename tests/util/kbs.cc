#include "tests/util/kbs.h"

#include <openssl/sha.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "tests/util/host.h"

namespace cloak::testutil {

absl::StatusOr<DevKbs> StartDevKbs(const std::string& kbs_binary, const std::string& state_dir,
                                   const std::string& dir,
                                   const std::vector<std::string>& extra_args) {
  const std::string port_file = dir + "/kbs.port";
  std::vector<std::string> argv = {kbs_binary,        "serve",       "--state-dir",
                                   state_dir,         "--listen",    "127.0.0.1:0",
                                   "--insecure-http", "--port-file", port_file};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  SpawnOptions o;
  o.stdout_path = o.stderr_path = dir + "/kbs.log";
  absl::StatusOr<Subprocess> p = Subprocess::Spawn(argv, o);
  if (!p.ok()) return p.status();
  for (int i = 0; i < 100 && Slurp(port_file).empty(); ++i) absl::SleepFor(absl::Milliseconds(100));
  std::string port(absl::StripAsciiWhitespace(Slurp(port_file)));
  if (port.empty()) {
    return absl::DeadlineExceededError(
        absl::StrCat("cloak-kbs wrote no port file within 10s: ", Slurp(dir + "/kbs.log")));
  }
  return DevKbs{std::move(*p), std::move(port)};
}

DevInitData DevInitDataFor(const std::string& port, const std::string& resource,
                           const std::string& extra_data) {
  DevInitData out;
  out.document = absl::StrCat(
      "version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\nkbs_url = \"http://10.0.2.2:", port,
      "\"\nimage_keys = [\"", resource, "\"]\n", extra_data);
  out.sha384_hex = Sha384Hex(out.document);
  return out;
}

std::string Sha384Hex(const std::string& document) {
  unsigned char md[SHA384_DIGEST_LENGTH];
  SHA384(reinterpret_cast<const unsigned char*>(document.data()), document.size(), md);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(md), sizeof(md)));
}

}  // namespace cloak::testutil
