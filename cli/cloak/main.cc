// cloak: the operator CLI (docs/kubernetes.md).
#include "cli/cloak/cli.h"

int main(int argc, char** argv) { return cloak::cli::RunCloakCli(argc, argv); }
