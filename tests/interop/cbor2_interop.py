#!/usr/bin/python3
"""Interoperability of the storefl codec with cbor2, a CBOR implementation no one here wrote.

  cbor2_interop.py check DIR   decode DIR/<name>.cbor (written by codec_interop) with cbor2 and
                               check every key, value, tag and typed-array byte against the sample
                               values below (the same values as tests/unit/codec_samples.h); the
                               float16 bytes are produced independently with struct's 'e' format.
  cbor2_interop.py write DIR   encode the same messages with cbor2 (keys in other orders, floats in
                               other widths, int8 quantized here) as DIR/py_<name>.cbor for
                               `codec_interop read`, plus bodies the C decoder must refuse.
"""
import hashlib
import math
import struct
import sys

import cbor2

F32, F16, I8 = 85, 84, 72
DTYPES = {"f32": F32, "f16": F16, "i8": I8}

W = [1.5, -0.0, 65504.0, 2.0**-24, -6.097555160522461e-05, 0.333251953125]
B = [0.0, -2.0, 1024.0]
S = [-7.25]
TENSORS = [("dense/w", [2, 3], W), ("dense/b", [3], B), ("emb\u00e9/empty", [0, 4], []), ("s", [], S)]


def digest(seed):
    return bytes((seed + 7 * i) & 0xFF for i in range(32))


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def quantize(vals):
    """Symmetric int8: scale = max|x|/127 in float32, q = round-half-even(x/scale)."""
    m = max((abs(v) for v in vals), default=0.0)
    scale = f32(m / 127.0) if m else 1.0
    return scale, [max(-127, min(127, round(v / scale))) for v in vals]


def tensor_data(vals, dt):
    if dt == F32:
        return struct.pack("<%df" % len(vals), *vals), None
    if dt == F16:
        return struct.pack("<%de" % len(vals), *vals), None
    scale, q = quantize(vals)
    return struct.pack("<%db" % len(q), *q), scale


