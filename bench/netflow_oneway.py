"""What a one-direction flow export costs the hunt: the same simulated office, three ways.

``vigile simulate --scenario all`` writes its traffic as Parquet (vigile's schema with
both directions of every connection, the reference) and exports the same flows live as
IPFIX into ``vigile collect``: once with both directions (one record per direction, as
a router exporting unidirectional flows sends them), and twice with
``--export-one-way`` (only what internal hosts send, as an exporter metering its
inside interface's ingress only). That one-direction exporter is a *mixed* one: it
sends both directions of traffic between internal hosts (both ends send from the
inside) and one direction of internet traffic. The collector learns one-way per
exporter without a network model (``one kind``, as ``vigile collect`` with no
internal networks, and as every collector did before kinds of path) and per exporter
and kind of path with the simulation's internal networks (``per kind``). Each store
is hunted over its whole span with every detector and scored against the
simulation's ground truth as ``vigile eval`` scores it (docs/evaluation.md): recall,
false alerts per 1,000 hosts per day, and each scenario's best rank and detector. The
collector's pairing counters are printed for each export: records held for a partner
that never came (``held_back - paired_late``), released early (hold full), pairs
merged, stored at once (``not_held``), and the most rows and Arrow bytes held at once.

    .venv/bin/python -m bench.netflow_oneway [--days 1] [--hosts 40] [--only-one-way]
"""

from __future__ import annotations

import argparse
import ipaddress
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
from vigile.simulate.network import INTERNAL
from vigile.simulate.truth import read_truth
from vigile.store.duckdb import DuckDBStore

#: The runs: name, one direction only, the collector's internal networks.
RUNS = (
    ("both directions, per kind", False, True),
    ("one direction, one kind", True, False),
    ("one direction, per kind", True, True),
)
COUNTERS = (
    "records", "rows stored", "pairs merged", "held back", "paired late", "held in vain",
    "released early", "stored at once", "resumed", "most rows held", "most MB held",
    "one-way exporters",
)  # fmt: skip


def export(
    out: Path, db: Path, days: float, hosts: int, one_way: bool, by_kind: bool
) -> dict[str, object]:
    """Simulate into ``out`` (Parquet) while exporting into a collector writing ``db``
    (given the simulated office's internal networks when ``by_kind``); its counters."""
    internal = tuple(ipaddress.ip_network(n) for n in INTERNAL) if by_kind else ()
    with RunningCollector(db, internal=internal) as run:
        args = ["simulate", "--out", str(out), "--days", str(days), "--hosts", str(hosts)]
        args += ["-s", "all", "-f", "parquet", "--export", f"127.0.0.1:{run.collector.port}"]
        args += ["--export-one-way"] if one_way else []
        result = CliRunner().invoke(app, args)
        if result.exit_code != 0:
            raise SystemExit(result.output)
        sent = int(result.output.split(" datagrams")[0].rsplit(" in ", 1)[1].replace(",", ""))
        run.wait_for(sent, timeout=120)
    c, hold = run.counters, run.collector._hold
    if c.datagrams != sent or c.lost or c.rows_written + c.merged != c.flows:
        raise SystemExit(f"the collector got {c.datagrams:,} of {sent:,} datagrams")
    values = (
        c.flows, c.rows_written, c.merged, c.held_back, c.paired_late,
        c.held_back - c.paired_late, c.released_early, c.not_held, c.resumed,
        hold.peak_rows, round(hold.peak_bytes / 1e6, 1), ", ".join(c.one_way_exporters) or "none",
    )  # fmt: skip
    return dict(zip(COUNTERS, values, strict=True))


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
    ap.add_argument(
        "--only-one-way",
        action="store_true",
        help="only the one-direction exports (one kind, per kind): no Parquet reference",
    )
    args = ap.parse_args()
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.1f}")
    results: dict[str, tuple[EvalResult, int]] = {}
    counters: dict[str, dict[str, object]] = {}
    runs = [r for r in RUNS if r[1] or not args.only_one_way]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for name, one_way, by_kind in runs:
            began = time.perf_counter()
            slug = name.replace(", ", "-").replace(" ", "-")
            sim, db = root / slug, root / f"{slug}.duckdb"
            counters[name] = export(sim, db, args.days, args.hosts, one_way, by_kind)
            print(f"IPFIX, {name}: exported and stored in {time.perf_counter() - began:.0f} s")
            results[f"IPFIX, {name}"] = score(db, sim)
        if not args.only_one_way:
            ref = root / "reference.duckdb"
            sim = root / runs[0][0].replace(", ", "-").replace(" ", "-")
            store = DuckDBStore(ref)
            try:
                ingest_checked(store, sorted(sim.glob("*.parquet")))
            finally:
                store.close()
            results["Parquet (both directions, full)"] = score(ref, sim)
    print()
    print("collector | " + " | ".join(counters))
    for key in COUNTERS:
        print(f"{key} | " + " | ".join(_cell(c[key]) for c in counters.values()))
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


def _cell(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


if __name__ == "__main__":
    main()
