#!/usr/bin/env bash
# The whole test suite, from a clean clone on Debian 12 (as root): set-up, a release build with
# gcc (-Werror), and the full suite under AddressSanitizer + UBSan (clang), fuzzers included.
set -euo pipefail
cd "$(dirname "$0")/.."
export STOREFL_DATA_DIR=${STOREFL_DATA_DIR:-$(cd .. && pwd)/shared/data}
scripts/setup.sh
scripts/build.sh release
ctest --test-dir build --output-on-failure -j2 -LE fuzz
scripts/build.sh asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j2
