# Store / ingest / partition tests that run the real storefl-agent on real data.
add_test(NAME store.ingest_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/store/test_ingest_cli.sh
  $<TARGET_FILE:storefl-agent>)
set_tests_properties(store.ingest_cli PROPERTIES TIMEOUT 300 ENVIRONMENT "${STOREFL_TEST_ENV}")
add_test(NAME store.partition_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/store/test_partition_cli.sh
  $<TARGET_FILE:storefl-agent>)
set_tests_properties(store.partition_cli PROPERTIES TIMEOUT 300 ENVIRONMENT "${STOREFL_TEST_ENV}")
