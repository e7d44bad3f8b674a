#!/usr/bin/env bash
# The wire: tshark captures the loopback traffic of a whole round (three stores upload int8, float16
# and float32 updates, the round closes, an agent downloads the new model), and pcap_check.py proves,
# parsing the raw capture itself, that every datagram to and from the aggregator port is made of
# whole DTLS records (types 20-23, DTLS 1.2) with application data only in encrypted epochs, and that
# no 16-byte window of any update or model body appears anywhere in the capture. tshark's own
# dissector must agree (no non-DTLS datagram, no CoAP visible).
# Positive control, so that the search cannot pass vacuously: the same search over a capture of a
# plaintext (--insecure-dev) server must find the model and update bytes.
# If tshark cannot capture, the test fails (it never skips).
# Usage: test_wire.sh AGGREGATOR AGENT NET_PEER SOURCE_DIR PORT
set -euo pipefail
agg=$1 agent=$2 peer=$3 src=$4 port=$5
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
cap=
. "$here/lib.sh"
cleanup() {
  [ -n "$cap" ] && kill -9 "$cap" 2>/dev/null || true
  [ -n "$srv" ] && kill -9 "$srv" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
command -v tshark >/dev/null || fail "tshark is not installed (Debian package tshark)"
"$src/scripts/make-dev-keys.sh" keys --count 3 >/dev/null

capture() { # PORT FILE: starts tshark on lo for udp port PORT; returns once it is capturing
  tshark -i lo -f "udp port $1" -F pcap -w "$2" -q >"$2.log" 2>&1 &
  cap=$!
  for _ in $(seq 200); do
    grep -q "Capturing on" "$2.log" 2>/dev/null && return 0
    kill -0 "$cap" 2>/dev/null || fail "tshark cannot capture on lo: $(cat "$2.log")"
    sleep 0.05
  done
  fail "tshark did not start capturing: $(cat "$2.log")"
}
end_capture() {
  sleep 0.5 # let the last datagrams reach the capture
  kill -INT "$cap"
  wait "$cap" || true
  cap=
}

write_agg_ini agg.ini "$work/agg.db" "$port"
capture "$port" dtls.pcap
start_agg agg.ini "$port"
"$peer" get "$port" v1/round $(psk store-001) --out round.cbor >/dev/null || fail "GET round"
"$peer" get "$port" v1/model $(psk store-001) --out model0.cbor >/dev/null || fail "GET model"
i=0
for dt in i8 f16 f32; do
  i=$((i + 1))
  id=store-00$i
  "$peer" mkupdate round.cbor model0.cbor --store $id --seed $i --dtype $dt --out u$i.cbor >/dev/null
  out=$("$peer" post "$port" v1/update $(psk $id) --in u$i.cbor) || fail "upload $id: $out"
  echo "$out" | grep -q "code=204" || fail "upload $id: $out"
done
st=$(status "$port")
[ "$(echo "$st" | field round)" = 2 ] || fail "the round did not close: $st"
# A real agent fetches the new model.
cat >agent.ini <<INI
[agent]
store_id = store-002
db = $work/store-002.db
[aggregator]
address = 127.0.0.1:$port
[dtls]
psk_key = $work/keys/stores/store-002.psk
INI
out=$("$agent" sync --config agent.ini --json 2>agent.log) || fail "agent sync: $out"
echo "$out" | grep -q '"model_changed":1' || fail "agent did not fetch the new model: $out"
"$peer" get "$port" v1/model $(psk store-003) --out model1.cbor >/dev/null || fail "GET new model"
cmp -s model0.cbor model1.cbor && fail "the model did not change"
end_capture
stop_agg

echo "DTLS capture:"
python3 "$here/pcap_check.py" dtls.pcap "$port" dtls model0.cbor model1.cbor u1.cbor u2.cbor u3.cbor ||
  fail "the DTLS capture holds non-DTLS datagrams or plaintext"
# tshark's dissectors, told that the port is DTLS, must see nothing else (and no CoAP in clear).
nondtls=$(tshark -r dtls.pcap -d "udp.port==$port,dtls" -Y "udp.port==$port && !dtls" 2>/dev/null | wc -l)
coap=$(tshark -r dtls.pcap -d "udp.port==$port,dtls" -Y "coap" 2>/dev/null | wc -l)
total=$(tshark -r dtls.pcap -Y "udp.port==$port" 2>/dev/null | wc -l)
vers=$(tshark -r dtls.pcap -d "udp.port==$port,dtls" -Y "dtls.handshake.type==2" -T fields \
  -e dtls.handshake.version 2>/dev/null | sort -u | tr '\n' ' ')
echo "tshark: datagrams=$total non_dtls=$nondtls coap=$coap server_hello_versions=$vers"
[ "$total" -gt 0 ] && [ "$nondtls" = 0 ] && [ "$coap" = 0 ] || fail "tshark sees non-DTLS traffic"
[ "$vers" = "0xfefd " ] || fail "negotiated version is not DTLS 1.2: $vers"

# Positive control: a plaintext server on the next port; the same search must find the bodies.
pport=$((port + 1))
write_agg_ini plain.ini "$work/plain.db" "$pport"
capture "$pport" plain.pcap
"$agg" serve --config plain.ini --insecure-dev >>plain.log 2>&1 &
srv=$!
ok=
for _ in $(seq 100); do
  if "$peer" get "$pport" v1/model --insecure --out plainmodel.cbor >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.1
done
[ -n "$ok" ] || fail "plaintext server did not answer"
cmp -s plainmodel.cbor model0.cbor || fail "plaintext server's initial model differs"
"$peer" post "$pport" v1/update --insecure --in u1.cbor >/dev/null 2>&1 || true # 4.01, after block 1
end_capture
stop_agg
echo "plaintext control capture:"
python3 "$here/pcap_check.py" plain.pcap "$pport" plain model0.cbor u1.cbor ||
  fail "positive control: the plaintext search did not find the bodies"
# ... and the record check must reject plaintext CoAP.
if python3 "$here/pcap_check.py" plain.pcap "$pport" dtls model0.cbor >/dev/null; then
  fail "positive control: the DTLS record check accepted a plaintext capture"
fi
echo PASS
