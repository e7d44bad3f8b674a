#!/usr/bin/env bash
# storefl-aggregator audit: verify, export (JSON/CSV/HTML), an exported entry checked with the stock
# openssl command line and the published public key, and tampering named by verify.
set -u
agg=$1
mk=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

"$mk" ledger.db aggregator.key 8 || fail "make ledger"
[ "$(stat -c %a aggregator.key)" = 600 ] || fail "key mode $(stat -c %a aggregator.key)"
"$agg" audit pubkey --key aggregator.key -o pub.pem || fail "pubkey"
grep -q 'BEGIN PUBLIC KEY' pub.pem || fail "pub.pem"
out=$("$agg" audit verify --db ledger.db --pubkey pub.pem) || fail "verify intact ledger: $out"
echo "$out" | grep -q '^ok: 8 entries' || fail "verify output: $out"

# Exports.
"$agg" audit export --db ledger.db --format json -o audit.json || fail "json export"
"$agg" audit export --db ledger.db --format csv -o audit.csv || fail "csv export"
"$agg" audit export --db ledger.db --format html --cap 5 -o audit.html || fail "html export"
python3 - <<'PY' || fail "export contents"
import csv, json
j = json.load(open("audit.json"))
e = j["entries"]
assert len(e) == 8 and [x["index"] for x in e] == list(range(8))
assert all(e[i]["prev_hash"] == e[i - 1]["entry_hash"] for i in range(1, 8))
assert e[0]["prev_hash"] == "0" * 64
assert set(e[-1]["epsilons"]) == {"store-00%d" % k for k in range(1, 6)}
rows = list(csv.DictReader(open("audit.csv")))
assert len(rows) == sum(len(x["epsilons"]) for x in e)
assert abs(float(rows[-1]["cumulative_epsilon"]) - e[-1]["epsilons"][rows[-1]["store_id"]]) < 1e-12
h = open("audit.html").read()
assert h.count("<polyline") == 5 and "stroke-dasharray" in h and "<table>" in h
assert "<script" not in h and "http" not in h.replace('http://www.w3.org/2000/svg', '')  # self-contained
PY

# One entry, checked with openssl alone (docs/privacy.md).
python3 - <<'PY' || fail "extract entry"
import base64, json
e = json.load(open("audit.json"))["entries"][3]
open("entry.cbor", "wb").write(base64.b64decode(e["signed_cbor_b64"]))
open("entry.sig", "wb").write(base64.b64decode(e["signature_der_b64"]))
open("entry.hash.hex", "w").write(e["entry_hash"])
PY
[ "$(sha256sum entry.cbor | cut -d' ' -f1)" = "$(cat entry.hash.hex)" ] || fail "entry_hash is not SHA-256 of the CBOR"
openssl dgst -sha256 -verify pub.pem -signature entry.sig entry.cbor | grep -q 'Verified OK' || fail "openssl dgst"
openssl dgst -sha256 -binary entry.cbor > entry.hash
openssl pkeyutl -verify -pubin -inkey pub.pem -in entry.hash -sigfile entry.sig | grep -q 'Signature Verified Successfully' ||
  fail "openssl pkeyutl"
# The same check fails on a modified entry.
python3 -c "b=bytearray(open('entry.cbor','rb').read()); b[20]^=1; open('bad.cbor','wb').write(b)"
if openssl dgst -sha256 -verify pub.pem -signature entry.sig bad.cbor >/dev/null 2>&1; then fail "openssl accepted a modified entry"; fi

# Tampering is named.
cp ledger.db t.db
python3 - <<'PY'
import sqlite3
c = sqlite3.connect("t.db")
b = bytearray(c.execute("SELECT entry FROM ledger WHERE idx = 5").fetchone()[0])
b[len(b) // 2] ^= 0x10
c.execute("UPDATE ledger SET entry = ? WHERE idx = 5", (bytes(b),))
c.commit()
PY
out=$("$agg" audit verify --db t.db --pubkey pub.pem)
rc=$?
[ $rc -eq 1 ] || fail "verify of a modified ledger exited $rc"
echo "$out" | grep -q '^FAILED: entry 5' || fail "verify did not name entry 5: $out"

# Another key is not the aggregator's.
"$mk" other.db other.key 1 || fail "other key"
"$agg" audit pubkey --key other.key -o other.pem || fail "other pubkey"
out=$("$agg" audit verify --db ledger.db --pubkey other.pem)
[ $? -eq 1 ] && echo "$out" | grep -q 'entry 0: signature' || fail "wrong key not detected: $out"

# Key with a loose mode is refused.
chmod 644 aggregator.key
if "$agg" audit pubkey --key aggregator.key >/dev/null 2>err.txt; then fail "loose key mode accepted"; fi
grep -q 'chmod 600' err.txt || fail "loose mode message: $(cat err.txt)"

# Usage errors.
"$agg" audit export --db ledger.db --format xml >/dev/null 2>&1
[ $? -eq 2 ] || fail "bad format"
"$agg" audit verify --db ledger.db >/dev/null 2>&1
[ $? -eq 2 ] || fail "verify without key"
"$agg" audit --help | grep -q 'EXIT STATUS' || fail "--help"
echo "audit cli: ok"
