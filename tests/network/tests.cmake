# Transport tests: real processes talking CoAP over DTLS on 127.0.0.1 (ports 20000-20999).
add_executable(net_peer ${CMAKE_CURRENT_LIST_DIR}/net_peer.c)
target_link_libraries(net_peer PRIVATE storefl_aggregator_lib storefl_protocol storefl_shared)
