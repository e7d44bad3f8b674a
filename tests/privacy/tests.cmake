# Privacy planning and audit commands, run as real executables.
add_test(NAME privacy.cli COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_privacy_cli.sh $<TARGET_FILE:storefl-aggregator>)
set_tests_properties(privacy.cli PROPERTIES TIMEOUT 120)

add_executable(privacy_make_ledger ${CMAKE_CURRENT_LIST_DIR}/make_ledger.c)
target_link_libraries(privacy_make_ledger PRIVATE storefl_aggregator_lib storefl_protocol storefl_shared)
add_test(NAME privacy.audit COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_audit_cli.sh $<TARGET_FILE:storefl-aggregator>
  $<TARGET_FILE:privacy_make_ledger>)
set_tests_properties(privacy.audit PROPERTIES TIMEOUT 120)
