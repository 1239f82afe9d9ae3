#include "kbs/verify/tdx_tcb.h"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/tee/bytes.h"
#include "kbs/verify/trust_anchors.h"
#include "nlohmann/json.hpp"

namespace cloak::kbs {
namespace {

// ---- DER, as little as the PCK certificate's SGX extensions need.

struct Tlv {
  uint8_t tag = 0;
  absl::string_view content;
};

absl::StatusOr<Tlv> ReadTlv(absl::string_view* in) {
  auto bad = [] { return absl::InvalidArgumentError("PCK SGX extensions: malformed DER"); };
  if (in->size() < 2) return bad();
  Tlv t;
  t.tag = static_cast<uint8_t>((*in)[0]);
  size_t len = static_cast<uint8_t>((*in)[1]);
  size_t header = 2;
  if (len & 0x80) {
    size_t n = len & 0x7f;
    if (n == 0 || n > 4 || in->size() < 2 + n) return bad();
    len = 0;
    for (size_t i = 0; i < n; ++i) len = (len << 8) | static_cast<uint8_t>((*in)[2 + i]);
    header += n;
  }
  if (len > in->size() - header) return bad();
  t.content = in->substr(header, len);
  in->remove_prefix(header + len);
  return t;
}

// The dotted form of an OID's content bytes.
std::string OidText(absl::string_view content) {
  if (content.empty()) return "";
  auto first = static_cast<uint8_t>(content[0]);
  std::string out = absl::StrCat(std::min(first / 40, 2), ".", first - 40 * std::min(first / 40, 2));
  uint64_t v = 0;
  for (size_t i = 1; i < content.size(); ++i) {
    auto b = static_cast<uint8_t>(content[i]);
    v = (v << 7) | (b & 0x7f);
    if ((b & 0x80) == 0) {
      absl::StrAppend(&out, ".", v);
      v = 0;
    }
  }
  return out;
}

absl::StatusOr<uint32_t> DerUint(const Tlv& t, absl::string_view what) {
  if ((t.tag != 0x02 && t.tag != 0x0A) || t.content.empty() || t.content.size() > 5 ||
      (static_cast<uint8_t>(t.content[0]) & 0x80) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("PCK SGX extensions: ", what, " is not a small non-negative INTEGER"));
  }
  uint64_t v = 0;
  for (char c : t.content) v = (v << 8) | static_cast<uint8_t>(c);
  if (v > 0xffffffffu) return absl::InvalidArgumentError(absl::StrCat(what, " out of range"));
  return static_cast<uint32_t>(v);
}

// Each SEQUENCE { OID, value } of a SEQUENCE, by OID.
absl::StatusOr<std::vector<std::pair<std::string, Tlv>>> OidValues(absl::string_view seq) {
  std::vector<std::pair<std::string, Tlv>> out;
  while (!seq.empty()) {
    ASSIGN_OR_RETURN(Tlv item, ReadTlv(&seq));
    if (item.tag != 0x30) return absl::InvalidArgumentError("PCK SGX extensions: want SEQUENCE");
    absl::string_view inner = item.content;
    ASSIGN_OR_RETURN(Tlv oid, ReadTlv(&inner));
    ASSIGN_OR_RETURN(Tlv value, ReadTlv(&inner));
    if (oid.tag != 0x06) return absl::InvalidArgumentError("PCK SGX extensions: want an OID");
    out.emplace_back(OidText(oid.content), value);
  }
  return out;
}

constexpr char kSgxExtensionsOid[] = "1.2.840.113741.1.13.1";

// ---- JSON text: the raw extent of a value.

size_t SkipSpace(absl::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
  return i;
}

// The end (exclusive) of the JSON value starting at `i`, or npos.
size_t ValueEnd(absl::string_view s, size_t i) {
  if (i >= s.size()) return absl::string_view::npos;
  if (s[i] == '"') {
    for (size_t j = i + 1; j < s.size(); ++j) {
      if (s[j] == '\\') {
        ++j;
      } else if (s[j] == '"') {
        return j + 1;
      }
    }
    return absl::string_view::npos;
  }
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    for (size_t j = i; j < s.size(); ++j) {
      if (s[j] == '"') {
        j = ValueEnd(s, j);
        if (j == absl::string_view::npos) return j;
        --j;
      } else if (s[j] == '{' || s[j] == '[') {
        ++depth;
      } else if (s[j] == '}' || s[j] == ']') {
        if (--depth == 0) return j + 1;
      }
    }
    return absl::string_view::npos;
  }
  size_t j = i;
  while (j < s.size() && s[j] != ',' && s[j] != '}' && s[j] != ']' && s[j] != ' ' &&
         s[j] != '\n' && s[j] != '\r' && s[j] != '\t') {
    ++j;
  }
  return j == i ? absl::string_view::npos : j;
}

