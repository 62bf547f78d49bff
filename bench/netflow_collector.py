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
HELD, EARLY, NOT_HELD = range(8, 11)  # the pairing hold's counters (not_held: newer code)


def collector_main(port: Any, shared: Any, stop: Any, db: str, rcvbuf: int | None) -> None:
    from vigile.ingest.collector import Collector
    from vigile.store.duckdb import DuckDBStore

    kwargs = {} if rcvbuf is None else {"receive_buffer": rcvbuf}
    collector = Collector(lambda: DuckDBStore(db), "127.0.0.1", 0, **kwargs)  # type: ignore[arg-type]
    port.value = collector.port

    def publish(c: Any) -> None:
        shared[DATAGRAMS], shared[FLOWS], shared[LOST] = c.datagrams, c.flows, c.lost
        shared[DROPPED], shared[MALFORMED] = c.dropped or 0, c.malformed
        shared[ROWS] = c.rows_written
        shared[HELD], shared[EARLY] = c.held_back, c.released_early
        shared[NOT_HELD] = getattr(c, "not_held", 0)
        if stop.is_set():
            collector.stop()

    collector.serve(on_tick=publish, tick=0.05)
    c = collector.close()
    publish(c)
    store = DuckDBStore(db, read_only=True)
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


def wait_drained(shared: Any, expected: int, timeout: float) -> float:
    """Wait until every datagram is accounted for (received or dropped), or ``timeout``."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if shared[DATAGRAMS] + shared[DROPPED] >= expected:
            break
        time.sleep(0.02)
    return time.perf_counter() - start


class Phase:
    """One collector process and a generator stepping through rates."""

    def __init__(self, tmp: str, rcvbuf: int | None) -> None:
        ctx = mp.get_context("spawn")
        self.port, self.shared, self.stop = ctx.Value("i", 0), ctx.Array("q", 11), ctx.Event()
        db = str(Path(tmp) / f"b{rcvbuf}.duckdb")
        args = (self.port, self.shared, self.stop, db, rcvbuf)
        self.proc = ctx.Process(target=collector_main, args=args)
        self.proc.start()
        while self.port.value == 0:
            time.sleep(0.01)
        self.messages = build_messages()
        self.seq = self.total = 0

    def step(self, rate: int, seconds: float, wait: float) -> tuple[int, int, int, float]:
        """Send one step; returns (sent, received, kernel drops, drain seconds)."""
        s = self.shared
        before = (s[DATAGRAMS], s[DROPPED], s[LOST])
        sent, self.seq = send_step(self.port.value, rate, seconds, self.seq, self.messages)
        self.total += sent
        drain = wait_drained(s, self.total, wait)
        got, drops = s[DATAGRAMS] - before[0], s[DROPPED] - before[1]
        lost = s[LOST] - before[2]
        print(f"{rate:>12,} | {sent:>14,} | {got:>8,} | {drops:>12,} | {lost:>13,} | {drain:.2f}")
        return sent, got, drops, drain

    def finish(self) -> None:
        self.stop.set()
        self.proc.join(timeout=60)
        s = self.shared
        cpu = s[CPU_MS] / 1000
        print(
            f"    stored {s[ROWS]:,} of {s[FLOWS]:,} flows received; malformed {s[MALFORMED]}; "
            f"peak RSS {s[RSS_KB] / 1024:.0f} MB; CPU {cpu:.1f} s = "
            f"{s[FLOWS] / max(cpu, 1e-3):,.0f} flows per CPU second"
        )
        print(
            f"    held back {s[HELD]:,}, released early (hold full) {s[EARLY]:,}, "
            f"not held (one-way exporter) {s[NOT_HELD]:,}"
        )


HEAD = "rate flows/s | sent datagrams | received | kernel drops | seq. gaps (flows) | drain s"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--step-seconds", type=float, default=3.0)
    args = ap.parse_args()
    began = time.perf_counter()
    deadline = began + 55
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        # Phase 1: the default socket buffer. A rate is sustained when every datagram
        # arrives and the backlog is gone within 1 s of the sender stopping.
        print("phase 1: default receive buffer (64 MiB requested)\n" + HEAD)
        phase, best, top = Phase(tmp, None), 0, 0
        for rate in RATES:
            if time.perf_counter() + args.step_seconds + 8 > deadline - 15:
                break
            sent, got, drops, drain = phase.step(rate, args.step_seconds, 6.0)
            top = rate
            if got < sent or drain >= 1.0:
                break
            best = rate
        phase.finish()
        # Phase 2: a 1 MiB buffer at twice the top rate, so the kernel must drop: the
        # collector's drop counter has to equal exactly what did not arrive.
        print("phase 2: 1 MiB receive buffer, overload\n" + HEAD)
        phase = Phase(tmp, 1 << 20)
        remaining = max(deadline - time.perf_counter() - args.step_seconds - 2, 2.0)
        sent, got, drops, _ = phase.step(2 * max(top, 50_000), args.step_seconds, remaining)
        phase.finish()
    verdict = "exact" if drops == sent - got else f"MISMATCH (missing {sent - got:,})"
    print(f"highest sustained zero-loss rate: {best:,} flows/s")
    print(
        f"overload: {sent - got:,} datagrams ({(sent - got) * RECORDS:,} flows) not received, "
        f"kernel drop counter {drops:,}: {verdict}"
    )
    print(f"wall {time.perf_counter() - began:.1f} s; load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
