#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_coap_server: valid CoAP request sequences (RFC 7252, 7959, 7641,
9177) against the harness's aggregator. Update bodies are the valid updates of
corpus/fuzz_update_handler (same model: w 4x4, b 4; their first byte is the harness selector there
and is dropped here). Input format of the harness: a client selector byte, then datagrams, each
prefixed by its 2-byte length.

    python3 tests/fuzz/gen_coap_seeds.py tests/fuzz/corpus/fuzz_update_handler tests/fuzz/corpus/fuzz_coap_server
"""
import os
import struct
import sys

CON, NON, ACK, RST = 0, 1, 2, 3
GET, POST = 1, 2
OBSERVE, ETAG, URI_PATH, CONTENT_FORMAT, URI_QUERY = 6, 4, 11, 12, 15
Q_BLOCK1, BLOCK2, BLOCK1, SIZE2, Q_BLOCK2, SIZE1 = 19, 23, 27, 28, 31, 60


def uint(v):
    if v == 0:
        return b""
    n = (v.bit_length() + 7) // 8
    return v.to_bytes(n, "big")


def nib(v):
    if v < 13:
        return v, b""
    if v < 269:
        return 13, bytes([v - 13])
    return 14, struct.pack(">H", v - 269)


def pdu(typ, code, mid, token, options, payload=b""):
    out = bytes([0x40 | (typ << 4) | len(token), code]) + struct.pack(">H", mid) + token
    last = 0
    for num, val in sorted(options, key=lambda o: o[0]):
        d, dx = nib(num - last)
        l, lx = nib(len(val))
        out += bytes([(d << 4) | l]) + dx + lx + val
        last = num
    if payload:
        out += b"\xff" + payload
    return out


def path(p):
    return [(URI_PATH, s.encode()) for s in p.split("/")]


def block(num, more, szx):
    return uint((num << 4) | (more << 3) | szx)


def seq(*dgrams, peer=0):
    """Byte 0: which of the harness's 4 client sockets sends the datagrams."""
    return bytes([peer]) + b"".join(struct.pack(">H", len(d)) + d for d in dgrams)


def block1_upload(body, store, szx, mid0, tok, typ=CON, opt=BLOCK1, skip=(), dup=()):
    size = 16 << szx
    n = (len(body) + size - 1) // size
    out = []
    for i in range(n):
        if i in skip:
            continue
        part = body[i * size:(i + 1) * size]
        opts = path("v1/update") + [(CONTENT_FORMAT, uint(60)), (opt, block(i, int(i < n - 1), szx))]
        if store:
            opts.append((URI_QUERY, ("store=" + store).encode()))
        if i == 0:
            opts.append((SIZE1, uint(len(body))))
        d = pdu(typ, POST, mid0 + i, tok, opts, part)
        out.append(d)
        if i in dup:
            out.append(d)
    return out


def main():
    src, dst = sys.argv[1], sys.argv[2]
    os.makedirs(dst, exist_ok=True)
    bodies = {}
    for name in sorted(os.listdir(src)):
        with open(os.path.join(src, name), "rb") as f:
            b = f.read()
        bodies[name] = ("store-%03d" % (b[0] & 3), b[1:])
    seeds = {}
    tok = b"\x01\x02"
    seeds["get-round"] = seq(pdu(CON, GET, 1, tok, path("v1/round")))
    seeds["get-status"] = seq(pdu(CON, GET, 2, tok, path("v1/status") + [(URI_QUERY, b"store=store-001")]))
    seeds["get-model"] = seq(pdu(CON, GET, 3, tok, path("v1/model")))
    seeds["get-model-etag"] = seq(pdu(CON, GET, 4, tok, path("v1/model") + [(ETAG, bytes(range(1, 9)))]))
    seeds["get-model-block2"] = seq(*[pdu(CON, GET, 10 + i, tok, path("v1/model") + [(BLOCK2, block(i, 0, 0))])
                                      for i in range(4)])
    seeds["get-model-qblock2"] = seq(pdu(CON, GET, 20, tok, path("v1/model") + [(Q_BLOCK2, block(0, 0, 1))]),
                                     pdu(NON, GET, 21, tok, path("v1/model") + [(Q_BLOCK2, block(2, 0, 1))]))
    seeds["observe-round"] = seq(pdu(CON, GET, 30, tok, path("v1/round") + [(OBSERVE, b"")]),
                                 pdu(CON, GET, 31, tok, path("v1/round") + [(OBSERVE, uint(1))]))
    seeds["observe-model-non"] = seq(pdu(NON, GET, 32, b"\x07", path("v1/model") + [(OBSERVE, b"")]))
    seeds["ack-rst"] = seq(pdu(ACK, 0, 33, b"", []), pdu(RST, 0, 34, b"", []), pdu(CON, 0, 35, b"", []))
    for i, (name, (store, body)) in enumerate(sorted(bodies.items())):
        q = [(URI_QUERY, ("store=" + store).encode())]
        seeds["post-" + name] = seq(pdu(CON, POST, 40 + i, tok, path("v1/update") + [(CONTENT_FORMAT, uint(60))] + q,
                                        body))
    names = sorted(bodies)
    store, body = bodies[names[0]]
    seeds["post-block1"] = seq(*block1_upload(body, store, 0, 100, b"\x0a"))
    seeds["post-block1-64"] = seq(*block1_upload(body, store, 2, 110, b"\x0b"))
    seeds["post-block1-dup"] = seq(*block1_upload(body, store, 0, 120, b"\x0c", dup=(1, 3)))
    seeds["post-block1-gap"] = seq(*block1_upload(body, store, 0, 130, b"\x0d", skip=(2,)))
    seeds["post-qblock1-non"] = seq(*block1_upload(body, store, 0, 140, b"\x0e", typ=NON, opt=Q_BLOCK1))
    seeds["post-no-identity"] = seq(pdu(CON, POST, 150, tok, path("v1/update") + [(CONTENT_FORMAT, uint(60))], body))
    seeds["post-wrong-cf"] = seq(pdu(CON, POST, 151, tok, path("v1/update") + [(CONTENT_FORMAT, uint(50)),
                                 (URI_QUERY, ("store=" + store).encode())], body))
    seeds["post-oversized"] = seq(*block1_upload(b"\x00" * 5000, store, 6, 160, b"\x0f"))
    # A whole round: three stores upload (target 3), the round closes, observers are notified.
    round1 = [bodies[n] for n in names if bodies[n][1]]
    dg = [pdu(CON, GET, 200, b"\x20", path("v1/round") + [(OBSERVE, b"")])]
    seen = set()
    mid = 201
    for store, body in round1:
        if store in seen or store == "store-000":
            continue
        seen.add(store)
        dg.append(pdu(CON, POST, mid, bytes([mid & 0xff]), path("v1/update") + [(CONTENT_FORMAT, uint(60)),
                  (URI_QUERY, ("store=" + store).encode())], body))
        mid += 1
    dg.append(pdu(CON, GET, mid, b"\x21", path("v1/status") + [(URI_QUERY, b"store=store-001")]))
    seeds["round-close"] = seq(*dg)
    for name, data in seeds.items():
        with open(os.path.join(dst, name), "wb") as f:
            f.write(data)
    print("%d seeds in %s" % (len(seeds), dst))


if __name__ == "__main__":
    main()
