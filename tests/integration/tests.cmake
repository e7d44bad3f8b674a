# Integration tests that run the real executables.
add_test(NAME integration.versions COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_versions.sh
  $<TARGET_FILE:storefl-agent> $<TARGET_FILE:storefl-aggregator>)
set_tests_properties(integration.versions PROPERTIES TIMEOUT 60)

add_test(NAME integration.shell_chains COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_shell_chains.sh
  ${CMAKE_SOURCE_DIR})
set_tests_properties(integration.shell_chains PROPERTIES TIMEOUT 60)
