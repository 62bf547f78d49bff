"""What scenarios share: the ground-truth record and the beacon building block."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vigile.simulate.flows import Flows, beacon_times, ephemeral_ports

DAY = 86400.0


@dataclass(frozen=True)
class Truth:
    """Ground truth of one scenario: who, with whom, when, and with what parameters.

    ``dst`` is None when the scenario has no single peer (a DNS tunnel goes through
    the resolver, a scan touches many hosts); ``fqdn`` is then the name to match.
    """

    label: int
    scenario: str
    kind: str
    src: str
    dst: str | None
    fqdn: str | None
    start: float
    end: float
    connections: int
    params: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


def params_of(scenario: Any) -> dict[str, Any]:
    """The scenario's parameters as a plain dict."""
    return dataclasses.asdict(scenario)


def in_sleep_window(ts: np.ndarray, window: str) -> np.ndarray:
    """Which times fall in a daily ``"HH-HH"`` window (UTC); empty means none.

    >>> in_sleep_window(np.array([3600.0 * 9, 3600.0 * 20]), "08-18").tolist()
    [True, False]
    """
    if not window:
        return np.zeros(len(ts), bool)
    a, b = (int(x) for x in window.split("-"))
    hour = (ts // 3600) % 24
    return (hour >= a) & (hour < b) if a <= b else (hour >= a) | (hour < b)


def beacon(
    rng: np.random.Generator,
    start: float,
    end: float,
    period: float,
    jitter: float,
    sleep: str,
    **columns: Any,
) -> Flows:
    """Check-ins of an implant: Cobalt-Strike-style jittered sleeps, quiet in ``sleep``.

    ``columns`` are passed to :meth:`Flows.of`; callables receive the row count and
    return a column (so sizes can vary per check-in).
    """
    ts = beacon_times(rng, start, end, period, jitter)
    ts = ts[~in_sleep_window(ts, sleep)]
    n = len(ts)
    cols = {k: (v(n) if callable(v) else v) for k, v in columns.items()}
    return Flows.of(n, ts=ts, **cols)


def around(rng: np.random.Generator, mean: float, spread: float) -> Any:
    """A column maker: integers within ``spread`` (a fraction) of ``mean``."""
    return lambda n: np.maximum(1, rng.normal(mean, mean * spread / 2, n)).astype(np.int64)


def pick_workstation(office: Any, index: int) -> int:
    """Address id of desktop number ``index`` (wrapping round in a small office)."""
    return int(office.workstations[index % len(office.workstations)])


def server_subnet_sweep(
    office: Any, rng: np.random.Generator, targets: int, ports: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every port of ``ports`` on hosts 1 to ``targets`` of 10.20.1.0/24: the probes'
    address ids, ports and whether the host is one of the office's servers, host by
    host, and the random order they are sent in (indices into those)."""
    hosts = office.vocabs.addr.ids([f"10.20.1.{i}" for i in range(1, targets + 1)])
    dst = np.repeat(hosts, len(ports))
    port = np.tile(np.array(ports, np.int32), len(hosts))
    order = rng.permutation(len(dst))
    live = np.isin(dst, np.array(list(office.servers.values()), np.int32))
    return dst, port, live, order


def sweep_flows(
    rng: np.random.Generator,
    first: float,
    rate: float,
    src: int,
    sweep: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    state: np.ndarray,
    **columns: Any,
) -> Flows:
    """The probes of a :func:`server_subnet_sweep` sent from ``src`` in its order,
    ``rate`` a second from ``first`` (seconds), each from an ephemeral port, with the
    connection states ``state`` (in sending order) and any other ``Flows`` columns."""
    dst, port, _, order = sweep
    n = len(order)
    return Flows.of(
        n,
        ts=first + np.arange(n) / rate,
        src=src,
        dst=dst[order],
        dport=port[order],
        sport=ephemeral_ports(rng, n),
        state=state,
        **columns,
    )


def attacker_address(office: Any, rng: np.random.Generator) -> int:
    """A fresh public address for attacker infrastructure."""
    from vigile.simulate.network import public_address

    return int(office.vocabs.addr.id(public_address(rng)))


def truth_for(
    scenario: Any,
    office: Any,
    flows: Flows,
    label: int,
    src: int,
    dst: int | None,
    fqdn: str | None,
) -> Truth:
    """The ground-truth record of a scenario's flows."""
    addr = office.vocabs.addr.values
    flows.label[:] = label
    return Truth(
        label,
        scenario.name,
        scenario.kind,
        addr[src],
        None if dst is None else addr[dst],
        fqdn,
        float(flows.ts.min()) if len(flows) else 0.0,
        float((flows.ts + flows.duration).max()) if len(flows) else 0.0,
        len(flows),
        params_of(scenario),
        scenario.summary,
    )
