#!/usr/bin/env bash
# kill -9 campaign against storefl-aggregator serve (DTLS PSK, real SQLite file on disk).
#   scripts/kill9-campaign.sh [--trials N] [--build DIR] [--port P] [--seed S]
# Once: a fault-free reference run (3 stores, 3 rounds of 3 updates, target 3) records the model
# bytes after each round. Then N trials, each on a fresh database: the same uploads run in the
# background (each store retries its upload, as the agent's outbox does, until it holds a receipt),
# while the aggregator is killed with SIGKILL at a random moment (after a random number 0..8 of
# acknowledged uploads, then 0..40 ms) and restarted, and in half of the trials killed a second
# time. A trial passes when its database holds every round closed with exactly 3 participants and 3
# stored updates from 3 distinct stores, as the reference's does (no acknowledged update lost, none
# counted twice), and the final model is byte-identical to the reference. Prints one line per trial and a JSON summary.
# Defaults: 50 trials, build/, port 22900. Exit status 0 iff every trial passed.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
trials=50 build=$src/build port=22900 seed=1
while [ $# -gt 0 ]; do
  case $1 in
    --trials) trials=$2; shift 2 ;;
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --port) port=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "kill9-campaign: unknown argument $1" >&2; exit 2 ;;
  esac
done
agg=$build/aggregator/storefl-aggregator peer=$build/tests/net_peer
[ -x "$agg" ] && [ -x "$peer" ] || { echo "kill9-campaign: build $build first (scripts/build.sh release)" >&2; exit 2; }
work=$(mktemp -d)
srv= upl=
cleanup() {
  for p in $srv $upl; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
"$src/scripts/make-dev-keys.sh" keys --count 3 >/dev/null
RANDOM=$seed
ROUNDS=3 STORES=3

write_ini() { # DB
  cat >agg.ini <<INI
[storage]
db = $1
[model]
arch = test-v1
tensor = w:64x32
tensor = b:16
init_seed = 7
[round]
min_participants = 3
target_participants = 3
max_participants = 10
duration_s = 600
total_rounds = $ROUNDS
max_upload_bytes = 100000
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
}
psk() { echo --psk-id "$1" --psk-key "$work/keys/stores/$1.psk"; }
start() {
  "$agg" serve --config agg.ini >>agg.log 2>&1 &
  srv=$!
  for _ in $(seq 100); do
    "$peer" get $port v1/status $(psk store-001) >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "aggregator did not start" >&2
  return 1
}
cur_round() { "$peer" get $port v1/status $(psk store-001) 2>/dev/null | sed -n 's/.*status round=\([0-9]*\).*/\1/p'; }

# The uploads of the whole campaign, each retried until acknowledged (survives the aggregator's death).
uploads() {
  local r s out
  for r in $(seq $ROUNDS); do
    until [ "$(cur_round)" = "$r" ]; do sleep 0.05; done
    until "$peer" get $port v1/round $(psk store-001) --out round$r.cbor >/dev/null 2>&1 &&
      "$peer" get $port v1/model $(psk store-001) --out model$r.cbor >/dev/null 2>&1; do sleep 0.05; done
    for s in $(seq $STORES); do
      "$peer" mkupdate round$r.cbor model$r.cbor --store store-00$s --seed $((r * 10 + s)) --dtype f32 \
        --out u$r-$s.cbor >/dev/null
      until out=$("$peer" post $port v1/update $(psk store-00$s) --in u$r-$s.cbor 2>/dev/null) &&
        echo "$out" | grep -q "code=204"; do sleep 0.05; done
      echo "ack round=$r store=$s $(echo "$out" | grep -o 'duplicate=[01]')" >>acks.log
    done
  done
  # The last round must close promptly; a round left open (it would close only at its 600 s
  # deadline) is reported as a failure after 60 s.
  for _ in $(seq 1200); do grep -q "campaign finished" agg.log && return 0; sleep 0.05; done
  echo "stuck: the campaign did not finish within 60 s of the last acknowledgement" >>acks.log
}

# round:participants:distinct stores/stored updates of every round, from the database itself.
rounds_of() {
  sqlite3 "$1" "SELECT group_concat(r.round || ':' || r.participants || ':' ||
    (SELECT COUNT(DISTINCT u.store_id) || '/' || COUNT(*) FROM updates u WHERE u.round = r.round), ' ')
    FROM (SELECT * FROM rounds ORDER BY round) r" 2>&1
}
count_acks() { if [ -f acks.log ]; then wc -l <acks.log; else echo 0; fi; }
final_model() { "$peer" get $port v1/model $(psk store-002) --out "$1" >/dev/null; }

