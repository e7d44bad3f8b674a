#!/usr/bin/env bash
# The full evaluation of issue 7: every method x {zero-shot, few-shot} x {customers, countries} on
# the real data, as JSON lines and a Markdown table (the table of docs/evaluation.md).
# Usage: tools/eval_report.sh [DATA.csv.gz] [OUT_DIR] [extra eval args, e.g. --config agent.ini]
# Needs the release build (scripts/build.sh release). Takes a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/online-retail/online_retail.csv.gz}
out=${2:-build/eval-report}
shift $(( $# > 2 ? 2 : $# )) || true
agent=build/agent/storefl-agent
mkdir -p "$out"
: >"$out/all.jsonl"
for clients in customers countries; do
  for regime in zero-shot few-shot; do
    echo "== $clients $regime" >&2
    start=$(date +%s)
    "$agent" eval --data "$data" --clients $clients --regime $regime --json "$@" \
      >"$out/$clients-$regime.jsonl" 2>"$out/$clients-$regime.log"
    echo "   $(( $(date +%s) - start )) s wall" | tee -a "$out/$clients-$regime.log" >&2
    grep -E '^(split|cut)' "$out/$clients-$regime.log" >&2 || true
    cat "$out/$clients-$regime.jsonl" >>"$out/all.jsonl"
  done
done
python3 - "$out/all.jsonl" <<'PY' | tee "$out/table.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for clients in ("customers", "countries"):
    print(f"\n#### clients = {clients}\n")
    print("| method | regime | HR@10 | NDCG@10 | AUC | cHR@10 | cNDCG@10 | cAUC | events | clients |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for regime in ("zero-shot", "few-shot"):
        for r in rows:
            if r["clients_kind"] == clients and r["regime"] == regime:
                print(f"| {r['method']} | {regime} | {r['hr10']:.4f} | {r['ndcg10']:.4f} | {r['auc']:.4f} | "
                      f"{r['client_hr10']:.4f} | {r['client_ndcg10']:.4f} | {r['client_auc']:.4f} | "
                      f"{r['events']} | {r['clients']} |")
PY
