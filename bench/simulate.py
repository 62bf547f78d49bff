"""Simulator speed: connections generated per second into Parquet and Zeek TSV.

``python -m bench.simulate [CONNECTIONS]`` (default 1,000,000). The big Parquet
inputs other benchmarks use (10 M, 50 M connections) are made the same way, so this
says how long preparing them takes.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine, peak_rss_mb
from vigile.simulate import Simulation, SimulationSpec, workstations_for, write_run
from vigile.simulate.writers.parquet import ParquetWriter
from vigile.simulate.writers.zeek import ZeekWriter

HEADING = "Simulation"


def measure(connections: int, fmt: str, out: Path) -> tuple[int, float, float]:
    """Rows written, wall seconds and CPU seconds of one simulated weekday."""
    spec = SimulationSpec(seed=7, days=1, workstations=workstations_for(connections))
    began, cpu = time.perf_counter(), time.process_time()
    sim = Simulation(spec)
    if fmt == "parquet":
        writer: ParquetWriter | ZeekWriter = ParquetWriter(out, sim.office.vocabs, 7, ("conn",))
    else:
        writer = ZeekWriter(out, sim.office.vocabs, sim.local_mask)
    rows = write_run(sim, out, [writer])["conn"]
    return rows, time.perf_counter() - began, time.process_time() - cpu


LABELS = {"parquet": "Parquet, conn table", "zeek": "Zeek TSV, conn/dns/http/ssl logs"}


def main(argv: list[str] | None = None) -> str:
    args = sys.argv[1:] if argv is None else argv
    connections = int(args[0]) if args else 1_000_000
    lines = [
        f"Command: `python -m bench.simulate {connections}`  ",
        f"Machine: {machine()}",
        "",
        "Generation runs in one process (mostly one thread); CPU seconds are given beside wall "
        "seconds because the machine is shared.",
        "",
        "| output | connections | wall s | CPU s | connections per CPU s |",
        "|---|---|---|---|---|",
    ]
    for fmt in ("parquet", "zeek"):
        with tempfile.TemporaryDirectory() as tmp:
            rows, wall, cpu = measure(connections, fmt, Path(tmp))
        lines.append(f"| {LABELS[fmt]} | {rows:,} | {wall:.1f} | {cpu:.1f} | {rows / cpu:,.0f} |")
        print(lines[-1], flush=True)
    lines += ["", f"Peak memory (whole run): {peak_rss_mb():,.0f} MiB."]
    return "\n".join(lines)


if __name__ == "__main__":
    from bench.common import update_section

    update_section(HEADING, main())
