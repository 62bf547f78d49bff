"""Server-side detectors and passes: time and peak memory on a real three-day capture.

``python -m bench.server_detectors`` (repository root, venv python). Ingests RITA's
``missing_host`` (three days of Zeek logs, ../shared/data) once into a DuckDB file,
then runs each server-side detector and the hunt passes in a fresh process. The
reference beside ``exfil`` is the bare aggregation it needs (IP bytes per pair and
hour over its look-back) as one DuckDB query: the ratio is the detector's own cost
on top of reading the data.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Contender, add_repeat_option, machine, measure_turns

CONFIG = '[network]\ninternal = ["64.225.56.201/32"]\n'
DETECTORS = ("roles", "exfil", "rare_destination", "role_violation", "threat_intel")


def _ctx(db: str, cfg: str) -> Any:
    from vigile.config import load_config
    from vigile.detect import HuntContext, default_window
    from vigile.store.duckdb import DuckDBStore

    store = DuckDBStore(db, read_only=True)
    config = load_config(Path(cfg))
    return HuntContext(store, config, default_window(store, config.window_hours))


def run_detector(db: str, cfg: str, name: str) -> tuple[int, float]:
    """Findings, and seconds spent in ``run`` alone (without imports and opening)."""
    from vigile.detect import registered_detectors

    ctx = _ctx(db, cfg)
    detector = next(d for d in registered_detectors() if d.name == name)
    start = time.perf_counter()
    found = detector().run(ctx)
    return len(found), time.perf_counter() - start


def run_passes(db: str, cfg: str) -> tuple[int, float]:
    from vigile.detect import registered_detectors
    from vigile.hunt import PASSES

    ctx = _ctx(db, cfg)
    start = time.perf_counter()
    findings = [f for d in registered_detectors() for f in d().run(ctx)]
    for step in PASSES:
        findings = step(ctx, findings)
    return len(findings), time.perf_counter() - start


def bare_aggregation(db: str) -> tuple[int, float]:
    import duckdb

    con = duckdb.connect(db, read_only=True)
    sql = (
        "SELECT src, dst, floor(epoch(ts) / 3600) AS h, sum(orig_ip_bytes), sum(resp_ip_bytes) "
        "FROM conn GROUP BY ALL"
    )
    start = time.perf_counter()
    rows = len(con.sql(sql).fetchall())
    return rows, time.perf_counter() - start


def main() -> None:
    from vigile.ingest import ingest_paths

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_repeat_option(parser)
    n = parser.parse_args().repeat
    from vigile.store.duckdb import DuckDBStore

    data = ROOT.parent / "shared" / "data" / "zeek" / "rita" / "missing_host"
    with tempfile.TemporaryDirectory() as tmp:
        db, cfg = str(Path(tmp) / "b.duckdb"), str(Path(tmp) / "vigile.toml")
        Path(cfg).write_text(CONFIG)
        store = DuckDBStore(db)
        ingest_paths(store, [data])
        rows = store.count("conn")
        store.close()
        print(f"# {machine()}\n# {rows:,} connections (missing_host, 3 days)")
        print(f"# the steps take turns; the fastest of {n} runs of each\n")
        print(
            "| step | seconds in run | process seconds | process CPU s | peak RSS MB "
            "| findings/rows |"
        )
        print("|---|---|---|---|---|---|")
        ref, *results = measure_turns(
            [
                Contender("bare aggregation (DuckDB)", bare_aggregation, (db,)),
                *(Contender(d, run_detector, (db, cfg, d)) for d in DETECTORS),
                Contender("all detectors + passes", run_passes, (db, cfg)),
            ],
            n,
        )
        for m in [ref, *results]:
            found, run_s = m.result
            print(
                f"| {m.name} | {run_s:.2f} | {m.seconds:.2f} | {m.cpu_seconds:.2f} | "
                f"{m.peak_rss_mb:.0f} | {found} |"
            )
        exfil = next(m for m in results if m.name == "exfil")
        print(f"\nexfil / bare aggregation: {exfil.result[1] / ref.result[1]:.1f}×")


if __name__ == "__main__":
    main()
