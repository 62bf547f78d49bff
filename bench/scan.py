"""The scan detector over a busy simulated day, beside the bare DuckDB count it needs.

    .venv/bin/python -m bench.scan --rows 10000000

The day is written once per size into ``/tmp/vigile-bench-scan-<rows>.duckdb`` through
the store's one write path; the contenders then run in turns, each in a fresh process
(``bench.common.measure_turns``), on the store opened read-only, and the section "Scan
detector" of docs/benchmarks.md gets the table.

Traffic model: one internal host per 10,000 connections; 60 % TCP to 20,000 outside
addresses on 443 (answered), 5 % TCP attempts that fail (``S0``, to random outside
addresses), 25 % DNS over UDP to two resolvers (2 % unanswered), 10 % QUIC on
443/udp to the same outside addresses (5 % unanswered); plus one TCP and one UDP
scanner (5,000 hosts × 5 ports each, over an hour) and 2,000 backscatter SYN/ACKs.

Contenders:

* ``scan`` as a hunt runs it (probe selection, orientation, the UDP answered guard,
  epochs, thresholds, findings);
* the bare count in DuckDB SQL: failed probes per (source, port, 5-minute epoch) and
  per (source, host, epoch) with their distinct hosts and ports: the aggregation any
  implementation needs, without orientation or the UDP guard.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench.common import Contender, add_repeat_option, machine, measure_turns, update_section

HEADING = "Scan detector"
DAY = 86_400
T0 = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())
BARE = """
WITH p AS (
  SELECT src, dst, dst_port, proto, time_bucket(INTERVAL 5 MINUTE, ts) AS epoch FROM conn
  WHERE (proto = 'tcp' AND conn_state IN ('S0','REJ','RSTO','RSTR','RSTOS0','RSTRH','SH',
         'SHR','OTH') AND coalesce(orig_bytes, 0) = 0 AND coalesce(resp_bytes, 0) = 0
         AND history LIKE '%S%')
     OR (proto = 'udp' AND conn_state = 'S0'))
SELECT (SELECT count(*) FROM (SELECT src, proto, dst_port, epoch FROM p GROUP BY ALL
                              HAVING count(DISTINCT dst) >= 25)),
       (SELECT count(*) FROM (SELECT src, proto, dst, epoch FROM p GROUP BY ALL
                              HAVING count(DISTINCT dst_port) >= 15))
