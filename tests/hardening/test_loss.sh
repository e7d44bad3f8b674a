#!/usr/bin/env bash
# Packet loss and reordering through the real DTLS/CoAP stacks: two aggregators with the same
# configuration, a reference reached directly and one reached through udp_relay, which drops 10%
# (round 1) then 30% (round 2) of the datagrams in each direction and reorders 10% of the rest.
# Four stores upload the same update bodies to both; through the relay each store retries (as the
# agent's outbox does) until it holds a receipt. Checks, per round: every store acknowledged; the
# lossy aggregator logged exactly one acceptance per store and closed the round with 4 participants
# (no acknowledged update lost or counted twice); the model it published is byte-identical to the
# reference's; the model fetched through the relay (Block2 under loss) is byte-identical too; the
# relay really dropped and reordered datagrams in both directions.
# Usage: test_loss.sh AGGREGATOR NET_PEER RELAY SOURCE_DIR PORT   (uses PORT..PORT+2)
set -euo pipefail
agg=$1 peer=$2 relay=$3 src=$4 port=$5
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$here/lib.sh"
pids=()
rl=
cleanup() {
  for p in "${pids[@]}" $rl; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
"$src/scripts/make-dev-keys.sh" keys --count 4 >/dev/null
ref=$port lossy=$((port + 1)) rport=$((port + 2))
TARGET=4 write_agg_ini ref.ini "$work/ref.db" $ref
TARGET=4 write_agg_ini lossy.ini "$work/lossy.db" $lossy
AGG_LOG=ref.log start_agg ref.ini $ref
pids+=($srv)
AGG_LOG=lossy.log start_agg lossy.ini $lossy
pids+=($srv)
srv=

# Retries a net_peer request through the relay until it gets CODE (the agent's outbox does the same).
through_relay() { # CODE OUTFILE ARGS...
  local code=$1 out=$2 i
  shift 2
  for i in $(seq 15); do
    if "$peer" "$@" >"$out" 2>>"$out.err" && grep -q "code=$code" "$out"; then
      echo "attempts=$i" >>"$out"
      return 0
    fi
  done
  return 1
}

r=0
for loss in 0.10 0.30; do
  r=$((r + 1))
  "$peer" get $ref v1/round $(psk store-001) --out round.cbor >/dev/null || fail "round from reference"
  "$peer" get $ref v1/model $(psk store-001) --out model.cbor >/dev/null || fail "model from reference"
  "$peer" get $lossy v1/model $(psk store-001) --out lmodel.cbor >/dev/null || fail "model from lossy"
  cmp -s model.cbor lmodel.cbor || fail "round $r: the two aggregators start from different models"
  "$peer" get $ref v1/round $(psk store-001) | grep -q "round=$r " || fail "reference not in round $r"
  dts=(i8 f16 f32 i8)
  for s in 1 2 3 4; do
    id=store-00$s
    "$peer" mkupdate round.cbor model.cbor --store $id --seed $((r * 10 + s)) --dtype ${dts[$((s - 1))]} \
      --out u$r-$s.cbor >/dev/null
    out=$("$peer" post $ref v1/update $(psk $id) --in u$r-$s.cbor) || fail "reference upload: $out"
    echo "$out" | grep -q "code=204" || fail "reference upload $id: $out"
  done

  "$relay" $rport $lossy --loss $loss --reorder 0.10 --seed $r >relay$r.json 2>relay$r.log &
  rl=$!
  sleep 0.2
  jobs_=()
  for s in 1 2 3 4; do
    through_relay 204 post$r-$s.out post $rport v1/update $(psk store-00$s) --in u$r-$s.cbor &
    jobs_+=($!)
  done
  for s in 1 2 3 4; do
    wait ${jobs_[$((s - 1))]} || fail "round $r loss $loss: store-00$s never acknowledged: $(cat post$r-$s.out*)"
  done
  through_relay 205 get$r.out get $rport v1/model $(psk store-002) --out viarelay$r.cbor ||
    fail "model fetch through the relay: $(cat get$r.out*)"
  kill -INT $rl
  wait $rl || true
  rl=
  stats=$(cat relay$r.json)
  echo "round $r loss $loss relay: $stats"
  for s in 1 2 3 4; do
    echo "  store-00$s: $(grep -h receipt post$r-$s.out) $(grep -h attempts post$r-$s.out)"
  done
  echo "  model fetch: $(grep -h attempts get$r.out)"
  # The impairment happened in both directions.
  python3 - "$stats" <<'PY' || fail "relay did not impair both directions: $stats"
import json, sys
s = json.loads(sys.argv[1])
ok = all(s[d]["dropped"] > 0 and s[d]["reordered"] > 0 for d in ("to_server", "to_client"))
sys.exit(0 if ok else 1)
PY
  # Exactly one acceptance per store; the round closed with all four.
  for s in 1 2 3 4; do
    n=$(grep -c "update accepted: store=store-00$s round=$r " lossy.log || true)
    [ "$n" = 1 ] || fail "round $r: store-00$s accepted $n times"
  done
  grep -q "round $r closed.* with 4 participants" lossy.log || fail "round $r did not close with 4 participants"
  "$peer" get $ref v1/model $(psk store-001) --out ref$r.cbor >/dev/null
  "$peer" get $lossy v1/model $(psk store-001) --out lossy$r.cbor >/dev/null
  cmp -s ref$r.cbor lossy$r.cbor || fail "round $r: the model after loss differs from the reference"
  cmp -s lossy$r.cbor viarelay$r.cbor || fail "round $r: the model fetched through the relay is corrupt"
  echo "  round $r: model $(sha256sum <lossy$r.cbor | cut -c1-16) identical to the loss-free reference"
done
echo PASS
