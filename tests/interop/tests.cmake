# Interoperability tests of the wire protocol (owned by protocol/).

# 1. cbor2 (Debian's python3-cbor2, an independent CBOR implementation) against our codec, both
#    directions. Debian's interpreter is named explicitly: a pyenv or venv python may lack cbor2.
find_program(STOREFL_DEBIAN_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH REQUIRED)
add_executable(codec_interop ${CMAKE_CURRENT_LIST_DIR}/codec_interop.c)
target_include_directories(codec_interop PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../unit)
target_link_libraries(codec_interop PRIVATE storefl_protocol storefl_shared)
set(_c2py ${CMAKE_CURRENT_BINARY_DIR}/interop-c-to-cbor2)
set(_py2c ${CMAKE_CURRENT_BINARY_DIR}/interop-cbor2-to-c)
add_test(NAME interop.cbor2_reads_c
  COMMAND sh -c "rm -rf '${_c2py}' && mkdir -p '${_c2py}' && '$<TARGET_FILE:codec_interop>' write '${_c2py}' && '${STOREFL_DEBIAN_PYTHON3}' '${CMAKE_CURRENT_LIST_DIR}/cbor2_interop.py' check '${_c2py}'")
add_test(NAME interop.c_reads_cbor2
  COMMAND sh -c "rm -rf '${_py2c}' && mkdir -p '${_py2c}' && '${STOREFL_DEBIAN_PYTHON3}' '${CMAKE_CURRENT_LIST_DIR}/cbor2_interop.py' write '${_py2c}' && '$<TARGET_FILE:codec_interop>' read '${_py2c}'")
set_tests_properties(interop.cbor2_reads_c interop.c_reads_cbor2 PROPERTIES TIMEOUT 60)

# 2. The start-up transport check refuses a libcoap on OpenSSL: protocol/src/transport_check.c
#    (storefl_check_transport, split out of buildinfo.c for this) compiled against the 4.3.5
#    headers but linked with Debian's OpenSSL libcoap 4.3.1 (installed with libcoap3-bin).
set(STOREFL_OPENSSL_LIBCOAP /usr/lib/x86_64-linux-gnu/libcoap-3-openssl.so.3 CACHE FILEPATH
  "Debian's libcoap built on OpenSSL, used to prove the transport check refuses it")
if(EXISTS ${STOREFL_OPENSSL_LIBCOAP})
  get_target_property(_coap_inc libcoap::coap-3 INTERFACE_INCLUDE_DIRECTORIES)
  add_executable(transport_check_openssl ${CMAKE_CURRENT_LIST_DIR}/transport_check_openssl.c
    ${CMAKE_SOURCE_DIR}/protocol/src/transport_check.c)
  target_include_directories(transport_check_openssl PRIVATE ${_coap_inc} ${CMAKE_SOURCE_DIR}/protocol/include
    ${CMAKE_SOURCE_DIR}/shared/include)
  target_link_libraries(transport_check_openssl PRIVATE ${STOREFL_OPENSSL_LIBCOAP} storefl_shared)
  add_test(NAME interop.transport_refuses_openssl_libcoap COMMAND transport_check_openssl)
  set_tests_properties(interop.transport_refuses_openssl_libcoap PROPERTIES TIMEOUT 30)
else()
  message(WARNING "${STOREFL_OPENSSL_LIBCOAP} missing (libcoap3-bin): transport refusal test not built")
endif()
