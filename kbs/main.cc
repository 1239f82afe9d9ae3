// cloak-kbs: the key broker (docs/kbs.md).
#include "kbs/cli.h"

int main(int argc, char** argv) { return cloak::kbs::RunKbsCli(argc, argv); }
