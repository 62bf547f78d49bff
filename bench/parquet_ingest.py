"""Parquet ingest: vigile's Parquet reader against its Zeek TSV reader on the same rows.

The simulator writes one weekday of about ``--connections`` connections twice from one
seed: ``conn.parquet`` in vigile's schema (:func:`vigile.simulate.make_conn_parquet`) and
Zeek's ``conn.log`` (the same rows, see tests/test_parquet_ingest.py). ``vigile ingest``
reads each into a new DuckDB file, each contender in its own process so its peak memory
is its own; DuckDB's own ``read_parquet`` into a table is the yardstick, and each reader
alone (rows counted, not stored) shows what is the reader's and what the store's.

    .venv/bin/python -m bench.parquet_ingest [--connections 1000000]
"""

from __future__ import annotations

import argparse
import os
from functools import partial
from pathlib import Path

from bench.common import OUT, REPEAT, Contender, add_repeat_option, machine, measure_turns

HEADING = "Parquet ingest"


def build_inputs(connections: int, folder: Path) -> tuple[Path, Path]:
    """``conn.parquet`` and a Zeek ``conn.log`` of the same simulated rows (reused)."""
    from vigile.simulate import Simulation, SimulationSpec, make_conn_parquet, workstations_for
    from vigile.simulate.writers.zeek import ZeekWriter

    parquet = make_conn_parquet(folder / "parquet", connections)
    log = folder / "zeek" / "conn.log"
    stamp = folder / "zeek" / f".complete-{connections}"
    if not stamp.exists():
        # The arguments make_conn_parquet uses (seed 7, one weekday, no scenario).
        spec = SimulationSpec(seed=7, days=1, workstations=workstations_for(connections))
        sim = Simulation(spec)
        (folder / "zeek").mkdir(parents=True, exist_ok=True)
        writer = ZeekWriter(folder / "zeek", sim.office.vocabs, sim.local_mask)
        try:
            for chunk in sim.chunks():
                writer.write(
                    chunk.flows, chunk.uid, chunk.t0, chunk.t1, sim.writer_rng(chunk, writer)
                )
        finally:
            writer.close()
        stamp.touch()
    return parquet, log


def run_vigile(path: str, db: str) -> int:
    from vigile.ingest import ingest_paths
    from vigile.store.duckdb import DuckDBStore

    store = DuckDBStore(db)
    report = ingest_paths(store, [Path(path)])
    assert not report.problems, report.files[0].message
    n = store.count("conn")
    store.close()
    return n


def run_reader(path: str, db: str) -> int:
    """The reader alone: rows are counted, not stored (``db`` is not used)."""
    from bench.common import CountingSink
    from vigile.ingest import find_reader, registered_readers
    from vigile.ingest.base import SourceFile

    source = SourceFile.probe(Path(path))
    sink = CountingSink()
    find_reader(source, registered_readers())().read(source, sink)
    return sink.rows["conn"]


def run_duckdb(path: str, db: str) -> int:
    import duckdb

    con = duckdb.connect(db)
    con.execute("SET enable_progress_bar = false")
    con.execute(f"CREATE TABLE conn AS SELECT * FROM read_parquet('{path}')")
    n = con.execute("SELECT count(*) FROM conn").fetchall()[0][0]
    con.close()
    return int(n)


def main(connections: int = 1_000_000, repeat: int = REPEAT) -> str:
    parquet, log = build_inputs(connections, OUT / f"parquet_ingest_{connections}")
    contenders = (
        ("vigile ingest conn.parquet (Parquet reader)", run_vigile, parquet),
        ("vigile ingest conn.log (Zeek TSV reader)", run_vigile, log),
        ("DuckDB read_parquet (no checks)", run_duckdb, parquet),
        ("Parquet reader alone (rows counted, not stored)", run_reader, parquet),
        ("Zeek TSV reader alone (rows counted, not stored)", run_reader, log),
    )
    db = OUT / "parquet_ingest.duckdb"
    fresh = partial(db.unlink, missing_ok=True)  # each run writes a new store
    measured = measure_turns(
        [Contender(name, fn, (str(path), str(db)), fresh) for name, fn, path in contenders],
        repeat,
    )
    db.unlink(missing_ok=True)
    results = list(zip(measured, [path for _, _, path in contenders], strict=True))
    load = os.getloadavg()[0]
    lines = [
        "Command: `.venv/bin/python -m bench.parquet_ingest --connections "
        f"{connections} --repeat {repeat}`. The same simulated rows as `conn.parquet` "
        "(zstd, as `vigile simulate` writes it) and as Zeek's `conn.log`; each contender "
        "runs in its own process and stores them in a new DuckDB file; they take turns and "
        f"the fastest of {repeat} runs of each is kept. Load average at the end: {load:.1f}.",
        "",
        f"{results[0][0].result:,} conn rows, {machine()}",
        "",
        "| contender | file MB | seconds | CPU s | rows/s | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for m, path in results:
        lines.append(
            f"| {m.name} | {path.stat().st_size / 1e6:.0f} | {m.seconds:.2f} | "
            f"{m.cpu_seconds:.2f} | "
            f"{m.result / m.seconds:,.0f} | {m.peak_rss_mb:.0f} |"
        )
    rate = [m.result / m.seconds for m, _ in results]
    lines += [
        "",
        f"Ratio Parquet / Zeek TSV, ingest into the store: {rate[0] / rate[1]:.2f}; "
        f"readers alone: {rate[3] / rate[4]:.2f}. Parquet ingest / DuckDB read_parquet: "
        f"{rate[0] / rate[2]:.2f}.",
        "",
        "Writing into the store (the same path for every reader) takes most of an ingest "
        "of Parquet; the reader alone holds about one row group's columns at a time.",
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=1_000_000)
    add_repeat_option(parser)
    args = parser.parse_args()
    main(args.connections, args.repeat)
