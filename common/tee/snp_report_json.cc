#include "common/tee/snp_report_json.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tee/bytes.h"
#include "common/tee/encoding.h"
#include "common/tee/snp_report.h"

namespace cloak::tee {
namespace {

absl::StatusOr<std::string> ByteArrayOf(const nlohmann::json& j, absl::string_view what,
                                size_t want_size) {
  if (!j.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": want an array of bytes"));
  }
  if (want_size != 0 && j.size() != want_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": want ", want_size, " bytes, got ", j.size()));
  }
  std::string out;
  out.reserve(j.size());
  for (const auto& v : j) {
    if (!v.is_number_unsigned() || v.get<uint64_t>() > 255) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": element is not a byte (0..255)"));
    }
    out += static_cast<char>(v.get<uint64_t>());
  }
  return out;
}

class SerdeReport {
 public:
  explicit SerdeReport(const nlohmann::json& j) : j_(j), raw_(kSnpReportSize, '\0') {}

  absl::Status Uint(const char* key, size_t off, size_t size, bool optional = false) {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (optional) return absl::OkStatus();
      return Missing(key);
    }
    if (!it->is_number_unsigned()) return Bad(key, "an unsigned number");
    Put(off, size, it->get<uint64_t>());
    return absl::OkStatus();
  }
  absl::Status Array(const char* key, size_t off, size_t size) {
    auto it = j_.find(key);
    if (it == j_.end()) return Missing(key);
    ASSIGN_OR_RETURN(std::string b, ByteArrayOf(*it, absl::StrCat("attestation_report.", key), size));
    raw_.replace(off, size, b);
    return absl::OkStatus();
  }
  absl::Status Tcb(const char* key, size_t off) {
    auto it = j_.find(key);
    if (it == j_.end()) return Missing(key);
    if (it->is_number_unsigned()) {  // older sev crates: the raw u64
      Put(off, 8, it->get<uint64_t>());
      return absl::OkStatus();
    }
    if (!it->is_object()) return Bad(key, "a TCB object");
    auto part = [&](const char* name) -> absl::StatusOr<uint64_t> {
      auto p = it->find(name);
      if (p == it->end() || p->is_null()) return uint64_t{0};
      if (!p->is_number_unsigned() || p->get<uint64_t>() > 255) {
        return Bad(absl::StrCat(key, ".", name).c_str(), "a byte");
      }
      return p->get<uint64_t>();
    };
    ASSIGN_OR_RETURN(uint64_t fmc, part("fmc"));
    ASSIGN_OR_RETURN(uint64_t bl, part("bootloader"));
    ASSIGN_OR_RETURN(uint64_t tee, part("tee"));
    ASSIGN_OR_RETURN(uint64_t snp, part("snp"));
    ASSIGN_OR_RETURN(uint64_t uc, part("microcode"));
    auto f = it->find("fmc");
    bool turin = f != it->end() && !f->is_null();
    uint64_t v = turin ? (fmc | bl << 8 | tee << 16 | snp << 24 | uc << 56)
                       : (bl | tee << 8 | snp << 48 | uc << 56);
    Put(off, 8, v);
    return absl::OkStatus();
  }
  absl::Status Version(const char* key, size_t off) {
    auto it = j_.find(key);
    if (it == j_.end()) {
      // sev crates before 4: "<key>_build", "<key>_minor", "<key>_major".
      const char* names[] = {"build", "minor", "major"};
      for (size_t i = 0; i < 3; ++i) {
        std::string flat = absl::StrCat(key, "_", names[i]);
        auto p = j_.find(flat);
        if (p == j_.end()) return Missing(key);
        if (!p->is_number_unsigned() || p->get<uint64_t>() > 255) return Bad(flat.c_str(), "a byte");
        raw_[off + i] = static_cast<char>(p->get<uint64_t>());
      }
      return absl::OkStatus();
    }
    if (!it->is_object()) return Bad(key, "a {major,minor,build} object");
    const char* names[] = {"build", "minor", "major"};
    for (size_t i = 0; i < 3; ++i) {
      auto p = it->find(names[i]);
      if (p == it->end() || !p->is_number_unsigned() || p->get<uint64_t>() > 255) {
        return Bad(absl::StrCat(key, ".", names[i]).c_str(), "a byte");
      }
      raw_[off + i] = static_cast<char>(p->get<uint64_t>());
    }
    return absl::OkStatus();
  }
  absl::Status Signature() {
    auto it = j_.find("signature");
    if (it == j_.end()) return Missing("signature");
    if (!it->is_object() || !it->contains("r") || !it->contains("s")) {
      return Bad("signature", "an {r,s} object");
    }
    ASSIGN_OR_RETURN(std::string r, ByteArrayOf((*it)["r"], "attestation_report.signature.r", 72));
    ASSIGN_OR_RETURN(std::string s, ByteArrayOf((*it)["s"], "attestation_report.signature.s", 72));
    raw_.replace(0x2A0, 72, r);
    raw_.replace(0x2E8, 72, s);
    return absl::OkStatus();
  }
  std::string Take() { return std::move(raw_); }

 private:
  void Put(size_t off, size_t size, uint64_t v) {
    for (size_t i = 0; i < size; ++i) raw_[off + i] = static_cast<char>((v >> (8 * i)) & 0xff);
  }
  static absl::Status Missing(const char* key) {
    return absl::InvalidArgumentError(
        absl::StrCat("attestation_report: field \"", key, "\" is missing"));
  }
  static absl::Status Bad(const char* key, const char* want) {
    return absl::InvalidArgumentError(
        absl::StrCat("attestation_report: field \"", key, "\" is not ", want));
  }
  const nlohmann::json& j_;
  std::string raw_;
};

