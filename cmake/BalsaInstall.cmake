# Packaging: libbalsa (shared, with a SOVERSION, and static) made of the library's layers (core,
# storage, transport, runtime), its headers under <prefix>/include/balsa, a CMake package
# (find_package(balsa CONFIG): balsa::balsa, balsa::balsa_static), a pkg-config file (balsa.pc),
# balsad and balsa-log, and CPack's Debian packages libbalsa-dev and balsad.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(BALSA_LIBRARY_PARTS balsa_core balsa_storage balsa_snapshot_stream balsa_transport_loopback balsa_runtime)
set(BALSA_LIBRARY_DEPS fmt::fmt spdlog::spdlog Threads::Threads)
set(BALSA_PC_REQUIRES "fmt spdlog")
set(BALSA_PC_REQUIRES_PRIVATE "")
if(BALSA_WITH_GRPC)
  list(APPEND BALSA_LIBRARY_PARTS balsa_transport balsa_transport_proto)
  list(APPEND BALSA_LIBRARY_DEPS gRPC::grpc++ protobuf::libprotobuf)
  set(BALSA_PC_REQUIRES_PRIVATE "grpc++ protobuf")
endif()
set(balsa_objects "")
foreach(part ${BALSA_LIBRARY_PARTS})
  list(APPEND balsa_objects $<TARGET_OBJECTS:${part}>)
endforeach()

add_library(balsa SHARED ${balsa_objects})
add_library(balsa_static STATIC ${balsa_objects})
foreach(t balsa balsa_static)
  set_target_properties(${t} PROPERTIES OUTPUT_NAME balsa)
  target_link_libraries(${t} PUBLIC ${BALSA_LIBRARY_DEPS})
  target_compile_features(${t} PUBLIC cxx_std_20)
  # Inside the package the layers' headers are <prefix>/include/balsa/{core,storage,...}/*.h
  # and include one another as "core/types.h"; <balsa/balsa.h> is the umbrella header.
  target_include_directories(${t} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/src>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/balsa>)
endforeach()
set_target_properties(balsa PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}
                                       EXPORT_NAME balsa)
set_target_properties(balsa_static PROPERTIES EXPORT_NAME balsa_static)
add_library(balsa::balsa ALIAS balsa)
add_library(balsa::balsa_static ALIAS balsa_static)

install(TARGETS balsa balsa_static EXPORT balsaTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(DIRECTORY include/balsa DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
foreach(layer core storage transport runtime)
  install(DIRECTORY src/${layer} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/balsa COMPONENT dev
          FILES_MATCHING PATTERN "*.h"
          PATTERN "*test*" EXCLUDE     # test fixtures (test_cluster.h, test_util.h)
          PATTERN "sim_fs.h" EXCLUDE)  # the simulated disk is not part of the library
endforeach()

set(BALSA_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/balsa)
install(EXPORT balsaTargets NAMESPACE balsa:: DESTINATION ${BALSA_CMAKE_DIR} COMPONENT dev)
configure_package_config_file(cmake/balsaConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/balsaConfig.cmake
                              INSTALL_DESTINATION ${BALSA_CMAKE_DIR})
# 0.x: a minor version may break the API, so only the same minor version is compatible.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/balsaConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/balsaConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/balsaConfigVersion.cmake
        DESTINATION ${BALSA_CMAKE_DIR} COMPONENT dev)

# balsa.pc finds its prefix from its own location, so the package can be installed anywhere.
file(RELATIVE_PATH BALSA_PC_TO_PREFIX "/root/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/root")
configure_file(cmake/balsa.pc.in ${CMAKE_CURRENT_BINARY_DIR}/balsa.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/balsa.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

if(TARGET balsad)
  install(TARGETS balsad RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT server)
endif()
if(TARGET balsa-log)
  install(TARGETS balsa-log RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT server)
endif()

# cpack -G DEB (in the build directory): libbalsa-dev_<v>_<arch>.deb and balsad_<v>_<arch>.deb.
set(CPACK_PACKAGE_NAME balsa)
set(CPACK_PACKAGE_VENDOR "Balsa")
set(CPACK_PACKAGE_CONTACT "Balsa developers <balsa@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL dev server)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libbalsa-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libfmt-dev, libspdlog-dev, libgrpc++-dev, libprotobuf-dev")
set(CPACK_COMPONENT_DEV_DESCRIPTION "Balsa Raft library: headers, shared and static libraries, CMake and pkg-config files")
set(CPACK_DEBIAN_SERVER_PACKAGE_NAME balsad)
set(CPACK_DEBIAN_SERVER_PACKAGE_SECTION net)
set(CPACK_DEBIAN_SERVER_PACKAGE_SHLIBDEPS ON)
set(CPACK_COMPONENT_SERVER_DESCRIPTION "balsad, an etcd v3 compatible replicated key-value server, and balsa-log")
include(CPack)
