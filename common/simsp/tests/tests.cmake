# Tests of common/simsp, included (deferred) from common/simsp/CMakeLists.txt
# at the end of the top-level directory, once tests/ and kbs/ are set up.
# Every test name starts with "simsp." so `ctest -R simsp` selects them.
find_package(GTest CONFIG REQUIRED)
include(GoogleTest)
set(simsp_tests_dir "${CMAKE_CURRENT_LIST_DIR}")


# Protocol, measurement, server: no verifier needed.
cloak_test(simsp_unit_test unit PREFIX "simsp."
  SOURCES ${simsp_tests_dir}/protocol_test.cc ${simsp_tests_dir}/measurement_test.cc
          ${simsp_tests_dir}/server_test.cc
  DEPS cloak_simsp)

# Reports checked by the real SEV-SNP verifier of cloak-kbs.
if(TARGET cloak_kbs_verify)
  cloak_test(simsp_verify_test unit PREFIX "simsp."
    SOURCES ${simsp_tests_dir}/verify_test.cc
    DEPS cloak_simsp cloak_kbs_verify)
endif()

# The real cloak-kbs and cloak-simsp binaries on 127.0.0.1, driven with libcurl.
if(TARGET cloak_kbs AND TARGET cloak-kbs)
  find_package(CURL REQUIRED)
  cloak_test(simsp_integration_test integration PREFIX "simsp."
    SOURCES ${simsp_tests_dir}/integration_test.cc
    DEPS cloak_simsp cloak_kbs CURL::libcurl
    TIMEOUT 180)
  target_compile_definitions(simsp_integration_test PRIVATE
    CLOAK_KBS_BINARY="$<TARGET_FILE:cloak-kbs>"
    CLOAK_SIMSP_BINARY="$<TARGET_FILE:cloak-simsp>")
  add_dependencies(simsp_integration_test cloak-kbs cloak-simsp)
endif()
