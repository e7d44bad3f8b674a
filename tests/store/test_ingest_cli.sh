#!/usr/bin/env bash
# storefl-agent ingest end to end on real data: kill -9 during an ingest leaves the database
# consistent (nothing of the file visible) and re-ingestable; --on-error stop/skip; re-import.
# Usage: test_ingest_cli.sh STOREFL_AGENT   (env STOREFL_DATA_DIR)
set -euo pipefail
A=$1
DATA=${STOREFL_DATA_DIR:-../shared/data}/online-retail/online_retail.csv.gz
W=$(mktemp -d /tmp/storefl-ingest-test.XXXXXX)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
q() { sqlite3 "$1" "$2"; }

# A slice of the real export: header + 20,000 lines.
gzip -dc "$DATA" | head -n 20001 > "$W/slice.csv" || true
[ "$(wc -l < "$W/slice.csv")" -eq 20001 ] || fail "could not slice $DATA"

# Reference: a clean ingest.
"$A" ingest --db "$W/ref.db" "$W/slice.csv" 2> "$W/ref.err" || fail "reference ingest: $(cat "$W/ref.err")"
grep -q "^ingest: .*20000 rows read" "$W/ref.err" || fail "no summary line: $(cat "$W/ref.err")"
REF=$(q "$W/ref.db" "SELECT count(*) FROM events")
[ "$REF" -gt 19000 ] || fail "reference has only $REF events"
REFSUM=$(q "$W/ref.db" "SELECT sum(quantity), count(DISTINCT product_id), count(DISTINCT shopper_id) FROM events")

# 1. Kill -9 while the ingest is blocked in the middle of the file: feed half the file through a
#    FIFO, wait until batches have been committed to staging, kill, then look at the database.
mkfifo "$W/pipe"
"$A" ingest --db "$W/k.db" --batch 500 "$W/pipe" 2> "$W/k.err" &
PID=$!
exec 3> "$W/pipe"
head -n 10001 "$W/slice.csv" >&3
staged=0
for _ in $(seq 1 600); do
  staged=$(q "$W/k.db" "SELECT count(*) FROM ingest_staging" 2>/dev/null || echo 0)
  [ "$staged" -ge 9000 ] && break
  sleep 0.05
done
[ "$staged" -ge 9000 ] || fail "ingest did not stage rows (staged=$staged): $(cat "$W/k.err")"
# A second ingest into the same store is refused while the first one runs.
if "$A" ingest --db "$W/k.db" "$W/slice.csv" 2> "$W/k3.err"; then fail "concurrent ingest accepted"; fi
grep -q "another ingest into .* is running" "$W/k3.err" || fail "concurrent ingest message: $(cat "$W/k3.err")"
kill -9 "$PID"
wait "$PID" 2>/dev/null && fail "killed ingest exited 0"
exec 3>&-
[ "$(q "$W/k.db" "PRAGMA integrity_check")" = ok ] || fail "integrity check after kill"
[ "$(q "$W/k.db" "SELECT count(*) FROM events")" -eq 0 ] || fail "events visible after kill"
[ "$(q "$W/k.db" "SELECT count(*) FROM products")" -eq 0 ] || fail "products visible after kill"
[ "$(q "$W/k.db" "SELECT count(*) FROM ingest_runs WHERE state = 'running'")" -eq 1 ] || fail "run state"
# Re-ingest: the interrupted run is discarded and the file imported exactly once.
"$A" ingest --db "$W/k.db" "$W/slice.csv" 2> "$W/k2.err" || fail "re-ingest: $(cat "$W/k2.err")"
grep -q "discarded 1 interrupted" "$W/k2.err" || fail "recovery not reported: $(cat "$W/k2.err")"
[ "$(q "$W/k.db" "SELECT count(*) FROM events")" -eq "$REF" ] || fail "re-ingest count"
[ "$(q "$W/k.db" "SELECT sum(quantity), count(DISTINCT product_id), count(DISTINCT shopper_id) FROM events")" = "$REFSUM" ] ||
  fail "re-ingest content differs"
[ "$(q "$W/k.db" "SELECT count(*) FROM ingest_staging")" -eq 0 ] || fail "staging left"
[ "$(q "$W/k.db" "SELECT group_concat(state) FROM (SELECT state FROM ingest_runs ORDER BY id)")" = "aborted,complete" ] ||
  fail "run states"

