#!/usr/bin/env bash
# Both executables must report libcoap with DTLS on Mbed TLS, and every linked library.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
for exe in "$@"; do
  out=$("$exe" --version) || fail "$exe --version exited $?"
  echo "$out"
  grep -q '^libcoap 4\.3\.[5-9].*DTLS yes, TLS library Mbed TLS 2\.28\.' <<<"$out" || fail "$exe: libcoap is not 4.3.5+ with DTLS on Mbed TLS"
  grep -q 'Q-Block yes' <<<"$out" || fail "$exe: libcoap lacks Q-Block"
  for lib in 'Mbed TLS 2\.28' 'libcbor 0\.' 'SQLite 3\.' 'OpenBLAS' 'zlib'; do
    grep -q "^$lib" <<<"$out" || fail "$exe: no '$lib' line"
  done
  "$exe" --help | grep -q '^SYNOPSIS' || fail "$exe --help has no SYNOPSIS"
  set +e; "$exe" no-such-command 2>/dev/null; rc=$?; set -e
  [ "$rc" -eq 2 ] || fail "$exe: unknown command exited $rc, want 2"
done
echo "versions: ok"
