# The federated demo, short: a few stores, a few rounds, a smaller model, real DTLS on 127.0.0.1
# (ports 21100-21199), then Ctrl-C in the middle of a campaign. See tests/demo/test_demo.sh.
add_test(NAME demo.campaign COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_demo.sh campaign ${CMAKE_SOURCE_DIR}
  ${CMAKE_BINARY_DIR} 21100)
set_tests_properties(demo.campaign PROPERTIES TIMEOUT 300 ENVIRONMENT "${STOREFL_TEST_ENV}")
add_test(NAME demo.interrupt COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_demo.sh interrupt ${CMAKE_SOURCE_DIR}
  ${CMAKE_BINARY_DIR} 21110)
set_tests_properties(demo.interrupt PROPERTIES TIMEOUT 300 ENVIRONMENT "${STOREFL_TEST_ENV}")
