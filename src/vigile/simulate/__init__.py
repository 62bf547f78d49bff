"""A deterministic simulated office network, with attacks hidden in it and ground truth.

:class:`Simulation` builds the office (:mod:`.network`), plans every scenario once
(:mod:`.scenarios`), then produces traffic one hour at a time: the benign generators
(:mod:`.traffic`) for that hour plus the scenario rows that fall in it. Every hour
draws from its own random stream, seeded by ``(seed, hour, generator)``, so the
same seed gives byte-identical output however the run is consumed.

Passes of :func:`write_run`, in order: plan, generate hour by hour into each
writer (Zeek TSV, Parquet), then write ``vigile.toml`` and ``ground-truth.csv``.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from vigile.config import match_networks
from vigile.simulate.flows import Flows, unique_udp_ports
from vigile.simulate.network import INTERNAL, Office, build_office, render_config
from vigile.simulate.scenarios import Scenario, Truth
from vigile.simulate.traffic import BENIGN
from vigile.simulate.truth import write_truth
from vigile.simulate.writers.columns import zeek_uids

HOUR = 3600.0
#: Connections one desktop (with its share of server traffic) makes on a weekday, measured
#: on seed 7; used to size runs by connection count (``workstations_for``).
CONNECTIONS_PER_DESK_DAY = 2000
#: A Monday, so the first day is a working day.
DEFAULT_START = datetime(2026, 3, 2, tzinfo=UTC)


@dataclass
class SimulationSpec:
    """What to simulate: how big, how long, from when, with which attacks."""

    seed: int = 7
    days: float = 3.0
    workstations: int = 40
    start: datetime = DEFAULT_START
    scenarios: Sequence[Scenario] = field(default_factory=tuple)
    activity: float = 1.0


@dataclass
class Chunk:
    """One hour of traffic, sorted by time, with Zeek-style connection ids."""

    t0: float
    t1: float
    flows: Flows
    uid: pa.Array
    hour: int


class Writer(Protocol):
    def write(
        self, flows: Flows, uid: pa.Array, t0: float, t1: float, rng: np.random.Generator
    ) -> None: ...

    def close(self) -> None: ...


class Simulation:
    """A planned run: the office, the scenarios' rows and truth, and the hours to make."""

    def __init__(self, spec: SimulationSpec) -> None:
        if spec.days <= 0:
            raise ValueError("days must be positive")
        self.spec = spec
        self.office: Office = build_office(spec.workstations, spec.seed)
        self.start = spec.start.timestamp()
        self.end = self.start + spec.days * 86400.0
        parts, self.truth = [], []
        self.skipped: list[str] = []
        for label, scenario in enumerate(spec.scenarios):
            rng = np.random.default_rng([spec.seed, 1000 + label])
            flows, truth = scenario.generate(self.office, rng, self.start, self.end, label)
            kept = flows.take((flows.ts >= self.start) & (flows.ts < self.end))
            if len(kept) == 0:
                self.skipped.append(scenario.name)  # starts after the run ends
                continue
            parts.append(kept)
            self.truth.append(
                dataclasses.replace(
                    truth,
                    start=float(kept.ts.min()),
                    end=float((kept.ts + kept.duration).max()),
                    connections=self._count(kept, truth),
                )
            )
        self.attacks = Flows.concat(parts).sorted()

    def _count(self, flows: Flows, truth: Truth) -> int:
        """Connections from the truth's source (to its peer, when it has one)."""
        addr = self.office.vocabs.addr
        mine = flows.src == addr.id(truth.src)
        if truth.dst is not None:
            mine &= flows.dst == addr.id(truth.dst)
        return int(mine.sum())

    @property
    def hours(self) -> int:
        return int(np.ceil((self.end - self.start) / HOUR))

    def chunk(self, hour: int) -> Chunk:
        """The traffic of hour number ``hour`` of the run."""
        t0 = self.start + hour * HOUR
        t1 = min(t0 + HOUR, self.end)
        parts = [
            gen(
                self.office,
                np.random.default_rng([self.spec.seed, 2, hour, i]),
                t0,
                t1,
                self.spec.activity,
            )
            for i, gen in enumerate(BENIGN)
        ]
        lo, hi = np.searchsorted(self.attacks.ts, [t0, t1])
        parts.append(self.attacks.take(np.arange(lo, hi)))
        flows = Flows.concat(parts)
        # Sort and keep the hour's rows in one gather (one copy, not two: memory at scale).
        order = np.argsort(flows.ts, kind="stable")
        inside = flows.ts[order]
        flows = flows.take(order[(inside >= t0) & (inside < t1)])
        rng = np.random.default_rng([self.spec.seed, 3, hour])
        unique_udp_ports(flows, np.random.default_rng([self.spec.seed, 5, hour]))
        return Chunk(t0, t1, flows, zeek_uids(rng, len(flows)), hour)

    def writer_rng(self, chunk: Chunk, writer: object) -> np.random.Generator:
        """A random stream for one writer and hour, so outputs do not depend on each other."""
        salt = zlib.crc32(type(writer).__name__.encode())
        return np.random.default_rng([self.spec.seed, 4, chunk.hour, salt])

    def chunks(self) -> Iterator[Chunk]:
        for hour in range(self.hours):
            yield self.chunk(hour)

    def local_mask(self) -> np.ndarray:
        """Which address ids are internal (for Zeek's ``local_orig``/``local_resp``)."""
        import ipaddress

        nets = tuple(ipaddress.ip_network(n) for n in INTERNAL)
        return match_networks(pa.array(self.office.vocabs.addr.values), nets)

    def description(self) -> dict[str, Any]:
        """The run's settings, as written to the ``[simulation]`` section of vigile.toml."""
        return {
            "seed": self.spec.seed,
            "days": self.spec.days,
            "start": datetime.fromtimestamp(self.start, UTC).isoformat(),
            "workstations": self.spec.workstations,
            "internal_hosts": self.office.internal_hosts,
            "activity": self.spec.activity,
            "scenarios": [t.scenario for t in self.truth],
            "ground_truth": "ground-truth.csv",
        }


