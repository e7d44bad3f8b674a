#!/usr/bin/env bash
# Federated rounds end to end on real data: three store databases cut from the Online Retail export,
# three `storefl-agent run` daemons (DTLS PSK) and `storefl-aggregator serve`. The agents learn of
# each round by Observe (their fallback poll is 60 s, so a round that only advanced by polling would
# time out), train the learning code's local step on their purchases, upload int8 updates, and stop
# after 2 acknowledged uploads. Checks: both rounds closed with 3 participants; every agent holds the
# same model 2; an independent in-process aggregator fed the same update bodies (taken from the
# agents' outboxes, in reverse order) computes a bit-identical model 2; the final model reaches an
# agent by sync and a second sync costs no model transfer (ETag).
# Usage: test_run.sh AGGREGATOR AGENT NET_PEER SOURCE_DIR DATA_DIR PORT
set -euo pipefail
agg=$1 agent=$2 peer=$3 src=$4 data=$5 port=$6
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do echo "== $f" >&2; tail -8 "$f" >&2; done; exit 1; }
cd "$work"
csv="$data/online-retail/online_retail.csv.gz"
[ -f "$csv" ] || fail "real data not found at $csv (STOREFL_DATA_DIR)"
zcat "$csv" | head -30000 >slice.csv || true
"$agent" partition --data slice.csv --by customer --out stores --min-lines 200 >partition.log 2>&1
mapfile -t ids < <(ls stores | sed -n 's/\.db$//p' | head -3)
[ ${#ids[@]} -eq 3 ] || fail "expected 3 stores from the slice, got ${#ids[@]}"
"$src/scripts/make-dev-keys.sh" keys "${ids[@]}" >/dev/null

cat >agg.ini <<INI
[storage]
db = $work/agg.db
[model]
arch = wide-deep-v1
tensor = item_emb:16384x32
tensor = hour_emb:24x32
tensor = wday_emb:7x32
tensor = mlp_w1:64x102
tensor = mlp_b1:64
tensor = mlp_w2:64
tensor = wide_w:6
tensor = bias:1
[round]
min_participants = 3
target_participants = 3
duration_s = 600
total_rounds = 2
local_steps = 5
[privacy]
mode = central
clip_norm = 1.0
noise_multiplier = 0
[server]
listen = 127.0.0.1:$port
[dtls]
psk_keys = $work/keys/psk.keys
INI
for s in "${ids[@]}"; do
  cat >"$s.ini" <<INI
[agent]
store_id = $s
db = $work/stores/$s.db
[aggregator]
address = 127.0.0.1:$port
[dtls]
psk_key = $work/keys/stores/$s.psk
INI
done

"$agg" serve --config agg.ini >agg.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q listening agg.log && break; sleep 0.1; done
for s in "${ids[@]}"; do
  timeout 120 "$agent" run --config "$s.ini" --rounds 2 --poll-s 60 >"run-$s.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do wait "${pids[$i]}" || fail "agent ${ids[$((i - 1))]} did not finish 2 rounds"; done
grep -q "round 1 closed on its target with 3 participants" agg.log || fail "round 1 did not close"
grep -q "round 2 closed on its target with 3 participants" agg.log || fail "round 2 did not close"

digests=$(for s in "${ids[@]}"; do "$peer" storemodel "stores/$s.db" 2; done | sort -u)
[ "$(echo "$digests" | wc -l)" = 1 ] || fail "agents hold different models 2: $digests"
ref=$("$peer" replay agg.ini "$work/replay.db" 1 stores/*.db 2>/dev/null | grep '^version=')
echo "agents: $digests"
echo "replay: $ref"
[ "$ref" = "$digests" ] || fail "independent aggregation differs from the served model 2"

out=$("$agent" sync --config "${ids[0]}.ini" --json 2>/dev/null)
# sync uploads before it fetches the model, so the agent whose upload closed round 2 may already
# hold model 3 from that same exchange.
echo "$out" | grep -q '"model_changed":1,"model_version":3' || "$peer" storemodel "stores/${ids[0]}.db" 3 >/dev/null ||
  fail "final model not fetched: $out"
out=$("$agent" sync --config "${ids[0]}.ini" --json 2>/dev/null)
echo "$out" | grep -q '"model_changed":0,"model_version":0,"model_bytes":0' || fail "second sync transferred the model: $out"
echo PASS
