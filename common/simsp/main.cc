// cloak-simsp: the simulated SEV-SNP security processor (docs/simulated-snp.md).
#include "common/simsp/cli.h"

int main(int argc, char** argv) { return cloak::simsp::RunSimspCli(argc, argv); }
