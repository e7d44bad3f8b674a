#!/usr/bin/env bash
# train -> personalize -> recommend on a store ingested from the first 20,000 lines of the real data:
# outputs parse, ranks are sorted, the basket is excluded, --new-only keeps only new products,
# a stale personalised head is not used, errors have the documented exit statuses.
set -euo pipefail
agent=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
data=${STOREFL_DATA_DIR:?}/online-retail/online_retail.csv.gz
[ -r "$data" ] || fail "no data at $data"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db=$work/store.db
gzip -dc "$data" | head -n 20001 > "$work/slice.csv" || true
"$agent" ingest --db "$db" "$work/slice.csv" 2>/dev/null

status() { set +e; "$@" >"$work/out" 2>"$work/err"; echo $?; set -e; }

# No model yet: a clear failure, not a crash.
[ "$(status "$agent" recommend --db "$db" --basket 71053)" = 1 ] || fail "recommend without a model should exit 1"
grep -q "storefl-agent train" "$work/err" || fail "no hint to train: $(cat "$work/err")"

"$agent" train --db "$db" --steps 150 --seed 3 2>"$work/train.log"
grep -q "local model v1" "$work/train.log" || fail "train: $(cat "$work/train.log")"

"$agent" recommend --db "$db" --basket 71053,85123a -k 7 --json > "$work/r1.json"
python3 - "$work/r1.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["model"] == {"kind": "local", "version": 1, "personalized": False}, r["model"]
res = r["results"]
assert len(res) == 7, len(res)
assert [x["rank"] for x in res] == list(range(1, 8))
s = [x["score"] for x in res]
assert s == sorted(s, reverse=True), s
assert all(0 < v < 1 for v in s)
codes = [x["code"] for x in res]
assert "71053" not in codes and "85123A" not in codes, codes
assert len(set(codes)) == 7
PY

# The same query twice gives the same answer (scoring is deterministic).
"$agent" recommend --db "$db" --basket 71053,85123a -k 7 --json > "$work/r1b.json"
cmp -s "$work/r1.json" "$work/r1b.json" || fail "recommend is not deterministic"

# Personalisation is cached and then used.
"$agent" personalize --db "$db" --days 3 --steps 10 2>"$work/p.log" || fail "personalize: $(cat "$work/p.log")"
"$agent" recommend --db "$db" --basket 71053 --shopper 17850 --new-only --new-days 5 -k 5 --json > "$work/r2.json"
python3 - "$work/r2.json" "$db" <<'PY'
import json, sqlite3, sys
r = json.load(open(sys.argv[1]))
assert r["model"]["personalized"] is True, r["model"]
assert r["shopper"] == "17850" and r["history"] > 0, r
db = sqlite3.connect(sys.argv[2])
last = db.execute("SELECT max(time) FROM events WHERE kind = 2").fetchone()[0]
for x in r["results"]:
    fs = db.execute("SELECT coalesce(first_seen, (SELECT min(time) FROM events e WHERE e.product_id = p.id))"
                    " FROM products p WHERE code = ?", (x["code"],)).fetchone()[0]
    assert last + 1 - 5 * 86400 <= fs <= last + 1, (x, fs, last)
assert 0 < len(r["results"]) <= 5
# --new-only candidates are exactly the products launched in the window
n = db.execute("SELECT count(*) FROM products p WHERE coalesce(first_seen, (SELECT min(time) FROM events e"
               " WHERE e.product_id = p.id)) BETWEEN ? AND ? AND code <> '71053'", (last + 1 - 5 * 86400, last + 1)).fetchone()[0]
assert r["candidates"] == n, (r["candidates"], n)
PY

# A new local model makes the cached head stale: it is no longer used.
"$agent" train --db "$db" --steps 20 --seed 4 2>/dev/null
"$agent" recommend --db "$db" --basket 71053 --json > "$work/r3.json"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["model"]=={"kind":"local","version":2,"personalized":False}, r["model"]' "$work/r3.json"

# Text output
"$agent" recommend --db "$db" --basket 71053 -k 3 > "$work/r4.txt"
[ "$(grep -c '^ *[0-9]  ' "$work/r4.txt")" = 3 ] || fail "text output: $(cat "$work/r4.txt")"

# Errors
[ "$(status "$agent" recommend --db "$db" --basket NOSUCH)" = 1 ] || fail "unknown code should exit 1"
grep -q "unknown product code NOSUCH" "$work/err" || fail "unknown code message: $(cat "$work/err")"
[ "$(status "$agent" recommend --db "$db" --basket 71053 --shopper 99999999)" = 1 ] || fail "unknown shopper should exit 1"
[ "$(status "$agent" recommend --db "$db" --basket 71053 -k 0)" = 2 ] || fail "-k 0 should exit 2"
[ "$(status "$agent" recommend --db "$db")" = 2 ] || fail "missing --basket should exit 2"
[ "$(status "$agent" recommend --db "$db" --basket 71053 --at yesterday)" = 2 ] || fail "bad --at should exit 2"
printf '[model]\nbuckets = 4000\n' > "$work/bad.ini"
[ "$(status "$agent" train --db "$db" --config "$work/bad.ini")" = 2 ] || fail "bad [model] config should exit 2"
grep -q "line 2: invalid value for buckets" "$work/err" || fail "config error message: $(cat "$work/err")"
# A [model] section shapes a fresh model: a smaller table gives a smaller personalised head.
printf '[model]\nbuckets = 1024\ndim = 8\nhidden = 16\nseed = 5\n' > "$work/small.ini"
"$agent" train --db "$db" --config "$work/small.ini" --from-scratch --steps 20 2>/dev/null
"$agent" personalize --db "$db" --config "$work/small.ini" --model local 2>"$work/p2.log"
grep -q "v3" "$work/p2.log" && grep -q "(2128 bytes)" "$work/p2.log" || fail "personalize with config: $(cat "$work/p2.log")"
for c in train personalize recommend; do
  "$agent" help $c | grep -q '^EXIT STATUS' || fail "$c --help lacks EXIT STATUS"
done
echo "recommend cli: ok"
