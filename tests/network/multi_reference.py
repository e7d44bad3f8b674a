#!/usr/bin/python3
"""Independent reference for network.multi: recomputes the federated-averaging rounds from the
update bodies the agents uploaded, with cbor2 (not our codec) and Python integers (not aggcore), and
compares every model the aggregator served with it, bit for bit.

  multi_reference.py DIR ROUNDS [SCALE_BITS WEIGHT_CAP SERVER_LR]
DIR holds model-1.cbor .. model-(ROUNDS+1).cbor (the models served before each round and at the end)
and u-R-*.cbor (round R's update bodies). Round R's model is recomputed from the reference of
round R-1 (model-1.cbor is the only served model used as input), so an error anywhere propagates.

The arithmetic is the one docs/aggregator.md specifies, written out here independently:
  w = min(num_examples, weight_cap); per coordinate c = round_half_even(x * w * 2^S), summed
  exactly (Python ints); g = float(sum) / (W * 2^S) with W = sum of w; theta' = float32(theta + lr*g).
x is a float32, a float16, or q * scale (int8 times a float32 scale). Exactness of the products in a
double is arithmetic, not a property of the code under test: a float32 or float16 significand has at
most 24 bits and w * 2^S at most 20 significant bits (w <= 2^20), so x * w * 2^S has at most 44; for
int8, 8 + 24 + 20 = 52 bits <= 53. Python's round() on a float is round-half-even, exactly.
"""
import glob
import os
import struct
import sys

import cbor2

F32, F16, I8 = 85, 84, 72


def tensors_of(msg, key):
    out = []
    for t in msg[key]:
        data = t[3]
        if not isinstance(data, cbor2.CBORTag):
            raise SystemExit(f"tensor {t[1]!r}: data is not a typed array")
        b = data.value
        if data.tag == F32:
            vals = struct.unpack("<%df" % (len(b) // 4), b)
        elif data.tag == F16:
            vals = struct.unpack("<%de" % (len(b) // 2), b)
        elif data.tag == I8:
            vals = ("i8", struct.unpack("<%db" % len(b), b), t[4])
        else:
            raise SystemExit(f"tensor {t[1]!r}: unknown typed-array tag {data.tag}")
        out.append((t[1], list(t[2]), vals))
    return out


def load(path):
    with open(path, "rb") as f:
        return cbor2.loads(f.read())


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def main():
    d, rounds = sys.argv[1], int(sys.argv[2])
    s_bits = int(sys.argv[3]) if len(sys.argv) > 3 else 24
    wcap = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    lr = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    m0 = load(os.path.join(d, "model-1.cbor"))
    theta = [(name, shape, list(v)) for name, shape, v in tensors_of(m0, 4)]
    for r in range(1, rounds + 1):
        files = sorted(glob.glob(os.path.join(d, f"u-{r}-*.cbor")))
        if not files:
            raise SystemExit(f"round {r}: no update bodies")
        sums = [[0] * len(v) for _, _, v in theta]
        total_w = 0
        for fn in files:
            u = load(fn)
            if u[2] != r:
                raise SystemExit(f"{fn}: round {u[2]} != {r}")
            w = min(int(u[4]), wcap)
            if not 1 <= w <= 1 << 20:
                raise SystemExit(f"{fn}: weight {w}")
            total_w += w
            ws = w << s_bits  # an int; exact as a double (at most 20 significant bits)
            ts = tensors_of(u, 8)
            if [(n, s) for n, s, _ in ts] != [(n, s) for n, s, _ in theta]:
                raise SystemExit(f"{fn}: tensor names/shapes differ from the model")
            for k, (_, _, vals) in enumerate(ts):
                acc = sums[k]
                if isinstance(vals, tuple) and vals and vals[0] == "i8":
                    _, q, scale = vals
                    table = {qi: round(qi * scale * ws) for qi in set(q)}
                    sums[k] = [a + table[qi] for a, qi in zip(acc, q)]
                else:
                    sums[k] = [a + round(x * ws) for a, x in zip(acc, vals)]
        denom = float(total_w << s_bits)
        theta = [(n, s, [f32(t + lr * (float(c) / denom)) for t, c in zip(v, sk)])
                 for (n, s, v), sk in zip(theta, sums)]
        served = load(os.path.join(d, f"model-{r + 1}.cbor"))
        got = tensors_of(served, 4)
        for (n, _, want), (gn, _, have) in zip(theta, got):
            if n != gn:
                raise SystemExit(f"model {r + 1}: tensor {gn!r} where {n!r} expected")
            wb = struct.pack("<%df" % len(want), *want)
            hb = struct.pack("<%df" % len(have), *have)
            if wb != hb:
                bad = next(i for i in range(len(want)) if wb[4 * i:4 * i + 4] != hb[4 * i:4 * i + 4])
                raise SystemExit(f"model {r + 1} tensor {n}: coordinate {bad} served {have[bad]!r}, "
                                 f"reference {want[bad]!r} ({len(files)} updates, W={total_w})")
        print(f"round {r}: {len(files)} updates, W={total_w}: model {r + 1} equals the reference bit for bit")
    print("REFERENCE OK")


if __name__ == "__main__":
    main()