absl::StatusOr<std::string> SnpReportFromSerde(const nlohmann::json& j) {
  SerdeReport r(j);
  RETURN_IF_ERROR(r.Uint("version", 0x000, 4));
  RETURN_IF_ERROR(r.Uint("guest_svn", 0x004, 4));
  RETURN_IF_ERROR(r.Uint("policy", 0x008, 8));
  RETURN_IF_ERROR(r.Array("family_id", 0x010, 16));
  RETURN_IF_ERROR(r.Array("image_id", 0x020, 16));
  RETURN_IF_ERROR(r.Uint("vmpl", 0x030, 4));
  RETURN_IF_ERROR(r.Uint("sig_algo", 0x034, 4));
  RETURN_IF_ERROR(r.Tcb("current_tcb", 0x038));
  RETURN_IF_ERROR(r.Uint("plat_info", 0x040, 8));
  RETURN_IF_ERROR(r.Uint("key_info", 0x048, 4, /*optional=*/true));
  // sev crates before 4 name KEY_INFO "_author_key_en" (the same u32).
  RETURN_IF_ERROR(r.Uint("_author_key_en", 0x048, 4, /*optional=*/true));
  RETURN_IF_ERROR(r.Array("report_data", 0x050, 64));
  RETURN_IF_ERROR(r.Array("measurement", 0x090, 48));
  RETURN_IF_ERROR(r.Array("host_data", 0x0C0, 32));
  RETURN_IF_ERROR(r.Array("id_key_digest", 0x0E0, 48));
  RETURN_IF_ERROR(r.Array("author_key_digest", 0x110, 48));
  RETURN_IF_ERROR(r.Array("report_id", 0x140, 32));
  RETURN_IF_ERROR(r.Array("report_id_ma", 0x160, 32));
  RETURN_IF_ERROR(r.Tcb("reported_tcb", 0x180));
  RETURN_IF_ERROR(r.Uint("cpuid_fam_id", 0x188, 1, true));
  RETURN_IF_ERROR(r.Uint("cpuid_mod_id", 0x189, 1, true));
  RETURN_IF_ERROR(r.Uint("cpuid_step", 0x18A, 1, true));
  RETURN_IF_ERROR(r.Array("chip_id", 0x1A0, 64));
  RETURN_IF_ERROR(r.Tcb("committed_tcb", 0x1E0));
  RETURN_IF_ERROR(r.Version("current", 0x1E8));
  RETURN_IF_ERROR(r.Version("committed", 0x1EC));
  RETURN_IF_ERROR(r.Tcb("launch_tcb", 0x1F0));
  RETURN_IF_ERROR(r.Uint("launch_mit_vector", 0x1F8, 8, true));
  RETURN_IF_ERROR(r.Uint("current_mit_vector", 0x200, 8, true));
  RETURN_IF_ERROR(r.Signature());
  return r.Take();
}

}  // namespace

absl::StatusOr<std::string> JsonByteArray(const nlohmann::json& j, absl::string_view what,
                                          size_t want_size) {
  return ByteArrayOf(j, what, want_size);
}

