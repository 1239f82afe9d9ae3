// The build's version: the CMake project version, plus the git commit when
// built from a checkout ("0.1.0+git.1a2b3c4d5e6f", ".dirty" appended for
// uncommitted changes). Every binary prints it for --version. The string is
// defined in one generated file (cmake/version_info.cmake), so a new commit
// recompiles only that file.
#ifndef CLOAK_COMMON_VERSION_H_
#define CLOAK_COMMON_VERSION_H_

namespace cloak {

// "0.1.0" or "0.1.0+git.<12 hex>[.dirty]".
const char* VersionString();

}  // namespace cloak

#endif  // CLOAK_COMMON_VERSION_H_
