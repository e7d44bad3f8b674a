#!/usr/bin/env python3
"""Independent reference for the evaluation split of `storefl-agent eval` (standard library only).

Recomputes, from the Online Retail export, the figures that the C implementation prints and that
tests/unit/test_eval_data.c asserts, following issue 7's definitions literally:
- cut = first + 0.8 * (last - first) over InvoiceDate of ALL lines (exact: 5*t >= 5*first + 4*(last-first));
- clean = not cancelled, Quantity > 0, UnitPrice > 0, StockCode matches ^[0-9]{5}[A-Za-z]*$;
  codes upper-cased;
- new products = upper-cased codes first seen in clean lines at or after the cut;
- test events = distinct (client, product, invoice) over clean lines at or after the cut on new
  products by eligible clients (customers: >= 20 clean lines before the cut; countries: all 38);
- few-shot: events at or after cut + 14 days only.

Usage: python3 tools/eval_split_reference.py [path/to/online_retail.csv.gz]
"""
import collections
import csv
import datetime as dt
import gzip
import io
import math
import re
import sys

PROD = re.compile(r"^[0-9]{5}[A-Za-z]*$")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/online-retail/online_retail.csv.gz"
    with gzip.open(path, "rb") as fh:
        rows = list(csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8", newline="")))
    ep = dt.datetime(1970, 1, 1)
    ts = [int((dt.datetime.strptime(r["InvoiceDate"], "%Y-%m-%d %H:%M:%S") - ep).total_seconds()) for r in rows]
    t0, t1 = min(ts), max(ts)

    def after_cut(t):
        return 5 * t >= 5 * t0 + 4 * (t1 - t0)

    cut = t0 + (4 * (t1 - t0)) // 5
    print("cut", dt.datetime.utcfromtimestamp(cut), "(floor to the second)")
    clean = []
    for t, r in zip(ts, rows):
        if r["InvoiceNo"].startswith("C") or int(r["Quantity"]) <= 0 or float(r["UnitPrice"]) <= 0:
            continue
        if not PROD.match(r["StockCode"]):
            continue
        cid = r["CustomerID"][:-2] if r["CustomerID"].endswith(".0") else r["CustomerID"]
        clean.append((t, r["StockCode"].upper(), r["InvoiceNo"], cid, r["Country"]))
    first_raw = {}
    first_raw_up = {}
    for t, r in zip(ts, rows):
        c = r["StockCode"]
        first_raw[c] = min(first_raw.get(c, t), t)
        first_raw_up[c.upper()] = min(first_raw_up.get(c.upper(), t), t)
    first = {}
    for t, c, *_ in clean:
        first[c] = min(first.get(c, t), t)
    new = {c for c, t in first.items() if after_cut(t)}
    print("new raw codes (any line)", sum(after_cut(t) for t in first_raw.values()),
          "| upper-cased (any line)", sum(after_cut(t) for t in first_raw_up.values()),
          "| upper-cased, clean lines", len(new), "| clean products", len(first))
    before = collections.Counter(cid for t, c, inv, cid, co in clean if cid and not after_cut(t))
    elig = {c for c, n in before.items() if n >= 20}
    print("eligible customers", len(elig))
    launch = sorted(first[c] for c in new)
    for kind in ("customers", "countries"):
        for regime, start in (("zero-shot", 0), ("few-shot", 14 * 86400)):
            ev = set()
            for t, c, inv, cid, co in clean:
                if c not in new or not after_cut(t) or 5 * t < 5 * t0 + 4 * (t1 - t0) + 5 * start:
                    continue
                client = cid if kind == "customers" else co
                if kind == "customers" and cid not in elig:
                    continue
                ev.add((client, c, inv, t))
            # one event per (client, product, invoice); an invoice has one time
            keyed = {}
            for client, c, inv, t in ev:
                keyed[(client, c, inv)] = min(keyed.get((client, c, inv), t), t)
            hr = nd = 0.0
            for (client, c, inv), t in keyed.items():
                n = sum(1 for x in launch if x <= t)
                k = min(10, n)
                hr += k / n
                nd += sum(1 / math.log2(r + 1) for r in range(1, k + 1)) / n
            ne = len(keyed)
            print(f"{kind} {regime}: events {ne} clients {len({k[0] for k in keyed})} "
                  f"products {len({k[1] for k in keyed})} random hr10 {hr / ne:.6f} ndcg10 {nd / ne:.6f}")


if __name__ == "__main__":
    main()
