# Writes the one translation unit that carries the build's version (run at
# build time by the target cloak_version_info, see common/CMakeLists.txt).
# configure_file rewrites OUT only when its text changes, so an unchanged
# commit recompiles nothing and a new commit recompiles only this file.
#
# In: SOURCE_DIR (the checkout), PROJECT_VERSION, TEMPLATE, OUT.
set(CLOAK_GIT_SUFFIX "")
find_program(GIT_PROGRAM git)
if(GIT_PROGRAM AND EXISTS "${SOURCE_DIR}/.git")
  execute_process(
    COMMAND ${GIT_PROGRAM} -C ${SOURCE_DIR} rev-parse --short=12 HEAD
    OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE rc ERROR_QUIET)
  if(rc EQUAL 0 AND commit)
    set(CLOAK_GIT_SUFFIX "+git.${commit}")
    execute_process(
      COMMAND ${GIT_PROGRAM} -C ${SOURCE_DIR} status --porcelain --untracked-files=no
      OUTPUT_VARIABLE changes OUTPUT_STRIP_TRAILING_WHITESPACE
      RESULT_VARIABLE rc ERROR_QUIET)
    if(rc EQUAL 0 AND changes)
      string(APPEND CLOAK_GIT_SUFFIX ".dirty")
    endif()
  endif()
endif()
set(CLOAK_VERSION_STRING "${PROJECT_VERSION}${CLOAK_GIT_SUFFIX}")
configure_file(${TEMPLATE} ${OUT} @ONLY)