absl::StatusOr<std::string> JsonBytes(const nlohmann::json& j, absl::string_view what) {
  if (j.is_string()) {
    auto decoded = Base64Decode(j.get<std::string>());
    if (!decoded.ok()) return Annotate(decoded.status(), what);
    return decoded;
  }
  return ByteArrayOf(j, what, 0);
}

nlohmann::json JsonByteArrayOf(absl::string_view bytes) {
  nlohmann::json out = nlohmann::json::array();
  for (unsigned char c : bytes) out.push_back(c);
  return out;
}

absl::StatusOr<std::string> SnpReportFromJson(const nlohmann::json& report) {
  if (report.is_string()) {
    auto raw = Base64Decode(report.get<std::string>());
    if (!raw.ok()) return Annotate(raw.status(), "snp attestation_report");
    return raw;
  }
  if (report.is_array()) return ByteArrayOf(report, "snp attestation_report", kSnpReportSize);
  if (report.is_object()) return SnpReportFromSerde(report);
  return absl::InvalidArgumentError(
      "snp attestation_report: want base64, a byte array or the sev crate's object form");
}

nlohmann::json SnpReportToSevJson(absl::string_view raw) {
  auto le = [&](size_t off, size_t n) { return LeField(raw, off, n); };
  auto bytes = [&](size_t off, size_t n) { return JsonByteArrayOf(raw.substr(off, n)); };
  const uint32_t version = static_cast<uint32_t>(le(0, 4));
  // Milan/Genoa and Turin lay TCB_VERSION out differently; the sev crate
  // tells them apart by the CPUID family/model a v3+ report carries (Turin:
  // family 0x1A), and writes "fmc" only for Turin.
  const bool turin = version >= 3 && static_cast<uint8_t>(raw[kSnpCpuidFamilyOffset]) == 0x1A;
  auto tcb = [&](size_t off) {
    if (turin) {
      return nlohmann::json{{"fmc", le(off, 1)},
                            {"bootloader", le(off + 1, 1)},
                            {"tee", le(off + 2, 1)},
                            {"snp", le(off + 3, 1)},
                            {"microcode", le(off + 7, 1)}};
    }
    return nlohmann::json{{"fmc", nullptr},
                          {"bootloader", le(off, 1)},
                          {"tee", le(off + 1, 1)},
                          {"snp", le(off + 6, 1)},
                          {"microcode", le(off + 7, 1)}};
  };
  auto fw = [&](size_t off) {
    return nlohmann::json{{"build", le(off, 1)}, {"minor", le(off + 1, 1)}, {"major", le(off + 2, 1)}};
  };
  auto v3 = [&](size_t off) { return version >= 3 ? nlohmann::json(le(off, 1)) : nlohmann::json(); };
  auto v5 = [&](size_t off) { return version >= 5 ? nlohmann::json(le(off, 8)) : nlohmann::json(); };
  return nlohmann::json{
      {"version", version},
      {"guest_svn", le(0x004, 4)},
      {"policy", le(0x008, 8)},
      {"family_id", bytes(0x010, 16)},
      {"image_id", bytes(0x020, 16)},
      {"vmpl", le(0x030, 4)},
      {"sig_algo", le(0x034, 4)},
      {"current_tcb", tcb(0x038)},
      {"plat_info", le(0x040, 8)},
      {"key_info", le(0x048, 4)},
      {"report_data", bytes(0x050, 64)},
      {"measurement", bytes(0x090, 48)},
      {"host_data", bytes(0x0C0, 32)},
      {"id_key_digest", bytes(0x0E0, 48)},
      {"author_key_digest", bytes(0x110, 48)},
      {"report_id", bytes(0x140, 32)},
      {"report_id_ma", bytes(0x160, 32)},
      {"reported_tcb", tcb(0x180)},
      {"cpuid_fam_id", v3(0x188)},
      {"cpuid_mod_id", v3(0x189)},
      {"cpuid_step", v3(0x18A)},
      {"chip_id", bytes(0x1A0, 64)},
      {"committed_tcb", tcb(0x1E0)},
      {"current", fw(0x1E8)},
      {"committed", fw(0x1EC)},
      {"launch_tcb", tcb(0x1F0)},
      {"launch_mit_vector", v5(0x1F8)},
      {"current_mit_vector", v5(0x200)},
      {"signature", {{"r", bytes(0x2A0, 72)}, {"s", bytes(0x2E8, 72)}}},
  };
}

}  // namespace cloak::tee
