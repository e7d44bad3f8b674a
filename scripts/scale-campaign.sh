#!/usr/bin/env bash
# shellcheck disable=SC2154,SC2015 # stores, adapt_end, min_lines come from plan.env (campaign plan)
# The scale campaign: every eligible customer of the export (about 2,400) as a store, each with its
# own SQLite store and DTLS PSK identity, run by the many-agent engine in ONE process
# (storefl-agent simulate) against the real aggregator (storefl-aggregator serve) on 127.0.0.1.
#   1. plan: the few-shot split of the evaluation; every eligible customer becomes a store
#      (storefl-agent campaign plan --stores 4096 lists them all)
#   2. stores (storefl-agent partition), PSK keys (scripts/make-dev-keys.sh, STOREFL_PSK_ONLY=1)
#   3. aggregator: q = 1 with target T per round (the simulation draws T stores per round),
#      FedAvg, central mode without noise (sigma 0: this run measures scale and utility), int8
#   4. R rounds with int8 updates, one line per round (NDCG@10/HR@10 of new products of the global
#      model on the held-out events of all stores, bytes up/down per store, times); then one round
#      each with int8, float16 and float32 updates, captured on the wire (dumpcap), for the bytes
#      per store of each encoding
#   5. checks: every round closed with exactly T updates counted by the aggregator
#      (storefl-aggregator rounds --json) and T receipts; then a summary (JSON in WORK/summary.json)
# Usage: scripts/scale-campaign.sh [--rounds R] [--per-round T] [--port P] [--work DIR]
#          [--inflight U] [--small] [--stores N] [--epsilon-cap E] [--q Q --round-s S]
#          [--mode central|local]
#   --epsilon-cap E: central DP, sigma = the accountant's calibration for E per store over R rounds
#   (delta 1e-5; storefl-agent campaign plan), the stores' budget gates and the aggregator's signed
#   ledger with cap E. --q Q: every store self-selects with probability Q (amplification by
#   sampling), rounds close at their deadline (S seconds, default 90; with Q = 1 as soon as every
#   store has sent); no wire rounds then.
#   --mode local: the aggregator runs [privacy] mode = local: each store clips, puts its update on
#   the round's grid and adds the noise itself (sigma calibrated for local mode: q = 1, no
#   amplification towards the aggregator); default central.
#   Defaults: every eligible customer (--stores N: the N largest only), 20 rounds, 150 stores per round, port 21500, work dir build/scale, 16 uploads in
#   flight, the default model (--small: B = 2^12 buckets, d = 16, hidden 32).
#   Environment: STOREFL_DATA_DIR (default ../shared/data), STOREFL_BUILD (default build).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
rounds=20 per_round=150 port=21500 work="$repo/build/scale" inflight=16 small=0 max_stores=4096
cap="" self_q="" round_s=90 mode=central
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --per-round) per_round=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --inflight) inflight=$2; shift 2 ;;
    --small) small=1; shift ;;
    --stores) max_stores=$2; shift 2 ;;
    --epsilon-cap) cap=$2; shift 2 ;;
    --q) self_q=$2; shift 2 ;;
    --round-s) round_s=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    -h|--help) sed -n '3,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scale-campaign: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$mode" in central | local) ;; *) echo "scale-campaign: --mode central|local" >&2; exit 2 ;; esac
build=${STOREFL_BUILD:-$repo/build}
agent=$build/agent/storefl-agent
agg=$build/aggregator/storefl-aggregator
data_dir=${STOREFL_DATA_DIR:-$repo/../shared/data}
csv=$data_dir/online-retail/online_retail.csv.gz
[ -x "$agent" ] && [ -x "$agg" ] || { echo "scale-campaign: build first (scripts/build.sh release)" >&2; exit 1; }
[ -f "$csv" ] || { echo "scale-campaign: the export is not at $csv (set STOREFL_DATA_DIR)" >&2; exit 1; }

srv=
stop_all() {
  if [ -n "$srv" ]; then
    kill -TERM "$srv" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$srv" 2>/dev/null || true
    wait "$srv" 2>/dev/null || true
    srv=
  fi
}
trap stop_all EXIT
trap 'echo "scale-campaign: interrupted" >&2; stop_all; exit 130' INT TERM

if [ -e "$work" ] && [ -n "$(ls -A "$work" 2>/dev/null)" ] && [ ! -f "$work/plan.env" ]; then
  echo "scale-campaign: $work exists and is not a previous run's work directory; not wiping it" >&2
  exit 2
fi
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd) # the aggregator's config names files in it; the script cds into it
cd "$work"
t0=$(date +%s)

echo "== plan: every eligible customer as a store (few-shot split; at most $max_stores)"
"$agent" campaign plan --data "$csv" --stores "$max_stores" --rounds "$rounds" --q "${self_q:-1}" --epsilon-cap "${cap:-8}" \
  --mode "$mode" --ids-out ids.txt >plan.env
