// The HTTP(S) shell around KbsService: cpp-httplib with OpenSSL.
#ifndef CLOAK_KBS_SERVER_H_
#define CLOAK_KBS_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kbs/service.h"

namespace httplib {
class Server;
}

namespace cloak::kbs {

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackHost(absl::string_view host);
// The key the auth rate limit counts a peer address under: the IPv4
// address, or the IPv6 /64 ("2001:db8::/64").
std::string RateLimitKey(absl::string_view remote_addr);

class KbsServer {
 public:
  // Validates the listen/TLS settings (plain HTTP only with insecure_http
  // and only on loopback), opens the state, binds the port.
  static absl::StatusOr<std::unique_ptr<KbsServer>> Create(const KbsConfig& config);
  ~KbsServer();

  // The bound port (useful with port 0).
  int port() const { return port_; }
  bool tls() const { return tls_; }
  // Serves until Stop(); Internal if the listener fails.
  absl::Status Serve();
  // Thread-safe; makes Serve() return.
  void Stop();

 private:
  KbsServer() = default;
  std::unique_ptr<KbsService> service_;
  std::unique_ptr<httplib::Server> http_;
  int port_ = 0;
  bool tls_ = false;
};

}  // namespace cloak::kbs

#endif  // CLOAK_KBS_SERVER_H_
