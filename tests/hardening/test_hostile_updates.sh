#!/usr/bin/env bash
# Hostile update bodies over the real server (DTLS PSK, storefl-aggregator serve): NaN, Inf, an
# absurd norm, swapped dims, a short tensor, a renamed tensor, tensors out of order, a missing
# tensor, zero examples, the wrong privacy mode, an update claiming another
# store, a round from the future, a replay of an old round after it closed, garbage CBOR, an empty
# body. Each gets its 4.xx with the error body, none is counted, and the model each round produces
# is byte-identical to that of a reference aggregator that never saw a hostile request.
# Usage: test_hostile_updates.sh AGGREGATOR NET_PEER MUTATE_UPDATE SOURCE_DIR PORT  (PORT, PORT+1)
set -euo pipefail
agg=$1 peer=$2 mutate=$3 src=$4 port=$5
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$here/lib.sh"
ref_srv=
cleanup() {
  for p in $srv $ref_srv; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
"$src/scripts/make-dev-keys.sh" keys --count 3 >/dev/null
rport=$((port + 1))
write_agg_ini ref.ini "$work/ref.db" $rport
AGG_LOG=ref.log start_agg ref.ini $rport
ref_srv=$srv
write_agg_ini agg.ini "$work/agg.db" $port
start_agg agg.ini $port
"$peer" get $port v1/round $(psk store-001) --out round.cbor >/dev/null
"$peer" get $port v1/model $(psk store-001) --out model.cbor >/dev/null
"$peer" mkupdate round.cbor model.cbor --store store-001 --seed 1 --dtype f32 --out good1.cbor >/dev/null

expect() { # CODE WHAT BODYFILE [STORE]
  local code=$1 what=$2 body=$3 id=${4:-store-001} out
  out=$("$peer" post $port v1/update $(psk $id) --in "$body" 2>&1) || fail "$what: $out"
  echo "$out" | grep -q "code=$code" || fail "$what: expected $code: $out"
  printf '%-44s -> %s %s\n' "$what" "$code" "$(echo "$out" | sed -n 's/^error_body code=[0-9]* reason=\([^ ]*\).*/\1/p')"
}
for k in nan inf norm shape numel tag order missing examples0 mode; do
  "$mutate" good1.cbor bad-$k.cbor $k || fail "mutate $k"
done
expect 400 "NaN in a coordinate" bad-nan.cbor
expect 400 "+Inf in a coordinate" bad-inf.cbor
expect 400 "norm 1000x the clip norm" bad-norm.cbor
expect 400 "first tensor's dims swapped" bad-shape.cbor
expect 400 "first tensor one row short" bad-numel.cbor
expect 400 "first tensor renamed (wrong tag)" bad-tag.cbor
expect 400 "tensors out of order" bad-order.cbor
expect 400 "a tensor missing" bad-missing.cbor
expect 400 "num_examples 0" bad-examples0.cbor
expect 400 "local privacy mode in a central round" bad-mode.cbor
"$peer" mkupdate round.cbor model.cbor --store store-002 --seed 2 --dtype f32 --out forged.cbor >/dev/null
expect 403 "store-001 claiming store-002" forged.cbor store-001
"$peer" mkupdate round.cbor model.cbor --store store-001 --seed 1 --round 7 --out future.cbor >/dev/null
expect 409 "a future round" future.cbor
head -c 3000 /dev/urandom >garbage.bin
expect 400 "3000 random bytes" garbage.bin
: >empty.bin
expect 400 "empty body" empty.bin
[ "$(status $port | field participants)" = 0 ] || fail "a hostile update was counted: $(status $port)"

# Round 1 with three honest updates on both aggregators.
for s in 1 2 3; do
  "$peer" mkupdate round.cbor model.cbor --store store-00$s --seed $s --dtype f32 --out g$s.cbor >/dev/null
  for p in $port $rport; do
    out=$("$peer" post $p v1/update $(psk store-00$s) --in g$s.cbor) || fail "honest: $out"
    echo "$out" | grep -q "code=204" || fail "honest store-00$s on $p: $out"
  done
done
# A replay of round 1 after it closed: the receipt again (idempotent), counted once; a different
# (hostile) round-1 body from a store already counted: its original receipt, nothing changes.
out=$("$peer" post $port v1/update $(psk store-002) --in g2.cbor)
echo "$out" | grep -q "code=204" && echo "$out" | grep -q "duplicate=1" || fail "replay of an accepted update: $out"
echo "replay of store-002's round-1 update after close -> 204 duplicate=1 (counted once)"
out=$("$peer" post $port v1/update $(psk store-001) --in bad-tag.cbor)
echo "$out" | grep -q "code=204" && echo "$out" | grep -q "duplicate=1" || fail "other round-1 body after close: $out"
echo "another round-1 body from store-001 after close -> 204 duplicate=1 (original receipt)"
"$peer" get $port v1/model $(psk store-001) --out m.cbor >/dev/null
"$peer" get $rport v1/model $(psk store-001) --out ref.cbor >/dev/null
cmp -s model.cbor m.cbor && fail "round 1 did not produce a new model"
cmp -s m.cbor ref.cbor || fail "the model differs from the reference that saw no hostile input"
echo "model after round 1 identical to the reference ($(sha256sum <m.cbor | cut -c1-16))"
n=$(grep -c "update rejected" agg.log || true)
echo "rejections logged: $n"
kill -0 $srv || fail "aggregator died"
echo PASS
