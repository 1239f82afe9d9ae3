// An HTTP client for the KBS protocol tests: libcurl with a cookie engine
// (the KBS session cookie), JSON bodies, an optional CA file and bearer
// token. Shared by the tests/kbs/ and tests/shim/simsp/ integration tests.
#ifndef CLOAK_KBS_TESTS_HTTP_CLIENT_H_
#define CLOAK_KBS_TESTS_HTTP_CLIENT_H_

#include <curl/curl.h>

#include <string>

#include "nlohmann/json.hpp"

namespace cloak::kbs::testing {

struct Reply {
  long status = 0;
  std::string body;
  std::string error;  // libcurl's, if the transfer failed
  std::string Detail() const {
    auto j = nlohmann::json::parse(body, nullptr, false);
    return j.is_object() ? j.value("detail", "") : "";
  }
};

// One libcurl handle with its own cookie jar (one "guest").
class Client {
 public:
  explicit Client(std::string base, std::string ca_file = "")
      : base_(std::move(base)), ca_file_(std::move(ca_file)), curl_(curl_easy_init()) {
    curl_easy_setopt(curl_, CURLOPT_COOKIEFILE, "");  // enable the cookie engine
  }
  ~Client() { curl_easy_cleanup(curl_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connect from this local address (e.g. 127.0.0.2: loopback clients that
  // the KBS tells apart).
  void SetSourceAddress(const std::string& address) {
    source_ = "host!" + address;
    curl_easy_setopt(curl_, CURLOPT_INTERFACE, source_.c_str());
  }

  Reply Post(const std::string& path, const std::string& body) { return Do(path, &body, ""); }
  Reply Get(const std::string& path, const std::string& bearer = "") {
    return Do(path, nullptr, bearer);
  }

 private:
  static size_t Write(char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
  }
  Reply Do(const std::string& path, const std::string* body, const std::string& bearer) {
    Reply reply;
    std::string url = base_ + path;
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &Client::Write);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &reply.body);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT, 20L);
    if (!ca_file_.empty()) curl_easy_setopt(curl_, CURLOPT_CAINFO, ca_file_.c_str());
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    std::string auth = "Authorization: Bearer " + bearer;
    if (!bearer.empty()) headers = curl_slist_append(headers, auth.c_str());
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    if (body != nullptr) {
      curl_easy_setopt(curl_, CURLOPT_POST, 1L);
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body->c_str());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
    } else {
      curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform(curl_);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
      reply.error = curl_easy_strerror(rc);
      return reply;
    }
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &reply.status);
    return reply;
  }
  std::string base_;
  std::string ca_file_;
  std::string source_;
  CURL* curl_;
};

}  // namespace cloak::kbs::testing

#endif  // CLOAK_KBS_TESTS_HTTP_CLIENT_H_
