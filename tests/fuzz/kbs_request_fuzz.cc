// Fuzzes cloak-kbs's request handling (kbs/service.h), everything behind the
// HTTP shell: the Request, Attestation and evidence JSON of an
// unauthenticated client, cookies, tokens and resource paths. KbsService
// never throws and answers every request; a crash, leak or exception here is
// a finding.
//
// Input: the first byte selects the request and the TEE of the session that
// an ordinary auth opened first; the rest is the body (auth, attest), or the
// resource path, a newline and the Authorization header (resource).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "common/logging.h"
#include "common/temp_dir.h"
#include "kbs/service.h"
#include "kbs/store.h"
#include "nlohmann/json.hpp"

namespace {

using cloak::kbs::HttpRequest;
using cloak::kbs::HttpResponse;
using cloak::kbs::KbsService;

struct World {
  std::unique_ptr<cloak::TempDir> dir;
  std::unique_ptr<KbsService> service;
};

// Setting up the service must work; say why when it does not.
void Require(const absl::Status& status, const char* what) {
  if (status.ok()) return;
  std::fprintf(stderr, "kbs_request_fuzz: %s: %s\n", what, status.ToString().c_str());
  std::abort();
}

World* MakeWorld() {
  auto* w = new World;
  auto dir = cloak::TempDir::Create("kbs-fuzz-");
  Require(dir.status(), "temporary directory");
  w->dir = std::make_unique<cloak::TempDir>(*std::move(dir));
  cloak::kbs::KbsConfig config;
  config.state_dir = w->dir->Join("state");
  config.verifier.snp_certs_dir = CLOAK_TESTDATA_DIR "/snp";
  config.verifier.tdx_allow_unverified = true;
  auto store = cloak::kbs::ResourceStore::Open(config.state_dir);
  Require(store.status(), "resource store");
  auto path = cloak::kbs::ParseResourcePath("default/key/k1");
  Require(path.status(), "resource path");
  Require(store->PutResource(*path, "secret"), "resource");
  Require(store->SetPolicy(
              &*path, R"({"allowed_tees": ["sample", "snp", "tdx"], "allow_any_launch": true})"),
          "resource policy");
  auto service = KbsService::Create(config);
  Require(service.status(), "KbsService::Create");
  w->service = *std::move(service);
  return w;
}

std::string SessionCookie(const HttpResponse& r) {
  for (const auto& [name, value] : r.headers) {
    if (name == "Set-Cookie") return value.substr(0, value.find(';'));
  }
  return "";
}

World* world = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)cloak::SetLogLevel("off");
  world = MakeWorld();
  // The temporary state directory goes when libFuzzer exits.
  std::atexit([] { delete world; });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  static constexpr const char* kTees[] = {"sample", "snp", "tdx"};
  const nlohmann::json auth = {{"version", cloak::kbs::kProtocolVersion},
                               {"tee", kTees[(selector >> 2) % 3]},
                               {"extra-params", ""}};
  HttpRequest request{.method = "POST", .path = "/kbs/v0/auth", .body = auth.dump(),
                      .cookie = "", .authorization = "", .client = ""};
  HttpResponse opened = world->service->Handle(request);
  request.cookie = SessionCookie(opened);

  switch (selector % 4) {
    case 0:
      request.body = rest;
      break;
    case 1:
      request.path = "/kbs/v0/attest";
      request.body = rest;
      break;
    case 2: {
      request.method = "GET";
      request.body.clear();
      const size_t nl = rest.find('\n');
      request.path = "/kbs/v0/resource/" + rest.substr(0, nl);
      if (nl != std::string::npos) request.authorization = rest.substr(nl + 1);
      break;
    }
    default: {
      // Anything at all as method, path and cookie.
      const size_t nl = rest.find('\n');
      request.method = selector & 0x80 ? "GET" : "PUT";
      request.path = rest.substr(0, nl);
      if (nl != std::string::npos) request.cookie = rest.substr(nl + 1);
      break;
    }
  }
  HttpResponse r = world->service->Handle(request);
  if (r.status < 200 || r.status > 599) __builtin_trap();
  return 0;
}
