// Init-data: the pod's trust settings (key broker URL and CA, the KBS
// resources holding its image keys, later its policy) as a TOML document in
// the annotation io.cloak.initdata (base64, optionally gzip-compressed; the
// Kata/CoCo annotation io.katacontainers.config.hypervisor.cc_init_data is
// read too). The shim binds its digest into the launch (SNP HOST_DATA, TDX
// MRCONFIGID) and hands the exact bytes to the agent, which uses them only
// if the digest matches what the TEE evidence carries.
#ifndef CLOAK_SHIM_INITDATA_H_
#define CLOAK_SHIM_INITDATA_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tee/initdata.h"

namespace cloak::shim {

inline constexpr absl::string_view kInitDataAnnotation = "io.cloak.initdata";
inline constexpr absl::string_view kKataInitDataAnnotation =
    "io.katacontainers.config.hypervisor.cc_init_data";
// Largest init-data document accepted, after decompression.
inline constexpr size_t kMaxInitDataBytes = tee::kMaxInitDataBytes;

struct InitData {
  // The document exactly as the pod gave it (decoded, decompressed).
  std::string document;
  // "sha256", "sha384" or "sha512", from the document.
  std::string algorithm;
  // hash(document) with that algorithm, raw bytes.
  std::string digest;
};

// Decodes the init-data annotation, if any, and checks the document with
// tee::ParseInitData. InvalidArgument naming the annotation for bad base64,
// a bad gzip stream, an oversized document, or what tee::ParseInitData
// refuses. Pure.
absl::StatusOr<std::optional<InitData>> InitDataFromAnnotations(
    const std::map<std::string, std::string>& annotations);

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_INITDATA_H_
