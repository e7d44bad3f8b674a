#!/usr/bin/python3
"""Checks of a local-mode campaign (see test_local_mode.sh), from the agents' own SQLite files.

  local_mode_check.py --sigma S --clip C --scale-bits B --rounds R --audit AUDIT.json STORE.db CLEAN_DIR...

For every store and round: the outbox body is what the aggregator received (SHA-256 equals the
digest in the aggregator's receipt), it declares mode local, noise_multiplier S and num_examples 1,
and every value is a grid point k * 2^-B. Against the clean clipped grid update the agent recorded
(CLEAN_DIR/round-R.grid, int64, test-only switch), the difference k - k_clean is the noise: its mean
and variance must match N_Z(0, s^2), s = S * C * 2^B, within 6 standard errors for the sample size
(mean: s / sqrt(n); variance: s^2 sqrt(2 / n), the Gaussian fourth moment), and the clean values'
bytes must not appear in the body. Then model r+1 (as the agents fetched it) must equal model r plus
the plain mean of the round's noised updates, bit for bit, computed here as the aggregator's fixed
point sum does (exact integers) - so the aggregator added no noise of its own. The ledger export
must list each round with mode local and q = 1.
"""
import argparse
import hashlib
import json
import math
import os
import sqlite3
import struct
import sys

import cbor2

F32, F16, I8 = 85, 84, 72
LOCAL = 1