# 2. Kills at arbitrary moments (reading, staging, merging): all or nothing, never corrupt.
for delay in 0.05 0.3 0.6 0.9; do
  rm -f "$W/r.db" "$W/r.db-wal" "$W/r.db-shm"
  "$A" ingest --db "$W/r.db" --batch 1000 "$W/slice.csv" 2> /dev/null &
  PID=$!
  sleep "$delay"
  kill -9 "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  [ -f "$W/r.db" ] || continue
  [ "$(q "$W/r.db" "PRAGMA integrity_check")" = ok ] || fail "integrity after kill at $delay s"
  # Killed before the schema migration committed: the file exists with no schema at all (the
  # migration is one transaction), never a partial one. Nothing else is to check then.
  if [ "$(q "$W/r.db" "SELECT count(*) FROM sqlite_master WHERE name = 'events'")" = 0 ]; then
    [ "$(q "$W/r.db" "SELECT count(*) FROM sqlite_master")" = 0 ] || fail "partial schema after kill at $delay s"
    [ "$(q "$W/r.db" "PRAGMA user_version")" = 0 ] || fail "schema version without schema after kill at $delay s"
    "$A" ingest --db "$W/r.db" "$W/slice.csv" 2> /dev/null || fail "ingest into the schema-less file after kill at $delay s"
    [ "$(q "$W/r.db" "SELECT count(*) FROM events")" -eq "$REF" ] || fail "ingest count after kill at $delay s"
    continue
  fi
  n=$(q "$W/r.db" "SELECT count(*) FROM events")
  [ "$n" -eq 0 ] || [ "$n" -eq "$REF" ] || fail "half-written after kill at $delay s: $n events"
  "$A" ingest --db "$W/r.db" "$W/slice.csv" 2> /dev/null || fail "re-ingest after kill at $delay s"
  [ "$(q "$W/r.db" "SELECT count(*) FROM events")" -eq "$REF" ] || fail "re-ingest count after kill at $delay s"
done

# 3. Bad rows: --on-error stop imports nothing and names the line; skip imports the rest.
{ head -n 101 "$W/slice.csv"; echo "999999,22139,BAD ROW,many,2010-12-01 08:26:00,1.0,1.0,UK"; sed -n '102,200p' "$W/slice.csv"; } > "$W/bad.csv"
if "$A" ingest --db "$W/b.db" --on-error stop "$W/bad.csv" 2> "$W/b.err"; then fail "stop mode exited 0"; fi
grep -q "line 102: bad quantity 'many'" "$W/b.err" || fail "stop message: $(cat "$W/b.err")"
[ "$(q "$W/b.db" "SELECT count(*) FROM events")" -eq 0 ] || fail "stop mode wrote events"
"$A" ingest --db "$W/b.db" --on-error skip "$W/bad.csv" 2> "$W/b2.err" || fail "skip mode failed"
grep -q "skipped bad row: line 102" "$W/b2.err" || fail "skip message: $(cat "$W/b2.err")"
grep -q "1 bad" "$W/b2.err" || fail "skip summary: $(cat "$W/b2.err")"
[ "$(q "$W/b.db" "SELECT count(*) FROM events")" -gt 150 ] || fail "skip mode imported too little"

# 4. Usage errors and a custom column mapping.
if "$A" ingest "$W/slice.csv" 2> /dev/null; then fail "missing --db accepted"; fi
set +e; "$A" ingest --db "$W/u.db" --on-error maybe "$W/slice.csv" 2> /dev/null; rc=$?; set -e
[ "$rc" -eq 2 ] || fail "bad --on-error gave $rc"
"$A" ingest --help | grep -q "^EXIT STATUS" || fail "help"
"$A" help ingest | grep -q "^SYNOPSIS" || fail "help ingest"
"$A" ingest --db "$W/ref.db" --integrity-check "$W/slice.csv" 2> /dev/null || fail "--integrity-check on a sound store"
printf '[columns]\nproduct = sku\ntext = title\ntime = ts\nbasket = receipt\nshopper = member\nquantity = qty\nprice = unit\nkind = event\ncategory = dept\n' > "$W/agent.ini"
printf 'event,ts,sku,title,dept,receipt,member,qty,unit\nview,2024-03-01 10:00,A-1,Blue lamp,Lighting,,m1,1,0\nview,2024-03-01 10:01,A-1,Blue lamp,Lighting,,m1,,0\npurchase,2024-03-01 10:05,A-1,Blue lamp,Lighting,r1,m1,1,9.5\n' > "$W/pos.csv"
# A view needs no basket or price; an empty quantity is a bad row; codes like A-1 need --any-code.
"$A" ingest --db "$W/p.db" --config "$W/agent.ini" --any-code "$W/pos.csv" 2> "$W/p.err" || fail "custom mapping: $(cat "$W/p.err")"
[ "$(q "$W/p.db" "SELECT count(*) || ',' || min(category) FROM events JOIN products p ON p.id = product_id")" = "2,Lighting" ] ||
  fail "custom mapping content: $(q "$W/p.db" "SELECT * FROM events")"
echo "ok"
