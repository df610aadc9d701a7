# Lifeline's protobuf-c helpers. The same file serves the build tree (the top-level
# CMakeLists.txt includes it, so add_subdirectory(lifeline) users get it too) and installs
# (LifelineConfig.cmake includes it, so find_package(Lifeline) users get it).
#
# lifeline_add_proto(<target> <file.proto>... [IMPORT_DIRS <dir>...])
#   Run protoc-c on each .proto at build time (again whenever the .proto changes), add the
#   generated .c files to <target>, add their directory to <target>'s PUBLIC include
#   directories (so `#include "name.pb-c.h"` works, for <target> and for what links it), and
#   link <target> PUBLIC to Lifeline::protobuf_c (protobuf-c's headers and library).
#   Each file's own directory is on protoc-c's import path, then IMPORT_DIRS. Call it in the
#   directory that created <target> (generated sources belong to their directory), and use
#   the keyword form of target_link_libraries (PUBLIC/PRIVATE) for <target>.
#
# lifeline_protoc_c(<out_var> <file.proto>...)
#   Lower level, used for Lifeline's own wire protocol: generate into
#   ${CMAKE_CURRENT_BINARY_DIR}/gen; <out_var> receives the generated .c files.
#
# Generated code is never committed. protoc-c is looked up on first use (PROTOC_C caches it),
# so projects that use no .proto file do not need it installed.
include_guard(GLOBAL)

function(_lifeline_need_protoc_c)
  if(NOT PROTOC_C)
    find_program(PROTOC_C protoc-c)
  endif()
  if(NOT PROTOC_C)
    message(FATAL_ERROR
      "Lifeline: protoc-c not found (Debian: apt-get install protobuf-c-compiler), "
      "or set PROTOC_C to its path")
  endif()
endfunction()

# _lifeline_protoc_c_into(<out_var> <out_dir> PROTOS <file>... [IMPORT_DIRS <dir>...])
function(_lifeline_protoc_c_into out_var out_dir)
  cmake_parse_arguments(PARSE_ARGV 2 arg "" "" "PROTOS;IMPORT_DIRS")
  _lifeline_need_protoc_c()
  set(import_flags)
  foreach(dir IN LISTS arg_IMPORT_DIRS)
    get_filename_component(dir ${dir} ABSOLUTE)
    list(APPEND import_flags -I ${dir})
  endforeach()
  set(generated)
  foreach(proto IN LISTS arg_PROTOS)
    get_filename_component(abs ${proto} ABSOLUTE)
    get_filename_component(dir ${abs} DIRECTORY)
    get_filename_component(name ${abs} NAME_WE)
    add_custom_command(
      OUTPUT ${out_dir}/${name}.pb-c.c ${out_dir}/${name}.pb-c.h
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
      COMMAND ${PROTOC_C} --c_out=${out_dir} -I ${dir} ${import_flags} ${abs}
      DEPENDS ${abs}
      COMMENT "protoc-c ${name}.proto"
      VERBATIM)
    list(APPEND generated ${out_dir}/${name}.pb-c.c)
  endforeach()
  set(${out_var} ${generated} PARENT_SCOPE)
endfunction()

function(lifeline_protoc_c out_var)
  _lifeline_protoc_c_into(generated ${CMAKE_CURRENT_BINARY_DIR}/gen PROTOS ${ARGN})
  set(${out_var} ${generated} PARENT_SCOPE)
endfunction()

function(lifeline_add_proto target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "IMPORT_DIRS")
  if(NOT TARGET ${target})
    message(FATAL_ERROR "lifeline_add_proto: no target '${target}' (create it first)")
  endif()
  if(NOT arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "lifeline_add_proto(${target}): no .proto file given")
  endif()
  if(NOT TARGET Lifeline::protobuf_c)
    message(FATAL_ERROR "lifeline_add_proto: Lifeline::protobuf_c is missing: "
      "use find_package(Lifeline) or add_subdirectory(<lifeline>) first")
  endif()
  # One directory per target, so two targets of one directory may use the same .proto.
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/lifeline_proto/${target})
  _lifeline_protoc_c_into(generated ${out_dir}
    PROTOS ${arg_UNPARSED_ARGUMENTS} IMPORT_DIRS ${arg_IMPORT_DIRS})
  target_sources(${target} PRIVATE ${generated})
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${out_dir}>)
  target_link_libraries(${target} PUBLIC Lifeline::protobuf_c)
endfunction()
