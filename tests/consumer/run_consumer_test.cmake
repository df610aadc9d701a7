# cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DLIFELINE_SOURCE_DIR=... -DWORK_DIR=...
#       -DGENERATOR=... -DC_COMPILER=... [-DSANITIZE=address|thread] -P run_consumer_test.cmake
#
# Installs the Lifeline build in BUILD_DIR into a fresh prefix under WORK_DIR, then, with
# nothing but that prefix: runs the installed lifeline-server --help (its RPATH finds the
# library); configures, builds and runs the project in SOURCE_DIR (find_package(Lifeline),
# lifeline_add_proto, shared, static and C++); builds and runs a program from pkg-config's
# flags alone. Last, the same project with Lifeline's sources as a subdirectory
# (add_subdirectory(LIFELINE_SOURCE_DIR), tests and samples off). No network. A sanitizer
# build's library needs the same sanitizer in its users.
cmake_minimum_required(VERSION 3.20)

foreach(var BUILD_DIR SOURCE_DIR LIFELINE_SOURCE_DIR WORK_DIR GENERATOR C_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer_test.cmake: -D${var}=... is required")
  endif()
endforeach()

# run(<what> <command>...): run it, fail the test with its output unless it exits 0.
# Its stdout is left in run_output.
function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${ARGN}\n--- stdout\n${out}\n--- stderr\n${err}")
  endif()
  message(STATUS "${what}: ok")
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

function(expect_file pattern)
  file(GLOB found ${prefix}/${pattern})
  if(NOT found)
    message(FATAL_ERROR "not installed: <prefix>/${pattern}")
  endif()
endfunction()

set(sanitize_flags "")
if(SANITIZE STREQUAL "address")
  set(sanitize_flags "-fsanitize=address,undefined")
elseif(SANITIZE STREQUAL "thread")
  set(sanitize_flags "-fsanitize=thread")
endif()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

run("cmake --install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
foreach(f include/lifeline/sdk.h include/lifeline/server.h include/lifeline/pb.h
    lib*/liblifeline.so lib*/liblifeline.a bin/lifeline-server bin/lifeline-cat
    lib*/cmake/Lifeline/LifelineConfig.cmake lib*/cmake/Lifeline/LifelineConfigVersion.cmake
    lib*/cmake/Lifeline/LifelineTargets.cmake lib*/cmake/Lifeline/LifelineProto.cmake
    lib*/pkgconfig/lifeline.pc)
  expect_file(${f})
endforeach()
run("installed lifeline-server --help" ${prefix}/bin/lifeline-server --help)

# build_consumer(<dir> <cmake args>...): configure, build and run the consumer project.
function(build_consumer dir)
  run("configure consumer (${dir})" ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/${dir}
    -G ${GENERATOR} -DCMAKE_C_COMPILER=${C_COMPILER} -DCMAKE_BUILD_TYPE=Debug
    "-DCMAKE_C_FLAGS=${sanitize_flags}" "-DCMAKE_CXX_FLAGS=${sanitize_flags}"
    "-DCMAKE_EXE_LINKER_FLAGS=${sanitize_flags}" "-DCMAKE_SHARED_LINKER_FLAGS=${sanitize_flags}"
    ${ARGN})
  run("build consumer (${dir})" ${CMAKE_COMMAND} --build ${WORK_DIR}/${dir} --parallel 2)
  foreach(exe consumer_shared consumer_static consumer_own_package consumer_cxx)
    if(exe STREQUAL "consumer_cxx" AND NOT EXISTS ${WORK_DIR}/${dir}/${exe})
      message(STATUS "${exe}: no C++ compiler, skipped")
      continue()
    endif()
    run("${dir}/${exe} --help" ${WORK_DIR}/${dir}/${exe} --help)
    run("${dir}/${exe}" ${WORK_DIR}/${dir}/${exe})
    if(NOT run_output MATCHES "consumer: ok")
      message(FATAL_ERROR "${exe} printed:\n${run_output}")
    endif()
  endforeach()
endfunction()

# Only the prefix: no path back into the build tree.
build_consumer(installed -DCMAKE_PREFIX_PATH=${prefix})

# pkg-config alone, with the .pc file found from the prefix.
find_program(PKG_CONFIG pkg-config REQUIRED)
file(GLOB pc_dir ${prefix}/lib*/pkgconfig)
set(ENV{PKG_CONFIG_PATH} ${pc_dir})
run("pkg-config" ${PKG_CONFIG} --cflags --libs lifeline)
string(STRIP "${run_output}" pc_flags)
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
separate_arguments(san UNIX_COMMAND "${sanitize_flags}")
file(GLOB lib_dir ${prefix}/lib*/liblifeline.so)
get_filename_component(lib_dir ${lib_dir} DIRECTORY)
run("build with pkg-config" ${C_COMPILER} -std=c11 -Wall -Wextra -Werror ${san}
  ${SOURCE_DIR}/pc_main.c -o ${WORK_DIR}/pc_main ${pc_flags} -Wl,-rpath,${lib_dir})
run("pkg-config program" ${WORK_DIR}/pc_main)

build_consumer(subdirectory -DLIFELINE_SOURCE_DIR=${LIFELINE_SOURCE_DIR})
file(REMOVE_RECURSE ${WORK_DIR})