"""


def _ips(prefix: str, n: int) -> pa.Array:
    return pa.array([f"{prefix}.{i // 256 % 256}.{i % 256}" for i in range(n)])


def generate(db: Path, rows: int, seed: int = 42) -> None:
    """Write ``rows`` simulated connections, two scanners and backscatter into a store."""
    from vigile.schema import CONN, TS, conform
    from vigile.store import SourceRecord, SourceSummary
    from vigile.store.duckdb import DuckDBStore

    rng = np.random.default_rng(seed)
    hosts = max(rows // 10_000, 10)
    inside, outside = _ips("10.1", hosts), _ips("198.18", 20_000)
    kind = rng.choice(4, rows, p=[0.6, 0.05, 0.25, 0.1])  # tcp ok, tcp failed, dns, quic
    lost = rng.random(rows) < np.choose(kind, [0.0, 1.0, 0.02, 0.05])
    src = pa.array(rng.integers(0, hosts, rows))
    dst = np.where(kind == 2, rng.integers(0, 2, rows), rng.zipf(1.3, rows) % 20_000)
    cols: dict[str, object] = {
        "ts": np.sort(T0 + rng.random(rows) * DAY),
        "src": np.asarray(inside.take(src), dtype=object),
        "dst_port": np.choose(kind, [443, 443, 53, 443]).astype(np.int32),
        "proto": np.where(kind < 2, "tcp", "udp"),
        "conn_state": np.where(lost, "S0", "SF"),
        "history": np.where(kind < 2, np.where(lost, "S", "ShADadFf"), np.where(lost, "D", "Dd")),
        "orig_bytes": np.where(lost & (kind < 2), 0, 300),
        "resp_bytes": np.where(lost, 0, 1200),
    }
    names = np.asarray(outside.take(pa.array(dst)), dtype=object)
    cols["dst"] = np.where(kind == 2, np.where(dst == 0, "10.1.0.53", "10.1.0.54"), names)
    extra = _scanners_and_backscatter(rng)
    table = pa.concat_tables([_table(cols), _table(extra)]).sort_by("ts")
    partial = db.with_name(db.name + ".partial")
    partial.unlink(missing_ok=True)
    store = DuckDBStore(partial)
    record = SourceRecord(1, f"simulated:{rows}", f"bench-scan-{rows}-{seed}", 0, "simulated")
    with store.source_writer(record) as w:
        for batch in table.to_batches(2_000_000):
            n = batch.num_rows
            data = {c: batch.column(c) for c in batch.schema.names}
            data["ts"] = pa.array((batch.column("ts").to_numpy() * 1e6).astype(np.int64)).cast(TS)
            data["source_id"] = pa.array(np.ones(n, dtype=np.int64))
            data["open"] = pa.array(np.zeros(n, dtype=bool))
            w.append("conn", conform(CONN, data, n))
        w.finish(SourceSummary(log_type="conn", rows={"conn": table.num_rows}))
    store.close()
    partial.rename(db)  # only a finished store is reused


def _scanners_and_backscatter(rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = 25_000
    probe = {
        "ts": np.sort(T0 + 3600 * 10 + rng.random(2 * n) * 3600),
        "src": np.repeat(["10.1.0.66", "10.1.0.67"], n),
        "dst": np.tile(np.repeat([f"10.2.{i // 256}.{i % 256}" for i in range(5000)], 5), 2),
        "dst_port": np.concatenate(
            [np.tile([22, 445, 3389, 80, 443], 5000), np.tile([161, 623, 53, 123, 1900], 5000)]
        ),
        "proto": np.repeat(["tcp", "udp"], n),
        "conn_state": np.full(2 * n, "S0"),
        "history": np.repeat(["S", "D"], n),
        "orig_bytes": np.repeat([0, 40], n),
        "resp_bytes": np.zeros(2 * n, np.int64),
    }
    m = 2_000  # SYN/ACKs of a flooded server to spoofed inside addresses (history ^h)
    back = {
        "ts": T0 + rng.random(m) * DAY,
        "src": np.array([f"10.1.{i // 256 % 256}.{i % 256}" for i in rng.integers(0, 999, m)]),
        "dst": np.full(m, "192.0.2.200"),
        "dst_port": np.full(m, 80),
        "proto": np.full(m, "tcp"),
        "conn_state": np.full(m, "OTH"),
        "history": np.full(m, "^h"),
        "orig_bytes": np.zeros(m, np.int64),
        "resp_bytes": np.zeros(m, np.int64),
    }
    return {k: np.concatenate([np.asarray(probe[k]), back[k]]) for k in probe}


COLUMNS = {
    **{"ts": pa.float64(), "src": pa.string(), "dst": pa.string(), "dst_port": pa.int32()},
    **{"proto": pa.string(), "conn_state": pa.string(), "history": pa.string()},
    **{"orig_bytes": pa.int64(), "resp_bytes": pa.int64()},
}


def _table(cols: Mapping[str, object]) -> pa.Table:
    return pa.table({k: pa.array(np.asarray(cols[k]), t) for k, t in COLUMNS.items()})


def run_scan(db: str) -> tuple[str, float]:
    """The detector as a hunt runs it: findings and seconds in ``run``."""
    from vigile.config import Config
    from vigile.detect import HuntContext, default_window, registered_detectors
    from vigile.store.duckdb import DuckDBStore

    store = DuckDBStore(db, read_only=True)
    ctx = HuntContext(store, Config(), default_window(store, 24))
    (detector,) = [d for d in registered_detectors() if d.name == "scan"]
    start = time.perf_counter()
    found = detector().run(ctx)
    seconds = time.perf_counter() - start
    store.close()
    return f"{len(found)} findings: " + ", ".join(sorted(str(f.src) for f in found)), seconds


def run_bare(db: str) -> tuple[str, float]:
    """The bare count in DuckDB SQL: epochs over either threshold."""
    import duckdb

    con = duckdb.connect(db, read_only=True)
    start = time.perf_counter()
    wide, deep = con.execute(BARE).fetchone() or (0, 0)
    seconds = time.perf_counter() - start
    con.close()
    return f"{wide} address + {deep} port epochs", seconds


def main() -> str:
    """Run both contenders; the Markdown body of the section (``python -m bench`` writes it)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=10_000_000, help="connections in the day")
    add_repeat_option(p)
    args = p.parse_args()
    db = Path(f"/tmp/vigile-bench-scan-{args.rows}.duckdb")
    if not db.exists():
        t = time.perf_counter()
        code = f"from bench.scan import generate; generate(__import__('pathlib').Path('{db}'), "
        subprocess.run([sys.executable, "-c", code + f"{args.rows})"], check=True)
        print(f"generated {db} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    contenders = [
        Contender(name, fn, (str(db),)) for name, fn in (("bare", run_bare), ("scan", run_scan))
    ]
    rows = measure_turns(contenders, args.repeat)
    lines = [
        f"`.venv/bin/python -m bench.scan --rows {args.rows} --repeat {args.repeat}` "
        f"(repository root). Machine: {machine()}; shared with other work, so seconds vary "
        f"between runs (they take turns; the fastest of {args.repeat} runs of each is kept).",
        "",
        "| contender | seconds in run | process seconds | process CPU s | peak RSS MB | result |",
        "|---|---|---|---|---|---|",
    ]
    for m in rows:
        what, run_s = m.result
        lines.append(
            f"| {m.name} | {run_s:.2f} | {m.seconds:.2f} | {m.cpu_seconds:.2f} | "
            f"{m.peak_rss_mb:.0f} | {what} |"
        )
    ratio = rows[1].result[1] / max(rows[0].result[1], 1e-9)
    lines += [
        "",
        f"scan / bare count: {ratio:.1f}× on {args.rows:,} connections. The bare count is "
        "the DuckDB SQL aggregation of failed probes per (source, port, 5-minute epoch) "
        "and (source, host, epoch); `scan` also orients each probe, drops UDP targets "
        "that answered, checks the unanswered share and builds the findings, grouping "
        "in Arrow. Traffic: see the docstring of `bench/scan.py` (1 % of the day is "
        "unanswered UDP, 5 % failed TCP).",
    ]
    print("\n".join(lines))
    return "\n".join(lines)


if __name__ == "__main__":
    update_section(HEADING, main())
