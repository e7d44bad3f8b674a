#!/usr/bin/env bash
# A federated campaign on real store data, on 127.0.0.1 over DTLS (PSK), end to end:
#   1. plan: the N largest customers of the export with enough history become stores; few-shot
#      split (stores hold every clean line before cut + 14 days); the noise multiplier sigma is the
#      accountant's calibration for the epsilon cap per store over the campaign's rounds
#   2. development keys (scripts/make-dev-keys.sh), one SQLite store per customer
#      (storefl-agent partition), one aggregator (storefl-aggregator serve, central DP: clipped
#      updates, discrete Gaussian noise on the fixed-point sum) and one agent per store
#      (storefl-agent run)
#   3. an observer (storefl-agent campaign watch) prints one line per round and the final
#      comparison with the baselines; then everything is stopped, and the script checks that no
#      process is left. Ctrl-C stops everything too.
# Usage: scripts/demo-campaign.sh [--stores N] [--rounds R] [--q Q] [--epsilon-cap E]
#          [--round-s S] [--port P] [--work DIR] [--small] [--summary FILE] [--dtype i8|f16|f32]
#          [--aggregator-cap E] [--mode central|local] [--by customer|country] [--weight-cap W]
#          [--per-store] [--target N]
#   Defaults: 40 stores, 8 rounds, q 0.5, epsilon cap 8 (delta 1e-5), 12 s rounds, port 21000,
#   work dir build/demo, int8 uploads, central DP, customers as stores, weight cap 1000.
#   --small: a smaller model (B = 2^12 buckets, d = 16). --epsilon-cap inf: no noise (sigma 0).
#   --mode local: each agent adds its own noise (sigma calibrated at q = 1: no amplification).
#   --by country: the export's countries are the stores (use --stores 38 for all of them); it
#   implies --per-store: quality over each store's own events, and each store's share of the
#   aggregation weight (min(examples, weight cap) per update, from the aggregator's log).
#   --target N: the aggregator's target_participants (default: the number of stores). With q = 1 a
#   round closes as soon as N updates arrived; above the store count, at its deadline (so that the
#   observer, whose evaluation can take longer than a round, sees every round).
#   The aggregator's cap ([ledger] epsilon_cap) is the stores' cap unless --aggregator-cap is given.
#   Environment: STOREFL_DATA_DIR (default ../shared/data relative to the repository),
#   STOREFL_BUILD (default build), STOREFL_DEMO_LOCAL=1 adds the local-only baseline,
#   STOREFL_DEMO_LATE_OBSERVER=S starts the observer S seconds after round 1 ended (tests).
# shellcheck disable=SC2154 # cut, adapt_end, sigma, ... come from plan.env (storefl-agent campaign plan)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
stores=40 rounds=8 q=0.5 cap=8 delta=1e-5 round_s=12 port=21000 work="$repo/build/demo" small=0
summary="" dtype=i8 agg_cap="" mode=central by=customer weight_cap=1000 per_store=0 target=""
while [ $# -gt 0 ]; do
  case "$1" in
    --stores) stores=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --q) q=$2; shift 2 ;;
    --epsilon-cap) cap=$2; shift 2 ;;
    --round-s) round_s=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --small) small=1; shift ;;
    --summary) summary=$2; shift 2 ;;
    --dtype) dtype=$2; shift 2 ;;
    --aggregator-cap) agg_cap=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    --by) by=$2; shift 2 ;;
    --weight-cap) weight_cap=$2; shift 2 ;;
    --per-store) per_store=1; shift ;;
    --target) target=$2; shift 2 ;;
    -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo-campaign: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
# Absolute: the script works inside $work and writes its path into the INI files.
work=$(realpath -m "$work")
[ -n "$summary" ] && summary=$(realpath -m "$summary")
case "$mode" in central|local) ;; *) echo "demo-campaign: --mode is central or local" >&2; exit 2 ;; esac
case "$by" in customer|country) ;; *) echo "demo-campaign: --by is customer or country" >&2; exit 2 ;; esac
[ "$by" = country ] && per_store=1
if [ "$port" -lt 21000 ] || [ "$port" -gt 21999 ]; then
  echo "demo-campaign: --port must be in 21000-21999" >&2
  exit 2
fi
build=${STOREFL_BUILD:-$repo/build}
agent=$build/agent/storefl-agent
agg=$build/aggregator/storefl-aggregator
data_dir=${STOREFL_DATA_DIR:-$repo/../shared/data}
csv=$data_dir/online-retail/online_retail.csv.gz
[ -x "$agent" ] && [ -x "$agg" ] || { echo "demo-campaign: build first (scripts/build.sh release)" >&2; exit 1; }
[ -f "$csv" ] || { echo "demo-campaign: the export is not at $csv (set STOREFL_DATA_DIR)" >&2; exit 1; }

