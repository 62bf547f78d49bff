"""Hunt passes (significance, keep-alives, shared services): their cost beside beacon's.

``python -m bench.hunt_passes`` (repository root, venv python). Simulates the benign
office of ``vigile eval --benign`` (seed 7, 3 days, 40 desktops), ingests it once into
a DuckDB file, then in one fresh process runs ``beacon`` (the detector whose findings
the passes read) and each pass of ``vigile.hunt.PASSES`` in order over every
detector's findings, timing each. The reference is the beacon detector itself: a pass
that costs a fraction of it does not change how long a hunt takes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import add_repeat_option, machine, measure

HEADING = "Hunt passes"


def run_steps(db: str, cfg: str) -> list[tuple[str, float, int]]:
    """(step, seconds, findings it changed or made) for beacon, the others, each pass."""
    from vigile.config import load_config
    from vigile.detect import HuntContext, registered_detectors
    from vigile.evaluate.run import whole_span
    from vigile.hunt import PASSES
    from vigile.store.duckdb import DuckDBStore

    store = DuckDBStore(db, read_only=True)
    ctx = HuntContext(store, load_config(Path(cfg)), whole_span(store))
    steps: list[tuple[str, float, int]] = []
    findings: list[Any] = []
    for detector in registered_detectors():
        start = time.perf_counter()
        found = detector().run(ctx)
        name = "beacon" if detector.name == "beacon" else "other detectors"
        if steps and steps[-1][0] == name == "other detectors":
            _, s, n = steps.pop()
            steps.append((name, s + time.perf_counter() - start, n + len(found)))
        else:
            steps.append((name, time.perf_counter() - start, len(found)))
        findings += found
    for step in PASSES:
        before = {id(f): (f.score, f.suppressed_by) for f in findings}
        start = time.perf_counter()
        findings = step(ctx, findings)
        seconds = time.perf_counter() - start
        changed = sum(1 for f in findings if before.get(id(f)) != (f.score, f.suppressed_by))
        steps.append((step.__name__, seconds, changed))
    return steps


def main() -> str:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_repeat_option(parser)
    repeat = parser.parse_args().repeat
    from vigile.evaluate.run import simulate_logs
    from vigile.ingest import ingest_paths
    from vigile.simulate import Simulation, SimulationSpec
    from vigile.store.duckdb import DuckDBStore

    with tempfile.TemporaryDirectory() as tmp:
        logs, db = Path(tmp) / "logs", str(Path(tmp) / "b.duckdb")
        sim = Simulation(SimulationSpec(seed=7, days=3, workstations=40, scenarios=()))
        simulate_logs(sim, logs)
        store = DuckDBStore(db)
        ingest_paths(store, [logs])
        rows = store.count("conn")
        store.close()
        m = measure("hunt", run_steps, db, str(logs / "vigile.toml"), repeat=repeat)
    beacon = next(s for n, s, _ in m.result if n == "beacon")
    lines = [
        f"Command: `python -m bench.hunt_passes --repeat {repeat}` (the fastest run kept)  ",
        f"Machine: {machine()}",
        "",
        f"The benign office of `vigile eval --benign` ({rows:,} connections, 3 days, 54 "
        'hosts), hunted over its whole span in one fresh process. "Changed" counts the '
        "findings a pass lowered, suppressed or added.",
        "",
        "| step | seconds | × beacon | findings (detectors) / changed (passes) |",
        "|---|---|---|---|",
    ]
    for name, seconds, n in m.result:
        lines.append(f"| {name} | {seconds:.2f} | {seconds / beacon:.2f} | {n} |")
    lines += [
        "",
        f"Peak memory of the process: {m.peak_rss_mb:,.0f} MiB; the whole hunt "
        f"{m.seconds:.2f} s, {m.cpu_seconds:.2f} CPU-s.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    from bench.common import update_section

    body = main()
    print(body)
    update_section(HEADING, body)
