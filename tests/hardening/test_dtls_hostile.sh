#!/usr/bin/env bash
# Hostile peers at the DTLS layer, against storefl-aggregator serve (PSK + certificates):
#   wrong PSK for a real store id, unknown PSK identity, a certificate from another CA (untrusted),
#   an expired certificate from the right CA (made with `openssl ca` and dates in the past), a
#   certificate whose CN is not a valid store id, and a handshake flood from one address (hundreds
#   of sockets completing the cookie exchange and abandoning the handshake, with the server bounded
#   at [server] max_handshakes).
# Each is refused (no session, no update), and after each an honest store still uploads and reads
# its receipt; the server is alive, counts only the honest updates and its memory stays bounded.
# Usage: test_dtls_hostile.sh AGGREGATOR NET_PEER SOURCE_DIR PORT
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
"$src/scripts/make-dev-keys.sh" keys --count 6 >/dev/null
"$src/scripts/make-dev-keys.sh" otherca store-003 >/dev/null # same CN, another CA
TARGET=9 SERVER_EXTRA="max_handshakes = 32" write_agg_ini agg.ini "$work/agg.db" "$port"
start_agg agg.ini "$port"
"$peer" get "$port" v1/round $(psk store-001) --out round.cbor >/dev/null
"$peer" get "$port" v1/model $(psk store-001) --out model.cbor >/dev/null

# An expired certificate for store-004 from the real CA.
mkdir -p ca/new && : >ca/index.txt && echo 1000 >ca/serial
cat >ca/ca.cnf <<CNF
[ca]
default_ca = dev
[dev]
dir = $work/ca
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir/new
certificate = $work/keys/ca.crt
private_key = $work/keys/ca.key
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
organizationName = optional
CNF
openssl ecparam -name prime256v1 -genkey -noout -out expired.key 2>/dev/null
openssl req -new -key expired.key -subj "/O=storefl-dev/CN=store-004" -out expired.csr 2>/dev/null
openssl ca -batch -config ca/ca.cnf -startdate 20200101000000Z -enddate 20200201000000Z -in expired.csr \
  -out expired.crt >ca.log 2>&1 || fail "openssl ca: $(cat ca.log)"
openssl x509 -in expired.crt -noout -checkend 0 >/dev/null && fail "the certificate is not expired"
openssl verify -CAfile keys/ca.crt -no_check_time expired.crt >/dev/null || fail "expired.crt not from the CA"
# A certificate from the right CA whose CN is not a valid store id.
openssl ecparam -name prime256v1 -genkey -noout -out badcn.key 2>/dev/null
openssl req -new -key badcn.key -subj "/O=storefl-dev/CN=store 004; DROP" -out badcn.csr 2>/dev/null
openssl ca -batch -config ca/ca.cnf -days 30 -in badcn.csr -out badcn.crt >>ca.log 2>&1 || fail "openssl ca"

n=0
honest() { # an honest store uploads (fresh update each time) and gets its receipt
  n=$((n + 1))
  "$peer" mkupdate round.cbor model.cbor --store store-00$n --seed $n --out h$n.cbor >/dev/null
  local out
  out=$("$peer" post "$port" v1/update $(psk store-00$n) --in h$n.cbor 2>&1) || fail "honest store-00$n: $out"
  echo "$out" | grep -q "code=204" || fail "honest store-00$n after $1: $out"
  kill -0 "$srv" || fail "aggregator died after $1"
  echo "  store-00$n still uploads after $1"
}
refused() { # WHAT ARGS...: the handshake must be refused
  local what=$1 out rc=0
  shift
  "$peer" mkupdate round.cbor model.cbor --store store-004 --seed 99 --out evil.cbor >/dev/null
  out=$("$peer" post "$port" v1/update "$@" --in evil.cbor 2>&1) || rc=$?
  [ $rc -eq 3 ] || fail "$what: not refused at the handshake (rc=$rc): $out"
  # A refusal is reported as such (only a timeout may say "unavailable": test_handshake_loss.sh).
  echo "$out" | grep -q "error=unauthorized" || fail "$what: refusal not reported as unauthorized: $out"
  echo "$what: refused ($(echo "$out" | grep -o 'error=[a-z_]*' | head -1))"
  honest "$what"
}

printf '%s\n' 0123456789abcdef0123456789abcdef >wrong.psk && chmod 600 wrong.psk
refused "wrong PSK for store-002" --psk-id store-002 --psk-key wrong.psk
refused "unknown PSK identity" --psk-id store-999 --psk-key wrong.psk
refused "certificate from another CA" --pki keys/ca.crt otherca/stores/store-003.crt otherca/stores/store-003.key
refused "expired certificate" --pki keys/ca.crt expired.crt expired.key
# A CA-signed certificate whose CN is not a store id completes the handshake but has no identity:
# every request is 4.01 and nothing is counted.
"$peer" mkupdate round.cbor model.cbor --store store-004 --seed 99 --out evil.cbor >/dev/null
out=$("$peer" post "$port" v1/update --pki keys/ca.crt badcn.crt badcn.key --in evil.cbor 2>&1) || true
echo "$out" | grep -q "code=401" || fail "certificate with an invalid CN: expected 4.01: $out"
echo "certificate CN not a store id: 4.01"
honest "a certificate with an invalid CN"
# Control: the same client path with a valid certificate works (the refusals are not a broken setup).
out=$("$peer" get "$port" v1/status --pki keys/ca.crt keys/stores/store-004.crt keys/stores/store-004.key) ||
  fail "valid certificate refused: $out"
echo "valid certificate: accepted"

# Handshake flood from 127.0.0.1: 3 x 300 sockets, each completing the cookie exchange and abandoning
# the handshake. [server] max_handshakes bounds the half-open state. Measured: whether an honest
# handshake started during the flood succeeds, and how long after the flood honest stores are back.
rss0=$(awk '/VmRSS/{print $2}' /proc/$srv/status)
python3 "$here/dtls_flood.py" "$port" 300 3 >flood.out &
fl=$!
sleep 0.5
"$peer" mkupdate round.cbor model.cbor --store store-006 --seed 6 --out h6.cbor >/dev/null
during=$("$peer" post "$port" v1/update $(psk store-006) --in h6.cbor 2>&1 | head -1) || true
wait $fl
t0=$(date +%s.%N)
echo "flood: $(cat flood.out); honest upload started during the flood: $during"
grep -q "hello_verify_requests=[1-9]" flood.out || fail "the flood did not reach the server: $(cat flood.out)"
rss1=$(awk '/VmRSS/{print $2}' /proc/$srv/status)
echo "aggregator RSS before/after the flood: ${rss0} kB / ${rss1} kB"
[ "$rss1" -lt $((rss0 + 65536)) ] || fail "RSS grew by more than 64 MiB during the flood"
kill -0 "$srv" || fail "aggregator died in the flood"
ok=
for _ in $(seq 60); do
  out=$("$peer" post "$port" v1/update $(psk store-006) --in h6.cbor 2>&1) || true
  if echo "$out" | grep -q "code=204"; then ok=1; break; fi
  sleep 1
done
[ -n "$ok" ] || fail "honest stores not back within 60 s after the flood"
echo "honest store back $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s after the flood"
n=6
st=$(status "$port")
echo "status: $st"
# Only the honest uploads were accepted.
grep -c "update accepted" agg.log | grep -qx "$n" || fail "accepted updates != honest uploads ($n): $(grep -c 'update accepted' agg.log)"
stop_agg
echo PASS
