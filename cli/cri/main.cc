// cloak-cri: a small CRI v1 client (docs/cri.md).
#include "cli/cri/cli.h"

int main(int argc, char** argv) { return cloak::cri::RunCriCli(argc, argv); }