class Failure(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failure(what)


def tensor_values(t):
    """Values of one decoded tensor map as Python floats (exact: f32/f16/i8*scale are doubles)."""
    data = t[3]
    expect(isinstance(data, cbor2.CBORTag), f"tensor {t[1]}: untagged data")
    raw = data.value
    if data.tag == F32:
        return list(struct.unpack("<%df" % (len(raw) // 4), raw)), raw
    if data.tag == F16:
        return list(struct.unpack("<%de" % (len(raw) // 2), raw)), raw
    if data.tag == I8:
        scale = t[4]
        return [q * scale for q in struct.unpack("<%db" % len(raw), raw)], raw
    raise Failure(f"tensor {t[1]}: tag {data.tag}")


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sigma", type=float, required=True)
    ap.add_argument("--clip", type=float, required=True)
    ap.add_argument("--scale-bits", type=int, required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--audit", required=True)
    ap.add_argument("stores", nargs="+")
    a = ap.parse_args()
    expect(len(a.stores) % 2 == 0, "STORE.db CLEAN_DIR pairs")
    step = 2.0 ** -a.scale_bits
    s = a.sigma * a.clip / step
    updates = {}  # round -> list of (values, base_version)
    models = {}  # version -> (names, values)
    tot_n = tot_sum = tot_sq = 0
    for db_path, clean_dir in zip(a.stores[0::2], a.stores[1::2]):
        db = sqlite3.connect(db_path)
        rows = db.execute("SELECT round, body, receipt FROM outbox ORDER BY round").fetchall()
        expect(len(rows) == a.rounds, f"{db_path}: {len(rows)} outbox rows, want {a.rounds}")
        for rnd, body, receipt in rows:
            body = bytes(body)
            expect(receipt is not None, f"{db_path} round {rnd}: no receipt")
            rc = cbor2.loads(bytes(receipt))
            expect(rc[3] == hashlib.sha256(body).digest(),
                   f"{db_path} round {rnd}: the aggregator's digest differs from the outbox body's")
            u = cbor2.loads(body)
            expect(u[2] == rnd and u[5] == LOCAL, f"{db_path} round {rnd}: round/mode {u[2]}/{u[5]}")
            expect(u[7] == a.sigma, f"{db_path} round {rnd}: declared sigma {u[7]}")
            expect(u[4] == 1, f"{db_path} round {rnd}: num_examples {u[4]} (the count is not released)")
            vals = []
            for t in u[8]:
                vals += tensor_values(t)[0]
            ks = []
            for v in vals:
                k = v / step
                expect(k == math.floor(k), f"{db_path} round {rnd}: value {v!r} is not on the grid 2^-{a.scale_bits}")
                ks.append(int(k))
            with open(os.path.join(clean_dir, f"round-{rnd}.grid"), "rb") as f:
                raw = f.read()
            clean = struct.unpack("<%dq" % (len(raw) // 8), raw)
            expect(len(clean) == len(ks), f"{db_path} round {rnd}: {len(clean)} clean values for {len(ks)}")
            expect(sum(c * c for c in clean) <= (a.clip / step) ** 2, f"{db_path} round {rnd}: clean update not clipped")
            nonzero = sum(1 for c in clean if c)
            expect(nonzero > len(clean) // 100, f"{db_path} round {rnd}: clean update nearly all zero ({nonzero})")
            diff = [k - c for k, c in zip(ks, clean)]
            n = len(diff)
            mean = sum(diff) / n
            var = sum(d * d for d in diff) / n
            expect(abs(mean) <= 6 * s / math.sqrt(n), f"{db_path} round {rnd}: noise mean {mean} (s = {s}, n = {n})")
            expect(abs(var / (s * s) - 1) <= 6 * math.sqrt(2.0 / n),
                   f"{db_path} round {rnd}: noise variance {var} vs s^2 = {s * s} (n = {n})")
            # Equal coordinates: only where the noise drew 0, P = 1/(s sqrt(2 pi)) for large s.
            same = sum(1 for d in diff if d == 0)
            exp_same = n / (s * math.sqrt(2 * math.pi))
            expect(same <= exp_same + 6 * math.sqrt(exp_same) + 6,
                   f"{db_path} round {rnd}: {same} coordinates unnoised (expected {exp_same:.1f})")
            # The clean values' bytes (float32, as an f32 upload would carry them) appear nowhere: 200
            # windows of 4 consecutive non-zero clean coordinates (16 bytes). Chance alone cannot put
            # one in a body of n noised values: each noised value equals a given grid point with
            # probability <= 1/(s sqrt(2 pi)), so a 4-value run matches with probability < n / s^4.
            cf = struct.pack("<%df" % n, *[c * step for c in clean])
            runs = [i for i in range(n - 3) if clean[i] and clean[i + 1] and clean[i + 2] and clean[i + 3]]
            picked = runs[:: max(1, len(runs) // 200)][:200]
            expect(picked, f"{db_path} round {rnd}: no run of non-zero clean values to look for")
            for i in picked:
                expect(cf[4 * i:4 * i + 16] not in body, f"{db_path} round {rnd}: clean bytes at coordinate {i} in the body")
            tot_n += n
            tot_sum += sum(diff)
            tot_sq += sum(d * d for d in diff)
            updates.setdefault(rnd, []).append((vals, u[3]))
        for version, blob in db.execute("SELECT version, blob FROM models WHERE kind = 'global'"):
            m = cbor2.loads(bytes(blob))
            vals = []
            for t in m[4]:
                vals += tensor_values(t)[0]
            if version in models:
                expect(models[version] == vals, f"model {version} differs between stores")
            models[version] = vals
        db.close()
    expect(abs(tot_sum / tot_n) <= 6 * s / math.sqrt(tot_n), f"pooled noise mean {tot_sum / tot_n}")
    expect(abs(tot_sq / tot_n / (s * s) - 1) <= 6 * math.sqrt(2.0 / tot_n), f"pooled noise variance {tot_sq / tot_n}")
    print(f"noise: {tot_n} coordinates, mean {tot_sum / tot_n:.3f}, std {math.sqrt(tot_sq / tot_n):.1f} "
          f"(s = sigma C / step = {s:.1f}); ratio {math.sqrt(tot_sq / tot_n) / s:.5f}")

    # Model r+1 = model r + mean of the noised updates, with the aggregator's arithmetic: each value
    # k * 2^-b times weight 1 is exactly k * 2^(S-b) on its 2^-S grid; the sum is exact; then
    # theta + server_lr * sum / (n 2^S) in double, rounded to float32 (server_lr = 1).
    acc_bits = 24
    checked = 0
    for rnd in range(1, a.rounds + 1):
        ups = updates[rnd]
        base = ups[0][1]
        expect(all(b == base for _, b in ups), f"round {rnd}: updates on different base models")
        if base not in models or base + 1 not in models:
            continue
        old, new = models[base], models[base + 1]
        denom = float(len(ups) << acc_bits)
        for i in range(len(old)):
            tot = sum(int(v[i] * 2.0 ** acc_bits) for v, _ in ups)
            want = f32(old[i] + tot / denom)
            if want != new[i]:
                raise Failure(f"round {rnd}: model {base + 1}[{i}] = {new[i]!r}, mean of the noised updates "
                              f"gives {want!r}: the aggregator did not apply exactly the mean")
        checked += 1
    expect(checked >= 2, f"only {checked} rounds had both models at hand")
    print(f"models: {checked} rounds equal the mean of the noised updates bit for bit")

    with open(a.audit) as f:
        entries = json.load(f)["entries"]
    expect(len(entries) == a.rounds, f"{len(entries)} ledger entries")
    for e in entries:
        expect(e["mode"] == "local" and e["q"] == 1.0 and e["sigma"] == a.sigma,
               f"ledger round {e['round']}: mode {e['mode']} q {e['q']} sigma {e['sigma']}")
    print("ledger: every round local, q = 1")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
