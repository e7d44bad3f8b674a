#!/usr/bin/env bash
# storefl-agent eval on a slice of the real data: output structure, the random baseline's expected
# value, exit statuses and the --help sections. Usage: test_eval_cmd.sh AGENT DATA_DIR
set -euo pipefail
agent=$1
data=$2/online-retail/online_retail.csv.gz
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

help=$("$agent" eval --help)
for s in NAME SYNOPSIS DESCRIPTION OPTIONS 'EXIT STATUS' EXAMPLES; do
  grep -q "^$s\$" <<<"$help" || fail "eval --help lacks $s"
done
set +e
"$agent" eval >/dev/null 2>&1; [ $? -eq 2 ] || fail "no --data must exit 2"
"$agent" eval --data "$data" --regime sometimes >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad --regime must exit 2"
"$agent" eval --data "$data" --methods random,bogus >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad method must exit 2"
"$agent" eval --data "$tmp/missing.csv" >/dev/null 2>"$tmp/err"; [ $? -eq 1 ] || fail "missing file must exit 1"
set -e
grep -q missing.csv "$tmp/err" || fail "the error does not name the file"

for clients in customers countries; do
  n=100; [ $clients = countries ] && n=6
  "$agent" eval --data "$data" --regime few-shot --clients $clients --max-clients $n --json \
    --methods random,popularity,popularity-global,tfidf >"$tmp/out.json" 2>"$tmp/err" || { cat "$tmp/err"; fail "eval exited $?"; }
  grep -q '^cut 2011-09-25 21:33:12 | new products 173' "$tmp/err" || fail "split figures missing on stderr"
  python3 - "$tmp/out.json" <<'PY' || fail "JSON output of $clients"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["method"] for r in rows] == ["random", "popularity", "popularity-global", "tfidf"], rows
for r in rows:
    for k in ("hr10", "ndcg10", "auc", "events", "clients", "client_hr10", "client_ndcg10", "client_auc"):
        assert k in r, (k, r)
    assert 0 <= r["ndcg10"] <= r["hr10"] <= 1 and 0 <= r["auc"] <= 1, r
    assert r["events"] == rows[0]["events"] > 0 and r["clients"] == rows[0]["clients"] > 0, r
    assert r["regime"] == "few-shot"
rnd = rows[0]
assert rnd["auc"] == 0.5 and rnd["client_auc"] == 0.5, rnd
# With 173 new products, at least 10 candidates: HR@10 of random is at most 1 and at least 10/173.
assert 10 / 173 - 1e-9 <= rnd["hr10"] <= 1, rnd
assert rows[3]["ndcg10"] > rnd["ndcg10"], rows
PY
done
# The table form has the header and one row per method.
"$agent" eval --data "$data" --max-clients 50 --methods random,tfidf >"$tmp/table" 2>/dev/null
grep -q '^method .*HR@10 .*NDCG@10 .*AUC' "$tmp/table" || fail "table header"
[ "$(grep -cE '^(random|tfidf) ' "$tmp/table")" -eq 2 ] || fail "table rows"
echo "eval command: ok"
