// SimulatedSp: answers the guest's report requests (protocol.h) with
// reports signed by a TEST VCEK (chain.h), for one launched guest: its
// measurement and HOST_DATA are fixed at creation, as the PSP fixes them at
// launch. Serves one request at a time, on an already-connected fd or on a
// unix socket; malformed input gets an error response, never a crash.
#ifndef CLOAK_SHIM_SIMSP_SERVER_H_
#define CLOAK_SHIM_SIMSP_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/fd.h"
#include "shim/simsp/chain.h"
#include "common/tee/sp_protocol.h"
#include "shim/simsp/report.h"

namespace cloak::simsp {

struct SimulatedSpOptions {
  std::string measurement;  // 48 bytes (measurement.h)
  std::string host_data;    // 32 bytes: the init-data digest; empty: zeros
  uint64_t policy = kDefaultPolicy;
  uint32_t vmpl = 0;
  // Put the VCEK (DER) into each response, for the guest's cert_chain.
  bool include_vcek = true;
  // Per request: from its first byte to the response written.
  absl::Duration io_timeout = absl::Seconds(10);
};

class SimulatedSp {
 public:
  // InvalidArgument for wrong measurement / host_data sizes.
  static absl::StatusOr<std::unique_ptr<SimulatedSp>> Create(DevChain chain,
                                                             const SimulatedSpOptions& options);
  SimulatedSp(const SimulatedSp&) = delete;
  SimulatedSp& operator=(const SimulatedSp&) = delete;

  // Pure: one request's bytes → the response's bytes (always a well-formed
  // response, an error one for malformed requests).
  std::string Handle(absl::string_view request) const;

  // Serves requests on the connected `fd` until the peer closes it, a
  // request is malformed (answered with an error, then the connection is
  // dropped: the stream cannot be resynchronised), a timeout, or Stop().
  // OK on a clean end.
  absl::Status ServeConnection(int fd);

  // Listens on a unix socket at `path` (an existing socket file there is
  // replaced; the socket is 0600) and serves connections one after the
  // other until Stop(). Removes the socket file on return.
  absl::Status ServeUnixSocket(const std::string& path);
  // Binds the socket now (so a caller knows it exists), serving later with
  // ServeUnixSocket(path) on the same path.
  absl::Status Listen(const std::string& path);

  // Makes Serve* return soon. Async-signal-safe (one write to a pipe).
  void Stop();

  uint64_t reports_signed() const { return reports_signed_.load(); }
  const DevChain& chain() const { return chain_; }

 private:
  SimulatedSp(DevChain chain, const SimulatedSpOptions& options, std::string report_id,
              UniqueFd stop_read, UniqueFd stop_write);
  SpResponse Answer(absl::string_view request) const;

  DevChain chain_;
  SimulatedSpOptions options_;
  std::string report_id_;  // random per SP instance: one "launch"
  UniqueFd stop_read_, stop_write_;
  UniqueFd listen_fd_;
  std::string listen_path_;
  mutable std::atomic<uint64_t> reports_signed_{0};
};

}  // namespace cloak::simsp

#endif  // CLOAK_SHIM_SIMSP_SERVER_H_
