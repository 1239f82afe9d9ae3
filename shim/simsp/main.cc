// cloak-simsp: the simulated SEV-SNP security processor (docs/simulated-snp.md).
#include "shim/simsp/cli.h"

int main(int argc, char** argv) { return cloak::simsp::RunSimspCli(argc, argv); }
