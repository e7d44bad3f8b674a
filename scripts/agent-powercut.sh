#!/usr/bin/env bash
# Power cut on a store agent: kill -9 of storefl-agent at a random moment of its SQLite writes.
#   scripts/agent-powercut.sh [--trials N] [--seed S] [--build DIR] [--port P] [--data DIR]
# Setup: a 30,000-line slice of the real Online Retail export, cut into store databases
# (storefl-agent partition), PSK keys, and a real aggregator (DTLS, wide-deep-v1, target 1: each
# upload closes its round, so the agent then has a new model to download).
# Each trial (kinds in turn):
#   ingest  storefl-agent ingest of the slice into a fresh store, killed after 0..T_ingest;
#           then the store must pass PRAGMA integrity_check and open, nothing of the file may be
#           visible, and a re-ingest must give exactly the events of an uninterrupted ingest.
#   run     storefl-agent run --rounds 1 on a fresh copy of a store against a fresh aggregator:
#           model download, local training, outbox insert, upload, receipt marking; killed after
#           0..1.5 x T_ack (when the reference run's update was acknowledged). Then integrity_check ok, the store opens, and the agent is started again
#           until its update is acknowledged; the aggregator must hold exactly one update of the
#           store for round 1 (an update it acknowledged before the kill is re-sent and answered
#           with the same receipt, never counted twice) and the outbox exactly one item for
#           round 1, with a receipt.
#   train   the same, killed as soon as the agent logs that it was selected for round 1 (it has
#           recorded its decision and is training: the update is not in the outbox yet). Regression:
#           the restarted agent used to skip the round for good (decision recorded, no update).
#   sync    storefl-agent sync of a fresh store (downloads the 2 MB model 1 and stores it), killed
#           after 0..T_sync; then integrity_check ok, the store opens, a new sync completes and
#           the stored model 1 has the aggregator's digest.
# T_* are measured on an uninterrupted reference of each. Prints one line per trial and a JSON
# summary; exit status 0 iff every trial passed. Defaults: 20 trials, seed 1, build/, port 22960.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
trials=20 seed=1 build=$src/build port=22960 data=${STOREFL_DATA_DIR:-$src/../shared/data}
while [ $# -gt 0 ]; do
  case $1 in
    --trials) trials=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --port) port=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "agent-powercut: unknown argument $1" >&2; exit 2 ;;
  esac
done
agg=$build/aggregator/storefl-aggregator agent=$build/agent/storefl-agent peer=$build/tests/net_peer
for b in "$agg" "$agent" "$peer"; do
  [ -x "$b" ] || { echo "agent-powercut: $b missing (scripts/build.sh release)" >&2; exit 2; }
