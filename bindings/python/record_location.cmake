# Run by `cmake --install` (install(CODE) in CMakeLists.txt here), with LL_PY_SITEDIR,
# LL_LIBDIR and LL_SOURCE_RECORD set: writes the installed library's path into the installed
# package's _library_location and into LL_SOURCE_RECORD (or $ENV{LIFELINE_PYTHON_RECORD};
# "none": nowhere). The path excludes DESTDIR: it is where the library will be at run time.
function(ll_abs out path)
  if(IS_ABSOLUTE "${path}")
    set(${out} "${path}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${path}" PARENT_SCOPE)
  endif()
endfunction()

ll_abs(library "${LL_LIBDIR}/liblifeline.so.0")
ll_abs(package "${LL_PY_SITEDIR}/lifeline")
file(WRITE "$ENV{DESTDIR}${package}/_library_location" "${library}\n")
message(STATUS "Recorded: ${library} in $ENV{DESTDIR}${package}/_library_location")

set(source_record "${LL_SOURCE_RECORD}")
if(DEFINED ENV{LIFELINE_PYTHON_RECORD})
  set(source_record "$ENV{LIFELINE_PYTHON_RECORD}")
endif()
if(NOT source_record STREQUAL "none")
  # A read-only checkout only loses the convenience for a later pip install, not the install.
  execute_process(COMMAND ${CMAKE_COMMAND} -E copy "$ENV{DESTDIR}${package}/_library_location"
    "${source_record}" RESULT_VARIABLE rc ERROR_QUIET)
  if(rc EQUAL 0)
    message(STATUS "Recorded: ${library} in ${source_record} (for pip install ./bindings/python)")
  else()
    message(WARNING "Cannot write ${source_record}: pip install ./bindings/python will not know "
      "where the library went (set LIFELINE_LIBRARY=${library} then)")
  endif()
endif()
