# storefl-agent eval on a slice of the real data (the full evaluation is tools/eval_report.sh).
add_test(NAME eval.command COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/eval/test_eval_cmd.sh
  $<TARGET_FILE:storefl-agent> ${STOREFL_DATA_DIR})
set_tests_properties(eval.command PROPERTIES TIMEOUT 300)
