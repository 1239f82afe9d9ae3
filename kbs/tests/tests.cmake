# Tests of kbs/, included (deferred) from kbs/CMakeLists.txt at the end of
# the top-level directory. Every test name starts with "kbs." so
# `ctest -R kbs` selects them. Test vectors: tests/testdata (its
# README).
find_package(GTest CONFIG REQUIRED)
include(GoogleTest)
set(CLOAK_KBS_TESTDATA "${PROJECT_SOURCE_DIR}/tests/testdata")
set(kbs_tests_dir "${CMAKE_CURRENT_LIST_DIR}")


cloak_test(kbs_verify_test unit PREFIX "kbs." DEFINES "CLOAK_TESTDATA_DIR=\"${CLOAK_KBS_TESTDATA}\""
  SOURCES ${kbs_tests_dir}/verify_test.cc
  DEPS cloak_kbs_verify)

if(TARGET cloak_kbs)
  cloak_test(kbs_unit_test unit PREFIX "kbs." DEFINES "CLOAK_TESTDATA_DIR=\"${CLOAK_KBS_TESTDATA}\""
    SOURCES ${kbs_tests_dir}/policy_test.cc
            ${kbs_tests_dir}/service_test.cc
    DEPS cloak_kbs)

  find_package(CURL REQUIRED)
  cloak_test(kbs_integration_test integration PREFIX "kbs." DEFINES "CLOAK_TESTDATA_DIR=\"${CLOAK_KBS_TESTDATA}\""
    SOURCES ${kbs_tests_dir}/kbs_integration_test.cc
    DEPS cloak_kbs CURL::libcurl
    TIMEOUT 120)
  target_compile_definitions(kbs_integration_test PRIVATE
    CLOAK_KBS_BINARY="$<TARGET_FILE:cloak-kbs>")
  add_dependencies(kbs_integration_test cloak-kbs)
endif()
