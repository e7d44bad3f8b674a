#!/usr/bin/env python3
"""Checks a loopback capture (classic pcap) of the aggregator's UDP port, independently of tshark's
dissectors: the UDP payloads are walked record by record.

  pcap_check.py CAP PORT dtls  FILE...   every datagram to/from PORT is a sequence of whole DTLS
                                         records (content type 20-23, DTLS 1.2 outside epoch-0
                                         hellos, exact lengths), application data flows both ways,
                                         and no 16-byte window of any FILE (update/model bodies)
                                         appears anywhere in the capture.
  pcap_check.py CAP PORT plain FILE...   positive control: at least one window of every FILE
                                         appears in the capture (the search works).
Prints a one-line summary; exit 0 when the property holds, 1 otherwise."""
import struct
import sys


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        sys.exit(f"FAIL: {path}: not a pcap file ({len(data)} bytes)")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        sys.exit(f"FAIL: {path}: not a classic pcap file (capture with -F pcap)")
    linktype = struct.unpack(e + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, incl, orig = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        frame = data[off:off + incl]
        off += incl
        if incl != orig:
            sys.exit("FAIL: truncated frame in capture (snaplen too small)")
        yield linktype, frame
    return data


def udp_of(linktype, frame):
    """(sport, dport, payload) of a UDP/IP frame, else None."""
    if linktype == 1:  # Ethernet
        ethertype = struct.unpack(">H", frame[12:14])[0]
        ip = frame[14:]
    elif linktype == 113:  # Linux cooked v1
        ethertype = struct.unpack(">H", frame[14:16])[0]
        ip = frame[16:]
    elif linktype == 276:  # Linux cooked v2
        ethertype = struct.unpack(">H", frame[0:2])[0]
        ip = frame[20:]
    elif linktype == 0:  # BSD loopback
        ethertype = 0x0800 if frame[0] == 2 or frame[3] == 2 else 0x86DD
        ip = frame[4:]
    else:
        sys.exit(f"FAIL: unsupported link type {linktype}")
    if ethertype == 0x0800:
        if ip[9] != 17:
            return None
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        udp = ip[ihl:total]
    elif ethertype == 0x86DD:
        if ip[6] != 17:
            return None
        udp = ip[40:40 + struct.unpack(">H", ip[4:6])[0]]
    else:
        return None
    sport, dport, ulen = struct.unpack(">HHH", udp[:6])
    return sport, dport, udp[8:ulen]


def windows(path):
    """16-byte windows of a body at several offsets, skipping low-entropy spots (CBOR headers)."""
    with open(path, "rb") as f:
        b = f.read()
    out = []
    for frac in (0.3, 0.5, 0.7, 0.9):
        i = int(len(b) * frac)
        while i + 16 <= len(b) and len(set(b[i:i + 16])) < 10:
            i += 1
        if i + 16 <= len(b):
            out.append(b[i:i + 16])
    if 600 + 16 <= len(b):  # inside the first 1 KiB block (the positive control's plaintext POST)
        out.append(b[600:616])
    if not out:
        sys.exit(f"FAIL: {path}: no distinctive window (file of {len(b)} bytes)")
    return out


def main():
    if len(sys.argv) < 5 or sys.argv[3] not in ("dtls", "plain"):
        sys.exit(__doc__)
    cap, port, mode, files = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    with open(cap, "rb") as f:
        raw = f.read()
    n = to_srv = from_srv = 0
    types = {}
    appdata = {"to": 0, "from": 0}
    bad = []
    hello_v10 = 0
    for linktype, frame in packets(cap):
        u = udp_of(linktype, frame)
        if u is None or port not in (u[0], u[1]):
            continue
        sport, dport, p = u
        n += 1
        d = "to" if dport == port else "from"
        if d == "to":
            to_srv += 1
        else:
            from_srv += 1
        if mode != "dtls":
            continue
        i = 0
        if not p:
            bad.append(f"datagram {n}: empty")
        while i < len(p):
            if i + 13 > len(p):
                bad.append(f"datagram {n}: {len(p) - i} trailing bytes, not a record header")
                break
            ct = p[i]
            ver = p[i + 1:i + 3]
            epoch = struct.unpack(">H", p[i + 3:i + 5])[0]
            rlen = struct.unpack(">H", p[i + 11:i + 13])[0]
            if ct not in (20, 21, 22, 23):
                bad.append(f"datagram {n}: content type {ct}")
                break
            if i + 13 + rlen > len(p):
                bad.append(f"datagram {n}: record of {rlen} bytes overruns the datagram")
                break
            if ver != b"\xfe\xfd":
                # RFC 6347 4.2.1: the first ClientHello and HelloVerifyRequest may carry DTLS 1.0
                # (0xfeff) in epoch 0, before a version is negotiated; nothing else may.
                body = p[i + 13:i + 13 + rlen]
                if ver == b"\xfe\xff" and ct == 22 and epoch == 0 and body[:1] in (b"\x01", b"\x03"):
                    hello_v10 += 1
                else:
                    bad.append(f"datagram {n}: version {ver.hex()} type {ct} epoch {epoch}")
                    break
            if ct == 23:
                if epoch == 0:
                    bad.append(f"datagram {n}: application data in epoch 0 (unencrypted)")
                appdata[d] += 1
            types[ct] = types.get(ct, 0) + 1
            i += 13 + rlen
    found = []
    for fpath in files:
        hits = [w.hex() for w in windows(fpath) if w in raw]
        found.append((fpath, hits))
    print(f"datagrams={n} to_server={to_srv} from_server={from_srv} record_types={sorted(types.items())} "
          f"appdata_to={appdata['to']} appdata_from={appdata['from']} hello_dtls10={hello_v10} "
          f"plaintext_hits={sum(len(h) for _, h in found)}")
    if n == 0 or to_srv == 0 or from_srv == 0:
        print("FAIL: the capture holds no traffic in one direction: capturing did not work")
        return 1
    if mode == "dtls":
        if appdata["to"] == 0 or appdata["from"] == 0:
            bad.append("no application data in one direction")
        for fpath, hits in found:
            if hits:
                bad.append(f"plaintext of {fpath} on the wire: {hits[0]}")
        for b in bad[:10]:
            print("FAIL:", b)
        return 1 if bad else 0
    missing = [fpath for fpath, hits in found if not hits]
    for fpath in missing:
        print(f"FAIL: positive control: no window of {fpath} found in a plaintext capture")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
