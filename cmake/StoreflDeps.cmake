# Locates the system libraries (Debian packages) and libcoap built by scripts/setup.sh.
find_package(PkgConfig REQUIRED)
pkg_check_modules(CBOR REQUIRED IMPORTED_TARGET libcbor)
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
pkg_check_modules(INIH REQUIRED IMPORTED_TARGET inih)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
find_package(ZLIB REQUIRED)
find_package(Threads REQUIRED)

# Mbed TLS 2.28 (Debian) ships neither pkg-config nor CMake files.
find_path(MBEDTLS_INCLUDE_DIR mbedtls/ssl.h REQUIRED)
find_library(MBEDTLS_LIB mbedtls REQUIRED)
find_library(MBEDX509_LIB mbedx509 REQUIRED)
find_library(MBEDCRYPTO_LIB mbedcrypto REQUIRED)
add_library(storefl_mbedtls INTERFACE)
target_include_directories(storefl_mbedtls INTERFACE ${MBEDTLS_INCLUDE_DIR})
target_link_libraries(storefl_mbedtls INTERFACE ${MBEDTLS_LIB} ${MBEDX509_LIB} ${MBEDCRYPTO_LIB})

set(STOREFL_COAP_PREFIX "/opt/storefl/libcoap-4.3.5-mbedtls" CACHE PATH "libcoap built with Mbed TLS (scripts/setup.sh)")
if(DEFINED ENV{STOREFL_COAP_PREFIX})
  set(STOREFL_COAP_PREFIX "$ENV{STOREFL_COAP_PREFIX}")
endif()
find_package(libcoap 4.3 REQUIRED CONFIG PATHS "${STOREFL_COAP_PREFIX}" NO_DEFAULT_PATH)

if(STOREFL_TESTS)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()
