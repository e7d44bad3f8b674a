#!/usr/bin/env python3
"""Handshake flood from one address: N UDP sockets on 127.0.0.1 each send a DTLS 1.2 ClientHello
(PSK and ECDHE-ECDSA suites), answer the HelloVerifyRequest with the cookie (so that the server
commits handshake state), read the server's flight and abandon the handshake. Repeats for ROUNDS.
Prints one line: hellos sent, HelloVerifyRequests and ServerHellos received.
  dtls_flood.py PORT SOCKETS ROUNDS [--bind ADDR] [--seconds T] [--wait S]
--bind: source address (e.g. 127.0.0.2, so that a test can tell the flood from honest stores on
127.0.0.1); --seconds: repeat rounds until T seconds have passed (ROUNDS is then a minimum);
--wait: how long each round waits for the server's answers (default 2 s); --cookie no: never
answer the HelloVerifyRequest (sessions stay before the cookie exchange)."""
import os
import select
import signal
import socket
import struct
import sys
import time

SUITES = [0xC0A8, 0x00A8, 0xC0AE, 0xC02B, 0xC0AC]  # PSK-CCM8, PSK-GCM, ECDHE-ECDSA CCM8/GCM/CCM


def client_hello(cookie, seq):
    body = b"\xfe\xfd" + os.urandom(32) + b"\x00" + bytes([len(cookie)]) + cookie
    cs = b"".join(struct.pack(">H", s) for s in SUITES)
    body += struct.pack(">H", len(cs)) + cs + b"\x01\x00"
    # supported_groups (secp256r1), ec_point_formats (uncompressed), signature_algorithms (ecdsa+sha256)
    ext = struct.pack(">HHH", 10, 4, 2) + struct.pack(">H", 23)
    ext += struct.pack(">HHB", 11, 2, 1) + b"\x00"
    ext += struct.pack(">HHH", 13, 4, 2) + b"\x04\x03"
    body += struct.pack(">H", len(ext)) + ext
    n = len(body)
    hs = struct.pack(">B", 1) + n.to_bytes(3, "big") + struct.pack(">H", seq) + (0).to_bytes(3, "big") \
        + n.to_bytes(3, "big") + body
    return b"\x16\xfe\xfd" + struct.pack(">H", 0) + seq.to_bytes(6, "big") + struct.pack(">H", len(hs)) + hs


def handshake_types(dgram):
    i, out = 0, []
    while i + 13 <= len(dgram):
        ct, rlen = dgram[i], struct.unpack(">H", dgram[i + 11:i + 13])[0]
        if ct == 22 and rlen >= 1:
            out.append(dgram[i + 13])
        i += 13 + rlen
    return out


def _stop(*_):
    raise KeyboardInterrupt


def main():
    port, nsock, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    opts = dict(zip(sys.argv[4::2], sys.argv[5::2]))
    bind = opts.get("--bind")
    until = time.time() + float(opts.get("--seconds", 0))
    wait = float(opts.get("--wait", 2.0))
    answer = opts.get("--cookie", "yes") != "no"
    stats = {"sent": 0, "hvr": 0, "sh": 0, "done": 0}
    # SIGTERM (a test stopping the flood) still prints the counts.
    signal.signal(signal.SIGTERM, _stop)
    try:
        flood(port, nsock, rounds, bind, until, wait, answer, stats)
    except KeyboardInterrupt:
        pass
    print(f"hellos_sent={stats['sent']} hello_verify_requests={stats['hvr']} server_hellos={stats['sh']} "
          f"rounds={stats['done']}", flush=True)


def flood(port, nsock, rounds, bind, until, wait, answer, stats):
    sent = hvr = sh = done = 0
    while done < rounds or time.time() < until:
        done += 1
        stats.update(sent=sent, hvr=hvr, sh=sh, done=done)
        socks = []
        for _ in range(nsock):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            if bind:
                s.bind((bind, 0))
            s.connect(("127.0.0.1", port))
            s.send(client_hello(b"", 0))
            sent += 1
            socks.append(s)
        deadline = time.time() + wait
        pending = set(socks)
        while pending and time.time() < deadline:
            r, _, _ = select.select(list(pending), [], [], 0.1)
            for s in r:
                try:
                    d = s.recv(4096)
                except OSError:
                    pending.discard(s)
                    continue
                t = handshake_types(d)
                if 3 in t:  # HelloVerifyRequest: cookie at offset 13+12+2
                    hvr += 1
                    if not answer:
                        pending.discard(s)
                        continue
                    c = d[13 + 12 + 2 + 1:13 + 12 + 2 + 1 + d[13 + 12 + 2]]
                    s.send(client_hello(c, 1))
                    sent += 1
                elif 2 in t:
                    sh += 1
                    pending.discard(s)  # the server holds state for this one: abandon it
        for s in socks:
            s.close()
    stats.update(sent=sent, hvr=hvr, sh=sh, done=done)


if __name__ == "__main__":
    main()
