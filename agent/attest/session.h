// The sandbox's attestation session: attests to the key broker named in the
// pod's init-data once, on the first encrypted layer, and keeps the image
// keys it was given in memory only (never on disk, never logged). Its
// status feeds GetAttestationStatus.
#ifndef CLOAK_AGENT_ATTEST_SESSION_H_
#define CLOAK_AGENT_ATTEST_SESSION_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/attest/attester.h"
#include "agent/attest/ocicrypt.h"

namespace cloak::agent::attest {

struct SessionOptions {
  // Where CreateSandbox left the pod's init-data (absent: no attestation).
  std::string initdata_path;
  AttesterOptions attester;
  // Empty: detect. "sample"/"snp"/"tdx" force a type (tests only).
  std::string tee;
  // The runtime class is dev (measured cloak.tee=none): plain http to the
  // KBS allowed (CheckKbsTransport, agent/attest/kbs_client.h).
  bool dev_class = false;
};

struct AttestationStatus {
  enum class State { kNone, kAttested, kRefused, kUnreachable };
  State state = State::kNone;
  std::string tee;             // evidence type presented (or detected)
  std::string kbs_url;
  std::string detail;          // reason of a refusal or failure; timings on success
  std::string initdata_digest; // hex, per the init-data's algorithm
};

class AttestationSession final : public KeySource {
 public:
  explicit AttestationSession(SessionOptions options) : options_(std::move(options)) {}

  // Attests and fetches every `image_keys` resource on first use; later
  // calls return the cached keys (a failed or partial attempt is retried).
  // FailedPrecondition without init-data or kbs_url, or when the guest
  // refuses the init-data; PermissionDenied when the KBS refuses the
  // evidence; Unavailable when it cannot be reached.
  absl::StatusOr<KeySet> ImageKeys() override;

  AttestationStatus Status() const;

  // True on a TEE guest (SNP, TDX, or the simulated SNP security processor
  // of a dev class): such a guest attests at CreateSandbox
  // (docs/attestation.md "Early attestation"). False for the sample
  // fallback of a plain dev guest, which attests lazily.
  bool AttestsEarly() const;

  // Early attestation: attests to the init-data's key broker now (and
  // fetches the image keys it names, kept for the pulls). Errors as
  // ImageKeys(), except that init-data without image_keys is fine.
  absl::Status AttestNow();

  // Key broker secrets (docs/policy.md "kbs_files"): attests to the
  // init-data's key broker and fetches each resource ("repo/type/tag"), in
  // order. Held by the caller only; never cached here, never logged. Errors
  // as ImageKeys() (FailedPrecondition without init-data or kbs_url,
  // PermissionDenied when the KBS refuses the evidence or a resource's
  // policy, NotFound for a resource it does not hold, Unavailable), each
  // with the KBS's reason and the resource's path.
  absl::StatusOr<std::vector<std::string>> Resources(const std::vector<std::string>& paths);

 private:
  struct Connection;
  // Reads the init-data, makes the attester and attests to its key broker.
  // `require_keys`: init-data without image_keys is an error.
  absl::StatusOr<Connection> Connect(bool require_keys) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<KeySet> Run(bool require_keys = true) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SessionOptions options_;
  mutable absl::Mutex mu_;
  std::optional<KeySet> keys_ ABSL_GUARDED_BY(mu_);
  AttestationStatus status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cloak::agent::attest

#endif  // CLOAK_AGENT_ATTEST_SESSION_H_
