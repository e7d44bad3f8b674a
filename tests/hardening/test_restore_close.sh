#!/usr/bin/env bash
# Regression (found by scripts/kill9-campaign.sh): a kill -9 between the commit of a round's target-th
# update and the round's close left the restored round open, with its target reached, until its
# deadline. Reproduced deterministically by making that state: 3 updates in a round opened with
# target 4, kill -9, then the round's stored parameters edited to target 3 (a round's parameters are
# fixed when it opens, so the config alone cannot change it). On restart the round must close within
# a few ticks, not at its deadline (600 s), with the model of an aggregator that closed it on the spot.
# Usage: test_restore_close.sh AGGREGATOR NET_PEER SOURCE_DIR PORT   (PORT, PORT+1)
set -euo pipefail
agg=$1 peer=$2 src=$3 port=$4
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
TARGET=3 write_agg_ini ref.ini "$work/ref.db" $rport
AGG_LOG=ref.log start_agg ref.ini $rport
ref_srv=$srv
TARGET=4 write_agg_ini agg.ini "$work/agg.db" $port
start_agg agg.ini $port
"$peer" get $port v1/round $(psk store-001) --out round.cbor >/dev/null
"$peer" get $port v1/model $(psk store-001) --out model.cbor >/dev/null
for s in 1 2 3; do
  "$peer" mkupdate round.cbor model.cbor --store store-00$s --seed $s --out u$s.cbor >/dev/null
  for p in $port $rport; do
    "$peer" post $p v1/update $(psk store-00$s) --in u$s.cbor | grep -q "code=204" || fail "upload $s to $p"
  done
done
kill -9 $srv; wait $srv 2>/dev/null || true; srv=
sqlite3 agg.db "UPDATE rounds SET params = replace(params, 'target_participants = 4', 'target_participants = 3')
  WHERE round = 1;"
sqlite3 agg.db "SELECT params FROM rounds WHERE round = 1" | grep -q "target_participants = 3" ||
  fail "could not edit the round's parameters"
start_agg agg.ini $port
closed=
for _ in $(seq 50); do
  if status $port | grep -q "round=2 "; then closed=1; break; fi
  sleep 0.1
done
[ -n "$closed" ] || fail "restored round with its target reached did not close: $(status $port)"
grep -q "round 1 closed on its target with 3 participants" agg.log || fail "no close logged"
"$peer" get $port v1/model $(psk store-001) --out m.cbor >/dev/null
"$peer" get $rport v1/model $(psk store-001) --out ref.cbor >/dev/null
cmp -s m.cbor ref.cbor || fail "model differs from the aggregator that closed on the spot"
echo "restored round with 3/3 closed on restart; model identical ($(sha256sum <m.cbor | cut -c1-16))"
echo PASS
