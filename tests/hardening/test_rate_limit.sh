#!/usr/bin/env bash
# Per-store rate limit ([server] store_rate = 0.5/s, store_burst = 4) on the real server:
#  1. store-003 floods GET /v1/status (40 requests on one DTLS session): at most burst + elapsed x
#     rate are answered, the rest get 5.03 with a Max-Age option >= 1 and an error body saying
#     reason rate_limited with the same max_age_s; meanwhile store-001 (another identity) is served.
#  2. Three agents whose buckets are empty (each first floods) each hold an update in their outbox:
#     their first sync is refused 5.03 rate_limited with Max-Age 2, the outbox item is rescheduled
#     no earlier than that (the agent's own back-off would be 0.5-1 s), and syncing every 6 s (what
#     the bucket sustains: a sync costs up to 3 requests) every update is acknowledged once and the
#     round closes with the 3 participants. /v1/status is read as store-004, which is never limited.
# Usage: test_rate_limit.sh AGGREGATOR AGENT NET_PEER SOURCE_DIR PORT
set -euo pipefail
agg=$1 agent=$2 peer=$3 src=$4 port=$5
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$here/lib.sh"
cleanup() {
  [ -n "$srv" ] && kill -9 "$srv" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
"$src/scripts/make-dev-keys.sh" keys --count 4 >/dev/null
SERVER_EXTRA="store_rate = 0.5
store_burst = 4" write_agg_ini agg.ini "$work/agg.db" $port
start_agg agg.ini $port # its readiness probe used one of store-001's tokens

# 1. A flood from one store.
t0=$(date +%s%N)
"$peer" get $port v1/status $(psk store-003) --repeat 40 >flood.out 2>&1 || fail "flood: $(tail -3 flood.out)"
t1=$(date +%s%N)
ok=$(grep -c "^code=205" flood.out || true)
limited=$(grep -c "^code=503" flood.out || true)
el_ms=$(((t1 - t0) / 1000000))
echo "flood of 40 GET /v1/status in $el_ms ms: $ok answered, $limited refused 5.03 rate_limited"
[ $((ok + limited)) -eq 40 ] || fail "flood: unexpected answers: $(sort flood.out | uniq -c)"
[ "$ok" -ge 4 ] || fail "flood: the burst of 4 was not served ($ok)"
[ "$ok" -le $((4 + el_ms / 2000 + 1)) ] || fail "flood: $ok answered in $el_ms ms, over burst + rate"
# Every refusal: Max-Age option >= 1, body reason rate_limited with the same max_age_s (the last
# request's answer is printed in net_peer's long form).
bad=$(grep "^code=503 max_age" flood.out | grep -v "^code=503 max_age=\([1-9][0-9]*\) reason=rate_limited body_max_age=\1$" | head -1 || true)
[ -z "$bad" ] || fail "a refusal without Max-Age, reason or matching body max_age_s: $bad"
if [ "$(tail -2 flood.out | grep -c 'code=503')" = 1 ]; then
  tail -2 flood.out | grep -q "code=503 len=[0-9]* etag= max_age=2 " || fail "last refusal: $(tail -2 flood.out)"
  tail -1 flood.out | grep -q "error_body code=503 reason=rate_limited max_age=2 " || fail "last refusal: $(tail -1 flood.out)"
fi
out=$("$peer" get $port v1/status $(psk store-001) 2>&1) || fail "store-001 during the flood: $out"
echo "$out" | grep -q "^code=205" || fail "another store is limited by store-003's flood: $out"
echo "store-001 during store-003's flood: $(echo "$out" | head -1 | cut -d' ' -f1)"
grep -q "5.03 for .* store store-003 over its request rate (0.5/s, burst 4) on GET /v1/status, retry in 2 s" agg.log ||
  fail "no rate-limit line in the aggregator log"

# 2. Limited agents still complete the round.
"$peer" get $port v1/round $(psk store-002) --out round.cbor >/dev/null
"$peer" get $port v1/model $(psk store-002) --out model.cbor >/dev/null
agent_ini() { # ID
  cat >$1.ini <<INI
[agent]
store_id = $1
db = $work/$1.db
[aggregator]
address = 127.0.0.1:$port
[dtls]
psk_key = $work/keys/stores/$1.psk
[upload]
timeout_s = 20
[retry]
base_s = 1
max_s = 60
INI
}
sleep 8 # every bucket full again
for s in 1 2 3; do
  id=store-00$s
  agent_ini $id
  "$agent" sync --config $id.ini >/dev/null 2>&1 || fail "$id: first sync"
  "$peer" mkupdate round.cbor model.cbor --store $id --seed $s --out u$s.cbor >/dev/null
  "$peer" enqueue $id.db 1 u$s.cbor >/dev/null || fail "enqueue $id"
done
for s in 1 2 3; do
  id=store-00$s
  "$peer" get $port v1/status $(psk $id) --repeat 8 >burn$s.out 2>&1 || true
  "$agent" sync --config $id.ini --json >sync$s.log 2>&1 || true
  item=$("$peer" outbox $id.db | grep "round=1 ")
  echo "$id after its bucket ran dry: $item"
  echo "$item" | grep -q "receipt=no .*error=5.03 rate_limited" || fail "$id: expected a 5.03 rate_limited: $item"
  due=$(echo "$item" | field due_in_ms)
  # The agent's own back-off is at most 1 s here ([retry] base_s = 1): more than that is the Max-Age.
  [ "$due" -ge 1100 ] || fail "$id: retry scheduled before the Max-Age of 2 s: $item"
done
for s in 1 2 3; do
  id=store-00$s
  (for i in $(seq 20); do
    sleep 6
    "$agent" sync --config $id.ini --json >>sync$s.log 2>&1 || true
    if "$peer" outbox $id.db | grep -q "round=1 state=1 .*receipt=yes"; then
      echo "syncs=$i" >>sync$s.log
      exit 0
    fi
  done
  exit 1) &
  eval job$s=$!
done
for s in 1 2 3; do
  eval j=\$job$s
  wait $j || fail "store-00$s never acknowledged under the rate limit: $(tail -3 sync$s.log)"
  echo "store-00$s: $("$peer" outbox store-00$s.db | grep "round=1 ") after $(grep syncs= sync$s.log) more syncs"
done
st=$("$peer" get $port v1/status $(psk store-004) 2>/dev/null | sed -n "s/^status //p")
echo "$st" | grep -q "round=2 " || fail "the round did not close: $st"
n=$(grep -c "update accepted: store=store-00[123] round=1 " agg.log)
[ "$n" = 3 ] || fail "expected 3 acceptances in round 1, got $n"
echo "round 1 closed with 3 updates, each accepted once; $(grep -c 'over its request rate' agg.log) requests refused 5.03 rate_limited in all"
stop_agg
echo PASS
