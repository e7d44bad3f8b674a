# Hardening tests: the wire, impairment, hostile input, faults (ports 22000-22999 on 127.0.0.1).
# Real processes (storefl-aggregator serve, storefl-agent, net_peer from tests/network) over DTLS.
set(HARD_DIR ${CMAKE_CURRENT_LIST_DIR})
add_test(NAME hardening.wire COMMAND bash ${HARD_DIR}/test_wire.sh $<TARGET_FILE:storefl-aggregator>
  $<TARGET_FILE:storefl-agent> $<TARGET_FILE:net_peer> ${CMAKE_SOURCE_DIR} 22010)
set_tests_properties(hardening.wire PROPERTIES TIMEOUT 300)

add_executable(udp_relay ${HARD_DIR}/udp_relay.c)
add_test(NAME hardening.loss COMMAND env LOSSES=0.10 bash ${HARD_DIR}/test_loss.sh $<TARGET_FILE:storefl-aggregator> $<TARGET_FILE:storefl-agent>
  $<TARGET_FILE:net_peer> $<TARGET_FILE:udp_relay> ${CMAKE_SOURCE_DIR} 22020)
set_tests_properties(hardening.loss PROPERTIES TIMEOUT 600)

add_test(NAME hardening.dtls_hostile COMMAND bash ${HARD_DIR}/test_dtls_hostile.sh $<TARGET_FILE:storefl-aggregator>
  $<TARGET_FILE:net_peer> ${CMAKE_SOURCE_DIR} 22050)
set_tests_properties(hardening.dtls_hostile PROPERTIES TIMEOUT 300)

add_executable(mutate_update ${HARD_DIR}/mutate_update.c)
target_link_libraries(mutate_update PRIVATE storefl_protocol storefl_shared)
add_test(NAME hardening.hostile_updates COMMAND bash ${HARD_DIR}/test_hostile_updates.sh
  $<TARGET_FILE:storefl-aggregator> $<TARGET_FILE:net_peer> $<TARGET_FILE:mutate_update> ${CMAKE_SOURCE_DIR} 22060)
set_tests_properties(hardening.hostile_updates PROPERTIES TIMEOUT 300)

# A few trials of the kill -9 campaign (the long one: scripts/kill9-campaign.sh, >= 50 trials).
add_test(NAME hardening.kill9 COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/kill9-campaign.sh --trials 3
  --build ${CMAKE_BINARY_DIR} --port 22080 --seed 3)
set_tests_properties(hardening.kill9 PROPERTIES TIMEOUT 300 DEPENDS "storefl-aggregator;net_peer")

add_test(NAME hardening.disk_full COMMAND bash ${HARD_DIR}/test_disk_full.sh $<TARGET_FILE:storefl-aggregator>
  $<TARGET_FILE:net_peer> ${CMAKE_SOURCE_DIR} 22090)
set_tests_properties(hardening.disk_full PROPERTIES TIMEOUT 300)

add_test(NAME hardening.overload COMMAND bash ${HARD_DIR}/test_overload.sh $<TARGET_FILE:storefl-aggregator>
  $<TARGET_FILE:net_peer> $<TARGET_FILE:block1_peer> ${CMAKE_SOURCE_DIR} 22100)
set_tests_properties(hardening.overload PROPERTIES TIMEOUT 300)

add_executable(block1_peer ${HARD_DIR}/block1_peer.c)
target_link_libraries(block1_peer PRIVATE storefl_protocol storefl_shared)
add_test(NAME hardening.block1 COMMAND bash ${HARD_DIR}/test_block1.sh $<TARGET_FILE:storefl-aggregator>
  $<TARGET_FILE:net_peer> $<TARGET_FILE:block1_peer> ${CMAKE_SOURCE_DIR} 22110)
set_tests_properties(hardening.block1 PROPERTIES TIMEOUT 300)

add_test(NAME hardening.startup COMMAND bash ${HARD_DIR}/test_startup.sh $<TARGET_FILE:storefl-aggregator>
  $<TARGET_FILE:net_peer> ${CMAKE_SOURCE_DIR} 22120)
set_tests_properties(hardening.startup PROPERTIES TIMEOUT 300)

add_test(NAME hardening.restore_close COMMAND bash ${HARD_DIR}/test_restore_close.sh
  $<TARGET_FILE:storefl-aggregator> $<TARGET_FILE:net_peer> ${CMAKE_SOURCE_DIR} 22130)
set_tests_properties(hardening.restore_close PROPERTIES TIMEOUT 300)

add_test(NAME hardening.handshake_loss COMMAND bash ${HARD_DIR}/test_handshake_loss.sh
  $<TARGET_FILE:storefl-aggregator> $<TARGET_FILE:storefl-agent> $<TARGET_FILE:net_peer> $<TARGET_FILE:udp_relay>
  ${CMAKE_SOURCE_DIR} 22140)
set_tests_properties(hardening.handshake_loss PROPERTIES TIMEOUT 300)

add_test(NAME hardening.rate_limit COMMAND bash ${HARD_DIR}/test_rate_limit.sh $<TARGET_FILE:storefl-aggregator>
  $<TARGET_FILE:storefl-agent> $<TARGET_FILE:net_peer> ${CMAKE_SOURCE_DIR} 22150)
set_tests_properties(hardening.rate_limit PROPERTIES TIMEOUT 300)

# A few trials of the agent power-cut campaign (the long one: scripts/agent-powercut.sh, >= 20).
add_test(NAME hardening.agent_powercut COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/agent-powercut.sh --trials 6
  --build ${CMAKE_BINARY_DIR} --port 22960 --seed 3)
set_tests_properties(hardening.agent_powercut PROPERTIES TIMEOUT 300 ENVIRONMENT "${STOREFL_TEST_ENV}")
