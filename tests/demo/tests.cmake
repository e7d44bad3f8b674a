# The federated demo, short, with real DTLS on 127.0.0.1 (ports 21100-21199); see
# tests/demo/test_demo.sh. demo.campaign trains 12 stores' default models for 3 rounds: ~30 s in the
# release tree, ~90 s under ASan (12 sanitized agents on 2 cores), so it is registered in the
# release tree only; demo.interrupt (Ctrl-C during a 6-store campaign) and demo.late_observer
# (12 stores, small model) run in both.
# Ports: 21100-21129 in the release tree, 21150-21179 in the ASan tree, so that both suites can run
# at the same time.
if(STOREFL_SANITIZE)
  set(STOREFL_DEMO_PORT 21150)
else()
  set(STOREFL_DEMO_PORT 21100)
endif()
math(EXPR STOREFL_DEMO_PORT_LATE "${STOREFL_DEMO_PORT} + 20")
math(EXPR STOREFL_DEMO_PORT_INT "${STOREFL_DEMO_PORT} + 10")
if(NOT STOREFL_SANITIZE)
  add_test(NAME demo.campaign COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_demo.sh campaign ${CMAKE_SOURCE_DIR}
    ${CMAKE_BINARY_DIR} ${STOREFL_DEMO_PORT})
  set_tests_properties(demo.campaign PROPERTIES TIMEOUT 300 ENVIRONMENT "${STOREFL_TEST_ENV}")
endif()
add_test(NAME demo.late_observer COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_demo.sh late ${CMAKE_SOURCE_DIR}
  ${CMAKE_BINARY_DIR} ${STOREFL_DEMO_PORT_LATE})
set_tests_properties(demo.late_observer PROPERTIES TIMEOUT 300 ENVIRONMENT "${STOREFL_TEST_ENV}")
math(EXPR STOREFL_DEMO_PORT_BUDGET "${STOREFL_DEMO_PORT} + 25")
add_test(NAME demo.aggregator_cap COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_demo.sh budget ${CMAKE_SOURCE_DIR}
  ${CMAKE_BINARY_DIR} ${STOREFL_DEMO_PORT_BUDGET})
set_tests_properties(demo.aggregator_cap PROPERTIES TIMEOUT 300 ENVIRONMENT "${STOREFL_TEST_ENV}")
add_test(NAME demo.interrupt COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_demo.sh interrupt ${CMAKE_SOURCE_DIR}
  ${CMAKE_BINARY_DIR} ${STOREFL_DEMO_PORT_INT})
set_tests_properties(demo.interrupt PROPERTIES TIMEOUT 300 ENVIRONMENT "${STOREFL_TEST_ENV}")
# docs/configuration.md lists exactly the INI keys the loaders parse (no build products needed).
add_test(NAME demo.config_keys COMMAND python3 ${CMAKE_CURRENT_LIST_DIR}/config_keys.py ${CMAKE_SOURCE_DIR})
set_tests_properties(demo.config_keys PROPERTIES TIMEOUT 60)
# campaign plan --by country / --mode local / --epsilon-cap inf on the real export (no network; ~15 s).
add_test(NAME demo.campaign_plan COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_campaign_plan.sh ${CMAKE_BINARY_DIR})
set_tests_properties(demo.campaign_plan PROPERTIES TIMEOUT 300 ENVIRONMENT "${STOREFL_TEST_ENV}")
# The countries as stores (12 largest; weight cap, per-store table): release tree only (~30 s).
if(NOT STOREFL_SANITIZE)
  math(EXPR STOREFL_DEMO_PORT_COUNTRIES "${STOREFL_DEMO_PORT} + 28")
  add_test(NAME demo.countries COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_demo.sh countries ${CMAKE_SOURCE_DIR}
    ${CMAKE_BINARY_DIR} ${STOREFL_DEMO_PORT_COUNTRIES})
  set_tests_properties(demo.countries PROPERTIES TIMEOUT 300 ENVIRONMENT "${STOREFL_TEST_ENV}")
endif()
# Regression: an observer arriving after the campaign's last round timed out (both trees; ~45 s release).
math(EXPR STOREFL_DEMO_PORT_AFTER "${STOREFL_DEMO_PORT} + 27")
add_test(NAME demo.observer_after_end COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_demo.sh after ${CMAKE_SOURCE_DIR}
  ${CMAKE_BINARY_DIR} ${STOREFL_DEMO_PORT_AFTER})
set_tests_properties(demo.observer_after_end PROPERTIES TIMEOUT 400 ENVIRONMENT "${STOREFL_TEST_ENV}")

# The README's configuration reference is a generated copy of docs/configuration.md's rows.
add_test(NAME demo.config_readme COMMAND python3 ${CMAKE_SOURCE_DIR}/tools/config_reference.py ${CMAKE_SOURCE_DIR} --check)
set_tests_properties(demo.config_readme PROPERTIES TIMEOUT 60)
