# Many agents in one process (agent/src/sim_engine.h) against the real aggregator on 127.0.0.1.
# sim.load: the load generator (bench/bench_load.c, built here too so that the test does not depend
# on STOREFL_BENCH) with 50 agents x 2 rounds, each with its own DTLS PSK session; it exits non-zero
# unless every upload got a receipt, every receipt is counted in its closed round and nothing is
# counted twice (storefl-aggregator rounds), and both rounds closed.
add_executable(sim_load ${CMAKE_SOURCE_DIR}/bench/bench_load.c ${CMAKE_SOURCE_DIR}/bench/benchutil.c)
target_include_directories(sim_load PRIVATE ${CMAKE_SOURCE_DIR}/bench)
target_link_libraries(sim_load PRIVATE storefl_agent_lib storefl_protocol storefl_shared)
add_test(NAME sim.load COMMAND sim_load --agents 50 --rounds 2 --compare 0 --port 23410
  --aggregator $<TARGET_FILE:storefl-aggregator>)
set_tests_properties(sim.load PROPERTIES TIMEOUT 300 LABELS sim)

# sim.scale: scripts/scale-campaign.sh end to end with 24 stores in one simulate process (see
# tests/sim/test_scale.sh). Ports 23420 (release) / 23430 (ASan tree) so that both suites can run.
if(STOREFL_SANITIZE)
  set(STOREFL_SIM_PORT 23430)
else()
  set(STOREFL_SIM_PORT 23420)
endif()
add_test(NAME sim.scale COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_scale.sh ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}
  ${STOREFL_SIM_PORT})
set_tests_properties(sim.scale PROPERTIES TIMEOUT 300 LABELS sim ENVIRONMENT "${STOREFL_TEST_ENV}")

# sim.load_busy: the aggregator accepts 2 block-wise uploads at once ([server] max_uploads = 2,
# busy_max_age_s = 1) while 16 agents upload with lock-step Block1: uploads beyond the limit get
# 5.03 + Max-Age and are retried with the same body; the run fails unless some were retried and
# nothing was lost or counted twice. (Q-Block1 uploads are reassembled by libcoap before the
# aggregator's limit sees them; see docs/RELIABILITY.md, load section.)
add_test(NAME sim.load_busy COMMAND sim_load --agents 30 --rounds 2 --compare 0 --small --block1
  --agg-max-uploads 2 --inflight 16 --port 23440 --aggregator $<TARGET_FILE:storefl-aggregator>)
set_tests_properties(sim.load_busy PROPERTIES TIMEOUT 300 LABELS sim)

# sim.scale_local: scripts/scale-campaign.sh --mode local with 24 self-selecting stores (q = 1),
# 2 rounds, epsilon cap 8: every store noises its own update through the agent's release step, the
# rounds close with all 24 counted, and both ledgers (aggregator's audit export, each store's own)
# record mode local with q = 1 (tests/sim/test_scale_local.sh). Ports 23450 / 23460 (ASan tree).
if(STOREFL_SANITIZE)
  set(STOREFL_SIM_LOCAL_PORT 23460)
else()
  set(STOREFL_SIM_LOCAL_PORT 23450)
endif()
add_test(NAME sim.scale_local COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_scale_local.sh ${CMAKE_SOURCE_DIR}
  ${CMAKE_BINARY_DIR} ${STOREFL_SIM_LOCAL_PORT})
set_tests_properties(sim.scale_local PROPERTIES TIMEOUT 300 LABELS sim ENVIRONMENT "${STOREFL_TEST_ENV}")
