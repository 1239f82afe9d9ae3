// cloak-snapshotter: containerd proxy snapshotter (docs/snapshotter.md).
#include "snapshotter/cli.h"

int main(int argc, char** argv) { return cloak::snapshotter::RunSnapshotterCli(argc, argv); }
