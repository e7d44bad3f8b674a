#!/usr/bin/env bash
# storefl-agent partition on a slice of the real export, checked against an independent count
# (Python's csv module with the data README's cleaning rules).
# Usage: test_partition_cli.sh STOREFL_AGENT   (env STOREFL_DATA_DIR)
set -euo pipefail
A=$1
DATA=${STOREFL_DATA_DIR:-../shared/data}/online-retail/online_retail.csv.gz
W=$(mktemp -d /tmp/storefl-partition-test.XXXXXX)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
q() { sqlite3 "$1" "$2"; }

gzip -dc "$DATA" | head -n 30001 | gzip -1 > "$W/slice.csv.gz" || true

# Expected figures, computed without storefl. Clients with >= 5 clean lines before 2010-12-05.
python3 - "$W/slice.csv.gz" > "$W/expect.txt" <<'PY'
import csv, gzip, re, sys, collections
pat = re.compile(r'^[0-9]{5}[A-Za-z]*$')
country = collections.Counter(); cust = collections.Counter(); codes = set()
for r in csv.DictReader(gzip.open(sys.argv[1], 'rt', encoding='utf-8', newline='')):
    if r['InvoiceNo'].startswith('C') or float(r['Quantity']) <= 0 or float(r['UnitPrice']) <= 0 \
       or not pat.match(r['StockCode']) or r['Description'] == '':
        continue
    codes.add(r['StockCode'].upper())
    country[r['Country']] += 1
    if r['CustomerID'] and r['InvoiceDate'] < '2010-12-05':
        cust[r['CustomerID'][:-2] if r['CustomerID'].endswith('.0') else r['CustomerID']] += 1
eligible = {c: n for c, n in cust.items() if n >= 5}
print(len(country), sum(country.values()), len(codes), len(eligible), sum(eligible.values()),
      country['France'], eligible.get('17850', 0))
PY
read -r NCOUNTRY NCLEAN NCODES NCUST NCUSTEV NFRANCE N17850 < "$W/expect.txt"

"$A" partition --data "$W/slice.csv.gz" --by country --out "$W/countries" 2> "$W/c.err" || fail "$(cat "$W/c.err")"
grep -q "$NCOUNTRY stores (by country" "$W/c.err" || fail "summary: $(cat "$W/c.err") expected $NCOUNTRY stores"
[ "$(ls "$W/countries"/*.db | wc -l)" -eq "$NCOUNTRY" ] || fail "store files"
[ "$(ls -A "$W/countries" | grep -vc '\.db$')" -eq 1 ] || fail "leftover files: $(ls -A "$W/countries")"
total=0
for f in "$W/countries"/*.db; do
  [ "$(q "$f" "PRAGMA integrity_check")" = ok ] || fail "integrity $f"
  [ "$(q "$f" "SELECT count(*) FROM products")" -eq "$NCODES" ] || fail "catalogue of $f"
  total=$((total + $(q "$f" "SELECT count(*) FROM events WHERE kind = 2")))
done
[ "$total" -eq "$NCLEAN" ] || fail "events $total != clean lines $NCLEAN"
[ "$(q "$W/countries/France.db" "SELECT count(*) FROM events")" -eq "$NFRANCE" ] || fail "France"
[ "$(q "$W/countries/United_Kingdom.db" "SELECT value FROM meta WHERE key = 'client'")" = "United Kingdom" ] ||
  fail "client name in meta"
grep -q "^France	France.db	$NFRANCE\$" "$W/countries/clients.tsv" || fail "clients.tsv"

"$A" partition --data "$W/slice.csv.gz" --by customer --min-lines 5 --before 2010-12-05 --out "$W/cust" 2> "$W/u.err" ||
  fail "$(cat "$W/u.err")"
grep -q "$NCUST stores (by customer, >= 5 lines) with $NCUSTEV events" "$W/u.err" ||
  fail "summary: $(cat "$W/u.err"), expected $NCUST stores / $NCUSTEV events"
[ "$(q "$W/cust/17850.db" "SELECT count(*) FROM events")" -eq "$N17850" ] || fail "customer 17850"
[ "$(q "$W/cust/17850.db" "SELECT count(DISTINCT shopper_id) FROM events")" -eq 1 ] || fail "one shopper"
[ "$(q "$W/cust/17850.db" "SELECT max(time) < strftime('%s', '2010-12-05') FROM events")" -eq 1 ] || fail "--before"

# Usage errors.
set +e
"$A" partition --data "$W/slice.csv.gz" --out "$W/x" 2> /dev/null; rc1=$?
"$A" partition --data "$W/slice.csv.gz" --by region --out "$W/x" 2> /dev/null; rc2=$?
"$A" partition --data "$W/nope.csv" --by country --out "$W/x" 2> "$W/n.err"; rc3=$?
set -e
[ "$rc1" -eq 2 ] && [ "$rc2" -eq 2 ] && [ "$rc3" -eq 1 ] || fail "exit codes $rc1 $rc2 $rc3"
grep -q "nope.csv" "$W/n.err" || fail "missing file message"
# --by country on an export without a country column names the column.
{ gzip -dc "$W/slice.csv.gz" || true; } | head -n 50 | cut -d, -f1-7 > "$W/nocountry.csv"
if "$A" partition --data "$W/nocountry.csv" --by country --out "$W/y" 2> "$W/y.err"; then fail "no country column accepted"; fi
grep -q "no column 'Country'" "$W/y.err" || fail "no-country message: $(cat "$W/y.err")"
"$A" partition --data "$W/nocountry.csv" --by customer --out "$W/z" 2> "$W/z.err" || fail "by customer without country: $(cat "$W/z.err")"
"$A" partition --help | grep -q "^SYNOPSIS" || fail "help"
echo ok
