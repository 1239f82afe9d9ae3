// Digests of the attestation path (OpenSSL 3): the init-data algorithms
// (sha256, sha384, sha512), constant-time comparison and random bytes. Pure.
#ifndef CLOAK_COMMON_TEE_DIGEST_H_
#define CLOAK_COMMON_TEE_DIGEST_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::tee {

enum class HashAlgorithm { kSha256, kSha384, kSha512 };

// "sha256" | "sha384" | "sha512"; InvalidArgument otherwise.
absl::StatusOr<HashAlgorithm> ParseHashAlgorithm(absl::string_view name);
absl::string_view HashAlgorithmName(HashAlgorithm algorithm);
size_t HashSize(HashAlgorithm algorithm);  // 32, 48, 64

// Raw digest bytes.
std::string Hash(HashAlgorithm algorithm, absl::string_view data);
inline std::string Sha256(absl::string_view data) { return Hash(HashAlgorithm::kSha256, data); }
inline std::string Sha384(absl::string_view data) { return Hash(HashAlgorithm::kSha384, data); }
inline std::string Sha512(absl::string_view data) { return Hash(HashAlgorithm::kSha512, data); }

// Incremental digest (a file or a blob read in pieces, a running launch
// measurement). Move-only.
class HashStream {
 public:
  explicit HashStream(HashAlgorithm algorithm);
  ~HashStream();
  HashStream(HashStream&&) noexcept;
  HashStream& operator=(HashStream&&) noexcept;
  HashStream(const HashStream&) = delete;
  HashStream& operator=(const HashStream&) = delete;

  void Update(absl::string_view data);
  // Raw digest bytes; the stream is spent afterwards.
  std::string Finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// sha256 of a file's bytes, raw; NotFound / Internal naming the file.
absl::StatusOr<std::string> FileSha256(const std::string& path);

// Constant-time comparison (false when the lengths differ).
bool SecureEquals(absl::string_view a, absl::string_view b);

// `n` cryptographically random bytes; Internal when the generator fails.
absl::StatusOr<std::string> RandomBytes(size_t n);

}  // namespace cloak::tee

#endif  // CLOAK_COMMON_TEE_DIGEST_H_
