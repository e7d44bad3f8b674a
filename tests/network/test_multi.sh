#!/usr/bin/env bash
# 50 stores x 3 rounds over DTLS PSK against storefl-aggregator serve. Each round every store gets a
# distinct update (seeded, float32 / float16 / int8 in turn) in its outbox and `storefl-agent sync`
# uploads it, ten agents at a time. Then: every round closed with exactly 50 participants; every
# model the aggregator served (after rounds 1, 2 and 3) equals, bit for bit, a reference computed
# independently from the same 150 update bodies by multi_reference.py (cbor2 and Python integers,
# neither our codec nor aggcore); and the final model an agent downloads equals, bit for bit, the
# model an in-process aggregator computes from the bodies read back from the agents' outboxes, fed
# in other arrival orders (order independence).
# Usage: test_multi.sh AGGREGATOR AGENT NET_PEER SOURCE_DIR PORT
# Environment: MULTI_LOG_LEVEL=debug logs every half-open DTLS session once a second (for a stall),
# MULTI_STORES (default 50, a multiple of 10) for a quicker run.
set -euo pipefail
agg=$1 agent=$2 peer=$3 src=$4 port=$5
N=${MULTI_STORES:-50} ROUNDS=3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
srv=
cleanup() {
  rc=$?
  if [ $rc -ne 0 ] && [ -n "$srv" ] && ! kill -0 "$srv" 2>/dev/null; then
    st=0
    wait "$srv" || st=$?
    echo "the aggregator process is gone (exit status $st)" >&2
    srv=
  fi
  if [ $rc -ne 0 ] && [ -n "$srv" ]; then
    echo "aggregator alive; a fresh status request: $("$peer" get "$port" v1/status --psk-id store-050 \
      --psk-key "$work/keys/stores/store-050.psk" 2>&1 | tr '\n' ' ')" >&2
  fi
  if [ $rc -ne 0 ] && [ -f "$work/agg.log" ]; then
    echo "exit status $rc; aggregator log:" >&2
    grep -v "update accepted" "$work/agg.log" | tail -30 >&2
  fi
  if [ -n "$srv" ]; then kill -9 "$srv" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -20 "$work/agg.log" >&2; exit 1; }
cd "$work"
"$src/scripts/make-dev-keys.sh" keys --count $N >/dev/null
cat >agg.ini <<INI
[storage]
db = $work/agg.db
[model]
arch = test-v1
tensor = w:512x256
tensor = b:64
init_seed = 3
[round]
min_participants = $N
target_participants = $N
max_participants = $N
duration_s = 3600
total_rounds = $ROUNDS
max_upload_bytes = 1000000
[privacy]
mode = central
clip_norm = 1.0
noise_multiplier = 0
[log]
level = ${MULTI_LOG_LEVEL:-info}
[server]
listen = 127.0.0.1:$port
max_sessions = 256
[dtls]
psk_keys = $work/keys/psk.keys
INI
ids=()
for i in $(seq 1 $N); do
  id=$(printf 'store-%03d' "$i")
  ids+=("$id")
  cat >"$id.ini" <<INI
