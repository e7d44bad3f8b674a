#!/usr/bin/env bash
# The scale campaign in the suite, small: scripts/scale-campaign.sh with the 24 largest customers
# as stores (own SQLite store and PSK each, all in one storefl-agent simulate process), 8 drawn per
# round, 2 int8 rounds + 1 round of each of int8, float16, float32 captured on the wire, small model, against the real aggregator. Asserts:
# the script's own checks (every round closed with exactly 8 updates counted by the aggregator, one
# receipt per counted update); every receipt was stored in its store's outbox (state sent, with the
# receipt) and nothing else is in any outbox; the bytes per store grow with the encoding
# (int8 < float16 < float32); an NDCG@10 was reported for every int8 round; no process is left.
# Usage: test_scale.sh SOURCE_DIR BINARY_DIR PORT
set -euo pipefail
src=$1 bin=$2 port=$3
work=$(mktemp -d /tmp/storefl-scale-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; tail -20 "$work/out.log" >&2 || true; exit 1; }
STOREFL_BUILD=$bin bash "$src/scripts/scale-campaign.sh" --stores 24 --per-round 8 --rounds 2 --small \
  --work "$work/scale" --port "$port" >"$work/out.log" 2>&1 || fail "scale-campaign.sh failed"
cat "$work/out.log"
cd "$work/scale"
python3 - <<'PY' || fail "summary"
import json
s = json.load(open("summary.json"))
assert s["stores"] == 24, s
assert s["receipts"] == 40 and s["counted_by_aggregator"] == 40, s
assert not s["rounds_not_exactly_T"], s
b = s["bytes_up_per_store"]
assert 0 < b["i8"] < b["f16"] < b["f32"], b
w = s["wire_per_store"]
# DTLS records carry the bodies: the wire bytes exceed the body bytes, but not wildly
assert all(b[d] < w[d]["up"] < 1.5 * b[d] + 20000 for d in w), (b, w)
assert all(0 < x < 1 for x in s["ndcg10_per_round"]) and len(s["ndcg10_per_round"]) == 2, s
PY
sent=0 other=0
while read -r id; do
  n=$(sqlite3 "stores/$id.db" "SELECT count(*) FROM outbox WHERE state = 1 AND receipt IS NOT NULL")
  o=$(sqlite3 "stores/$id.db" "SELECT count(*) FROM outbox WHERE state != 1 OR receipt IS NULL")
  sent=$((sent + n)) other=$((other + o))
done <ids.txt
[ "$sent" = 40 ] || fail "$sent receipts in the outboxes, expected 40"
[ "$other" = 0 ] || fail "$other outbox item(s) not acknowledged"
cd /
for p in /proc/[0-9]*; do
  case "$(readlink "$p/cwd" 2>/dev/null)" in "$work"/*) fail "process ${p#/proc/} is left in the work directory" ;; esac
done
echo "PASS: 24 stores, 5 rounds x 8, 40 receipts = 40 counted = 40 outbox items sent"
