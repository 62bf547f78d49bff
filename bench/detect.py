"""C2 detectors over a busy simulated day: seconds and peak memory.

    .venv/bin/python -m bench.detect --rows 10000000
    .venv/bin/python -m bench.detect --rows 50000000
    .venv/bin/python -m bench.detect --rows 10000000 --compare   # + DuckDB lag() peer

The day is generated once per size (vectorised NumPy, written through the store's
one write path) into ``/tmp/vigile-bench-detect-<rows>.duckdb`` by a child process,
and the detectors run in a fresh process (``bench.common.measure``), so the measured
process starts clean: it opens the store read-only, runs beacon, long_connection,
strobe and dns_c2 as ``vigile hunt`` would, and reports wall-clock seconds and CPU
seconds (all threads) per detector, the peak resident memory of the whole process
(NumPy, Arrow and DuckDB alike, from ``getrusage``), and the machine's load average
(the wall-clock figures mean little on a machine shared with other work).

Traffic model (rows written in time order, as logs arrive): one internal host per
10,000 connections, 100 destinations each
(Zipf-distributed popularity over 20,000 external addresses), connection counts per
pair log-normal (a few pairs above 86,400, i.e. strobes), Poisson start times, and
1 % of the pairs beaconing with +-25 % jitter. DNS: one lookup per 50
connections, a few DGA hosts.

``--compare`` also computes the median interval per pair with a DuckDB ``lag()``
window function, side by side with the list aggregation + NumPy kernels used by
the detectors, and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench.common import add_repeat_option, machine, measure
from vigile.config import Config
from vigile.detect import HuntContext, default_window, registered_detectors
from vigile.schema import CONN, DNS, TS, conform
from vigile.store import Agg, SourceRecord, SourceSummary
from vigile.store.duckdb import DuckDBStore

DAY = 86_400
T0 = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())
C2_DETECTORS = ("beacon", "long_connection", "strobe", "dns_c2")


def _ips(prefix: str, n: int) -> pa.Array:
    return pa.array([f"{prefix}.{i // 256 % 256}.{i % 256}" for i in range(n)])


def generate(db: Path, rows: int, seed: int = 42) -> None:
    """Write ``rows`` simulated connections (and DNS lookups) into a new store."""
    rng = np.random.default_rng(seed)
    hosts = max(rows // 10_000, 10)
    pairs = hosts * 100
    src_of_pair = np.repeat(np.arange(hosts), 100)
    zipf = rng.zipf(1.3, pairs) % 20_000
    counts = rng.lognormal(0, 1.6, pairs)
    counts = np.maximum(1, np.round(counts / counts.sum() * rows)).astype(np.int64)
    beacon = rng.random(pairs) < 0.01
    src_names, dst_names = _ips("10.1", hosts), _ips("198.18", 20_000)
    pair_parts, ts_parts = [], []
    for lo in range(0, pairs, 50_000):
        idx = np.arange(lo, min(lo + 50_000, pairs))
        n = counts[idx]
        pair = np.repeat(idx, n).astype(np.int32)
        ts = T0 + rng.random(len(pair)) * DAY
        b = np.repeat(beacon[idx], n)
        if b.any():
            period = np.repeat(DAY / n, n)[b]
            k = np.concatenate([np.arange(c) for c in n[beacon[idx]]])
            ts[b] = T0 + (k + rng.uniform(-0.25, 0.25, len(k))) * period
        pair_parts.append(pair)
        ts_parts.append(ts)
    pair, ts = np.concatenate(pair_parts), np.concatenate(ts_parts)
    order = np.argsort(ts, kind="stable")  # logs arrive in time order
    pair, ts = pair[order], ts[order]
    store = DuckDBStore(db)
    record = SourceRecord(1, f"simulated:{rows}", f"bench-{rows}-{seed}", 0, "simulated")
    with store.source_writer(record) as w:
        for lo in range(0, len(pair), 2_000_000):
            p, t = pair[lo : lo + 2_000_000], ts[lo : lo + 2_000_000]
            total = len(p)
            cols = {
                "ts": pa.array((t * 1e6).astype(np.int64)).cast(TS),
                "src": src_names.take(pa.array(src_of_pair[p])),
                "dst": dst_names.take(pa.array(zipf[p])),
                "dst_port": pa.array(np.full(total, 443, dtype=np.int32)),
                "proto": pa.array(np.full(total, "tcp", dtype=object)),
                "duration": pa.array(rng.exponential(2.0, total)),
                "orig_ip_bytes": pa.array(rng.lognormal(6, 1, total).astype(np.int64)),
                "resp_ip_bytes": pa.array(rng.lognormal(8, 1.5, total).astype(np.int64)),
                "resp_bytes": pa.array(rng.lognormal(7, 1.5, total).astype(np.int64)),
                "open": pa.array(np.zeros(total, dtype=bool)),
                "source_id": pa.array(np.ones(total, dtype=np.int64)),
            }
            w.append("conn", conform(CONN, cols, total))
        w.append("dns", _dns(rng, rows // 50, src_names))
        w.finish(SourceSummary(log_type="conn", rows={"conn": int(counts.sum())}))
    store.close()


def _dns(rng: np.random.Generator, n: int, hosts: pa.Array) -> pa.RecordBatch:
    names = np.array([f"www{i}.site{i % 5000}.com" for i in range(20_000)], dtype=object)
    dga = np.array(["".join(rng.choice(list("bcdfgklmnpqrstvxz"), 9)) + ".com" for _ in range(500)])
    query = names[rng.integers(0, len(names), n)]
    is_dga = rng.random(n) < 0.005
    query[is_dga] = dga[rng.integers(0, len(dga), is_dga.sum())]
    src = hosts.take(pa.array(np.where(is_dga, 0, rng.integers(0, len(hosts), n))))
    cols = {
        "ts": pa.array(((T0 + rng.random(n) * DAY) * 1e6).astype(np.int64)).cast(TS),
        "src": src,
        "dst": pa.array(np.full(n, "10.0.0.53", dtype=object)),
        "query": pa.array(query),
        "qtype_name": pa.array(np.full(n, "A", dtype=object)),
        "rcode": pa.array(np.where(is_dga, 3, 0).astype(np.int32)),
        "source_id": pa.array(np.ones(n, dtype=np.int64)),
    }
    return conform(DNS, cols, n)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(db: Path) -> dict[str, object]:
    """Run the C2 detectors as a hunt does; seconds per detector and in all."""
    store = DuckDBStore(db, read_only=True)
    ctx = HuntContext(store, Config(), default_window(store, 24))
    out: dict[str, object] = {"connections": store.count("conn", ctx.window)}
    detectors = [d for d in registered_detectors() if d.name in C2_DETECTORS]  # imports
    start, cpu0 = time.perf_counter(), _cpu()
    for detector in detectors:
        t, c = time.perf_counter(), _cpu()
        found = detector().run(ctx)
        out[detector.name] = {
            "seconds": round(time.perf_counter() - t, 2),
            "cpu_seconds": round(_cpu() - c, 2),
            "findings": len(found),
        }
    out["seconds"] = round(time.perf_counter() - start, 2)
    out["cpu_seconds"] = round(_cpu() - cpu0, 2)
    out["load_average_1m"] = round(os.getloadavg()[0], 1)
    store.close()
    return out


def compare(db: Path) -> dict[str, float]:
    """Median interval per pair: DuckDB lag() window vs list aggregation + NumPy."""
    from vigile.detect.kernels import segment_ids, segmented_diff, segmented_median, segmented_sort

    store = DuckDBStore(db, read_only=True)
    t = time.perf_counter()
    store._con.sql(  # the peer is raw SQL on purpose: it is what the detectors avoid
        "SELECT src, dst, median(d) FROM (SELECT src, dst, epoch(ts) - epoch(lag(ts) OVER "
        "(PARTITION BY src, dst ORDER BY ts)) AS d FROM conn) GROUP BY ALL"
    ).to_arrow_table()
    window_s = time.perf_counter() - t
    t = time.perf_counter()
    table = store.group("conn", ["src", "dst"], [Agg("list", "ts", "ts")])
    col = table.column("ts").combine_chunks()
    offsets = col.offsets.to_numpy().astype(np.int64)
    ts = col.values.cast(pa.int64()).to_numpy() // 1_000_000
    d, d_off = segmented_diff(ts, offsets)
    d = segmented_sort(d, segment_ids(d_off))
    segmented_median(d, d_off[:-1], np.diff(d_off))
    lists_s = time.perf_counter() - t
    store.close()
    return {
        "duckdb_lag_s": round(window_s, 2),
        "lists_numpy_s": round(lists_s, 2),
        "ratio": round(window_s / lists_s, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=10_000_000, help="connections in the day")
    p.add_argument("--db", type=Path, help="store to use (default: /tmp/vigile-bench-…)")
    p.add_argument("--generate-only", action="store_true", help="write the store and stop")
    p.add_argument("--compare", action="store_true", help="also time the DuckDB lag() peer")
    add_repeat_option(p)
    args = p.parse_args()
    db = args.db or Path(f"/tmp/vigile-bench-detect-{args.rows}.duckdb")
    if args.generate_only:
        generate(db, args.rows)
        return
    if not db.exists():
        t = time.perf_counter()
        cmd = [sys.executable, "-m", "bench.detect", "--generate-only", "--rows", str(args.rows)]
        subprocess.run([*cmd, "--db", str(db)], check=True)
        print(f"generated {db} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    measured = measure("C2 detectors", run, db, repeat=args.repeat)
    result = {"rows": args.rows, **measured.result, "peak_rss_mb": round(measured.peak_rss_mb)}
    result["process_cpu_seconds"] = round(measured.cpu_seconds, 2)
    result["runs"] = measured.runs
    result["machine"] = machine()
    if args.compare:
        result["interval_median"] = measure(
            "interval median", compare, db, repeat=args.repeat
        ).result
    print(json.dumps(result))


if __name__ == "__main__":
    main()
