#!/usr/bin/env bash
# Start-up checks of storefl-aggregator serve: each bad state is refused (exit status 1, no listener)
# with a message that says what is wrong, and a good database starts and keeps its data:
#   a database page overwritten with garbage (integrity check), a database from a newer aggregator
#   (PRAGMA user_version above ours), a PSK keys file readable by others (mode 0644), a private key
#   file that does not exist.
# Usage: test_startup.sh AGGREGATOR NET_PEER SOURCE_DIR PORT
set -euo pipefail
agg=$1 peer=$2 src=$3 port=$4
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
"$src/scripts/make-dev-keys.sh" keys --count 2 >/dev/null
write_agg_ini agg.ini "$work/agg.db" $port
start_agg agg.ini $port
"$peer" get $port v1/round $(psk store-001) --out round.cbor >/dev/null
"$peer" get $port v1/model $(psk store-001) --out model.cbor >/dev/null
"$peer" mkupdate round.cbor model.cbor --store store-001 --seed 1 --out u1.cbor >/dev/null
"$peer" post $port v1/update $(psk store-001) --in u1.cbor | grep -q "code=204" || fail "upload"
stop_agg # SIGTERM: a clean close checkpoints the WAL into agg.db
[ "$(sqlite3 agg.db 'PRAGMA user_version')" = 1 ] || fail "schema version not stamped"
cp agg.db good.db

refuse() { # WHAT PATTERN: serve must exit 1 quickly with PATTERN in its output
  local rc=0
  timeout 20 "$agg" serve --config agg.ini >refuse.log 2>&1 || rc=$?
  [ $rc -eq 1 ] || fail "$1: exit status $rc, expected 1: $(tail -3 refuse.log)"
  grep -qiE "$2" refuse.log || fail "$1: no clear message: $(tail -3 refuse.log)"
  echo "$1: refused: $(grep -iE "$2" refuse.log | head -1 | sed 's/^.*\(ERROR\|serve:\)//')"
}

# Garbage over the middle of the file (pages of the models table).
size=$(stat -c %s agg.db)
dd if=/dev/urandom of=agg.db bs=1 seek=$((size / 2)) count=4096 conv=notrunc 2>/dev/null
refuse "corrupted database" "integrity check|malformed|not a database"
cp good.db agg.db
sqlite3 agg.db "PRAGMA user_version=7"
refuse "database from a newer aggregator" "schema version 7"
cp good.db agg.db
chmod 644 keys/psk.keys
refuse "keys file readable by others" "chmod 600|mode"
chmod 600 keys/psk.keys
sed -i "s|^key = .*|key = $work/keys/missing.key|" agg.ini
refuse "missing private key" "missing.key|key"
sed -i "s|^key = .*|key = $work/keys/server.key|" agg.ini

start_agg agg.ini $port
st=$(status $port)
[ "$(echo "$st" | field participants)" = 1 ] || fail "good database after the refusals: $st"
echo "good database: starts, $st"
stop_agg
echo PASS
