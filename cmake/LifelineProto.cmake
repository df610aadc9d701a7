# lifeline_protoc_c(OUT_VAR file.proto ...): generate protobuf-c sources at build time
# into the binary dir; OUT_VAR receives the generated .c files. Generated code is never committed.
function(lifeline_protoc_c out_var)
  set(generated)
  foreach(proto IN LISTS ARGN)
    get_filename_component(abs ${proto} ABSOLUTE)
    get_filename_component(dir ${abs} DIRECTORY)
    get_filename_component(name ${abs} NAME_WE)
    set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/gen)
    add_custom_command(
      OUTPUT ${out_dir}/${name}.pb-c.c ${out_dir}/${name}.pb-c.h
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
      COMMAND ${PROTOC_C} --c_out=${out_dir} -I ${dir} ${abs}
      DEPENDS ${abs}
      COMMENT "protoc-c ${name}.proto")
    list(APPEND generated ${out_dir}/${name}.pb-c.c)
  endforeach()
  set(${out_var} ${generated} PARENT_SCOPE)
endfunction()
