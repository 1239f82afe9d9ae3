#include "kbs/server.h"

#include <arpa/inet.h>
#include <httplib.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace cloak::kbs {

bool IsLoopbackHost(absl::string_view host) {
  if (host == "localhost") return true;
  std::string h(host);
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

std::string RateLimitKey(absl::string_view remote_addr) {
  std::string h(remote_addr);
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1 && !IN6_IS_ADDR_V4MAPPED(&v6)) {
    // One IPv6 host usually owns a whole /64.
    std::memset(&v6.s6_addr[8], 0, 8);
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, &v6, text, sizeof(text)) != nullptr) return absl::StrCat(text, "/64");
  }
  if (absl::StartsWith(h, "::ffff:")) return h.substr(7);
  return h;
}

absl::StatusOr<std::unique_ptr<KbsServer>> KbsServer::Create(const KbsConfig& config) {
  bool tls = !config.tls_cert.empty() || !config.tls_key.empty();
  if (tls && (config.tls_cert.empty() || config.tls_key.empty())) {
    return absl::InvalidArgumentError("TLS needs both a certificate and a private key file");
  }
  if (!tls && !config.insecure_http) {
    return absl::InvalidArgumentError(
        "no TLS certificate/key given: pass --tls-cert and --tls-key, or --insecure-http to "
        "serve plain HTTP on a loopback address (tests only)");
  }
  if (!tls && !IsLoopbackHost(config.listen_host)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "plain HTTP is only served on loopback addresses, not ", config.listen_host,
        ": configure TLS"));
  }
  if (config.port < 0 || config.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("port ", config.port, " out of range"));
  }
  std::unique_ptr<KbsServer> server(new KbsServer());
  ASSIGN_OR_RETURN(server->service_, KbsService::Create(config));
  server->tls_ = tls;
  if (tls) {
    auto ssl = std::make_unique<httplib::SSLServer>(config.tls_cert.c_str(),
                                                    config.tls_key.c_str());
    if (!ssl->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat("cannot load TLS certificate ",
                                                     config.tls_cert, " / key ", config.tls_key));
    }
    server->http_ = std::move(ssl);
  } else {
    server->http_ = std::make_unique<httplib::Server>();
  }
  KbsService* service = server->service_.get();
  auto handler = [service](const httplib::Request& req, httplib::Response& res) {
    HttpRequest request{.method = req.method,
                        .path = req.path,
                        .body = req.body,
                        .cookie = req.get_header_value("Cookie"),
                        .authorization = req.get_header_value("Authorization"),
                        .client = RateLimitKey(req.remote_addr)};
    HttpResponse response = service->Handle(request);
    res.status = response.status;
    for (const auto& [name, value] : response.headers) res.set_header(name, value);
    res.set_content(response.body, response.content_type);
  };
  httplib::Server& http = *server->http_;
  http.set_payload_max_length(kMaxRequestBody);
  http.set_read_timeout(10);
  http.set_write_timeout(10);
  // Idle keep-alive connections hold a worker; Stop() waits for them.
  http.set_keep_alive_timeout(1);
  http.set_tcp_nodelay(true);
  http.Post(R"(/kbs/v0/.*)", handler);
  http.Get(R"(/kbs/v0/.*)", handler);
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        HttpResponse r = ErrorResponse(500, "InternalError", "unexpected error");
        res.status = r.status;
        res.set_content(r.body, r.content_type);
      });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    HttpResponse r = ErrorResponse(res.status, "HttpError",
                                   absl::StrCat("HTTP ", res.status, " for ", req.method, " ",
                                                req.path));
    res.set_content(r.body, r.content_type);
  });
  if (config.port == 0) {
    server->port_ = http.bind_to_any_port(config.listen_host);
    if (server->port_ <= 0) {
      return absl::UnavailableError(absl::StrCat("cannot bind ", config.listen_host, ":0"));
    }
  } else {
    if (!http.bind_to_port(config.listen_host, config.port)) {
      return absl::UnavailableError(absl::StrCat("cannot bind ", config.listen_host, ":",
                                                 config.port, " (in use or not permitted)"));
    }
    server->port_ = config.port;
  }
  return server;
}

KbsServer::~KbsServer() = default;

absl::Status KbsServer::Serve() {
  Logger("kbs")->info("serving the KBS protocol {} on {}://...:{}", kProtocolVersion,
                      tls_ ? "https" : "http", port_);
  if (!http_->listen_after_bind()) return absl::InternalError("HTTP listener failed");
  return absl::OkStatus();
}

void KbsServer::Stop() { http_->stop(); }

}  // namespace cloak::kbs
