// SHA-256 / SHA-384 over byte strings (OpenSSL EVP), for the measurement code.
#ifndef CLOAK_COMMON_TEE_MEASURE_HASH_H_
#define CLOAK_COMMON_TEE_MEASURE_HASH_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace cloak::tee::measure {

std::string Sha256(absl::string_view data);  // 32 raw bytes
std::string Sha384(absl::string_view data);  // 48 raw bytes

// Incremental SHA-384 (the TDX module's MRTD is one running hash).
class Sha384Stream {
 public:
  Sha384Stream();
  ~Sha384Stream();
  Sha384Stream(const Sha384Stream&) = delete;
  Sha384Stream& operator=(const Sha384Stream&) = delete;
  void Update(absl::string_view data);
  std::string Finish();  // 48 raw bytes; the stream is spent afterwards

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string HexLower(absl::string_view raw);

}  // namespace cloak::tee::measure

#endif  // CLOAK_COMMON_TEE_MEASURE_HASH_H_