# Reference run, no faults.
write_ini "$work/ref.db"
start
t0=$(date +%s%N)
uploads
span=$((($(date +%s%N) - t0) / 1000000))
final_model ref.cbor
kill -TERM $srv; wait $srv || true; srv=
want=$(rounds_of ref.db)
[ "$want" = "$(for r in $(seq $ROUNDS); do printf '%s:3:3/3 ' $r; done | sed 's/ $//')" ] ||
  { echo "kill9-campaign: unexpected reference rounds: $want" >&2; exit 1; }
echo "reference: rounds $want, final model $(sha256sum <ref.cbor | cut -c1-16), fault-free uploads take $span ms"

pass=0 failn=0 total_kills=0
t_start=$(date +%s)
for t in $(seq "$trials"); do
  rm -f trial.db* agg.log acks.log trial.kills
  write_ini "$work/trial.db"
  start
  uploads &
  upl=$!
  kills=0
  nk=$((RANDOM % 2 + 1))
  for _ in $(seq $nk); do
    # A random phase: after k acknowledged uploads (0..8), then a random 0..40 ms into what follows.
    k=$((RANDOM % (ROUNDS * STORES)))
    while kill -0 $upl 2>/dev/null && [ "$(count_acks)" -lt $k ]; do sleep 0.005; done
    ms=$((RANDOM % 40))
    sleep "0.0$(printf '%02d' $ms)"
    kill -0 $upl 2>/dev/null || break
    acked=$(count_acks)
    kill -9 $srv; wait $srv 2>/dev/null || true
    kills=$((kills + 1))
    echo "killed ${ms} ms after ack $k, $acked acknowledged" >>trial.kills
    start
  done
  total_kills=$((total_kills + kills))
  wait $upl; upl=
  final_model trial.cbor
  kill -TERM $srv; wait $srv || true; srv=
  ok=1 why=
  # The database is the truth (log lines written after a commit can be lost to the kill): every
  # round closed with 3 participants and exactly 3 stored updates, one per store.
  got=$(rounds_of trial.db)
  [ "$got" = "$want" ] || { ok=; why="$why rounds:participants:stores/updates = '$got', expected '$want';"; }
  for r in $(seq $ROUNDS); do
    n=$(grep -c "update accepted: .* round=$r " agg.log || true)
    # "accepted" is logged after the commit: a kill in between loses the line, not the update (the
    # retry then gets the duplicate receipt), so fewer than 3 lines is fine, more is not.
    [ "$n" -le 3 ] || { ok=; why="$why round $r accepted $n times;"; }
  done
  cmp -s ref.cbor trial.cbor || { ok=; why="$why final model differs;"; }
  ! grep -q "^stuck" acks.log || { ok=; why="$why stuck (last round not closed within 60 s);"; }
  restored=$(grep -c "restored with" agg.log || true)
  kinfo=$(tail -n $kills trial.kills 2>/dev/null | tr '\n' ';')
  if [ -n "$ok" ]; then
    pass=$((pass + 1))
    echo "trial $t: PASS kills=$kills ($kinfo) restores_with_open_round=$restored dup_receipts=$(grep -c 'duplicate=1' acks.log || true)"
  else
    failn=$((failn + 1))
    echo "trial $t: FAIL kills=$kills ($kinfo):$why"
    cp agg.log "$src/kill9-fail-$t.log" 2>/dev/null || true
  fi
done
echo "{\"trials\":$trials,\"kills\":$total_kills,\"passed\":$pass,\"failed\":$failn,\"seconds\":$(($(date +%s) - t_start))}"
[ $failn -eq 0 ]