// ---- Collateral documents.

absl::StatusOr<absl::Time> ParseDate(const nlohmann::json& j, const char* key,
                                     absl::string_view doc) {
  auto it = j.find(key);
  absl::Time t;
  std::string err;
  if (it == j.end() || !it->is_string() ||
      !absl::ParseTime(absl::RFC3339_full, it->get<std::string>(), &t, &err)) {
    return absl::InvalidArgumentError(
        absl::StrCat(doc, ": \"", key, "\" is missing or not an RFC 3339 date"));
  }
  return t;
}

absl::StatusOr<std::string> HexField(const nlohmann::json& j, const char* key,
                                     absl::string_view doc, size_t bytes) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(doc, ": \"", key, "\" is missing"));
  }
  auto raw = tee::HexDecode(it->get<std::string>());
  if (!raw.ok() || (bytes != 0 && raw->size() != bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(doc, ": \"", key, "\" is not ", bytes,
                                                   " bytes of hex"));
  }
  return *raw;
}

absl::StatusOr<uint32_t> UintField(const nlohmann::json& j, const char* key,
                                   absl::string_view doc) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) {
    return absl::InvalidArgumentError(
        absl::StrCat(doc, ": \"", key, "\" is missing or not an unsigned number"));
  }
  return it->get<uint32_t>();
}

// A signed PCS document: the raw body of `member`, parsed, with its
// signature checked by `signer`.
absl::StatusOr<nlohmann::json> VerifiedBody(absl::string_view text, absl::string_view member,
                                            absl::string_view doc, EVP_PKEY* signer) {
  ASSIGN_OR_RETURN(absl::string_view body, RawJsonMember(text, member));
  ASSIGN_OR_RETURN(absl::string_view sig_text, RawJsonMember(text, "signature"));
  nlohmann::json sig_json = nlohmann::json::parse(sig_text, nullptr, false);
  if (!sig_json.is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(doc, ": \"signature\" is not a string"));
  }
  auto sig = tee::HexDecode(sig_json.get<std::string>());
  if (!sig.ok() || sig->size() != 64) {
    return absl::InvalidArgumentError(
        absl::StrCat(doc, ": \"signature\" is not 64 bytes of hex (ECDSA P-256 r||s)"));
  }
  ASSIGN_OR_RETURN(Bytes der, RawEcdsaToDer(sig->substr(0, 32), sig->substr(32, 32)));
  RETURN_IF_ERROR(VerifySignature(signer, EVP_sha256(), body, der,
                                  absl::StrCat(doc, " signature (ECDSA P-256 by the Intel TCB "
                                                    "signing key over its \"",
                                               member, "\" body)")));
  nlohmann::json parsed = nlohmann::json::parse(body, nullptr, false);
  if (!parsed.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(doc, ": \"", member, "\" is not an object"));
  }
  return parsed;
}

