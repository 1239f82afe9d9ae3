// A TEST AMD SEV-SNP certificate chain for the simulated security processor
// (docs/simulated-snp.md): a self-signed RSA "ARK", an RSA "ASK" it signs and
// a P-384 "VCEK" the ASK signs, RSASSA-PSS/SHA-384 throughout as AMD issues
// them, with the VCEK extensions a verifier matches against a report (hwID =
// CHIP_ID, the TCB SPLs). It chains to no AMD key: a KBS only accepts it if
// someone configures it as AMD's anchors, which real deployments never do.
//
// Layout of the directory (what `cloak-kbs --snp-certs-dir` reads, plus
// the SP's own files under simsp/, which the KBS ignores):
//   <product>_ark.pem, <product>_ask.pem          anchors (product: milan…)
//   vcek/<chip_id hex>_<REPORTED_TCB hex>.der     the VCEK (hex of the
//                                                 little-endian TCB bytes)
//   simsp/vcek_key.pem                            VCEK private key (0600)
//   simsp/identity.json                           product, chip id, TCB
#ifndef CLOAK_SHIM_SIMSP_CHAIN_H_
#define CLOAK_SHIM_SIMSP_CHAIN_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tee/snp_report.h"
#include "shim/simsp/crypto.h"

namespace cloak::simsp {

// Product lines and TCB_VERSION as the key broker decodes them
// (common/tee/snp_report.h).
using Product = tee::SnpProduct;
using Tcb = tee::SnpTcb;
inline std::string ProductName(Product product) { return std::string(tee::SnpProductName(product)); }
// Hex of the 8 little-endian bytes: the `<tcb>` part of a cached VCEK name.
std::string TcbFileHex(uint64_t raw);

// Labels that make the chain impossible to mistake for AMD's. The ASK's CN
// must stay "SEV-<Product>" (verifiers pick the product from the VCEK's
// issuer CN), so the warning lives in O and OU there.
inline constexpr char kTestOrganization[] = "Cloak TEST chain - NOT AMD";
inline constexpr char kTestUnit[] = "Cloak development and tests only - NOT AMD";

struct DevChainOptions {
  Product product = Product::kMilan;
  // The TCB the VCEK is issued for (and the SP reports). microcode 213 > 127
  // exercises the two-byte DER INTEGER form of the SPL extensions.
  Tcb tcb{.fmc = 0, .bootloader = 4, .tee = 0, .snp = 22, .microcode = 213};
  // ARK and ASK modulus size; AMD's are 4096 (tests may pick 2048: faster).
  int rsa_bits = 4096;
  // 64 bytes; empty: "CLOAK-TEST-CHIP!" followed by 48 random bytes. On
  // Turin the VCEK's hwID is its first 8 bytes (the rest is reported).
  std::string chip_id;
  int validity_days = 3650;
  // Replace an existing chain in the directory instead of refusing.
  bool overwrite = false;
};

// Everything the SP needs, as loaded from a chain directory.
struct DevChain {
  std::string dir;
  Product product = Product::kMilan;
  Tcb tcb;
  std::string chip_id;   // 64 bytes
  std::string ark_pem;   // the anchors, as a KBS would be configured with
  std::string ask_pem;
  std::string vcek_der;
  PkeyPtr vcek_key;      // EC P-384
  std::string ark_path, ask_path, vcek_path, vcek_key_path;
};

// Creates `dir` (if needed) and writes a fresh chain into it. AlreadyExists
// when the directory already holds a chain for this product and
// !options.overwrite. Returns the chain as LoadDevChain would.
absl::StatusOr<DevChain> GenerateDevChain(const std::string& dir,
                                          const DevChainOptions& options = {});

// Reads simsp/identity.json, the VCEK and its key from `dir`; checks the key
// belongs to the VCEK. NotFound / InvalidArgument naming the file.
absl::StatusOr<DevChain> LoadDevChain(const std::string& dir);

}  // namespace cloak::simsp

#endif  // CLOAK_SHIM_SIMSP_CHAIN_H_
