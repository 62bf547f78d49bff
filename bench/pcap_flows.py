"""Long-lived flows in captures: the pcap reader's memory with one flow that never ends.

    python -m bench.pcap_flows [--sizes 125000 1000000]

A DNS tunnel or a C2 channel over one keep-alive connection is a single flow for hours;
the reader must not hold its transactions until it ends. For each size N this writes
three generated captures (one 5-tuple each, packets 5 ms apart) into a temporary folder:

* ``dns-tunnel``: N DNS query/response pairs, iodine-like names, a TXT answer each;
* ``http-keepalive``: N HTTP request/response pairs on one TCP connection;
* ``http-client-only``: N HTTP requests on one TCP connection whose server side the
  capture missed (no response ever comes).

Each is read in a fresh process twice: by the pcap reader alone with a sink that drops
the rows (the reader's own peak memory), and by ``ingest_file`` into a new DuckDB store
(end to end; DuckDB holds a file's rows until its transaction commits). The peak of
each process and the rows written are printed.
"""

from __future__ import annotations

import argparse
import os
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.common import CountingSink, machine
from bench.pcap import measure

CLIENT, SERVER, RESOLVER = bytes([10, 0, 0, 5]), bytes([203, 0, 113, 9]), bytes([10, 0, 0, 53])
ETHERNET = b"\x04" * 6 + b"\x02" * 6 + b"\x08\x00"
ACK, PUSH, SYN, FIN = 0x10, 0x08, 0x02, 0x01


def _frame(src: bytes, dst: bytes, proto: int, l4: bytes) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0, src, dst)
    return ETHERNET + ip + l4


def _write(path: Path, frames: Iterator[bytes]) -> int:
    """A classic pcap (microseconds, Ethernet) of ``frames``, 5 ms apart; packets written."""
    n = 0
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        out = []
        for frame in frames:
            us = 1_700_000_000_000_000 + n * 5000
            out.append(struct.pack("<IIII", us // 1_000_000, us % 1_000_000, *[len(frame)] * 2))
            out.append(frame)
            n += 1
            if len(out) >= 20_000:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))
    return n


def dns_tunnel(pairs: int) -> Iterator[bytes]:
    """Query/response pairs between one client port and the resolver's port 53."""
    for i in range(pairs):
        labels = [b"%032x" % (i * 2654435761 % (1 << 128)), b"t", b"example", b"org"]
        name = b"".join(bytes([len(x)]) + x for x in labels) + b"\0"
        question = name + b"\x00\x10\x00\x01"
        query = struct.pack("!HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + question
        answer = b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x00\x00\x05\x04abcd"
        reply = struct.pack("!HHHHHH", i & 0xFFFF, 0x8180, 1, 1, 0, 0) + question + answer
        for src, dst, sport, dport, data in (
            (CLIENT, RESOLVER, 40000, 53, query),
            (RESOLVER, CLIENT, 53, 40000, reply),
        ):
            udp = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
            yield _frame(src, dst, 17, udp)


def http_connection(requests: int, responses: bool) -> Iterator[bytes]:
    """One TCP connection: handshake, ``requests`` requests (each answered if
    ``responses``), FIN both ways."""
    seq = {CLIENT: 1000, SERVER: 5000}

    def segment(src: bytes, flags: int, data: bytes = b"") -> bytes:
        dst = SERVER if src == CLIENT else CLIENT
        sport, dport = (40000, 80) if src == CLIENT else (80, 40000)
        tcp = struct.pack(
            "!HHIIBBHHH", sport, dport, seq[src], seq[dst], 5 << 4, flags, 65535, 0, 0
        )
        seq[src] = (seq[src] + len(data) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
        return _frame(src, dst, 6, tcp + data)

    yield segment(CLIENT, SYN)
    if responses:
        yield segment(SERVER, SYN | ACK)
    yield segment(CLIENT, ACK)
    for k in range(requests):
        yield segment(CLIENT, PUSH | ACK, b"GET /b/%d HTTP/1.1\r\nHost: c2.example\r\n\r\n" % k)
        if responses:
            yield segment(SERVER, PUSH | ACK, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    yield segment(CLIENT, FIN | ACK)
    if responses:
        yield segment(SERVER, FIN | ACK)


CAPTURES: dict[str, Callable[[int], Iterator[bytes]]] = {
    "dns-tunnel": dns_tunnel,
    "http-keepalive": lambda n: http_connection(n, True),
    "http-client-only": lambda n: http_connection(n, False),
}


def read_only(path: Path) -> str:
    from vigile.ingest.base import SourceFile
    from vigile.ingest.pcap import PcapReader

    sink = CountingSink()
    PcapReader().read(SourceFile.probe(path), sink)
    return ", ".join(f"{n:,} {t}" for t, n in sorted(sink.rows.items()))


def end_to_end(path: Path) -> str:
    from vigile.ingest import ingest_file, registered_readers
    from vigile.store.duckdb import DuckDBStore

    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp) / "bench.duckdb")
        result = ingest_file(store, path, registered_readers())
        store.close()
    return ", ".join(f"{n:,} {t}" for t, n in sorted(result.rows.items()) if n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[125_000, 1_000_000], help="transactions"
    )
    args = parser.parse_args()
    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f} at the start")
    print("| capture | transactions | packets | MB | reader peak | end-to-end peak | rows |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, frames in CAPTURES.items():
            for size in args.sizes:
                path = Path(tmp) / f"{name}-{size}.pcap"
                packets = _write(path, frames(size))
                reader = measure(read_only, path)
                whole = measure(end_to_end, path)
                print(
                    f"| {name} | {size:,} | {packets:,} | {path.stat().st_size / 1e6:,.0f} "
                    f"| {reader[2] / 1024:,.0f} MiB | {whole[2] / 1024:,.0f} MiB "
                    f"| {whole[3]} |",
                    flush=True,
                )
                path.unlink()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
