# Package files for installs (included by the top-level CMakeLists.txt when LIFELINE_INSTALL
# is on; sdk/CMakeLists.txt installs the libraries, headers and programs themselves):
#   <libdir>/cmake/Lifeline/  LifelineConfig.cmake, LifelineConfigVersion.cmake,
#                             LifelineTargets*.cmake (Lifeline::lifeline, ::lifeline_static,
#                             ::protobuf_c) and LifelineProto.cmake (lifeline_add_proto)
#   <libdir>/pkgconfig/       lifeline.pc
# Every path in them is relative to the install prefix, so `cmake --install --prefix DIR`
# and moving the tree afterwards both work.
include(CMakePackageConfigHelpers)

set(LIFELINE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Lifeline)

install(EXPORT LifelineTargets NAMESPACE Lifeline:: DESTINATION ${LIFELINE_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/LifelineConfig.cmake.in
  ${PROJECT_BINARY_DIR}/LifelineConfig.cmake INSTALL_DESTINATION ${LIFELINE_CMAKE_DIR})
# Within a major version (0.x included) a newer version serves a program written for an older
# one: the ABI rule in docs/DEVELOPMENT.md.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/LifelineConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/LifelineConfig.cmake
  ${PROJECT_BINARY_DIR}/LifelineConfigVersion.cmake ${CMAKE_CURRENT_LIST_DIR}/LifelineProto.cmake
  DESTINATION ${LIFELINE_CMAKE_DIR})

# pkg-config finds the prefix from the .pc file's own place: ${pcfiledir}/../.. for lib/pkgconfig.
file(RELATIVE_PATH LIFELINE_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" LIFELINE_PC_TO_PREFIX "${LIFELINE_PC_TO_PREFIX}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/lifeline.pc.in ${PROJECT_BINARY_DIR}/lifeline.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/lifeline.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
