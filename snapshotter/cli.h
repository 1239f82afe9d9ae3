// cloak-snapshotter's command line (docs/snapshotter.md).
#ifndef CLOAK_SNAPSHOTTER_CLI_H_
#define CLOAK_SNAPSHOTTER_CLI_H_

namespace cloak::snapshotter {

// Runs cloak-snapshotter with argv; returns the process exit code (0 after a
// clean stop on SIGTERM/SIGINT, 1 on a failure, 2 on bad usage).
int RunSnapshotterCli(int argc, char** argv);

}  // namespace cloak::snapshotter

#endif  // CLOAK_SNAPSHOTTER_CLI_H_
