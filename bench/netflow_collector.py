"""NetFlow collector load test: IPFIX over loopback at rising rates.

A generator sends IPFIX messages (30 flow records each, softflowd's IPv4 template)
to ``vigile collect``'s collector running in its own process, step by step at
rising rates. After each step it waits for the collector to drain, then compares
what was sent with what arrived: the highest rate with zero loss is reported, and
above it the loss must be counted exactly, both by the kernel drop counter
(datagrams) and by the IPFIX sequence numbers (flows). Stops by itself within
60 s. Target: >= 100,000 flows/s on one core.

    .venv/bin/python -m bench.netflow_collector [--step-seconds 4] [--max-seconds 55]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import socket
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import machine

RECORDS = 30
FIELDS = [
    (8, 4),
    (12, 4),
    (22, 4),
    (21, 4),
    (1, 4),
    (2, 4),
    (10, 4),
    (14, 4),
    (61, 1),
    (136, 1),
    (7, 2),
    (11, 2),
    (4, 1),
    (6, 1),
    (60, 1),
    (5, 1),
]  # softflowd's IPv4 template
RATES = [25_000, 50_000, 100_000, 150_000, 200_000, 300_000, 400_000, 600_000]
# counters shared with the collector process
DATAGRAMS, FLOWS, DROPPED, LOST, MALFORMED, ROWS, RSS_KB, CPU_MS = range(8)


def collector_main(port: Any, shared: Any, stop: Any, db: str) -> None:
    from vigile.ingest.collector import Collector
    from vigile.store.duckdb import DuckDBStore

    store = DuckDBStore(db)
    collector = Collector(store, "127.0.0.1", 0)
    port.value = collector.port

    def publish(c: Any) -> None:
        shared[DATAGRAMS], shared[FLOWS], shared[LOST] = c.datagrams, c.flows, c.lost
        shared[DROPPED], shared[MALFORMED] = c.dropped or 0, c.malformed
        shared[ROWS] = c.rows_written
        if stop.is_set():
            collector.stop()

    collector.serve(on_tick=publish, tick=0.05)
    c = collector.close()
    publish(c)
    shared[ROWS] = store.count("conn")
    store.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    shared[RSS_KB] = usage.ru_maxrss
    shared[CPU_MS] = int((usage.ru_utime + usage.ru_stime) * 1000)


def build_messages(n: int = 64) -> list[bytearray]:
    """``n`` distinct messages; like softflowd, only the first carries the template
    (and the options record giving the exporter's start time)."""
    tmpl = struct.pack("!HH", 1024, len(FIELDS)) + b"".join(struct.pack("!HH", *f) for f in FIELDS)
    tset = struct.pack("!HH", 2, 4 + len(tmpl)) + tmpl
    opt = struct.pack("!HHHHHHH", 256, 2, 1, 143, 4, 160, 8)
    tset += struct.pack("!HH", 3, 4 + len(opt)) + opt
    tset += struct.pack("!HHIQ", 256, 16, 1, int(time.time() * 1000) - 60_000)
    out = []
    for m in range(n):
        recs = b""
        for i in range(RECORDS):
            src = bytes([10, m % 250, i, 1])
            dst = bytes([192, 0, 2, (m + i) % 250])
            recs += src + dst + struct.pack("!IIIIII", 1000, 2000, 1500 + i, 10 + i, 0, 0)
            recs += struct.pack("!BBHHBBBB", 0, 0, 40000 + i, 443, 6, 0x1B, 0, 0)
        dset = struct.pack("!HH", 1024, 4 + len(recs)) + recs
        body = (tset if m == 0 else b"") + dset
        out.append(
            bytearray(struct.pack("!HHIII", 10, 16 + len(body), int(time.time()), 0, 0) + body)
        )
    return out


def send_step(
    port: int, rate: int, seconds: float, seq: int, messages: list[bytearray]
) -> tuple[int, int]:
    """Send ``rate`` flows/s for ``seconds`` in 1 ms slots; returns (datagrams, next seq)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    per_second = rate / RECORDS
    start = time.perf_counter()
    sent = 0
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
        due = int(elapsed * per_second)
        while sent < due:
            msg = messages[sent % len(messages)]  # message 0 refreshes the template
            struct.pack_into("!I", msg, 8, seq & 0xFFFFFFFF)
            sock.sendto(msg, ("127.0.0.1", port))
            seq += RECORDS
            sent += 1
        time.sleep(0.0005)
    sock.close()
    return sent, seq


def wait_drained(shared: Any, expected: int, timeout: float = 10.0) -> float:
    """Wait until every datagram is accounted for (received or dropped) or nothing moves."""
    start = time.perf_counter()
    last, still = -1, time.perf_counter()
    while time.perf_counter() - start < timeout:
        seen = shared[DATAGRAMS] + shared[DROPPED]
        if seen >= expected:
            break
        if seen != last:
            last, still = seen, time.perf_counter()
        elif time.perf_counter() - still > 1.0:
            break
        time.sleep(0.02)
    return time.perf_counter() - start


def report_step(rate: int, sent: int, got: int, drops: int, lost: int, drain: float) -> None:
    print(f"{rate:>12,} | {sent:>14,} | {got:>8,} | {drops:>12,} | {lost:>21,} | {drain:.2f}")
    if got < sent:
        # Loss must be counted exactly: the kernel's count of dropped datagrams equals what
        # did not arrive. Sequence numbers see a gap only once a later datagram arrives.
        exact = "exact" if drops == sent - got else "MISMATCH"
        print(
            f"    missing {sent - got:,} datagrams = {(sent - got) * RECORDS:,} flows; kernel "
            f"drop counter {drops:,} ({exact}); sequence gaps seen so far {lost:,} flows"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--step-seconds", type=float, default=4.0)
    ap.add_argument("--max-seconds", type=float, default=55.0)
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    port, shared, stop = ctx.Value("i", 0), ctx.Array("q", 8), ctx.Event()
    began = time.perf_counter()
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "b.duckdb")
        proc = ctx.Process(target=collector_main, args=(port, shared, stop, db))
        proc.start()
        while port.value == 0:
            time.sleep(0.01)
        messages = build_messages()
        seq, total_sent, best = 0, 0, 0
        print(
            "rate flows/s | sent datagrams | received | kernel drops | sequence gaps (flows) "
            "| drain s"
        )
        for rate in RATES:
            if time.perf_counter() - began + args.step_seconds + 3 > args.max_seconds:
                break
            before = (shared[DATAGRAMS], shared[DROPPED], shared[LOST])
            sent, seq = send_step(port.value, rate, args.step_seconds, seq, messages)
            total_sent += sent
            drain = wait_drained(shared, total_sent)
            got = shared[DATAGRAMS] - before[0]
            drops, lost = shared[DROPPED] - before[1], shared[LOST] - before[2]
            report_step(rate, sent, got, drops, lost, drain)
            if got < sent:
                break
            best = rate
        stop.set()
        proc.join(timeout=60)
    cpu = shared[CPU_MS] / 1000
    print(f"highest zero-loss rate: {best:,} flows/s")
    print(
        f"rows stored {shared[ROWS]:,} of {shared[FLOWS]:,} flows received; malformed "
        f"{shared[MALFORMED]}; collector peak RSS {shared[RSS_KB] / 1024:.0f} MB"
    )
    print(
        f"collector CPU {cpu:.1f} s for {shared[FLOWS]:,} flows = "
        f"{shared[FLOWS] / max(cpu, 1e-3):,.0f} flows per CPU second; "
        f"wall {time.perf_counter() - began:.1f} s; load average after: "
        f"{os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
