#!/usr/bin/env bash
# Local-mode DP through the in-process simulation: scripts/scale-campaign.sh --mode local with the
# 24 largest customers as stores, every store self-selecting with q = 1, 2 rounds, epsilon cap 8
# (sigma calibrated by campaign plan for local mode), small model, int8 uploads; with q = 1 a round
# closes once all 24 have sent (the 120 s deadline only bounds a slow ASan run). Each store clips,
# noises on the round's grid and encodes through the agent's release step (agent/src/release.h).
# Asserts: every round closed with all 24 stores counted (none refused by its budget), receipts =
# counted; an NDCG@10 for each round; the aggregator's signed ledger (audit export, verified)
# records each round with mode local, q = 1 and the planned sigma; every store's own ledger
# charged both rounds in local mode at q = 1 (SQLite, storefl-agent budget); no process is left.
# Usage: test_scale_local.sh SOURCE_DIR BINARY_DIR PORT
set -euo pipefail
src=$1 bin=$2 port=$3
work=$(mktemp -d /tmp/storefl-scale-local.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; tail -20 "$work/out.log" >&2 || true; exit 1; }
STOREFL_BUILD=$bin bash "$src/scripts/scale-campaign.sh" --stores 24 --rounds 2 --small --mode local \
  --epsilon-cap 8 --q 1 --round-s 120 --work "$work/scale" --port "$port" >"$work/out.log" 2>&1 ||
  fail "scale-campaign.sh --mode local failed"
cat "$work/out.log"
cd "$work/scale"
grep -q "^mode=local$" plan.env || fail "campaign plan did not calibrate for local mode"
sigma=$(sed -n 's/^sigma=//p' plan.env)
grep -q "^mode = local$" aggregator.ini || fail "the aggregator did not run in local mode"
python3 - <<'PY' || fail "summary"
import json
s = json.load(open("summary.json"))
assert s["stores"] == 24, s
assert s["participants_per_round"] == [24, 24], s
assert s["receipts"] == 48 and s["counted_by_aggregator"] == 48, s
assert s["refused_by_budget"] == 0, s
assert len(s["ndcg10_per_round"]) == 2 and all(0 <= x < 1 for x in s["ndcg10_per_round"]), s
PY
agg=$bin/aggregator/storefl-aggregator agent=$bin/agent/storefl-agent
"$agg" audit export --db aggregator.db --format json -o audit.json || fail "audit export"
"$agg" audit verify --db aggregator.db --key keys/ledger.key >verify.log 2>&1 || fail "audit verify: $(cat verify.log)"
python3 - "$sigma" <<'PY' || fail "aggregator ledger"
import json, sys
sigma = float(sys.argv[1])
e = json.load(open("audit.json"))["entries"]
assert sigma > 0 and len(e) == 2, (sigma, e)
for x in e:
    assert x["mode"] == "local" and x["q"] == 1.0 and abs(x["sigma"] - sigma) < 1e-9 * sigma, x
print(f"aggregator ledger: 2 rounds, mode local, q = 1, sigma = {sigma}")
PY
# The stores' own ledgers (agent/src/budget_gate.c): both rounds, mode local (1), q = 1, the same sigma.
while read -r id; do
  n=$(sqlite3 "stores/$id.db" "SELECT count(*) FROM ledger WHERE mode = 1 AND q = 1.0 AND abs(sigma - $sigma) < 1e-9")
  [ "$n" = 2 ] || fail "$id: $n local q = 1 rounds in its own ledger, expected 2"
  "$agent" budget --db "stores/$id.db" --json | grep -q '"rounds_charged":2' || fail "$id: storefl-agent budget"
done <ids.txt
cd /
for p in /proc/[0-9]*; do
  case "$(readlink "$p/cwd" 2>/dev/null)" in "$work"/*) fail "process ${p#/proc/} is left in the work directory" ;; esac
done
echo "PASS: local mode, 24 stores x 2 rounds, 48 receipts = 48 counted, ledgers local with q = 1"
