#!/usr/bin/env bash
# Local-mode privacy end to end (real processes, DTLS PSK on 127.0.0.1, real data): three
# `storefl-agent run` daemons on stores cut from the Online Retail export and
# `storefl-aggregator serve` in local mode with sigma = 1 run a 3-round campaign (f32 uploads, so
# that the grid is fine enough for the clean update to be mostly non-zero). Each agent records the
# clean clipped update on the round's grid through the test-only STOREFL_TEST_RECORD_CLEAN switch.
# local_mode_check.py then shows, from the agents' SQLite outboxes, their receipts and models:
#   - every outbox body is what the aggregator received (SHA-256 = the receipt's update digest);
#   - it declares the round's sigma and num_examples = 1, and its values are grid points k * 2^-b;
#   - outbox - clean = integer noise whose mean and variance match N_Z(0, (sigma C 2^b)^2) within
#     6 standard errors for the sample size, and the clean values' bytes appear nowhere in it;
#   - model r+1 = model r + mean of the noised updates, bit for bit (no second noise);
# and the signed ledger (audit export) records each round with mode local and q = 1.
# Usage: test_local_mode.sh AGGREGATOR AGENT SOURCE_DIR DATA_DIR PORT [PYTHON3]
set -euo pipefail
agg=$1 agent=$2 src=$3 data=$4 port=$5 py=${6:-/usr/bin/python3}
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
buckets = 4096
[round]
min_participants = 3
target_participants = 3
duration_s = 600
total_rounds = 3
local_steps = 5
upload_dtype = f32
[privacy]
mode = local
clip_norm = 1.0
noise_multiplier = 1.0
delta = 1e-5
[ledger]
key = $work/agg.key
[server]
listen = 127.0.0.1:$port
[dtls]
psk_keys = $work/keys/psk.keys
INI
for s in "${ids[@]}"; do
  mkdir -p "clean-$s"
  cat >"$s.ini" <<INI
[agent]
store_id = $s
db = $work/stores/$s.db
[aggregator]
address = 127.0.0.1:$port
[dtls]
psk_key = $work/keys/stores/$s.psk
[upload]
dtype = f32
[privacy]
epsilon_cap = 1000
INI
done

"$agg" serve --config agg.ini >agg.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q listening agg.log && break; sleep 0.1; done
for s in "${ids[@]}"; do
  STOREFL_TEST_RECORD_CLEAN="$work/clean-$s" timeout 240 "$agent" run --config "$s.ini" --rounds 3 --poll-s 60 \
    >"run-$s.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do wait "${pids[$i]}" || fail "agent ${ids[$((i - 1))]} did not finish 3 rounds"; done
for r in 1 2 3; do
  grep -q "round $r closed on its target with 3 participants" agg.log || fail "round $r did not close"
done
grep -q "noised on the grid (local mode)" "run-${ids[0]}.log" || fail "the agent did not report its local release"
# The last model (after round 3) reaches one agent by sync, for the check of round 3.
"$agent" sync --config "${ids[0]}.ini" >sync.log 2>&1 || fail "final sync"

"$agg" audit export --db agg.db --format json -o audit.json || fail "audit export"
"$agg" audit verify --db agg.db --key agg.key >verify.log 2>&1 || fail "audit verify: $(cat verify.log)"
args=()
for s in "${ids[@]}"; do args+=("stores/$s.db" "clean-$s"); done
"$py" "$src/tests/privacy/local_mode_check.py" --sigma 1.0 --clip 1.0 --scale-bits 16 --rounds 3 --audit audit.json "${args[@]}" ||
  fail "local-mode checks"
echo PASS
