#!/usr/bin/env bash
# One ledger configuration, at `storefl-aggregator serve` start-up (real process, 127.0.0.1):
#   - the old spelling [privacy] signing_key is refused with a message naming [ledger] key;
#   - certificate-only DTLS (no PSK keys file, hence no enrolment list) with a ledger and sampled
#     rounds (q < 1) is refused with a message asking for [ledger] enrolment;
#   - an enrolment file with group/other access is refused (mode 0600 like the keys file);
#   - with a 0600 enrolment file serve starts and reports the enrolled stores; a closed sampled
#     round then charges every enrolled store in the signed ledger (audit export), selected or not.
# Usage: test_ledger_config.sh AGGREGATOR NET_PEER SOURCE_DIR PORT
set -euo pipefail
agg=$1 peer=$2 src=$3 port=$4
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do echo "== $f" >&2; tail -5 "$f" >&2; done; exit 1; }
cd "$work"
"$src/scripts/make-dev-keys.sh" keys store-a store-b >/dev/null

base() { # $1 = extra [ledger] lines
  cat <<INI
[storage]
db = $work/agg.db
[model]
tensor = w:4x4
[round]
min_participants = 1
target_participants = 2
participation_q = 0.5
duration_s = 2
total_rounds = 1
[privacy]
mode = central
noise_multiplier = 1.0
[server]
listen = 127.0.0.1:$port
[dtls]
ca = $work/keys/ca.crt
cert = $work/keys/server.crt
key = $work/keys/server.key
$1
INI
}

# 1. the old spelling
base $'[ledger]\nepsilon_cap = 0' | sed "s|^noise_multiplier = 1.0$|noise_multiplier = 1.0\\nsigning_key = $work/agg.key|" >old.ini
set +e
"$agg" serve --config old.ini >old.log 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "[privacy] signing_key: exit $rc, want 1"
grep -q "moved to \[ledger\] key" old.log || fail "no message naming [ledger] key: $(cat old.log)"

# 2. certificate-only, sampled rounds, no enrolment list
base $'[ledger]\nkey = '"$work"$'/agg.key' >noenrol.ini
set +e
"$agg" serve --config noenrol.ini >noenrol.log 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "no enrolment list with q < 1: exit $rc, want 1"
grep -q "set \[ledger\] enrolment = FILE" noenrol.log || fail "no clear start-up error: $(cat noenrol.log)"

# 3. an enrolment file readable by others
printf '# the campaign\nstore-a\nstore-b\nstore-c\n' >stores.txt
chmod 644 stores.txt
base $'[ledger]\nkey = '"$work"$'/agg.key\nenrolment = '"$work"$'/stores.txt' >enrol.ini
set +e
"$agg" serve --config enrol.ini >mode.log 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "enrolment file mode 644: exit $rc, want 1"
grep -q "chmod 600" mode.log || fail "no mode message: $(cat mode.log)"

# 4. regression: a ledger without noise never closed a round (epsilon = inf cannot be recorded)
base $'[ledger]\nkey = '"$work"$'/agg.key' | sed "s|^noise_multiplier = 1.0$|noise_multiplier = 0|" >nonoise.ini
set +e
"$agg" serve --config nonoise.ini >nonoise.log 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "[ledger] key with noise_multiplier = 0: exit $rc, want 1"
grep -q "needs \[privacy\] noise_multiplier > 0" nonoise.log || fail "no clear message: $(cat nonoise.log)"

# 5. regression: a misspelt [ledger] section meant no ledger and no budget check, silently
base $'[ledgr]\nkey = '"$work"$'/agg.key\nepsilon_cap = 3' >typo.ini
set +e
"$agg" serve --config typo.ini >typo.log 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "[ledgr]: exit $rc, want 1"
grep -q "typo.ini:[0-9]*: unknown section \[ledgr\] (key 'key')" typo.log || fail "no message naming file, line, section and key: $(cat typo.log)"

# 6. mode 0600: starts; one sampled round closes on its deadline with store-a only
chmod 600 stores.txt
"$agg" serve --config enrol.ini >serve.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q listening serve.log && break; sleep 0.1; done
grep -q listening serve.log || fail "serve did not start with a 0600 enrolment file"
grep -q "3 enrolled store(s)" serve.log || fail "enrolled stores not reported"
"$peer" get "$port" v1/round --pki keys/ca.crt keys/stores/store-a.crt keys/stores/store-a.key --out round.cbor >get.log 2>&1 || fail "GET round"
"$peer" get "$port" v1/model --pki keys/ca.crt keys/stores/store-a.crt keys/stores/store-a.key --out model.cbor >>get.log 2>&1 || fail "GET model"
"$peer" mkupdate round.cbor model.cbor --store store-a --out up.cbor --dtype f32 >>get.log 2>&1 || fail "mkupdate"
"$peer" post "$port" v1/update --pki keys/ca.crt keys/stores/store-a.crt keys/stores/store-a.key --in up.cbor >post.log 2>&1 || fail "POST update: $(cat post.log)"
for _ in $(seq 100); do grep -q "round 1 closed" serve.log && break; sleep 0.1; done
grep -q "round 1 closed" serve.log || fail "round 1 did not close at its deadline"
kill "${pids[0]}"
wait "${pids[0]}" || true
pids=()
"$agg" audit export --db agg.db --format json -o audit.json || fail "audit export"
python3 - audit.json <<'PY' || fail "ledger charges"
import json, sys
e = json.load(open(sys.argv[1]))["entries"]
assert len(e) == 1, e
e = e[0]
assert e["participants"] == ["store-a"], e["participants"]
assert e["q"] == 0.5, e["q"]
eps = e["epsilons"]
assert set(eps) == {"store-a", "store-b", "store-c"}, eps
assert len(set(eps.values())) == 1 and list(eps.values())[0] > 0, eps
print("ledger:", eps)
PY
echo PASS
