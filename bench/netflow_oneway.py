"""What a one-direction flow export costs the hunt: the same simulated office, three ways.

``vigile simulate --scenario all`` writes its traffic as Parquet (vigile's schema with
both directions of every connection, the reference) and exports the same flows live as
IPFIX into ``vigile collect`` twice: once with both directions (one record per
direction, as a router exporting unidirectional flows sends them), once with
``--export-one-way`` (only what internal hosts send, as an exporter metering its
inside interface's ingress only). Each of the three stores is hunted over its whole
span with every detector and scored against the simulation's ground truth as ``vigile
eval`` scores it (docs/evaluation.md): recall, false alerts per 1,000 hosts per day,
and each scenario's best rank and detector.

    .venv/bin/python -m bench.netflow_oneway [--days 1] [--hosts 40]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from tests.netflow_peers import RunningCollector
from typer.testing import CliRunner

from bench.common import machine
from vigile.cli import app
from vigile.config import load_config
from vigile.detect import registered_detectors
from vigile.evaluate import EvalResult
from vigile.evaluate.run import evaluate_store, ingest_checked
from vigile.simulate.truth import read_truth
from vigile.store.duckdb import DuckDBStore


def export(out: Path, db: Path, days: float, hosts: int, one_way: bool) -> str:
    """Simulate into ``out`` (Parquet) while exporting into a collector writing ``db``."""
    with RunningCollector(db) as run:
        args = ["simulate", "--out", str(out), "--days", str(days), "--hosts", str(hosts)]
        args += ["-s", "all", "-f", "parquet", "--export", f"127.0.0.1:{run.collector.port}"]
        args += ["--export-one-way"] if one_way else []
        result = CliRunner().invoke(app, args)
        if result.exit_code != 0:
            raise SystemExit(result.output)
        sent = int(result.output.split(" datagrams")[0].rsplit(" in ", 1)[1].replace(",", ""))
        run.wait_for(sent, timeout=120)
    c = run.counters
    if c.datagrams != sent or c.lost:
        raise SystemExit(f"the collector got {c.datagrams:,} of {sent:,} datagrams")
    return (
        f"{c.flows:,} records, held back {c.held_back:,}, paired late {c.paired_late:,}, "
        f"released early {c.released_early:,}, "
        f"one-way exporters {c.one_way_exporters}, stored at once {c.not_held:,}"
    )


def score(db: Path, sim: Path) -> tuple[EvalResult, int]:
    store = DuckDBStore(db)
    try:
        result, _ = evaluate_store(
            store, load_config(sim / "vigile.toml"), read_truth(sim / "ground-truth.csv"),
            registered_detectors(),
        )  # fmt: skip
        return result, store.count("conn")
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--hosts", type=int, default=40)
    ap.add_argument("--keep", type=Path, help="write the runs and stores here (kept)")
    args = ap.parse_args()
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.1f}")
    results: dict[str, tuple[EvalResult, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for name, one_way in (("both directions", False), ("one direction", True)):
            began = time.perf_counter()
            sim, db = root / name.replace(" ", "-"), root / f"{name.replace(' ', '-')}.duckdb"
            told = export(sim, db, args.days, args.hosts, one_way)
            print(f"IPFIX, {name}: {told} ({time.perf_counter() - began:.0f} s)")
            results[f"IPFIX, {name}"] = score(db, sim)
        ref = root / "reference.duckdb"
        store = DuckDBStore(ref)
        try:
            ingest_checked(store, sorted((root / "both-directions").glob("*.parquet")))
        finally:
            store.close()
        results["Parquet (both directions, full)"] = score(ref, root / "both-directions")
    print()
    print("input | conn rows | recall | alerts | false alerts per 1,000 hosts per day")
    for name, (r, rows) in results.items():
        detected = sum(s.detected for s in r.scenarios)
        print(
            f"{name} | {rows:,} | {detected}/{len(r.scenarios)} | {r.alerts} | "
            f"{r.per_kilohost_day(r.false_alerts):.2f}"
        )
    print()
    names = list(results)
    print("scenario | " + " | ".join(names) + "  (best rank, detector)")
    per = [
        {f"{s.truth.scenario} {s.truth.src}": s for s in r.scenarios} for r, _ in results.values()
    ]
    for key in per[0]:
        cells = []
        for table in per:
            s = table.get(key)
            cells.append("-" if s is None or not s.detected else f"{s.rank} {s.detector}")
        print(f"{key} | " + " | ".join(cells))
    for name, (r, _) in results.items():
        print(f"\nfalse alerts, {name}:")
        for row in r.false_alert_rows[:15]:
            print("  " + ", ".join(f"{k}={v}" for k, v in row.items()))
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