class Failure(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failure(what)


def check_keys(obj, n, name):
    expect(isinstance(obj, dict), f"{name}: top level is {type(obj).__name__}, not a map")
    keys = list(obj.keys())
    expect(keys == list(range(n)), f"{name}: keys {keys}, want 0..{n - 1} in ascending order")
    expect(obj[0] == 1 and type(obj[0]) is int, f"{name}: protocol version {obj[0]!r}")


def check_float64(raw, value, name):
    """Our rule: every double is written as float64 (0xfb), so the exact bytes must appear."""
    expect(b"\xfb" + struct.pack(">d", value) in raw, f"{name}: {value!r} not encoded as float64")


def check_tensors(arr, dt, name):
    expect(isinstance(arr, list) and len(arr) == 4, f"{name}: tensors {arr!r}")
    for t, (tname, shape, vals) in zip(arr, TENSORS):
        want_keys = [1, 2, 3, 4] if dt == I8 else [1, 2, 3]
        expect(list(t.keys()) == want_keys, f"{name}/{tname}: tensor keys {list(t.keys())}")
        expect(t[1] == tname, f"{name}: tensor name {t[1]!r} != {tname!r}")
        expect(t[2] == shape, f"{name}/{tname}: shape {t[2]!r} != {shape!r}")
        data = t[3]
        expect(isinstance(data, cbor2.CBORTag) and data.tag == dt, f"{name}/{tname}: data tag {data!r}")
        expect(isinstance(data.value, bytes), f"{name}/{tname}: typed array is not a byte string")
        if dt != I8:
            want, _ = tensor_data(vals, dt)
            expect(data.value == want, f"{name}/{tname}: typed-array bytes {data.value.hex()} != {want.hex()}")
            if dt == F32 and vals:
                got = struct.unpack("<%df" % len(vals), data.value)
                expect([math.copysign(1, v) for v in got] == [math.copysign(1, v) for v in vals],
                       f"{name}/{tname}: signs of zero differ")
            continue
        scale = t[4]
        expect(isinstance(scale, float) and scale > 0, f"{name}/{tname}: scale {scale!r}")
        expect(f32(scale) == scale, f"{name}/{tname}: scale {scale!r} is not a float32 value")
        q = struct.unpack("<%db" % len(data.value), data.value)
        expect(len(q) == len(vals), f"{name}/{tname}: {len(q)} int8 values for {len(vals)}")
        pscale, pq = quantize(vals)
        for k, (qi, v) in enumerate(zip(q, vals)):
            if tname == "dense/w" and k == 1:
                expect(qi == -128, f"{name}: planted -128 is {qi}")
            else:
                expect(abs(qi * scale - v) <= scale / 2 + 1e-6, f"{name}/{tname}[{k}]: {qi}*{scale} vs {v}")
        expect(abs(pscale - scale) <= 1e-12 * max(1.0, scale), f"{name}/{tname}: scale {scale} vs python {pscale}")


def check(d):
    def load(name):
        with open(f"{d}/{name}.cbor", "rb") as f:
            raw = f.read()
        return raw, cbor2.loads(raw)  # cbor2 rejects trailing data itself

    for dn, dt in DTYPES.items():
        raw, m = load(f"model_{dn}")
        check_keys(m, 5, f"model_{dn}")
        expect(m[1] == 42 and m[2] == digest(1) and m[3] == "wide-deep-v1", f"model_{dn}: header {m}")
        check_tensors(m[4], dt, f"model_{dn}")

        raw, u = load(f"update_{dn}")
        check_keys(u, 9, f"update_{dn}")
        expect([u[k] for k in range(1, 6)] == ["store-0042.eu_west", 7, 42, 12345, 1], f"update_{dn}: {u}")
        expect(u[6] == 0.5 and u[7] == 0.8, f"update_{dn}: clip/sigma {u[6]} {u[7]}")
        check_float64(raw, 0.5, f"update_{dn}")
        check_float64(raw, 0.8, f"update_{dn}")
        check_tensors(u[8], dt, f"update_{dn}")

    raw, r = load("round")
    check_keys(r, 18, "round")
    want = [None, 7, 1, 42, digest(2), 1795000000123, 0.25, 2, 1.0, 1.1, 1e-5, 3, 100, 20, 0.05, I8, 8 << 20, 12]
    for k in range(1, 18):
        expect(r[k] == want[k] and type(r[k]) is type(want[k]), f"round key {k}: {r[k]!r} != {want[k]!r}")
    for v in (0.25, 1.0, 1.1, 1e-5, 0.05):
        check_float64(raw, v, "round")

    raw, c = load("receipt")
    check_keys(c, 7, "receipt")
    expect([c[k] for k in range(1, 7)] == ["S1", 7, digest(3), -1, 5, True], f"receipt: {c}")
    expect(c[6] is True, "receipt: duplicate is not a CBOR bool")

    raw, e = load("error")
    check_keys(e, 5, "error")
    expect([e[k] for k in range(1, 5)] == [503, "unavailable", "disk full \u2014 retry later", 30], f"error: {e}")

    raw, s = load("status")
    check_keys(s, 7, "status")
    expect([s[k] for k in range(1, 7)] == [7, 2, 43, 100, 250, "ok"], f"status: {s}")

    raw, le = load("ledger")
    check_keys(le, 15, "ledger")
    want = [None, 3, 7, 2, 0.25, 1.1, 1.0, 1e-5, 1795000000999, digest(4), digest(5), ["S1", "S10", "S2"],
            [["S1", 0.5], ["S10", 0.0], ["S3", 3.75]], digest(6), bytes([0x30, 6, 2, 1, 1, 2, 1, 2])]
    for k in range(1, 15):
        expect(le[k] == want[k], f"ledger key {k}: {le[k]!r} != {want[k]!r}")
    # The signed part is the canonical encoding of keys 0..12. cbor2's default encoder writes
    # definite lengths, shortest integers, float64 floats and dict keys in insertion order: with
    # ascending keys that is exactly our canonical form, so it must reproduce our bytes.
    signed = {k: le[k] for k in range(13)}
    mine = cbor2.dumps(signed)
    with open(f"{d}/ledger_signed_part.cbor", "rb") as f:
        theirs = f.read()
    expect(mine == theirs, f"ledger signed part differs:\n cbor2 {mine.hex()}\n C     {theirs.hex()}")
    expect(raw.startswith(b"\xaf" + theirs[1:]), "full entry does not extend the signed part")
    with open(f"{d}/ledger_hash.cbor", "rb") as f:
        expect(f.read() == hashlib.sha256(mine).digest(), "ledger hash differs from SHA-256 of the signed part")
    print("cbor2_interop: every C-encoded message checked field by field")


def tensors_py(dt, reverse=False):
    out = []
    for tname, shape, vals in TENSORS:
        data, scale = tensor_data(vals, dt)
        if dt == I8 and tname == "dense/w":
            data = data[:1] + struct.pack("<b", -128) + data[2:]
        t = {1: tname, 2: shape, 3: cbor2.CBORTag(dt, data)}
        if scale is not None:
            t[4] = scale  # cbor2 writes float64; the decoder accepts any float width
        if reverse:
            t = dict(reversed(list(t.items())))
        out.append(t)
    return out


def write(d):
    def dump(name, obj, **kw):
        with open(f"{d}/py_{name}.cbor", "wb") as f:
            f.write(cbor2.dumps(obj, **kw))

    for dn, dt in DTYPES.items():
        dump(f"model_{dn}", {4: tensors_py(dt, reverse=True), 3: "wide-deep-v1", 2: digest(1), 1: 42, 0: 1})
        dump(f"update_{dn}", {0: 1, 8: tensors_py(dt), 1: "store-0042.eu_west", 2: 7, 3: 42, 4: 12345, 5: 1,
                              6: 0.5, 7: 0.8})
    rnd = {0: 1, 1: 7, 2: 1, 3: 42, 4: digest(2), 5: 1795000000123, 6: 0.25, 7: 2, 8: 1.0, 9: 1.1, 10: 1e-5,
           11: 3, 12: 100, 13: 20, 14: 0.05, 15: I8, 16: 8 << 20, 17: 12}
    dump("round", rnd, canonical=True)  # shortest floats: 0.25 and 1.0 become float16
    dump("receipt", {6: True, 5: 5, 4: -1, 3: digest(3), 2: 7, 1: "S1", 0: 1})
    dump("error", {0: 1, 1: 503, 2: "unavailable", 3: "disk full \u2014 retry later", 4: 30})
    status = {0: 1, 1: 7, 2: 2, 3: 43, 4: 100, 5: 250, 6: "ok"}
    dump("status", dict(reversed(list(status.items()))))
    le = {0: 1, 1: 3, 2: 7, 3: 2, 4: 0.25, 5: 1.1, 6: 1.0, 7: 1e-5, 8: 1795000000999, 9: digest(4),
          10: digest(5), 11: ["S1", "S10", "S2"], 12: [["S1", 0.5], ["S10", 0.0], ["S3", 3.75]]}
    le[13] = hashlib.sha256(cbor2.dumps(le)).digest()
    le[14] = bytes([0x30, 6, 2, 1, 1, 2, 1, 2])
    dump("ledger", le)

    # bodies the C decoder must refuse, each with its code
    bad = {0: 1, 8: tensors_py(F32), 1: "S1", 2: 7, 3: 42, 4: 1, 5: 1, 6: 0.5, 7: 0.8}
    bad[8][0][3] = cbor2.CBORTag(F32, struct.pack("<6f", 1, 2, float("nan"), 4, 5, 6))
    dump("bad_nan_update", bad)
    dump("bad_version_status", {**status, 0: 2})
    bad = {0: 1, 8: tensors_py(F32), 1: "S1", 2: 7, 3: 42, 4: 1, 5: 1, 6: 0.5, 7: 0.8}
    bad[8][1][3] = cbor2.CBORTag(86, bad[8][1][3].value)  # float32 big-endian: not ours
    dump("bad_tag_update", bad)
    bad = {0: 1, 8: tensors_py(F32), 1: "S1", 2: 7, 3: 42, 4: 1, 5: 1, 6: 0.5, 7: 0.8}
    bad[8][0][2] = [3, 3]
    dump("bad_shape_update", bad)
    dump("bad_unknown_key_receipt", {0: 1, 1: "S1", 2: 7, 3: digest(3), 4: -1, 5: 5, 6: True, 7: "extra"})


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("check", "write"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        (check if sys.argv[1] == "check" else write)(sys.argv[2])
    except Failure as e:
        print(f"cbor2_interop: FAIL: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
