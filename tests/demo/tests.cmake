# The federated demo, short, with real DTLS on 127.0.0.1 (ports 21100-21199); see
# tests/demo/test_demo.sh. demo.campaign trains 12 stores' default models for 3 rounds: ~30 s in the
# release tree, ~90 s under ASan (12 sanitized agents on 2 cores), so it is registered in the
# release tree only; demo.interrupt (Ctrl-C during a 6-store campaign) and demo.late_observer (12 stores, small model)
# run in both.
if(NOT STOREFL_SANITIZE)
  add_test(NAME demo.campaign COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_demo.sh campaign ${CMAKE_SOURCE_DIR}
    ${CMAKE_BINARY_DIR} 21100)
  set_tests_properties(demo.campaign PROPERTIES TIMEOUT 300 ENVIRONMENT "${STOREFL_TEST_ENV}")
endif()
add_test(NAME demo.late_observer COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_demo.sh late ${CMAKE_SOURCE_DIR}
  ${CMAKE_BINARY_DIR} 21120)
set_tests_properties(demo.late_observer PROPERTIES TIMEOUT 300 ENVIRONMENT "${STOREFL_TEST_ENV}")
add_test(NAME demo.interrupt COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_demo.sh interrupt ${CMAKE_SOURCE_DIR}
  ${CMAKE_BINARY_DIR} 21110)
set_tests_properties(demo.interrupt PROPERTIES TIMEOUT 300 ENVIRONMENT "${STOREFL_TEST_ENV}")
