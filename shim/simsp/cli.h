// cloak-simsp's command line (docs/simulated-snp.md); main.cc only calls it.
#ifndef CLOAK_SHIM_SIMSP_CLI_H_
#define CLOAK_SHIM_SIMSP_CLI_H_

namespace cloak::simsp {

// Exit codes: 0 success, 1 runtime error (message on stderr), 2 bad usage.
int RunSimspCli(int argc, char** argv);

}  // namespace cloak::simsp

#endif  // CLOAK_SHIM_SIMSP_CLI_H_
