# Privacy planning and audit commands, run as real executables.
add_test(NAME privacy.cli COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_privacy_cli.sh $<TARGET_FILE:storefl-aggregator>)
set_tests_properties(privacy.cli PROPERTIES TIMEOUT 120)
