#!/usr/bin/env bash
# Overload: with [server] max_uploads = 1, a second block-wise upload that starts while another is in
# progress is answered 5.03 with Max-Age ([server] busy_max_age_s) instead of being buffered; the
# server keeps answering; once the first upload finishes, the refused one goes through. Nothing is
# counted twice. The first upload is held in progress deterministically by stopping its client
# (SIGSTOP) mid-transfer.
# Usage: test_overload.sh AGGREGATOR NET_PEER SOURCE_DIR PORT
set -euo pipefail
agg=$1 peer=$2 src=$3 port=$4
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$here/lib.sh"
a=
cleanup() {
  [ -n "$a" ] && { kill -CONT $a; kill -9 $a; } 2>/dev/null || true
  [ -n "$srv" ] && kill -9 "$srv" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
"$src/scripts/make-dev-keys.sh" keys --count 3 >/dev/null
# 131,088 parameters: a float32 upload is 512 blocks of 1 KiB, long enough to stop mid-way.
TENSOR_W=w:512x256 SERVER_EXTRA="max_uploads = 1
busy_max_age_s = 7" write_agg_ini agg.ini "$work/agg.db" $port
sed -i 's/^max_upload_bytes = .*/max_upload_bytes = 1000000/' agg.ini
start_agg agg.ini $port
"$peer" get $port v1/round $(psk store-001) --out round.cbor >/dev/null
"$peer" get $port v1/model $(psk store-001) --out model.cbor >/dev/null
"$peer" mkupdate round.cbor model.cbor --store store-001 --seed 1 --dtype f32 --out a.cbor >/dev/null
"$peer" mkupdate round.cbor model.cbor --store store-002 --seed 2 --dtype i8 --out b.cbor >/dev/null
held=
for delay in 0.03 0.015 0.01 0.006 0.004 0.003 0.002 0.001; do
  "$peer" post $port v1/update $(psk store-001) --in a.cbor >a.out 2>&1 &
  a=$!
  sleep $delay
  kill -STOP $a 2>/dev/null || true
  if grep -q "code=" a.out; then # finished before the stop: try again, stopping earlier
    echo "(delay $delay: $(head -1 a.out))"; kill -CONT $a 2>/dev/null || true; wait $a || true; a=
    continue
  fi
  held=1
  break
done
[ -n "$held" ] || fail "could not hold an upload in progress"
out=$("$peer" post $port v1/update $(psk store-002) --in b.cbor 2>&1) || true
echo "second upload while the first is in progress: $(echo "$out" | head -1)"
echo "$out" | grep -q "code=503" || fail "expected 5.03 while max_uploads is reached: $out"
grep -q "5.03 for .*max_uploads), retry in 7 s" agg.log || fail "no 5.03 Max-Age 7 logged"
"$peer" get $port v1/status $(psk store-003) >/dev/null || fail "status not answered under overload"
kill -CONT $a
wait $a || fail "first upload: $(cat a.out)"
a=
grep -q "code=204" a.out || fail "first upload after resuming: $(cat a.out)"
out=$("$peer" post $port v1/update $(psk store-002) --in b.cbor 2>&1) || fail "retry: $out"
echo "$out" | grep -q "code=204" || fail "the refused upload after the slot freed: $out"
st=$(status $port)
[ "$(echo "$st" | field participants)" = 2 ] || fail "participants: $st"
echo "after the first upload finished: retry accepted; $st"
stop_agg
echo PASS