[agent]
store_id = $id
db = $work/$id.db
[aggregator]
address = 127.0.0.1:$port
[dtls]
psk_key = $work/keys/stores/$id.psk
INI
done
"$agg" serve --config agg.ini >agg.log 2>&1 &
srv=$!
for _ in $(seq 100); do grep -q listening agg.log && break; sleep 0.1; done
psk="--psk-id store-001 --psk-key keys/stores/store-001.psk"
dtypes=(f32 f16 i8)
for r in $(seq 1 $ROUNDS); do
  "$peer" get "$port" v1/round $psk --out round.cbor >/dev/null
  "$peer" get "$port" v1/model $psk --out model.cbor >/dev/null
  cp model.cbor "model-$r.cbor"
  "$peer" get "$port" v1/round $psk | grep -q "round=$r state=1" || fail "round $r is not open"
  for i in $(seq 1 $N); do
    id=${ids[$((i - 1))]}
    "$peer" mkupdate round.cbor model.cbor --store "$id" --seed $((r * 1000 + i)) --examples $((i * 3 + r)) \
      --norm 0.$((i % 9 + 1)) --dtype ${dtypes[$(((i + r) % 3))]} --out u.cbor >/dev/null
    if [ ! -f "$id.db" ]; then
      # Creates the store and fetches the model. A transient failure (a loaded machine) is retried
      # once, as the agent's back-off would; the error is shown.
      "$agent" sync --config "$id.ini" --json >first.out 2>&1 ||
        { echo "($id: first sync failed, retrying: $(tail -2 first.out | tr '\n' ' '))"; sleep 1;
          STOREFL_COAP_DEBUG=1 "$agent" sync --config "$id.ini" --json >first.out 2>&1; } ||
        fail "$id: first sync: $(grep -a -i "alert\|fail\|error\|returned -0x\|refused" first.out | tail -15)"
    fi
    "$peer" enqueue "$id.db" "$r" u.cbor
    cp u.cbor "u-$r-$id.cbor"
  done
  batch=()
  for i in $(seq 1 $N); do
    id=${ids[$((i - 1))]}
    "$agent" sync --config "$id.ini" --json >"sync-$id-$r.json" 2>&1 &
    batch+=($!)
    if [ $((i % 10)) = 0 ]; then
      for p in "${batch[@]}"; do wait "$p" || true; done
      batch=()
    fi
  done
  # An upload that failed transiently (e.g. a handshake on a saturated machine) stays in the outbox;
  # the next sync sends it, as the agent's back-off would. Counted and shown, never hidden.
  for f in $(grep -L '"uploaded":1' sync-*-$r.json); do
    id=$(echo "$f" | sed 's/^sync-\(store-[0-9]*\)-.*/\1/')
    echo "($id round $r: retrying after: $(grep -a -v '^{' "$f" | tail -1))"
    "$agent" sync --config "$id.ini" --json >"$f" 2>&1 || true
  done
  bad=$(grep -L '"uploaded":1' sync-*-$r.json | head -3)
  [ -z "$bad" ] || fail "uploads not acknowledged: $(for f in $bad; do echo "$f: $(tail -2 "$f")"; done)"
  grep -q "round $r closed on its target with $N participants" agg.log || fail "round $r did not close with $N"
  echo "round $r: $N updates acknowledged, closed"
done
"$agent" sync --config store-001.ini --json >final.json 2>/dev/null
# sync uploads before it fetches the model: store-001 may have got the final model in the same
# exchange whose upload closed the last round.
grep -q "\"model_changed\":1,\"model_version\":$((ROUNDS + 1))" final.json ||
  "$peer" storemodel store-001.db $((ROUNDS + 1)) >/dev/null || fail "final model: $(cat final.json)"
served=$("$peer" storemodel store-001.db $((ROUNDS + 1)))
ref=$("$peer" replay agg.ini "$work/replay.db" $ROUNDS store-*.db 2>/dev/null | grep '^version=')
echo "served: $served"
echo "replay: $ref"
[ "$served" = "$ref" ] || fail "replayed aggregation differs from the served model"
"$peer" get "$port" v1/model $psk --out "model-$((ROUNDS + 1)).cbor" >/dev/null
py=${STOREFL_PYTHON3:-/usr/bin/python3}
"$py" "$here/multi_reference.py" . $ROUNDS || fail "independent reference differs"
# Control: the reference can fail. Round 1 with one update body fewer must differ.
mkdir held && mv "u-1-${ids[0]}.cbor" held/
if "$py" "$here/multi_reference.py" . 1 >control.out 2>&1; then fail "the reference accepts a wrong update set"; fi
echo "control (one update left out): $(tail -1 control.out)"
echo PASS
