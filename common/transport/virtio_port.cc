#include "common/transport/virtio_port.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cloak::transport {

absl::StatusOr<std::string> FindVirtioPort(absl::string_view sysfs_root,
                                           absl::string_view port_name) {
  if (port_name.empty()) return absl::InvalidArgumentError("virtio port name is empty");
  namespace fs = std::filesystem;
  const fs::path root{std::string(sysfs_root)};
  std::error_code ec;
  fs::directory_iterator it(root, ec);
  if (ec) {
    return absl::NotFoundError(absl::StrCat("cannot list virtio ports under ", root.string(), ": ",
                                            ec.message(), " (is virtio_console loaded?)"));
  }
  std::vector<std::string> devices;
  for (const fs::directory_entry& entry : it) {
    // Entries in /sys/class are symlinks to the device directories.
    devices.push_back(entry.path().filename().string());
  }
  std::sort(devices.begin(), devices.end());

  std::vector<std::string> seen;
  for (const std::string& dev : devices) {
    std::ifstream in(root / dev / "name");
    if (!in) continue;  // e.g. a console port without a name
    std::stringstream buf;
    buf << in.rdbuf();
    std::string name(absl::StripTrailingAsciiWhitespace(buf.str()));
    if (name == port_name) return dev;
    seen.push_back(absl::StrCat(dev, "=", name.empty() ? "\"\"" : name));
  }
  return absl::NotFoundError(
      absl::StrCat("no virtio-serial port named \"", port_name, "\" under ", root.string(),
                   " (ports: ", seen.empty() ? "none" : absl::StrJoin(seen, ", "), ")"));
}

}  // namespace cloak::transport
