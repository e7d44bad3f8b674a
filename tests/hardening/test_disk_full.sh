#!/usr/bin/env bash
# Disk full on the aggregator: its SQLite database lives on a 4 MiB tmpfs (mounted here; the test
# fails if it cannot mount, it never skips). One update is accepted; then the file system is filled
# to the last block and uploads must be refused with 5.03 (reason "storage") while the server keeps
# answering; space returns and the same uploads go through; the round closes with a model
# byte-identical to a reference aggregator on a normal disk; PRAGMA integrity_check is ok, and a
# kill -9 + restart on the once-full disk restores everything acknowledged.
# Usage: test_disk_full.sh AGGREGATOR NET_PEER SOURCE_DIR PORT   (PORT, PORT+1)
set -euo pipefail
agg=$1 peer=$2 src=$3 port=$4
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$here/lib.sh"
ref_srv= mnt=
cleanup() {
  for p in $srv $ref_srv; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$mnt" ] && umount "$mnt" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
mkdir disk
mount -t tmpfs -o size=4m tmpfs disk || fail "cannot mount a tmpfs (this test needs root)"
mnt=$work/disk
"$src/scripts/make-dev-keys.sh" keys --count 3 >/dev/null
rport=$((port + 1))
write_agg_ini ref.ini "$work/ref.db" $rport
AGG_LOG=ref.log start_agg ref.ini $rport
ref_srv=$srv
write_agg_ini agg.ini "$work/disk/agg.db" $port
start_agg agg.ini $port
"$peer" get $port v1/round $(psk store-001) --out round.cbor >/dev/null
"$peer" get $port v1/model $(psk store-001) --out model.cbor >/dev/null
post() { "$peer" post $1 v1/update $(psk store-00$2) --in u$2.cbor 2>&1 || true; }
for s in 1 2 3; do
  "$peer" mkupdate round.cbor model.cbor --store store-00$s --seed $s --dtype f32 --out u$s.cbor >/dev/null
  post $rport $s | grep -q "code=204" || fail "reference upload $s"
done
post $port 1 | grep -q "code=204" || fail "first upload on the tmpfs"

dd if=/dev/zero of=disk/filler bs=4k >/dev/null 2>&1 || true # until ENOSPC
echo "disk: $(df -k disk | awk 'NR==2{print $4}') kB free"
refused=0
for s in 2 3; do
  out=$(post $port $s)
  echo "$out" | grep -q "code=503" || fail "store-00$s on a full disk: expected 503: $out"
  echo "$out" | grep -q "reason=storage" || fail "store-00$s: expected reason storage: $out"
  echo "$out" | grep -q "^code=503 .* max_age=5 " || fail "store-00$s: no Max-Age 5 on the 5.03: $out"
  echo "$out" | grep -q "error_body .* max_age=5 " || fail "store-00$s: no max_age_s 5 in the body: $out"
  refused=$((refused + 1))
done
echo "full disk: $refused uploads refused with 5.03 storage"
kill -0 $srv || fail "aggregator died on a full disk"
st=$(status $port)
[ "$(echo "$st" | field participants)" = 1 ] || fail "participants on a full disk: $st"
# Regression: health used to say "ok" while every upload was refused for lack of space.
echo "$st" | grep -q "health=degraded: disk full" || fail "status on a full disk is not degraded: $st"
echo "status on a full disk: $st"

rm -f disk/filler
for s in 2 3; do
  out=$(post $port $s)
  echo "$out" | grep -q "code=204" || fail "store-00$s after space returned: $out"
done
echo "space returned: uploads accepted"
st=$(status $port)
echo "$st" | grep -q "health=ok" || fail "status after space returned: $st"
echo "status after space returned: $st"
"$peer" get $port v1/model $(psk store-001) --out m.cbor >/dev/null
"$peer" get $rport v1/model $(psk store-001) --out ref.cbor >/dev/null
cmp -s model.cbor m.cbor && fail "the round did not close"
cmp -s m.cbor ref.cbor || fail "model differs from the reference on a normal disk"
echo "model identical to the reference ($(sha256sum <m.cbor | cut -c1-16))"
kill -9 $srv; wait $srv 2>/dev/null || true; srv=
if command -v sqlite3 >/dev/null; then
  ic=$(sqlite3 disk/agg.db "PRAGMA integrity_check;")
  [ "$ic" = ok ] || fail "integrity_check: $ic"
  echo "integrity_check: $ic"
fi
start_agg agg.ini $port
"$peer" get $port v1/model $(psk store-001) --out m2.cbor >/dev/null
cmp -s m.cbor m2.cbor || fail "model after kill -9 and restart differs"
st=$(status $port)
echo "$st" | grep -q "round=2 " || fail "after restart: $st"
echo "after kill -9 + restart: $st"
stop_agg
echo PASS
