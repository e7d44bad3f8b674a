# The model commands (train, personalize, recommend) end to end on a real SQLite store built from a
# slice of the real Online Retail data.
add_test(NAME model.recommend_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/model/test_recommend_cli.sh
  $<TARGET_FILE:storefl-agent>)
set_tests_properties(model.recommend_cli PROPERTIES TIMEOUT 300 ENVIRONMENT "${STOREFL_TEST_ENV}")
