#!/usr/bin/env bash
# The privacy-utility curve of the federated demo (issue 5): one campaign of
# scripts/demo-campaign.sh per (mode, epsilon cap per store), each with sigma from the accountant's
# calibration (storefl-agent campaign plan), then a markdown table and a JSON array of the final
# new-product NDCG@10 / HR@10 of the global and the personalised models (and TF-IDF on the same
# events, the best baseline).
# Usage: scripts/privacy-utility.sh [--modes "central local"] [--epsilons "1 2 4 8 inf"]
#          [--stores N] [--rounds R] [--q Q] [--round-s S] [--port P] [--work DIR] [--small]
#          [--json FILE] [--collect]
#   Defaults: modes central and local, epsilons 1 2 4 8 inf (delta 1e-5), 40 stores, 8 rounds,
#   q 0.5, 12 s rounds, port 21400, work dir build/privacy-utility, the default model.
#   epsilon inf means no noise: the same mechanism in both modes, so it runs once (in the first
#   mode) and its row is shown for each mode. --collect: only rebuild the table and JSON from the
#   summaries already in the work directory. Each campaign's output is in WORK/MODE-eE.log.
#   Runtime: about 2 minutes per campaign with the defaults (9 campaigns: ~20 minutes).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
modes="central local" epsilons="1 2 4 8 inf" stores=40 rounds=8 q=0.5 round_s=12 port=21400
work="$repo/build/privacy-utility" small=() json="" collect=0
while [ $# -gt 0 ]; do
  case "$1" in
    --modes) modes=$2; shift 2 ;;
    --epsilons) epsilons=$2; shift 2 ;;
    --stores) stores=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --q) q=$2; shift 2 ;;
    --round-s) round_s=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --small) small=(--small); shift ;;
    --json) json=$2; shift 2 ;;
    --collect) collect=1; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "privacy-utility: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for m in $modes; do
  case "$m" in central|local) ;; *) echo "privacy-utility: mode $m is not central or local" >&2; exit 2 ;; esac
done
mkdir -p "$work"
[ -n "$json" ] || json=$work/curve.json

# ---- Campaigns ---------------------------------------------------------------------------------
first_mode=${modes%% *}
if [ "$collect" = 0 ]; then
  for m in $modes; do
    for e in $epsilons; do
      [ "$e" = inf ] && [ "$m" != "$first_mode" ] && continue
      name=$m-e$e
      echo "== $name: $stores stores, $rounds rounds, q $q, epsilon cap $e per store ($(date -u +%H:%M:%S) UTC)"
      rm -f "$work/$name.json"
      if "$repo/scripts/demo-campaign.sh" --stores "$stores" --rounds "$rounds" --q "$q" --epsilon-cap "$e" \
        --round-s "$round_s" --port "$port" --mode "$m" --work "$work/$name" --summary "$work/$name.json" \
        "${small[@]}" >"$work/$name.log" 2>&1; then
        echo "   done: $(grep -E '^fed\+personal' "$work/$name.log" | tail -1)"
      else
        echo "   FAILED (status $?): see $work/$name.log"
      fi
      # The plan (sigma) stays next to the summary: the campaign's work directory is wiped next time.
      cp "$work/$name/plan.env" "$work/$name.plan.env" 2>/dev/null || true
    done
  done
fi

# ---- Table and JSON ----------------------------------------------------------------------------
python3 - "$work" "$json" "$first_mode" "$modes" "$epsilons" <<'PY'
import json, math, os, sys
work, out, first, modes, epsilons = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(), sys.argv[5].split()

def plan(path):
    env = {}
    try:
        for line in open(path):
            k, _, v = line.strip().partition("=")
            env[k] = v.strip("'")
    except OSError:
        pass
    return env

rows = []
for m in modes:
    for e in epsilons:
        name = f"{first if e == 'inf' else m}-e{e}"
        p = plan(os.path.join(work, name + ".plan.env"))
        row = {"mode": m, "epsilon_cap": None if e == "inf" else float(e), "run": name,
               "sigma": float(p["sigma"]) if "sigma" in p else None, "q": float(p["q"]) if "q" in p else None}
        try:
            s = json.load(open(os.path.join(work, name + ".json")))
        except (OSError, ValueError):
            row["status"] = "missing"
            rows.append(row)
            continue
        f = s["final"]
        rs = s["rounds"]
        eps = [v["epsilon"] for v in s["epsilon"].values()]
        row.update({
            "status": "ok", "stores": s["stores"], "events": s["events"], "rounds": len(rs),
            "mean_participants": sum(r["participants"] for r in rs) / max(1, len(rs)),
            "ndcg10_global": f["federated (campaign)"]["ndcg10"], "hr10_global": f["federated (campaign)"]["hr10"],
            "ndcg10_personal": f["fed+personal (campaign)"]["ndcg10"],
            "hr10_personal": f["fed+personal (campaign)"]["hr10"],
            "ndcg10_tfidf": f["tfidf"]["ndcg10"], "hr10_tfidf": f["tfidf"]["hr10"],
            "ndcg10_popularity": f["popularity"]["ndcg10"],
            "epsilon_max": None if any(x is None for x in eps) else max(eps),
        })
        rows.append(row)

def fmt(x, d=4):
    return "-" if x is None else f"{x:.{d}f}"

print("| mode | epsilon/store | sigma | q | part./round | NDCG@10 global | HR@10 global | NDCG@10 personal"
      " | HR@10 personal | TF-IDF NDCG@10 | epsilon spent (max) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    e = "inf" if r["epsilon_cap"] is None else f"{r['epsilon_cap']:g}"
    if r["status"] != "ok":
        print(f"| {r['mode']} | {e} | {fmt(r['sigma'], 3)} | - | - | not run | | | | | |")
        continue
    em = "inf" if r["epsilon_max"] is None else fmt(r["epsilon_max"], 3)
    print(f"| {r['mode']} | {e} | {fmt(r['sigma'], 3)} | {r['q']:g} | {r['mean_participants']:.1f} | "
          f"{fmt(r['ndcg10_global'])} | {fmt(r['hr10_global'])} | {fmt(r['ndcg10_personal'])} | "
          f"{fmt(r['hr10_personal'])} | {fmt(r['ndcg10_tfidf'])} | {em} |")
with open(out, "w") as fh:
    json.dump(rows, fh, indent=1)
print(f"\nJSON: {out}")
PY