def workstations_for(connections: int, days: float = 1.0) -> int:
    """Desktops needed for about ``connections`` connections in ``days`` weekdays.

    >>> workstations_for(10_000_000)
    5000
    """
    return max(1, min(65000, round(connections / (CONNECTIONS_PER_DESK_DAY * days))))


def write_run(sim: Simulation, out: Path, writers: Sequence[Writer]) -> dict[str, int]:
    """Generate every hour into ``writers``, then the network model and ground truth.

    Returns the number of connections per hour written, summed: ``{"conn": n}``.
    """
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    try:
        for chunk in sim.chunks():
            total += len(chunk.flows)
            for w in writers:
                w.write(chunk.flows, chunk.uid, chunk.t0, chunk.t1, sim.writer_rng(chunk, w))
    finally:
        for w in writers:
            w.close()
    (out / "vigile.toml").write_text(render_config(sim.office, sim.description()), "utf-8")
    write_truth(out / "ground-truth.csv", sim.truth)
    return {"conn": total}


def make_conn_parquet(
    out: Path, connections: int, *, seed: int = 7, scenarios: Sequence[Scenario] = ()
) -> Path:
    """One weekday of an office sized for about ``connections`` connections, as
    ``out/conn.parquet`` in vigile's schema (the input of the detection benchmarks).

    Made hour by hour, so memory stays bounded by one hour of traffic; reuses the file
    when a previous call with the same arguments left it complete.
    """
    from vigile.simulate.writers.parquet import ParquetWriter

    path = out / "conn.parquet"
    stamp = out / f".complete-{seed}-{connections}-{len(scenarios)}"
    if path.exists() and stamp.exists():
        return path
    spec = SimulationSpec(
        seed=seed, days=1, workstations=workstations_for(connections), scenarios=scenarios
    )
    sim = Simulation(spec)
    write_run(sim, out, [ParquetWriter(out, sim.office.vocabs, seed, ("conn",))])
    stamp.touch()
    return path


__all__ = [
    "Simulation",
    "SimulationSpec",
    "Truth",
    "make_conn_parquet",
    "workstations_for",
    "write_run",
]