# shellcheck disable=SC1091,SC2154 # plan.env sets adapt_end, min_lines, stores (campaign plan)
. ./plan.env
echo "   $stores stores; they hold every clean line before $adapt_end UTC"
"$agent" partition --data "$csv" --by customer --min-lines "$min_lines" --before "$adapt_end" \
  --out stores >partition.log 2>&1 || { cat partition.log >&2; exit 1; }
echo "   $(tail -1 partition.log | sed 's/^partition: //')"
mapfile -t ids <ids.txt
STOREFL_PSK_ONLY=1 "$repo/scripts/make-dev-keys.sh" keys "${ids[@]}" >/dev/null
echo "   PSK keys: $(wc -l <keys/psk.keys) identities"

total=$((rounds + 3))
sigma_used=0 ledger="" round_keys=""
if [ -n "$cap" ]; then
  sigma_used=$sigma
  ledger=$'[ledger]\n'"key = $work/keys/ledger.key"$'\n'"epsilon_cap = $cap"
  charged_q=${self_q:-1}
  [ "$mode" = local ] && charged_q="1 (local mode; stores self-select with ${self_q:-1})"
  echo "   $mode DP: sigma = $sigma_used (accountant: epsilon $epsilon_planned per store after $rounds rounds, q $charged_q)"
fi
if [ -n "$self_q" ]; then
  total=$rounds
  # q = 1: every store takes part, so the round can close on all of them instead of waiting out S
  # (the charged q is 1 either way: storefl_budget_effective_q).
  target=4096
  awk "BEGIN { exit !($self_q >= 1) }" && target=$stores
  round_keys="min_participants = 1"$'\n'"target_participants = $target"$'\n'"max_participants = 4096"
  round_keys+=$'\n'"duration_s = $round_s"$'\n'"participation_q = $self_q"$'\n'"on_short = extend"
else
  round_keys="min_participants = $per_round"$'\n'"target_participants = $per_round"
  round_keys+=$'\n'"max_participants = $per_round"$'\n'"duration_s = 1800"$'\n'"participation_q = 1.0"
fi
if [ "$small" = 1 ]; then model_keys=$'buckets = 4096\ndim = 16\nhidden = 32'; else model_keys=""; fi
cat >aggregator.ini <<INI
[storage]
db = $work/aggregator.db
[model]
arch = wide-deep-v1
$model_keys
[round]
$round_keys
total_rounds = $total
local_steps = 10
local_lr = 0.005
upload_dtype = i8
[privacy]
mode = $mode
clip_norm = 1.0
noise_multiplier = $sigma_used
delta = 1e-5
[aggregation]
weight_cap = 1000
[server]
listen = 127.0.0.1:$port
max_sessions = 4096
idle_timeout_s = 600
max_handshakes = 128
[dtls]
psk_keys = $work/keys/psk.keys
$ledger
[log]
level = info
INI
"$agg" serve --config aggregator.ini >aggregator.log 2>&1 &
srv=$!
for _ in $(seq 100); do grep -q listening aggregator.log && break; sleep 0.2; done
kill -0 "$srv" 2>/dev/null || { cat aggregator.log >&2; exit 1; }

common=(--stores-dir stores --ids ids.txt --keys keys/stores --address "127.0.0.1:$port"
  --inflight "$inflight" --epsilon-cap "${cap:-8}")
if [ -n "$self_q" ]; then
  echo "== $rounds rounds, every one of $stores stores self-selects with q = $self_q, int8 updates (one process)"
  "$agent" simulate "${common[@]}" --self-select --rounds "$rounds" --dtype i8 --data "$csv" --summary i8.json
  "$agg" rounds --db aggregator.db --json --limit 0 >rounds.json
  stop_all
  python3 - <<'PY'
import json, sys
rounds = json.load(open("rounds.json"))["rounds"]
counted = sum(r["participants"] for r in rounds if r["state"] == "closed")
main = json.load(open("i8.json"))
receipts = sum(r["participants"] for r in main["rounds"])
summary = {"stores": main["stores"], "rounds": len(main["rounds"]), "receipts": receipts,
           "counted_by_aggregator": counted, "rounds_to_95pct_ndcg": main["rounds_to_95pct_ndcg"],
           "final_ndcg10": main["rounds"][-1]["ndcg10"], "final_hr10": main["rounds"][-1]["hr10"],
           "ndcg10_per_round": [round(r["ndcg10"], 4) for r in main["rounds"]],
           "participants_per_round": [r["participants"] for r in main["rounds"]],
           "refused_by_budget": sum(r["refused_by_budget"] for r in main["rounds"])}
json.dump(summary, open("summary.json", "w"), indent=1)
print(f"== summary: receipts {receipts} = counted {counted}: {'yes' if receipts == counted else 'NO'}; "
      f"final NDCG@10 {summary['final_ndcg10']:.4f}, HR@10 {summary['final_hr10']:.4f}")
sys.exit(0 if receipts == counted else 1)
PY
  echo "   $(($(date +%s) - t0)) s in all; work directory $work (summary.json)"
  exit 0
