# Privacy planning and audit commands, run as real executables.
add_test(NAME privacy.cli COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_privacy_cli.sh $<TARGET_FILE:storefl-aggregator>)
set_tests_properties(privacy.cli PROPERTIES TIMEOUT 120)

add_executable(privacy_make_ledger ${CMAKE_CURRENT_LIST_DIR}/make_ledger.c)
target_link_libraries(privacy_make_ledger PRIVATE storefl_aggregator_lib storefl_protocol storefl_shared)
add_test(NAME privacy.audit COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_audit_cli.sh $<TARGET_FILE:storefl-aggregator>
  $<TARGET_FILE:privacy_make_ledger>)
set_tests_properties(privacy.audit PROPERTIES TIMEOUT 120)

# Local mode end to end: agents noise on the round's grid before the outbox; the aggregator only averages.
# Debian's python3 has python3-cbor2 (a pyenv or venv python may not).
find_program(STOREFL_DEBIAN_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH REQUIRED)
add_test(NAME privacy.local_mode COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_local_mode.sh
  $<TARGET_FILE:storefl-aggregator> $<TARGET_FILE:storefl-agent> ${CMAKE_SOURCE_DIR} ${STOREFL_DATA_DIR} 20170
  ${STOREFL_DEBIAN_PYTHON3})
set_tests_properties(privacy.local_mode PROPERTIES TIMEOUT 300)

# One ledger configuration: [ledger] key/epsilon_cap/enrolment, start-up errors, enrolled stores charged.
add_test(NAME privacy.ledger_config COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_ledger_config.sh
  $<TARGET_FILE:storefl-aggregator> $<TARGET_FILE:net_peer> ${CMAKE_SOURCE_DIR} 20180)
set_tests_properties(privacy.ledger_config PROPERTIES TIMEOUT 120)
