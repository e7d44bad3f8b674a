#!/usr/bin/env bash
# Overload: with [server] max_uploads = 1, a second block-wise upload that starts while another is in
# progress is answered 5.03 with Max-Age ([server] busy_max_age_s) instead of being buffered; the
# server keeps answering; once the first upload finishes, the refused one goes through. Nothing is
# counted twice. The first upload is held in progress deterministically: block1_peer sends its first
# block and pauses 3 s before the rest.
# Usage: test_overload.sh AGGREGATOR NET_PEER BLOCK1_PEER SOURCE_DIR PORT
set -euo pipefail
agg=$1 peer=$2 b1=$3 src=$4 port=$5
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$here/lib.sh"
a=
cleanup() {
  [ -n "$a" ] && kill -9 $a 2>/dev/null || true
  [ -n "$srv" ] && kill -9 "$srv" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
"$src/scripts/make-dev-keys.sh" keys --count 3 >/dev/null
SERVER_EXTRA="max_uploads = 1
busy_max_age_s = 7" write_agg_ini agg.ini "$work/agg.db" $port
start_agg agg.ini $port
"$peer" get $port v1/round $(psk store-001) --out round.cbor >/dev/null
"$peer" get $port v1/model $(psk store-001) --out model.cbor >/dev/null
"$peer" mkupdate round.cbor model.cbor --store store-001 --seed 1 --dtype f32 --out a.cbor >/dev/null
"$peer" mkupdate round.cbor model.cbor --store store-002 --seed 2 --dtype i8 --out b.cbor >/dev/null
# store-001 sends block 0 and holds its upload open for 3 s (block1_peer hold).
"$b1" $port store-001 keys/stores/store-001.psk a.cbor hold >a.out 2>&1 &
a=$!
for _ in $(seq 100); do grep -q holding a.out && break; sleep 0.05; done
grep -q "0=2.31 holding" a.out || fail "first upload not in progress: $(cat a.out)"
out=$("$peer" post $port v1/update $(psk store-002) --in b.cbor 2>&1) || true
echo "second upload while the first is in progress: $(echo "$out" | head -1)"
echo "$out" | grep -q "code=503" || fail "expected 5.03 while max_uploads is reached: $out"
grep -q "5.03 for .*max_uploads), retry in 7 s" agg.log || fail "no 5.03 Max-Age 7 logged"
"$peer" get $port v1/status $(psk store-003) >/dev/null || fail "status not answered under overload"
wait $a || fail "first upload: $(cat a.out)"
a=
grep -q "final=204" a.out || fail "first upload after its pause: $(cat a.out)"
out=$("$peer" post $port v1/update $(psk store-002) --in b.cbor 2>&1) || fail "retry: $out"
echo "$out" | grep -q "code=204" || fail "the refused upload after the slot freed: $out"
st=$(status $port)
[ "$(echo "$st" | field participants)" = 2 ] || fail "participants: $st"
echo "after the first upload finished: retry accepted; $st"
stop_agg
echo PASS
