# cmake -DLIB=<liblifeline.so.X.Y.Z> -DHEADERS=<sdk/include/lifeline> -DABI_DIR=<tests/abi>
#       -DWORK_DIR=<scratch> -P check_abi.cmake
#
# Dumps the library's ABI (abi-dumper, from its DWARF and the public headers) and compares
# it with every committed baseline, tests/abi/lifeline-<version>.dump, one per release since
# 0.1, through abi-compliance-checker -strict: any binary or source problem with any of them
# fails (docs/DEVELOPMENT.md, "ABI"). Added functions are compatible; removing, renaming or
# changing anything released is not. -strict because without it a field inserted into an
# output struct such as sdk_stats is only a warning.
#
# sized-types.txt: the size-first configurations, which grow by design (fields appended);
# the checker cannot know that the library reads only cfg->size bytes, so they are skipped,
# and src/compat.c freezes their released layouts with static assertions instead. Also
# sdk_message, which only the library allocates (programs hold pointers, sdk.h says so), so
# appended fields are compatible; compat.c freezes its released fields too.
# skip-<version>.txt: for 0.1, the four functions whose 0.1 entry point is now the old
# version (name@LIFELINE_0.1, taking the frozen 0.1 struct): the checker calls them removed
# or changed, not modelling that unversioned references bind to the old version.
# package_exports checks that they are exported and abi_old_program calls them.
cmake_minimum_required(VERSION 3.20)
foreach(var LIB HEADERS ABI_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_abi.cmake: -D${var}=... is required")
  endif()
endforeach()
foreach(tool abi-dumper abi-compliance-checker)
  string(MAKE_C_IDENTIFIER ${tool} var)
  find_program(${var} ${tool})
  if(NOT ${var})
    message(FATAL_ERROR "${tool} not found: bash setup.sh deps (Debian: apt-get install ${tool})")
  endif()
endforeach()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(current ${WORK_DIR}/current.dump)
execute_process(COMMAND ${abi_dumper} ${LIB} -o ${current} -lver current -public-headers ${HEADERS}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "abi-dumper failed (${rc}):\n${out}\n${err}")
endif()

file(GLOB baselines ${ABI_DIR}/lifeline-*.dump)
if(NOT baselines)
  message(FATAL_ERROR "no baseline in ${ABI_DIR} (lifeline-<version>.dump)")
endif()
set(failed "")
foreach(baseline IN LISTS baselines)
  get_filename_component(name ${baseline} NAME)
  string(REGEX REPLACE "^lifeline-(.*)\\.dump$" "\\1" version "${name}")
  set(skip -skip-types ${ABI_DIR}/sized-types.txt)
  if(EXISTS ${ABI_DIR}/skip-${version}.txt)
    list(APPEND skip -skip-symbols ${ABI_DIR}/skip-${version}.txt)
  endif()
  set(report ${WORK_DIR}/${version}-to-current.html)
  execute_process(COMMAND ${abi_compliance_checker} -l lifeline -old ${baseline} -new ${current}
    -report-path ${report} -strict ${skip} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(REGEX MATCHALL "(Binary|Source|Total)[^\n]*compatibility[^\n]*" summary "${out}")
  list(JOIN summary "\n  " summary)
  if(rc EQUAL 0)
    message(STATUS "ABI ${version} -> current: compatible\n  ${summary}")
  else()
    message(STATUS "ABI ${version} -> current: BROKEN (${rc})\n  ${summary}\n  report: ${report}\n${err}")
    list(APPEND failed ${version})
  endif()
endforeach()
if(NOT failed STREQUAL "")
  message(FATAL_ERROR "the library is not compatible with release(s) ${failed}: see the reports above. "
    "An intended break needs a new SONAME (docs/DEVELOPMENT.md, \"ABI\").")
endif()
