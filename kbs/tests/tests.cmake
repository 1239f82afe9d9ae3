# Tests of kbs/, included (deferred) from kbs/CMakeLists.txt at the end of
# the top-level directory. Every test name starts with "kbs." so
# `ctest -R kbs` selects them. Test vectors: tests/testdata (its
# README).
find_package(GTest CONFIG REQUIRED)
include(GoogleTest)
set(CLOAK_KBS_TESTDATA "${PROJECT_SOURCE_DIR}/tests/testdata")
set(kbs_tests_dir "${CMAKE_CURRENT_LIST_DIR}")

function(kbs_test name label)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${CLOAK_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE CLOAK_TESTDATA_DIR="${CLOAK_KBS_TESTDATA}")
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  set(serial FALSE)
  if(NOT label STREQUAL "unit")
    set(serial TRUE)
  endif()
  gtest_discover_tests(${name} TEST_PREFIX "kbs."
    PROPERTIES LABELS ${label} TIMEOUT ${ARG_TIMEOUT} RUN_SERIAL ${serial}
    DISCOVERY_TIMEOUT 30)
endfunction()

kbs_test(kbs_verify_test unit
  SOURCES ${kbs_tests_dir}/verify_test.cc
  DEPS cloak_kbs_verify)

if(TARGET cloak_kbs)
  kbs_test(kbs_unit_test unit
    SOURCES ${kbs_tests_dir}/jose_test.cc ${kbs_tests_dir}/policy_test.cc
            ${kbs_tests_dir}/service_test.cc
    DEPS cloak_kbs)

  find_package(CURL REQUIRED)
  kbs_test(kbs_integration_test integration
    SOURCES ${kbs_tests_dir}/kbs_integration_test.cc
    DEPS cloak_kbs CURL::libcurl
    TIMEOUT 120)
  target_compile_definitions(kbs_integration_test PRIVATE
    CLOAK_KBS_BINARY="$<TARGET_FILE:cloak-kbs>")
  add_dependencies(kbs_integration_test cloak-kbs)
endif()
