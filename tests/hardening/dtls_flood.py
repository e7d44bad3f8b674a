#!/usr/bin/env python3
"""Handshake flood from one address: N UDP sockets on 127.0.0.1 each send a DTLS 1.2 ClientHello
(PSK and ECDHE-ECDSA suites), answer the HelloVerifyRequest with the cookie (so that the server
commits handshake state), read the server's flight and abandon the handshake. Repeats for ROUNDS.
Prints one line: hellos sent, HelloVerifyRequests and ServerHellos received.
  dtls_flood.py PORT SOCKETS ROUNDS"""
import os
import select
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


def main():
    port, nsock, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    sent = hvr = sh = 0
    for _ in range(rounds):
        socks = []
        for _ in range(nsock):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            s.connect(("127.0.0.1", port))
            s.send(client_hello(b"", 0))
            sent += 1
            socks.append(s)
        deadline = time.time() + 2.0
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
                    c = d[13 + 12 + 2 + 1:13 + 12 + 2 + 1 + d[13 + 12 + 2]]
                    s.send(client_hello(c, 1))
                    sent += 1
                elif 2 in t:
                    sh += 1
                    pending.discard(s)  # the server holds state for this one: abandon it
        for s in socks:
            s.close()
    print(f"hellos_sent={sent} hello_verify_requests={hvr} server_hellos={sh}")


if __name__ == "__main__":
    main()
