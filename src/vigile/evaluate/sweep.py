"""Jitter and period sweeps: how recall holds as beacons get noisier or slower.

Each point of a sweep is its own simulated office (same seed, so the same benign
traffic) with ``BEACONS_PER_POINT`` HTTPS beacons from different desktops to
different servers, all with the point's jitter or period, and at least
``MIN_CHECKINS`` check-ins each. Points run through the real path: Zeek logs
written, ingested, hunted over their whole span, scored.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vigile.config import load_config
from vigile.detect import Detector
from vigile.evaluate import DEFAULT_ALERT_SCORE
from vigile.evaluate.run import evaluate_store, ingest_checked, simulate_logs
from vigile.simulate import Simulation, SimulationSpec
from vigile.simulate.scenarios import parse_scenario
from vigile.store.duckdb import DuckDBStore

JITTERS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
PERIODS = (10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)
#: Jitter of the period sweep and period of the jitter sweep.
FIXED_JITTER, FIXED_PERIOD = 0.2, 300.0
BEACONS_PER_POINT = 10
MIN_CHECKINS = 20


@dataclass
class SweepPoint:
    """The outcome of one point of a sweep."""

    sweep: str
    value: float
    beacons: int
    detected: int
    median_rank: float | None
    false_alerts_per_1000_hosts_day: float
    days: float

    @property
    def recall(self) -> float:
        return self.detected / self.beacons if self.beacons else 0.0


def point_spec(sweep: str, value: float, seed: int, hosts: int) -> SimulationSpec:
    """The simulation of one sweep point."""
    period = value if sweep == "period" else FIXED_PERIOD
    jitter = value if sweep == "jitter" else FIXED_JITTER
    # Enough days for MIN_CHECKINS even with no jitter and a nightly gap.
    days = max(1.0, math.ceil((MIN_CHECKINS + 2) * period / 86400))
    scenarios = [
        parse_scenario(
            f"https_beacon:period={period},jitter={jitter},start_day=0,host={3 * i + 1},"
            f"fqdn=c{i}.sweep-beacon-{i}.net"
        )
        for i in range(BEACONS_PER_POINT)
    ]
    return SimulationSpec(seed=seed, days=days, workstations=hosts, scenarios=scenarios)


def run_point(
    sweep: str,
    value: float,
    detectors: Sequence[type[Detector]],
    *,
    seed: int = 7,
    hosts: int = 40,
    alert_score: float = DEFAULT_ALERT_SCORE,
) -> SweepPoint:
    """Simulate, ingest, hunt and score one point."""
    sim = Simulation(point_spec(sweep, value, seed, hosts))
    with tempfile.TemporaryDirectory(prefix="vigile-sweep-") as tmp:
        logs = Path(tmp) / "logs"
        simulate_logs(sim, logs)
        store = DuckDBStore(Path(tmp) / "eval.duckdb")
        try:
            ingest_checked(store, [logs])
            result, _ = evaluate_store(
                store,
                load_config(logs / "vigile.toml"),
                sim.truth,
                detectors,
                alert_score=alert_score,
            )
        finally:
            store.close()
    ranks = sorted(s.rank for s in result.scenarios if s.rank is not None)
    median = float(ranks[len(ranks) // 2]) if ranks else None
    return SweepPoint(
        sweep,
        value,
        len(result.scenarios),
        sum(s.detected for s in result.scenarios),
        median,
        round(result.per_kilohost_day(result.false_alerts), 2),
        sim.spec.days,
    )


def run_sweep(
    sweep: str,
    detectors: Sequence[type[Detector]],
    values: Sequence[float] | None = None,
    **options: object,
) -> list[SweepPoint]:
    """Every point of the ``jitter`` or ``period`` sweep."""
    grid = values if values is not None else (JITTERS if sweep == "jitter" else PERIODS)
    return [run_point(sweep, v, detectors, **options) for v in grid]  # type: ignore[arg-type]
