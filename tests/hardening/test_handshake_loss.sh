#!/usr/bin/env bash
# A DTLS handshake that fails because its datagrams are lost must be reported by the agent as a
# timeout ("unavailable", retry later), not as "unauthorized" (which an operator reads as a wrong
# key). Regression test: libcoap reports a handshake that ran out of retransmissions with the same
# NACK as a refused one, and the client used to call both "refused (wrong key ...)".
# Three syncs of a real agent against a real aggregator through udp_relay:
#   1. loss 100%: the handshake gets no answer; libcoap gives up after its retransmissions (~31 s,
#      inside the agent's 60 s timeout, so it is libcoap's failure that is reported): "unavailable";
#   2. the same agent with a wrong key, no loss: a real alert, "unauthorized";
#   3. the right key, no loss: the sync succeeds (the relay path and the agent are fine).
# Usage: test_handshake_loss.sh AGGREGATOR AGENT NET_PEER UDP_RELAY SOURCE_DIR PORT   (PORT..PORT+2)
set -euo pipefail
agg=$1 agent=$2 peer=$3 relay=$4 src=$5 port=$6
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$here/lib.sh"
rl=
cleanup() {
  for p in $srv $rl; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
"$src/scripts/make-dev-keys.sh" keys --count 2 >/dev/null
write_agg_ini agg.ini "$work/agg.db" $port
start_agg agg.ini $port
agent_ini() { # RELAY_PORT KEY FILE
  cat >"$3" <<INI
[agent]
store_id = store-001
db = $work/store-001.db
[aggregator]
address = 127.0.0.1:$1
[dtls]
psk_key = $2
[upload]
timeout_s = 60
INI
}
relay_up() { # PORT LOSS
  "$relay" $1 $port --loss $2 --seed 1 >/dev/null 2>>relay.log &
  rl=$!
  sleep 0.2
}
relay_down() { kill -INT $rl 2>/dev/null || true; wait $rl 2>/dev/null || true; rl=; }

# 1. Every datagram lost.
relay_up $((port + 1)) 1.0
agent_ini $((port + 1)) "$work/keys/stores/store-001.psk" lost.ini
t0=$(date +%s)
rc=0
"$agent" sync --config lost.ini --json >lost.out 2>lost.err || rc=$?
t1=$(date +%s)
relay_down
echo "all datagrams lost: exit $rc after $((t1 - t0)) s: $(cat lost.out) $(cat lost.err)"
[ $rc -ne 0 ] || fail "sync succeeded with 100% loss"
grep -q '"error":"unavailable"' lost.out || fail "a handshake lost in the network is not reported as unavailable"
grep -q "unauthorized\|refused" lost.out lost.err && fail "a lost handshake is reported as a refusal"
[ $((t1 - t0)) -lt 58 ] || fail "the agent's own timeout ended the handshake, not libcoap's (the case is not exercised)"

# 2. A wrong key, nothing lost: a refusal.
relay_up $((port + 2)) 0
printf '%s\n' 0123456789abcdef0123456789abcdef >wrong.psk && chmod 600 wrong.psk
agent_ini $((port + 2)) "$work/wrong.psk" wrong.ini
rc=0
"$agent" sync --config wrong.ini --json >wrong.out 2>wrong.err || rc=$?
echo "wrong key: exit $rc: $(cat wrong.out)"
[ $rc -ne 0 ] || fail "sync with a wrong key succeeded"
grep -q '"error":"unauthorized"' wrong.out || fail "a refused handshake is not reported as unauthorized"

# 3. The right key through the same relay.
agent_ini $((port + 2)) "$work/keys/stores/store-001.psk" good.ini
"$agent" sync --config good.ini --json >good.out 2>good.err || fail "honest sync through the relay: $(cat good.out good.err)"
grep -q '"ok":true' good.out || fail "honest sync: $(cat good.out)"
echo "right key through the relay: $(cat good.out)"
relay_down
stop_agg
echo PASS
