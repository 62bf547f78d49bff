"""How fast the console answers on a busy store: ``python -m bench.console [--rows N]``.

Builds a temporary store of N connections over 24 h (500 internal hosts, 20,000
destinations, 300 findings), then times the reads behind each page (best of 3) and
the offline HTML report, and prints peak memory. No page needs a full scan per
finding, so the figures grow with N, not with N x findings.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bench.common import machine
from vigile.config import Config
from vigile.detect import Finding, findings_table
from vigile.schema import CONN, TS, conform
from vigile.store import FindingScope, SourceRecord, SourceSummary
from vigile.store.duckdb import DuckDBStore
from vigile.web import charts, hosts, queries
from vigile.web.report import render_report

START = datetime(2026, 3, 2, tzinfo=UTC)


def build(path: Path, rows: int, seed: int = 1) -> list[Finding]:
    rng = np.random.default_rng(seed)
    store = DuckDBStore(path)
    record = SourceRecord(1, "bench/conn.log", "00" * 32, rows * 100, "zeek-tsv")
    hosts = np.array([f"10.{i // 250}.{i % 250}.1" for i in range(500)])
    dsts = np.array([f"198.{18 + i // 65000}.{(i // 250) % 256}.{i % 250}" for i in range(20000)])
    with store.source_writer(record) as w:
        for lo in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - lo)
            us = np.sort(rng.integers(0, 86_400_000_000, n))
            out = rng.integers(100, 50_000, n)
            cols = {
                "ts": pa.array(us, pa.int64()).cast(TS),
                "src": pa.array(hosts[rng.integers(0, 500, n)]),
                "dst": pa.array(dsts[rng.zipf(1.3, n) % 20000]),
                "dst_port": pa.array(rng.choice([443, 80, 53, 25], n).astype(np.int32)),
                "proto": pa.array(np.full(n, "tcp")),
                "orig_ip_bytes": pa.array(out),
                "resp_ip_bytes": pa.array(out * 3),
                "open": pa.array(np.zeros(n, bool)),
                "source_id": pa.array(np.ones(n, np.int64)),
            }
            w.append("conn", conform(CONN, cols, n))
        w.finish(SourceSummary("conn", {"conn": rows}, 0, START, START + timedelta(days=1)))
    window = (START, START + timedelta(days=1))
    findings = [
        Finding(
            "beacon" if i % 2 else "exfil",
            str(hosts[i % 500]),
            str(dsts[i]),
            None,
            float(rng.uniform(0.3, 1)),
            *window,
            "bench",
            {"baseline": 1000},
        )
        for i in range(300)
    ]
    store.replace_findings(["beacon", "exfil"], findings_table(findings), FindingScope())
    store.close()
    return findings


def best_of(fn: Callable[[], Any], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        build(Path(tmp) / "b.duckdb", args.rows)
        print(f"machine: {machine()}")
        print(f"store of {args.rows:,} connections built in {time.perf_counter() - t:.1f} s")
        store = DuckDBStore(Path(tmp) / "b.duckdb", read_only=True)
        cfg = Config()
        top = queries.ranked_hosts(store, cfg)[0]
        finding = queries.find_finding(store, top["top_finding"])
        assert finding is not None
        cases: list[tuple[str, Callable[[], Any]]] = [
            ("overview", lambda: queries.overview(store, cfg)),
            ("host page", lambda: hosts.host_detail(store, cfg, top["host"])),
            ("host traffic plot", lambda: hosts.host_traffic(store, top["host"])),
            ("finding check-ins plot", lambda: charts.checkins(store, finding)),
            ("finding series plot", lambda: charts.pair_series(store, finding)),
            ("sources page", lambda: queries.sources(store)),
            ("HTML report (top 5)", lambda: render_report(store, cfg, 5)),
        ]
        print(f"{'what':<24} {'seconds':>8}")
        for name, fn in cases:
            print(f"{name:<24} {best_of(fn):>8.3f}")
        store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak:.0f} MiB")


if __name__ == "__main__":
    main()
