#include "shim/initdata.h"

#include <zlib.h>

#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/tee/encoding.h"

namespace cloak::shim {
namespace {

absl::Status Bad(absl::string_view annotation, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("annotation ", annotation, ": ", what));
}

// Inflates a gzip stream, refusing output beyond kMaxInitDataBytes.
absl::StatusOr<std::string> Gunzip(absl::string_view in) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return absl::InternalError("inflateInit2 failed");
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[16384];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      return absl::InvalidArgumentError(
          absl::StrCat("the gzip stream is corrupt (", zs.msg ? zs.msg : "zlib error", ")"));
    }
    out.append(buf, sizeof(buf) - zs.avail_out);
    if (out.size() > kMaxInitDataBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("the document is larger than ", kMaxInitDataBytes, " bytes"));
    }
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      return absl::InvalidArgumentError("the gzip stream is truncated");
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::optional<InitData>> InitDataFromAnnotations(
    const std::map<std::string, std::string>& annotations) {
  absl::string_view name = kInitDataAnnotation;
  auto it = annotations.find(std::string(kInitDataAnnotation));
  if (it == annotations.end()) {
    name = kKataInitDataAnnotation;
    it = annotations.find(std::string(kKataInitDataAnnotation));
  }
  if (it == annotations.end()) return std::optional<InitData>();

  const std::string encoded(absl::StripAsciiWhitespace(it->second));
  if (encoded.empty()) return Bad(name, "empty value (omit the annotation for no init-data)");
  if (encoded.size() > kMaxInitDataBytes * 2) {
    return Bad(name, absl::StrCat("value larger than ", kMaxInitDataBytes * 2, " bytes"));
  }
  absl::StatusOr<std::string> decoded = tee::Base64Decode(encoded, tee::Base64Alphabet::kEither);
  if (!decoded.ok()) {
    return Bad(name, absl::StrCat("not base64 (", decoded.status().message(),
                                  "; encode the TOML document, optionally gzipped, with base64)"));
  }
  std::string raw = *std::move(decoded);
  InitData out;
  if (raw.size() >= 2 && static_cast<unsigned char>(raw[0]) == 0x1f &&
      static_cast<unsigned char>(raw[1]) == 0x8b) {
    absl::StatusOr<std::string> inflated = Gunzip(raw);
    if (!inflated.ok()) return Bad(name, inflated.status().message());
    out.document = std::move(*inflated);
  } else {
    out.document = std::move(raw);
  }
  if (out.document.size() > kMaxInitDataBytes) {
    return Bad(name, absl::StrCat("the document is larger than ", kMaxInitDataBytes, " bytes"));
  }

  absl::StatusOr<tee::InitData> parsed = tee::ParseInitData(out.document);
  if (!parsed.ok()) return Bad(name, parsed.status().message());
  out.algorithm = std::string(tee::HashAlgorithmName(parsed->algorithm));
  out.digest = std::move(parsed->digest);
  return std::optional<InitData>(std::move(out));
}

}  // namespace cloak::shim
