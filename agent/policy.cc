#include "agent/policy.h"

#include "absl/strings/str_cat.h"
#include "common/logging.h"

#ifdef CLOAK_HAVE_AGENT_ATTEST
#include "agent/attest/initdata.h"
#endif

namespace cloak::agent {

namespace {

std::shared_ptr<spdlog::logger> Log() { return Logger("policy"); }

}  // namespace

PolicyDecision AllowAllPolicy::Decide(absl::string_view /*rpc_name*/,
                                      const google::protobuf::Message& /*request*/) {
  return PolicyDecision::Allow("allow-all policy");
}

// The seam to the init-data parser (agent/attest/initdata.h): the policy is
// one string of its [data] table.
absl::StatusOr<std::optional<std::string>> PolicyFromInitData(absl::string_view initdata) {
  if (initdata.empty()) return std::nullopt;
#ifdef CLOAK_HAVE_AGENT_ATTEST
  absl::StatusOr<attest::InitData> parsed = attest::ParseInitData(initdata);
  if (!parsed.ok()) return parsed.status();
  if (parsed->policy.empty()) return std::nullopt;
  return parsed->policy;
#else
  return absl::UnimplementedError(
      "init-data given but this agent was built without agent/attest: cannot read its policy");
#endif
}

MeasuredPolicy::MeasuredPolicy()
    : engine_(std::make_unique<policy::Engine>(policy::DefaultPolicy())),
      origin_("built-in default (no CreateSandbox yet)") {}

absl::Status MeasuredPolicy::LoadFromInitData(absl::string_view initdata) {
  absl::StatusOr<std::optional<std::string>> text = PolicyFromInitData(initdata);
  if (!text.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("policy: the pod's init-data cannot be read, so no policy applies: ",
                     text.status().message()));
  }
  if (!text->has_value()) {
    engine_ = std::make_unique<policy::Engine>(policy::DefaultPolicy());
    origin_ = "built-in default (the pod's init-data carries no policy)";
  } else {
    absl::StatusOr<policy::Policy> parsed = policy::ParsePolicy(**text);
    if (!parsed.ok()) {
      return absl::PermissionDeniedError(absl::StrCat(
          "policy: the policy in the pod's init-data is invalid: ", parsed.status().message()));
    }
    engine_ = std::make_unique<policy::Engine>(*std::move(parsed));
    origin_ = absl::StrCat("init-data \"", policy::kInitDataPolicyKey, "\" (", (*text)->size(),
                           " bytes)");
  }
  loaded_ = true;
  Log()->info("policy in force: {}", origin_);
  return absl::OkStatus();
}

PolicyDecision MeasuredPolicy::Decide(absl::string_view rpc_name,
                                      const google::protobuf::Message& request) {
  absl::MutexLock lock(&mu_);
  if (rpc_name == "CreateSandbox" && !loaded_) {
    // Before anything else of the pod: the policy it was measured with.
    const auto& req = static_cast<const v1::CreateSandboxRequest&>(request);
    if (absl::Status s = LoadFromInitData(req.initdata()); !s.ok()) {
      return PolicyDecision::Deny(std::string(s.message()));
    }
  }
  policy::Decision d = engine_->Check(rpc_name, request, state_);
  if (!d.allow) return PolicyDecision::Deny(std::move(d.reason));
  return PolicyDecision::Allow();
}

void MeasuredPolicy::Observe(absl::string_view rpc_name, const google::protobuf::Message& request,
                             const google::protobuf::Message* response) {
  absl::MutexLock lock(&mu_);
  engine_->Record(rpc_name, request, response, &state_);
}

PolicyDecision MeasuredPolicy::CheckPulledImage(const v1::CreateContainerRequest& request,
                                                absl::string_view manifest_digest) {
  absl::MutexLock lock(&mu_);
  policy::Decision d = engine_->CheckPulledImage(request, manifest_digest, state_);
  if (!d.allow) return PolicyDecision::Deny(std::move(d.reason));
  return PolicyDecision::Allow();
}

std::shared_ptr<const policy::ImageSignaturePolicy> MeasuredPolicy::ImageSignatures() {
  absl::MutexLock lock(&mu_);
  return engine_->policy().image_signatures;
}

std::vector<policy::KbsFileRule> MeasuredPolicy::KbsFiles(const v1::CreateContainerRequest& request) {
  absl::MutexLock lock(&mu_);
  return engine_->KbsFiles(request);
}

absl::Status MeasuredPolicy::Replace(absl::string_view document) {
  absl::StatusOr<policy::Policy> parsed = policy::ParsePolicy(document);
  if (!parsed.ok()) return parsed.status();
  absl::MutexLock lock(&mu_);
  engine_ = std::make_unique<policy::Engine>(*std::move(parsed));
  origin_ = absl::StrCat("SetPolicy (", document.size(), " bytes), allowed by the previous policy");
  loaded_ = true;
  Log()->warn("policy replaced by SetPolicy");
  return absl::OkStatus();
}

std::string MeasuredPolicy::Describe() const {
  absl::MutexLock lock(&mu_);
  return absl::StrCat("enforcing: ", origin_);
}

}  // namespace cloak::agent
