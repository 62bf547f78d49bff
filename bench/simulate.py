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


def measure(connections: int, fmt: str, out: Path) -> tuple[int, float]:
    spec = SimulationSpec(seed=7, days=1, workstations=workstations_for(connections))
    began = time.perf_counter()
    sim = Simulation(spec)
    if fmt == "parquet":
        writer: ParquetWriter | ZeekWriter = ParquetWriter(out, sim.office.vocabs, 7, ("conn",))
    else:
        writer = ZeekWriter(out, sim.office.vocabs, sim.local_mask)
    rows = write_run(sim, out, [writer])["conn"]
    return rows, time.perf_counter() - began


def main(argv: list[str] | None = None) -> str:
    args = sys.argv[1:] if argv is None else argv
    connections = int(args[0]) if args else 1_000_000
    lines = [
        f"Command: `python -m bench.simulate {connections}`  ",
        f"Machine: {machine()}",
        "",
        "| output | connections | seconds | connections/s |",
        "|---|---|---|---|",
    ]
    for fmt in ("parquet", "zeek"):
        with tempfile.TemporaryDirectory() as tmp:
            rows, secs = measure(connections, fmt, Path(tmp))
        lines.append(
            f"| {fmt} (conn + dns/http/ssl for zeek) | {rows:,} | {secs:.1f} | {rows / secs:,.0f} |"
        )
        print(lines[-1], flush=True)
    lines += ["", f"Peak memory (whole run): {peak_rss_mb():,.0f} MiB."]
    return "\n".join(lines)


if __name__ == "__main__":
    from bench.common import update_section

    update_section(HEADING, main())
