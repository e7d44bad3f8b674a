# Transport tests: real processes talking CoAP over DTLS on 127.0.0.1 (ports 20000-20999).
add_executable(net_peer ${CMAKE_CURRENT_LIST_DIR}/net_peer.c)
target_link_libraries(net_peer PRIVATE storefl_agent_lib storefl_aggregator_lib storefl_protocol storefl_shared)
add_test(NAME network.transport COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_transport.sh $<TARGET_FILE:net_peer>
  ${CMAKE_SOURCE_DIR} 20110)
set_tests_properties(network.transport PROPERTIES TIMEOUT 300)
add_test(NAME network.serve COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_serve.sh $<TARGET_FILE:storefl-aggregator>
  $<TARGET_FILE:storefl-agent> $<TARGET_FILE:net_peer> ${CMAKE_SOURCE_DIR} 20120)
set_tests_properties(network.serve PROPERTIES TIMEOUT 300)
add_test(NAME network.run COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_run.sh $<TARGET_FILE:storefl-aggregator>
  $<TARGET_FILE:storefl-agent> $<TARGET_FILE:net_peer> ${CMAKE_SOURCE_DIR} ${STOREFL_DATA_DIR} 20130)
set_tests_properties(network.run PROPERTIES TIMEOUT 300)
add_test(NAME network.multi COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_multi.sh $<TARGET_FILE:storefl-aggregator>
  $<TARGET_FILE:storefl-agent> $<TARGET_FILE:net_peer> ${CMAKE_SOURCE_DIR} 20150)
set_tests_properties(network.multi PROPERTIES TIMEOUT 600)
add_test(NAME network.hs_flood COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_hs_flood.sh $<TARGET_FILE:storefl-aggregator>
  $<TARGET_FILE:net_peer> ${CMAKE_SOURCE_DIR} 20160)
# Timing-bound (an honest store must get in within four retransmission timeouts): run alone, not
# next to network.multi, whose 50 concurrent handshakes under ASan starve the same two cores.
set_tests_properties(network.hs_flood PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE)