fi
common+=(--per-round "$per_round")
echo "== $rounds rounds, $per_round of $stores stores per round, int8 updates (one process, one DTLS session per store)"
"$agent" simulate "${common[@]}" --rounds "$rounds" --dtype i8 --data "$csv" --summary i8.json
echo "== one more round with each encoding, captured on the wire (dumpcap on lo, udp port $port)"
for d in i8 f16 f32; do
  dumpcap -i lo -f "udp port $port" -s 128 -P -w "wire-$d.pcap" -q >"wire-$d.log" 2>&1 &
  cap=$!
  for _ in $(seq 200); do grep -q "Capturing on" "wire-$d.log" 2>/dev/null && break; sleep 0.05; done
  kill -0 "$cap" 2>/dev/null || { echo "scale-campaign: dumpcap cannot capture on lo: $(cat "wire-$d.log")" >&2; exit 1; }
  "$agent" simulate "${common[@]}" --rounds 1 --dtype "$d" --summary "$d-wire.json" | tail -1
  sleep 0.5 # the last datagrams reach the capture
  kill -INT "$cap"
  wait "$cap" || true
done

"$agg" rounds --db aggregator.db --json --limit 0 >rounds.json
stop_all
python3 - "$per_round" "$total" "$port" <<'PY'
import json, sys
T, total = int(sys.argv[1]), int(sys.argv[2])
rounds = json.load(open("rounds.json"))["rounds"]
closed = {r["round"]: r["participants"] for r in rounds if r["state"] == "closed"}
bad = [r for r in range(1, total + 1) if closed.get(r) != T]
import struct
main = json.load(open("i8.json"))
runs = {d: json.load(open(f"{d}-wire.json")) for d in ("i8", "f16", "f32")}
receipts = sum(r["participants"] for d in [main] + list(runs.values()) for r in d["rounds"])

def wire(path, port):
    """UDP payload bytes (whole DTLS records) to and from the aggregator's port in a pcap."""
    up = down = 0
    with open(path, "rb") as f:
        gh = f.read(24)
        magic = struct.unpack("<I", gh[:4])[0]
        e = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        link = struct.unpack(e + "I", gh[20:24])[0]
        off = {1: 14, 113: 16, 0: 4}[link]  # Ethernet (lo), Linux cooked, BSD loopback
        while True:
            rh = f.read(16)
            if len(rh) < 16:
                break
            _, _, incl, orig = struct.unpack(e + "IIII", rh)
            pkt = f.read(incl)
            ip = pkt[off:]
            if not ip or ip[0] >> 4 != 4:
                continue
            ihl = (ip[0] & 15) * 4
            sport, dport = struct.unpack(">HH", ip[ihl:ihl + 4])
            payload = orig - off - ihl - 8
            if dport == port:
                up += payload
            elif sport == port:
                down += payload
    return up, down

port = int(sys.argv[3])
ok = not bad and receipts == sum(closed.values())
summary = {
    "stores": runs["i8"]["stores"], "per_round": T, "rounds": total,
    "rounds_to_95pct_ndcg": main["rounds_to_95pct_ndcg"],
    "final_ndcg10": main["rounds"][-1]["ndcg10"], "final_hr10": main["rounds"][-1]["hr10"],
    "ndcg10_per_round": [round(r["ndcg10"], 4) for r in main["rounds"]],
    "bytes_up_per_store": {d: runs[d]["rounds"][0]["bytes_up_per_store"] for d in runs},
    "bytes_down_per_store": runs["i8"]["rounds"][0]["bytes_down_per_store"],
    "wire_per_store": {d: dict(zip(("up", "down"), (x // T for x in wire(f"wire-{d}.pcap", port)))) for d in runs},
    "receipts": receipts, "counted_by_aggregator": sum(closed.values()), "rounds_not_exactly_T": bad,
}
json.dump(summary, open("summary.json", "w"), indent=1)
print("== summary")
print(f"   stores {summary['stores']}, {T} per round, {total} rounds closed with exactly {T} counted: "
      f"{'yes' if not bad else 'NO ' + str(bad)}; receipts {receipts} = counted {sum(closed.values())}: "
      f"{'yes' if ok else 'NO'}")
print(f"   final NDCG@10 {summary['final_ndcg10']:.4f}, HR@10 {summary['final_hr10']:.4f}; "
      f"95% of the final NDCG@10 after {summary['rounds_to_95pct_ndcg']} round(s)")
b = summary["bytes_up_per_store"]
print(f"   update bytes per store per round (acknowledged, SHA-256 checked by the receipt): int8 {b['i8']}, "
      f"float16 {b['f16']}, float32 {b['f32']}; model body down {summary['bytes_down_per_store']}")
w = summary["wire_per_store"]
print("   on the wire per store per round (UDP payload to/from the aggregator / participants): " +
      ", ".join(f"{d} up {w[d]['up']} down {w[d]['down']}" for d in w))
sys.exit(0 if ok else 1)
PY
echo "   $(($(date +%s) - t0)) s in all; work directory $work (summary.json)"
