// A small synthetic "firmware" for development launches (the simulated SEV-SNP
// security processor, docs/simulated-snp.md): three pages that are not code
// but carry what the SNP launch digest reads from a real OVMF AmdSev image —
// the GUIDed footer table with an SEV-ES reset block, the kernel-hashes table
// location and "ASEV" metadata with SNP_SEC_MEM, SNP_SECRETS, CPUID and
// SNP_KERNEL_HASHES sections. With it a dev launch goes through the real
// maths (firmware pages, hashes-table page, one VMSA per vCPU), so its
// measurement moves with the kernel, initrd, command line and vCPU count
// exactly as a hardware one does. The bytes are fixed: `cloak measure snp
// --dev-firmware` and the simulated SP compute the same value.
#ifndef CLOAK_COMMON_TEE_MEASURE_DEV_FIRMWARE_H_
#define CLOAK_COMMON_TEE_MEASURE_DEV_FIRMWARE_H_

#include <string>

namespace cloak::tee::measure {

// 12 KiB, placed (as any firmware) to end at 4 GiB.
const std::string& DevSevFirmware();

}  // namespace cloak::tee::measure

#endif  // CLOAK_COMMON_TEE_MEASURE_DEV_FIRMWARE_H_
