# The accumulator again on its portable scalar kernels: the exact-reference test proves both kernel
# sets produce the same (exact) sums.
add_test(NAME unit.accum_scalar COMMAND test_accum)
set_tests_properties(unit.accum_scalar PROPERTIES TIMEOUT 120 ENVIRONMENT "STOREFL_NO_SIMD=1;${STOREFL_TEST_ENV}")