t_start=$(date +%s.%N)
elapsed() { awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# ---- Processes: every child is recorded; the trap stops them (TERM, then KILL) and waits. -------
pids=()
stopping=0
stop_all() {
  [ "$stopping" = 1 ] && return
  stopping=1
  local p alive
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
on_signal() {
  echo "demo-campaign: interrupted; stopping every process" >&2
  stop_all
  exit 130
}
trap on_signal INT TERM
trap stop_all EXIT

# The work directory is wiped: only if it is empty or a previous demo's (it has plan.env).
if [ -e "$work" ] && [ -n "$(ls -A "$work" 2>/dev/null)" ] && [ ! -f "$work/plan.env" ]; then
  echo "demo-campaign: $work exists and is not a previous demo's work directory; not wiping it" >&2
  exit 2
fi
rm -rf "$work"
mkdir -p "$work"
cd "$work"

# ---- 1. Plan ----------------------------------------------------------------------------------
echo "== plan: $stores stores (by $by), $rounds rounds, q = $q, epsilon cap $cap per store (delta $delta), $mode DP"
"$agent" campaign plan --data "$csv" --stores "$stores" --rounds "$rounds" --q "$q" \
  --epsilon-cap "$cap" --delta "$delta" --ids-out ids.txt --by "$by" --mode "$mode" >plan.env
# shellcheck disable=SC1091,SC2154 # plan.env sets cut, adapt_end, sigma, ... (campaign plan)
. ./plan.env
echo "   few-shot split: cut $cut, stores hold every clean line before $adapt_end UTC"
clients=customers
[ "$by" = country ] && clients=countries
echo "   stores: the $stores largest $clients ($largest_lines .. $smallest_lines clean lines each)"
echo "   $mode DP: noise multiplier sigma = $sigma (accountant: epsilon $epsilon_planned after $rounds rounds)"
# inf: no noise; neither the aggregator's ledger nor the agents have a cap (0 = none).
num_cap=$cap
[ "$cap" = inf ] && num_cap=0

# ---- 2. Stores, keys, configurations ----------------------------------------------------------
"$agent" partition --data "$csv" --by "$by" --min-lines "$min_lines" --before "$adapt_end" \
  --out stores >partition.log 2>&1 || { cat partition.log >&2; exit 1; }
mapfile -t ids <ids.txt
for id in "${ids[@]}"; do
  [ -f "stores/$id.db" ] || { echo "demo-campaign: store $id was not written by partition" >&2; exit 1; }
done
echo "   $(tail -1 partition.log | sed 's/^partition: //')"
"$repo/scripts/make-dev-keys.sh" keys "${ids[@]}" observer >/dev/null
# The observer has a PSK identity (it fetches models over DTLS) but is not a store: the ledger's
# enrolment list - the identities a sampled round charges - is the stores only, not the PSK table.
(umask 077 && printf '%s\n' "${ids[@]}" >"$work/keys/enrolment.txt")
# The signed ledger records (epsilon, delta) per round: a campaign without noise has no ledger.
ledger_keys=$'[ledger]\nkey = '"$work/keys/ledger.key"$'\nepsilon_cap = '"${agg_cap:-$num_cap}"$'\nenrolment = '"$work/keys/enrolment.txt"
[ "$cap" = inf ] && ledger_keys=""
if [ "$small" = 1 ]; then model_keys=$'buckets = 4096\ndim = 16\nhidden = 32'; else model_keys=""; fi
cat >aggregator.ini <<INI
[storage]
db = $work/aggregator.db
[model]
arch = wide-deep-v1
$model_keys
[round]
min_participants = 2
target_participants = ${target:-$stores}
max_participants = 4096
duration_s = $round_s
participation_q = $q
on_short = extend
total_rounds = $rounds
local_steps = 10
local_lr = 0.005
upload_dtype = $dtype
[privacy]
mode = $mode
clip_norm = 1.0
noise_multiplier = $sigma
delta = $delta
[aggregation]
weight_cap = $weight_cap
[server]
listen = 127.0.0.1:$port
max_sessions = 256
[dtls]
psk_keys = $work/keys/psk.keys
$ledger_keys
[log]
level = info
INI
for id in "${ids[@]}" observer; do
  db=$work/stores/$id.db
  [ "$id" = observer ] && db=$work/observer.db
  cat >"$id.ini" <<INI
[agent]
store_id = $id
db = $db
[aggregator]
address = 127.0.0.1:$port
[dtls]
psk_key = $work/keys/stores/$id.psk
[upload]
dtype = $dtype
[privacy]
epsilon_cap = $num_cap
INI
done

# ---- 3. Processes -----------------------------------------------------------------------------
"$agg" serve --config "$work/aggregator.ini" >aggregator.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q listening aggregator.log && break; sleep 0.1; done
grep -q listening aggregator.log || { echo "demo-campaign: the aggregator did not start:" >&2; tail aggregator.log >&2; exit 1; }
watch_args=(--config "$work/observer.ini" --data "$csv" --stores-dir "$work/stores" --ids "$work/ids.txt" --rounds "$rounds"
  --epsilon-cap "$cap" --by "$by" --timeout-s $((rounds * (round_s * 4 + 30) + 60)))
[ -n "$summary" ] && watch_args+=(--summary "$summary")
[ "${STOREFL_DEMO_LOCAL:-0}" = 1 ] && watch_args+=(--local)
[ "$per_store" = 1 ] && watch_args+=(--per-store)
# The observer first (so that it sees round 1), in the background so that Ctrl-C reaches this
# script's trap at once.
start_observer() {
  "$agent" campaign watch "${watch_args[@]}" 2>watch.err &
  watch_pid=$!
  pids+=("$watch_pid")
  for _ in $(seq 300); do
    grep -q "observing round" watch.err && break
    kill -0 "$watch_pid" 2>/dev/null || break
    sleep 0.1
  done
}
start_agents() {
  mkdir -p logs
  for id in "${ids[@]}"; do
    "$agent" run --config "$work/$id.ini" --poll-s 5 >"logs/$id.log" 2>&1 &
    pids+=($!)
  done
}
late=${STOREFL_DEMO_LATE_OBSERVER:-}
if [ -n "$late" ]; then
  start_agents
  # Wait for round 1 to end (not a fixed time: under load round 1 can outlast any fixed sleep), then
  # "$late" seconds more, at most 120 s in all.
  for _ in $(seq 1200); do
    grep -qE "round 1 (closed|abandoned)" aggregator.log && break
    sleep 0.1
  done
  sleep "$late"
  start_observer
else
  start_observer
  start_agents
fi
echo "== campaign: 1 aggregator + ${#ids[@]} agents on 127.0.0.1:$port (DTLS PSK), setup took $(elapsed) s"
set +e
wait "$watch_pid"
watch_rc=$?
set -e

# ---- 4. Stop, and check that nothing is left ---------------------------------------------------
stop_all
left=0
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=$((left + 1)); done
if [ "$watch_rc" != 0 ]; then
  echo "demo-campaign: the observer failed (status $watch_rc):" >&2
  tail -5 watch.err >&2
  tail -5 aggregator.log >&2
fi
if [ "$per_store" = 1 ]; then
  # Unbalanced stores: the aggregation weight each got (weight = min(num_examples, weight_cap)).
  echo
  echo "aggregation weight per store (weight cap $weight_cap; from the aggregator's accepted updates):"
  awk '/update accepted:/ {
         for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "store") s = kv[2]; if (kv[1] == "weight") w = kv[2] }
         tot += w; sw[s] += w; n[s]++; if (w > mx[s]) mx[s] = w }
       END { for (s in sw) printf "%s %d %d %d\n", s, n[s], mx[s], sw[s] }' aggregator.log |
    sort -k4,4nr -k1,1 | awk -v tot=0 '{ line[NR] = $0; tot += $4 } END {
      printf "%-24s %7s %10s %8s\n", "store", "updates", "max weight", "share"
      for (i = 1; i <= NR; i++) { split(line[i], f, " "); printf "%-24s %7d %10d %7.2f%%\n", f[1], f[2], f[3], tot ? 100 * f[4] / tot : 0 } }'
fi
echo
echo "aggregator log: $work/aggregator.log; rounds and models: $agg rounds --db $work/aggregator.db"
if [ "$cap" = inf ]; then
  echo "no noise (epsilon inf): no privacy ledger"
else
  "$agg" audit pubkey --key "$work/keys/ledger.key" -o "$work/ledger-pub.pem" >/dev/null 2>&1 || true
  if "$agg" audit export --db "$work/aggregator.db" --format html --cap "$cap" -o "$work/audit.html" >audit.log 2>&1; then
    echo "audit report (HTML): $work/audit.html"
  else
    echo "audit report: export failed (see $work/audit.log)"
  fi
  echo "verify the ledger: $agg audit verify --db $work/aggregator.db --pubkey $work/ledger-pub.pem"
  if "$agg" audit verify --db "$work/aggregator.db" --pubkey "$work/ledger-pub.pem" >verify.log 2>&1; then
    echo "   -> $(tail -1 verify.log)"
  else
    echo "   -> FAILED: $(tail -1 verify.log)"
    [ "$watch_rc" = 0 ] && watch_rc=1
  fi
fi
echo "stopped ${#pids[@]} processes; left running: $left; total time $(elapsed) s"
[ "$left" = 0 ] || exit 1
exit "$watch_rc"
