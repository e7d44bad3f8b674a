#!/usr/bin/env bash
# Configures and builds one tree. Usage: scripts/build.sh release|asan [extra cmake args]
#   release  build/       gcc, optimised, what the demo and benchmarks run
#   asan     build-asan/  clang, AddressSanitizer + UBSan + libFuzzer targets, what the tests run
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
shift || true
jobs=$(nproc)
case "$kind" in
  release)
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build build -j"$jobs"
    ;;
  asan)
    CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSTOREFL_SANITIZE=ON -DSTOREFL_FUZZ=ON "$@" >/dev/null
    cmake --build build-asan -j"$jobs"
    ;;
  *) echo "usage: scripts/build.sh release|asan [cmake args]" >&2; exit 2 ;;
esac