absl::Status CheckFresh(const nlohmann::json& body, absl::string_view doc, absl::Time now) {
  ASSIGN_OR_RETURN(absl::Time issued, ParseDate(body, "issueDate", doc));
  ASSIGN_OR_RETURN(absl::Time next, ParseDate(body, "nextUpdate", doc));
  if (now < issued) {
    return absl::FailedPreconditionError(
        absl::StrCat(doc, " is issued in the future (", absl::FormatTime(issued), ")"));
  }
  if (now > next) {
    return absl::FailedPreconditionError(
        absl::StrCat(doc, " expired at its nextUpdate ", absl::FormatTime(next),
                     ": fetch fresh collateral from Intel PCS and reload it"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LevelStatus(const nlohmann::json& level, absl::string_view doc) {
  auto it = level.find("tcbStatus");
  if (it == level.end() || !it->is_string() || !IsTdxTcbStatus(it->get<std::string>())) {
    return absl::InvalidArgumentError(
        absl::StrCat(doc, ": a TCB level has no known \"tcbStatus\""));
  }
  return it->get<std::string>();
}

void AddAdvisories(const nlohmann::json& level, std::vector<std::string>* out) {
  auto it = level.find("advisoryIDs");
  if (it == level.end() || !it->is_array()) return;
  for (const auto& id : *it) {
    if (id.is_string() && std::find(out->begin(), out->end(), id.get<std::string>()) == out->end()) {
      out->push_back(id.get<std::string>());
    }
  }
}

// `j[key]`, or null when absent (a reference into `j`).
const nlohmann::json& Member(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// The status of the first level (Intel lists them best first) whose
// isvsvn the given one reaches.
absl::StatusOr<const nlohmann::json*> IsvSvnLevel(const nlohmann::json& levels, uint32_t isvsvn,
                                                 absl::string_view doc) {
  if (!levels.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(doc, ": \"tcbLevels\" is not a list"));
  }
  for (const auto& level : levels) {
    auto tcb = level.find("tcb");
    if (tcb == level.end() || !tcb->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(doc, ": a TCB level has no \"tcb\""));
    }
    ASSIGN_OR_RETURN(uint32_t want, UintField(*tcb, "isvsvn", doc));
    if (isvsvn >= want) return &level;
  }
  return absl::PermissionDeniedError(absl::StrCat(
      doc, ": ISVSVN ", isvsvn, " is below every TCB level listed (TCB not supported)"));
}

// An OutOfDate or Revoked component lowers the platform's status as Intel's
// library converges them.
std::string Converge(const std::string& platform, const std::string& component) {
  if (component == "Revoked") return "Revoked";
  if (component != "OutOfDate") return platform;
  if (platform == "UpToDate" || platform == "SWHardeningNeeded") return "OutOfDate";
  if (platform == "ConfigurationNeeded" || platform == "ConfigurationAndSWHardeningNeeded") {
    return "OutOfDateConfigurationNeeded";
  }
  return platform;
}

absl::StatusOr<std::vector<uint32_t>> ComponentSvns(const nlohmann::json& tcb, const char* key,
                                                    absl::string_view doc) {
  auto it = tcb.find(key);
  if (it == tcb.end() || !it->is_array() || it->size() != 16) {
    return absl::InvalidArgumentError(
        absl::StrCat(doc, ": a TCB level's \"", key, "\" is not 16 components"));
  }
  std::vector<uint32_t> out;
  for (const auto& c : *it) {
    if (!c.is_object()) return absl::InvalidArgumentError(absl::StrCat(doc, ": bad ", key));
    ASSIGN_OR_RETURN(uint32_t svn, UintField(c, "svn", doc));
    out.push_back(svn);
  }
  return out;
}

std::string Upper(absl::string_view hex) { return absl::AsciiStrToUpper(hex); }

}  // namespace

bool IsTdxTcbStatus(absl::string_view status) {
  return std::any_of(std::begin(kTdxTcbStatuses), std::end(kTdxTcbStatuses),
                     [&](const char* s) { return status == s; });
}

absl::StatusOr<absl::string_view> RawJsonMember(absl::string_view text, absl::string_view key) {
  size_t i = SkipSpace(text, 0);
  if (i >= text.size() || text[i] != '{') {
    return absl::InvalidArgumentError("collateral: not a JSON object");
  }
  i = SkipSpace(text, i + 1);
  while (i < text.size() && text[i] != '}') {
    size_t key_end = ValueEnd(text, i);
    if (text[i] != '"' || key_end == absl::string_view::npos) break;
    absl::string_view name = text.substr(i + 1, key_end - i - 2);
    i = SkipSpace(text, key_end);
    if (i >= text.size() || text[i] != ':') break;
    i = SkipSpace(text, i + 1);
    size_t end = ValueEnd(text, i);
    if (end == absl::string_view::npos) break;
    if (name == key) return text.substr(i, end - i);
    i = SkipSpace(text, end);
    if (i < text.size() && text[i] == ',') i = SkipSpace(text, i + 1);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("collateral: no top-level \"", key, "\" member (or malformed JSON)"));
}

absl::StatusOr<TdxTcbCollateral> LoadTdxTcbCollateral(const std::string& dir) {
  TdxTcbCollateral c;
  auto read = [&](const char* name, std::string* out) -> absl::Status {
    auto data = ReadFile(absl::StrCat(dir, "/", name));
    if (!data.ok()) {
      return absl::Status(data.status().code(),
                          absl::StrCat("TDX collateral: ", data.status().message(),
                                       " (the collateral directory needs tcb_info.json, "
                                       "qe_identity.json, tcb_signing_chain.pem, "
                                       "root_ca_crl.{pem,der}, pck_crl.{pem,der}; docs/kbs.md)"));
    }
    *out = *std::move(data);
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(read("tcb_info.json", &c.tcb_info));
  RETURN_IF_ERROR(read("qe_identity.json", &c.qe_identity));
  RETURN_IF_ERROR(read("tcb_signing_chain.pem", &c.signing_chain));
  for (const char* crl : {"root_ca_crl", "pck_crl"}) {
    std::string pem = absl::StrCat(crl, ".pem");
    std::string data;
    if (std::filesystem::exists(absl::StrCat(dir, "/", pem))) {
      RETURN_IF_ERROR(read(pem.c_str(), &data));
    } else {
      RETURN_IF_ERROR(read(absl::StrCat(crl, ".der").c_str(), &data));
    }
    RETURN_IF_ERROR(ParseCrls(data, absl::StrCat(dir, "/", crl)).status());
    c.crls.push_back(std::move(data));
  }
  // Parse now so that a bad file fails at startup, not at the first quote.
  for (auto [text, member] : {std::pair{&c.tcb_info, "tcbInfo"},
                              std::pair{&c.qe_identity, "enclaveIdentity"}}) {
    auto body = RawJsonMember(*text, member);
    if (!body.ok()) return Annotate(body.status(), absl::StrCat(dir, " ", member));
  }
  RETURN_IF_ERROR(ParsePemCertificates(c.signing_chain, "tcb_signing_chain.pem").status());
  return c;
}

absl::StatusOr<PckSgxExtensions> ParsePckSgxExtensions(X509* pck) {
  ASN1_OBJECT* obj = OBJ_txt2obj(kSgxExtensionsOid, 1);
  int idx = obj != nullptr ? X509_get_ext_by_OBJ(pck, obj, -1) : -1;
  ASN1_OBJECT_free(obj);
  if (idx < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PCK certificate \"", SubjectCommonName(pck), "\" has no SGX extensions (",
        kSgxExtensionsOid, ")"));
  }
  ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(X509_get_ext(pck, idx));
  absl::string_view der(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                        static_cast<size_t>(ASN1_STRING_length(data)));
  ASSIGN_OR_RETURN(Tlv outer, ReadTlv(&der));
  if (outer.tag != 0x30) return absl::InvalidArgumentError("PCK SGX extensions: want SEQUENCE");
  ASSIGN_OR_RETURN(auto items, OidValues(outer.content));
  PckSgxExtensions out;
  bool have_tcb = false;
  const std::string base = kSgxExtensionsOid;
  for (const auto& [oid, value] : items) {
    if (oid == base + ".2") {
      if (value.tag != 0x30) return absl::InvalidArgumentError("PCK SGX TCB: want SEQUENCE");
      ASSIGN_OR_RETURN(auto comps, OidValues(value.content));
      int seen = 0;
      for (const auto& [comp_oid, comp] : comps) {
        const std::string prefix = base + ".2.";
        if (comp_oid.rfind(prefix, 0) != 0) continue;
        int n = 0;
        if (!absl::SimpleAtoi(comp_oid.substr(prefix.size()), &n)) continue;
        if (n >= 1 && n <= 16) {
          ASSIGN_OR_RETURN(uint32_t svn, DerUint(comp, "SGX TCB component SVN"));
          if (svn > 255) return absl::InvalidArgumentError("PCK SGX TCB component SVN > 255");
          out.sgx_tcb_comp_svn[n - 1] = static_cast<uint8_t>(svn);
          ++seen;
        } else if (n == 17) {
          ASSIGN_OR_RETURN(uint32_t svn, DerUint(comp, "PCESVN"));
          if (svn > 0xffff) return absl::InvalidArgumentError("PCK PCESVN > 65535");
          out.pcesvn = static_cast<uint16_t>(svn);
          ++seen;
        } else if (n == 18 && comp.tag == 0x04) {
          out.cpusvn = std::string(comp.content);
        }
      }
      if (seen != 17) {
        return absl::InvalidArgumentError(
            "PCK SGX TCB extension lacks some of its 16 component SVNs or PCESVN");
      }
      have_tcb = true;
    } else if (oid == base + ".3" && value.tag == 0x04) {
      out.pce_id = std::string(value.content);
    } else if (oid == base + ".4" && value.tag == 0x04) {
      out.fmspc = std::string(value.content);
    }
  }
  if (!have_tcb || out.fmspc.size() != 6 || out.pce_id.size() != 2) {
    return absl::InvalidArgumentError(
        "PCK SGX extensions lack the TCB, a 6-byte FMSPC or a 2-byte PCE-ID");
  }
  return out;
}

absl::StatusOr<TdxTcbVerdict> EvaluateTdxTcb(const TdxTcbInputs& in,
                                             const TdxTcbCollateral& collateral) {
  if (in.quote == nullptr || in.pck == nullptr || in.pck_root == nullptr ||
      in.qe_report.size() != 384) {
    return absl::InvalidArgumentError("TDX TCB evaluation: quote, QE report and PCK required");
  }
  TdxTcbVerdict v;
  // 1. The TCB signing key, chained to the root and checked against the CRLs.
  ASSIGN_OR_RETURN(std::vector<X509Ptr> signing,
                   ParsePemCertificates(collateral.signing_chain, "TCB signing chain"));
  X509Ptr own_root;
  X509* root = in.pck_root;
  if (!collateral.root_ca.empty()) {
    ASSIGN_OR_RETURN(own_root, ParseCertificate(collateral.root_ca, "TCB collateral root CA"));
    root = own_root.get();
  }
  ASSIGN_OR_RETURN(RootVerdict root_verdict,
                   ClassifyRoot(root, "Intel SGX Root CA", kIntelSgxRootCaSha256,
                                /*simulated_possible=*/false, in.allow_unpinned_root));
  v.collateral_root = root_verdict.description;
  std::vector<X509CrlPtr> crls;
  std::vector<X509_CRL*> crl_ptrs;
  for (const std::string& data : collateral.crls) {
    ASSIGN_OR_RETURN(auto parsed, ParseCrls(data, "TDX collateral CRL"));
    for (auto& crl : parsed) {
      crl_ptrs.push_back(crl.get());
      crls.push_back(std::move(crl));
    }
  }
  std::vector<X509*> intermediates;
  for (size_t i = 1; i < signing.size(); ++i) intermediates.push_back(signing[i].get());
  RETURN_IF_ERROR(VerifyCertChain(signing[0].get(), intermediates, root, crl_ptrs,
                                  "TCB signing certificate chain"));
  EVP_PKEY* signer = X509_get0_pubkey(signing[0].get());
  if (signer == nullptr) return absl::InvalidArgumentError("TCB signing certificate has no key");

  // 2. TCB info: signed, fresh, for this platform (FMSPC, PCE-ID) and TDX.
  ASSIGN_OR_RETURN(nlohmann::json info,
                   VerifiedBody(collateral.tcb_info, "tcbInfo", "TDX TCB info", signer));
  const char* info_doc = "TDX TCB info";
  auto id = info.find("id");
  if (id == info.end() || *id != "TDX") {
    return absl::PermissionDeniedError(
        "TCB info is not for TDX (its \"id\" is not \"TDX\"): fetch /tdx/certification/v4/tcb");
  }
  ASSIGN_OR_RETURN(uint32_t version, UintField(info, "version", info_doc));
  if (version != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("TDX TCB info version ", version, " is not supported (want 3)"));
  }
  RETURN_IF_ERROR(CheckFresh(info, info_doc, in.now));
  ASSIGN_OR_RETURN(PckSgxExtensions pck, ParsePckSgxExtensions(in.pck));
  ASSIGN_OR_RETURN(std::string fmspc, HexField(info, "fmspc", info_doc, 6));
  ASSIGN_OR_RETURN(std::string pce_id, HexField(info, "pceId", info_doc, 2));
  if (fmspc != pck.fmspc) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the TCB info is for FMSPC ", Upper(tee::HexEncode(fmspc)),
        ", the quote's PCK certificate for FMSPC ", Upper(tee::HexEncode(pck.fmspc)),
        ": load the TCB info of this platform"));
  }
  if (pce_id != pck.pce_id) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the TCB info is for PCE-ID ", tee::HexEncode(pce_id), ", the PCK certificate's is ",
        tee::HexEncode(pck.pce_id)));
  }
  const tee::TdxQuote& quote = *in.quote;
  const std::string& tee_tcb_svn = quote.tee_tcb_svn;
  auto svn = [&](size_t i) { return static_cast<uint8_t>(tee_tcb_svn[i]); };

  // 3. The TDX module: its signer and attributes, and (TDX 1.5, TEE_TCB_SVN
  // byte 1 non-zero) its identity's own TCB levels.
  std::string module_status = "UpToDate";
  if (auto module = info.find("tdxModule"); module != info.end()) {
    ASSIGN_OR_RETURN(std::string mrsigner, HexField(*module, "mrsigner", info_doc, 48));
    if (mrsigner != quote.mrsignerseam) {
      return absl::PermissionDeniedError(
          "the quote's MRSIGNERSEAM is not the TDX module signer the TCB info names");
    }
  }
  if (svn(1) > 0) {
    auto identities = info.find("tdxModuleIdentities");
    std::string want = absl::StrFormat("TDX_%02X", svn(1));
    const nlohmann::json* identity = nullptr;
    if (identities != info.end() && identities->is_array()) {
      for (const auto& m : *identities) {
        if (m.is_object() && absl::EqualsIgnoreCase(m.value("id", ""), want)) identity = &m;
      }
    }
    if (identity == nullptr) {
      return absl::PermissionDeniedError(absl::StrCat(
          "the TCB info has no TDX module identity ", want, " for the quote's TEE_TCB_SVN"));
    }
    ASSIGN_OR_RETURN(std::string mrsigner, HexField(*identity, "mrsigner", info_doc, 48));
    ASSIGN_OR_RETURN(std::string attrs, HexField(*identity, "attributes", info_doc, 8));
    ASSIGN_OR_RETURN(std::string mask, HexField(*identity, "attributesMask", info_doc, 8));
    std::string seam(8, '\0');
    for (size_t i = 0; i < 8; ++i) {
      seam[i] = static_cast<char>((quote.seam_attributes >> (8 * i)) & 0xff);
    }
    for (size_t i = 0; i < 8; ++i) seam[i] = static_cast<char>(seam[i] & mask[i]);
    if (mrsigner != quote.mrsignerseam || seam != attrs) {
      return absl::PermissionDeniedError(absl::StrCat(
          "the quote's TDX module (MRSIGNERSEAM / SEAM attributes) does not match the TCB "
          "info's identity ", want));
    }
    ASSIGN_OR_RETURN(const nlohmann::json* level,
                     IsvSvnLevel(Member(*identity, "tcbLevels"), svn(0),
                                 absl::StrCat(info_doc, " module ", want)));
    ASSIGN_OR_RETURN(module_status, LevelStatus(*level, info_doc));
    AddAdvisories(*level, &v.advisory_ids);
  }

  // 4. The platform's level: the first whose SGX components and PCESVN the
  // PCK reaches and whose TDX components TEE_TCB_SVN reaches (from byte 2
  // when the module identity was evaluated apart).
  auto levels = info.find("tcbLevels");
  if (levels == info.end() || !levels->is_array()) {
    return absl::InvalidArgumentError("TDX TCB info: \"tcbLevels\" is not a list");
  }
  const nlohmann::json* match = nullptr;
  for (const auto& level : *levels) {
    auto tcb = level.find("tcb");
    if (tcb == level.end() || !tcb->is_object()) {
      return absl::InvalidArgumentError("TDX TCB info: a TCB level has no \"tcb\"");
    }
    ASSIGN_OR_RETURN(std::vector<uint32_t> sgx, ComponentSvns(*tcb, "sgxtcbcomponents", info_doc));
    ASSIGN_OR_RETURN(std::vector<uint32_t> tdx, ComponentSvns(*tcb, "tdxtcbcomponents", info_doc));
    ASSIGN_OR_RETURN(uint32_t pcesvn, UintField(*tcb, "pcesvn", info_doc));
    bool ok = pck.pcesvn >= pcesvn;
    for (size_t i = 0; ok && i < 16; ++i) ok = pck.sgx_tcb_comp_svn[i] >= sgx[i];
    for (size_t i = svn(1) > 0 ? 2 : 0; ok && i < 16; ++i) ok = svn(i) >= tdx[i];
    if (ok) {
      match = &level;
      break;
    }
  }
  if (match == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the platform's TCB (FMSPC ", Upper(tee::HexEncode(fmspc)), ", PCESVN ", pck.pcesvn,
        ", TEE_TCB_SVN ", tee::HexEncode(tee_tcb_svn),
        ") is below every level of the TCB info: TCB not supported"));
  }
  ASSIGN_OR_RETURN(std::string platform_status, LevelStatus(*match, info_doc));
  AddAdvisories(*match, &v.advisory_ids);
  v.tcb_date = match->value("tcbDate", "");

  // 5. The QE against the TD QE identity.
  const char* qe_doc = "TD QE identity";
  ASSIGN_OR_RETURN(nlohmann::json qe, VerifiedBody(collateral.qe_identity, "enclaveIdentity",
                                                   qe_doc, signer));
  RETURN_IF_ERROR(CheckFresh(qe, qe_doc, in.now));
  absl::string_view report = in.qe_report;
  ASSIGN_OR_RETURN(std::string qe_mrsigner, HexField(qe, "mrsigner", qe_doc, 32));
  ASSIGN_OR_RETURN(uint32_t isvprodid, UintField(qe, "isvprodid", qe_doc));
  ASSIGN_OR_RETURN(std::string miscselect, HexField(qe, "miscselect", qe_doc, 4));
  ASSIGN_OR_RETURN(std::string misc_mask, HexField(qe, "miscselectMask", qe_doc, 4));
  ASSIGN_OR_RETURN(std::string attributes, HexField(qe, "attributes", qe_doc, 16));
  ASSIGN_OR_RETURN(std::string attr_mask, HexField(qe, "attributesMask", qe_doc, 16));
  if (report.substr(128, 32) != qe_mrsigner) {
    return absl::PermissionDeniedError(
        "the quoting enclave's MRSIGNER is not the one the TD QE identity names");
  }
  if (tee::Le16(report, 256) != isvprodid) {
    return absl::PermissionDeniedError(absl::StrCat("the quoting enclave's ISVPRODID ",
                                                    tee::Le16(report, 256),
                                                    " is not the TD QE identity's ", isvprodid));
  }
  // MISCSELECT is a little-endian u32 in the report, big-endian hex in the identity.
  std::string misc_le(report.substr(16, 4));
  std::reverse(misc_le.begin(), misc_le.end());
  for (size_t i = 0; i < 4; ++i) misc_le[i] = static_cast<char>(misc_le[i] & misc_mask[i]);
  std::string attr(report.substr(48, 16));
  for (size_t i = 0; i < 16; ++i) attr[i] = static_cast<char>(attr[i] & attr_mask[i]);
  if (misc_le != miscselect || attr != attributes) {
    return absl::PermissionDeniedError(
        "the quoting enclave's MISCSELECT / ATTRIBUTES do not match the TD QE identity");
  }
  ASSIGN_OR_RETURN(const nlohmann::json* qe_level,
                   IsvSvnLevel(Member(qe, "tcbLevels"), tee::Le16(report, 258), qe_doc));
  ASSIGN_OR_RETURN(std::string qe_status, LevelStatus(*qe_level, qe_doc));
  AddAdvisories(*qe_level, &v.advisory_ids);

  v.status = Converge(Converge(platform_status, module_status), qe_status);
  v.detail = absl::StrCat("TCB ", v.status, " (platform ", platform_status, ", module ",
                          module_status, ", QE ", qe_status, "; FMSPC ",
                          Upper(tee::HexEncode(fmspc)), ", TCB evaluation data number ",
                          info.value("tcbEvaluationDataNumber", 0u), ")");
  if (v.status == "Revoked") {
    return absl::PermissionDeniedError(absl::StrCat("TDX TCB status is Revoked: ", v.detail));
  }
  return v;
}

}  // namespace cloak::kbs