done
command -v sqlite3 >/dev/null || { echo "agent-powercut: needs the sqlite3 shell" >&2; exit 2; }
csv=$data/online-retail/online_retail.csv.gz
[ -f "$csv" ] || { echo "agent-powercut: real data not found at $csv" >&2; exit 2; }
work=$(mktemp -d)
srv= vic=
cleanup() {
  for p in $srv $vic; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
RANDOM=$seed
q() { sqlite3 "$1" "$2"; }
now_ms() { date +%s%3N; }

gzip -dc "$csv" | head -n 30001 >slice.csv || true
"$agent" partition --data slice.csv --by customer --out stores --min-lines 200 >partition.log 2>&1 ||
  { echo "agent-powercut: partition failed: $(tail -3 partition.log)" >&2; exit 1; }
store=$(ls stores | sed -n 's/\.db$//p' | head -1)
"$src/scripts/make-dev-keys.sh" keys "$store" >/dev/null

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
min_participants = 1
target_participants = 1
duration_s = 600
local_steps = 5
[privacy]
mode = central
clip_norm = 1.0
noise_multiplier = 0
[log]
level = info
[server]
listen = 127.0.0.1:$port
[dtls]
psk_keys = $work/keys/psk.keys
INI
cat >agent.ini <<INI
[agent]
store_id = $store
db = $work/victim.db
[aggregator]
address = 127.0.0.1:$port
[dtls]
psk_key = $work/keys/stores/$store.psk
[upload]
timeout_s = 20
[retry]
base_s = 1
max_s = 2
INI

start_agg() { # a fresh aggregator database
  rm -f agg.db agg.db-wal agg.db-shm
  "$agg" serve --config agg.ini >>agg.log 2>&1 &
  srv=$!
  for _ in $(seq 100); do grep -q "listening on 127.0.0.1:$port" agg.log 2>/dev/null && return 0; sleep 0.05; done
  echo "agent-powercut: aggregator did not start: $(tail -3 agg.log)" >&2
  exit 1
}
stop_agg() { kill -TERM "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true; srv=; : >agg.log; }
fresh_store() { rm -f victim.db victim.db-wal victim.db-shm; cp "stores/$store.db" victim.db; }
opens() { "$peer" outbox victim.db >/dev/null 2>&1; } # storefl_store_open (schema, recovery) + a read
# Runs CMD in the background and kills it -9 after MS milliseconds (if still running).
kill_after() { # MS CMD...
  local ms=$1
  shift
  "$@" >victim.log 2>&1 &
  vic=$!
  sleep "$(awk -v m="$ms" 'BEGIN{printf "%.3f", m / 1000}')"
  if kill -9 "$vic" 2>/dev/null; then killed=1; else killed=0; fi
  wait "$vic" 2>/dev/null || true
  vic=
}
until_acked() { # the agent, started again, until its round-1 update holds a receipt
  for _ in $(seq 4); do
    timeout 30 "$agent" run --config agent.ini --rounds 1 --poll-s 5 >>recover.log 2>&1 || true
    "$peer" outbox victim.db | grep -q "round=1 state=1 .*receipt=yes" && return 0
  done
  return 1
}

# References (uninterrupted) and their durations.
t0=$(now_ms)
"$agent" ingest --db ingest-ref.db slice.csv 2>ingest-ref.err || { echo "reference ingest failed" >&2; exit 1; }
t_ingest=$(($(now_ms) - t0))
ref_events=$(q ingest-ref.db "SELECT count(*) || ':' || sum(quantity) FROM events")
start_agg
fresh_store
t0=$(now_ms)
timeout 120 "$agent" run --config agent.ini --rounds 1 --poll-s 5 >ref-run.log 2>&1 &
vic=$!
t_ack=
while kill -0 $vic 2>/dev/null; do
  [ -z "$t_ack" ] && grep -q "update accepted" agg.log && t_ack=$(($(now_ms) - t0))
  sleep 0.005
done
wait $vic || { echo "reference run failed: $(tail -3 ref-run.log)" >&2; exit 1; }
vic=
t_run=$(($(now_ms) - t0))
t_ack=${t_ack:-$t_run}
stop_agg
start_agg
fresh_store
t0=$(now_ms)
"$agent" sync --config agent.ini >ref-sync.log 2>&1 || { echo "reference sync failed" >&2; exit 1; }
t_sync=$(($(now_ms) - t0))
stop_agg
echo "reference: ingest ${t_ingest} ms ($ref_events events:quantity), run ${t_run} ms (update acknowledged after ${t_ack} ms), sync ${t_sync} ms (store $store)"

passed=0 failed=0 kills=0
kinds=(run train sync ingest)
tstart=$(date +%s)
for trial in $(seq "$trials"); do
  kind=${kinds[$(((trial - 1) % 4))]}
  why=
  case $kind in
    ingest)
      ms=$((RANDOM % (t_ingest + 1)))
      rm -f ing.db ing.db-wal ing.db-shm
      kill_after $ms "$agent" ingest --db ing.db --batch 1000 slice.csv
      ic=$(q ing.db "PRAGMA integrity_check" 2>&1 || true)
      if [ -f ing.db ] && [ "$ic" != ok ]; then why="integrity_check: $ic"; fi
      if [ -z "$why" ] && [ "$killed" = 1 ] && [ -f ing.db ]; then
        n=$(q ing.db "SELECT count(*) FROM events" 2>/dev/null || echo 0)
        # All or nothing: an interrupted ingest shows none of the file, a finished one all of it.
        [ "$n" = 0 ] || [ "$(q ing.db "SELECT count(*) || ':' || sum(quantity) FROM events")" = "$ref_events" ] ||
          why="partial ingest visible ($n events)"
      fi
      if [ -z "$why" ]; then
        "$agent" ingest --db ing.db slice.csv 2>ing2.err || why="re-ingest failed: $(tail -1 ing2.err)"
      fi
      [ -n "$why" ] || [ "$(q ing.db "SELECT count(*) || ':' || sum(quantity) FROM events")" = "$ref_events" ] ||
        why="re-ingest differs from the reference"
      ;;
    run | train)
      start_agg
      fresh_store
      if [ $kind = run ]; then
        # Around the writes: model stored, outbox insert after training, upload, receipt marking.
        ms=$((RANDOM % (t_ack * 3 / 2 + 1)))
        kill_after $ms "$agent" run --config agent.ini --rounds 1 --poll-s 5
      else
        t0=$(now_ms)
        "$agent" run --config agent.ini --rounds 1 --poll-s 5 >victim.log 2>&1 &
        vic=$!
        for _ in $(seq 2000); do grep -q "round 1: selected" victim.log && break; sleep 0.002; done
        if kill -9 $vic 2>/dev/null; then killed=1; else killed=0; fi
        wait $vic 2>/dev/null || true
        vic=
        ms=$(($(now_ms) - t0))
        queued=$("$peer" outbox victim.db 2>/dev/null | grep -c "round=1 " || true)
        [ "$queued" = 0 ] && kind="train(killed before the outbox insert)"
      fi
      acked_before=$(grep -c "update accepted: store=$store round=1 " agg.log || true)
      ic=$(q victim.db "PRAGMA integrity_check" 2>&1 || true)
      [ "$ic" = ok ] || why="integrity_check: $ic"
      [ -n "$why" ] || opens || why="the store does not open"
      [ -n "$why" ] || until_acked || why="never acknowledged after restart: $(tail -2 recover.log)"
      if [ -z "$why" ]; then
        n=$(q agg.db "SELECT count(*) FROM updates WHERE round=1 AND store_id='$store'")
        [ "$n" = 1 ] || why="aggregator holds $n updates of $store for round 1"
        items=$("$peer" outbox victim.db | grep -c "round=1 " || true)
        [ "$items" = 1 ] || why="outbox holds $items items for round 1"
      fi
      dup=$("$peer" outbox victim.db 2>/dev/null | grep "round=1 " | sed -n 's/.*duplicate=\([0-9-]*\).*/\1/p')
      [ "$acked_before" = 0 ] || kind="${kind%%(*}(acknowledged before the kill)"
      [ "$dup" != 1 ] || kind="$kind(re-sent, same receipt)"
      stop_agg
      ;;
    sync)
      start_agg
      fresh_store
      ms=$((RANDOM % (t_sync + 1)))
      kill_after $ms "$agent" sync --config agent.ini
      ic=$(q victim.db "PRAGMA integrity_check" 2>&1 || true)
      [ -n "$why" ] || [ "$ic" = ok ] || why="integrity_check: $ic"
      [ -n "$why" ] || opens || why="the store does not open"
      [ -n "$why" ] || "$agent" sync --config agent.ini >sync2.log 2>&1 || why="sync after the kill: $(tail -1 sync2.log)"
      if [ -z "$why" ]; then
        want=$(q agg.db "SELECT lower(hex(digest)) FROM models WHERE version=1")
        have=$("$peer" storemodel victim.db 1 2>/dev/null | sed -n 's/.*digest=//p')
        [ -n "$want" ] && [ "$want" = "$have" ] || why="stored model 1 '$have' is not the aggregator's '$want'"
      fi
      stop_agg
      ;;
  esac
  kills=$((kills + killed))
  if [ -z "$why" ]; then
    passed=$((passed + 1))
    echo "trial $trial $kind kill after ${ms} ms (killed=$killed): ok"
  else
    failed=$((failed + 1))
    echo "trial $trial $kind kill after ${ms} ms (killed=$killed): FAIL: $why"
  fi
done
printf '{"trials":%d,"kills":%d,"passed":%d,"failed":%d,"seconds":%d}\n' "$trials" "$kills" "$passed" "$failed" \
  $(($(date +%s) - tstart))
[ "$failed" = 0 ]
