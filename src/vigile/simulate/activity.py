"""The rhythm of the simulated office and the building blocks its traffic shares.

The office is in UTC; people work 08:00-18:00 on weekdays and a third of the desktops
stay on overnight. Timers fire on a fixed grid with a per-host phase; look-ups go
through the office resolver, which forwards half of what it does not hold upstream.
"""

from __future__ import annotations

import numpy as np

from vigile.simulate.flows import (
    UDP,
    Flows,
    ephemeral_ports,
    periodic_times,
    service,
)
from vigile.simulate.network import Office

DIURNAL = (
    np.array(
        [2, 1, 1, 1, 1, 2, 5, 30, 90, 100, 100, 90, 70, 90, 100, 100, 90, 60, 30, 15, 10, 8, 5, 3]
    )
    / 100.0
)
WEEKEND = 0.08


def activity_at(ts: np.ndarray) -> np.ndarray:
    """Share of peak human activity at each Unix time (weekday diurnal curve)."""
    hours = ((ts // 3600) % 24).astype(np.int64)
    weekday = ((ts // 86400 + 3) % 7) < 5  # 1970-01-01 was a Thursday
    return DIURNAL[hours] * np.where(weekday, 1.0, WEEKEND)


def awake(office: Office, hosts: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Whether each desktop is switched on: a third never sleep, the rest in office hours."""
    always_on = (hosts.astype(np.int64) * 2654435761 % 97) < 32
    return always_on | (activity_at(ts) >= 0.3)


def lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    return np.maximum(1, rng.lognormal(np.log(median), sigma, n)).astype(np.int64)


def dns_lookups(
    office: Office,
    rng: np.random.Generator,
    ts: np.ndarray,
    clients: np.ndarray,
    names: np.ndarray,
    answers: np.ndarray,
    miss: float,
    qtype: int = 1,
    rcode: int = 0,
) -> Flows:
    """Look-ups of ``names`` by ``clients`` through the office resolver.

    A share ``miss`` is not cached by the client and reaches the resolver (dc01); of
    those, half are not cached there either and are forwarded upstream.
    """
    ask = rng.random(len(ts)) < miss
    ts, clients, names, answers = ts[ask] - 0.02, clients[ask], names[ask], answers[ask]
    n = len(ts)
    resolver = office.addr("dc01")
    # Exact DNS message sizes: header 12, name (length + 2), type and class 4; an A answer
    # is 16 bytes (name pointer, type, class, TTL, length, address); TXT/NULL answers carry
    # 16-200 bytes of data (C2 replies).
    query = office.vocabs.name.lengths()[names] + 18
    data = rng.integers(16, 200, n)
    answer = np.where(
        answers >= 0, 16, np.where(np.isin(qtype, (10, 16)) & (rcode == 0), 12 + 1 + data, 0)
    )
    common = {
        "proto": UDP,
        "service": service("dns"),
        "name": names,
        "answer": answers,
        "qtype": qtype,
        "rcode": rcode,
        "dport": 53,
    }
    local = Flows.of(
        n,
        ts=ts,
        src=clients,
        dst=resolver,
        sport=ephemeral_ports(rng, n),
        duration=rng.uniform(0.0005, 0.03, n),
        obytes=query,
        rbytes=query + answer,
        **common,
    )
    fwd = rng.random(n) < 0.5
    m = int(fwd.sum())
    upstream = Flows.of(
        m,
        ts=ts[fwd] + 0.0003,
        src=resolver,
        dst=rng.choice(office.upstream_dns, m),
        sport=ephemeral_ports(rng, m),
        duration=rng.uniform(0.005, 0.06, m),
        obytes=query[fwd],
        rbytes=(query + answer)[fwd],
        **{k: v[fwd] if isinstance(v, np.ndarray) else v for k, v in common.items()},
    )
    return Flows.concat([local, upstream])


def timers(
    office: Office,
    rng: np.random.Generator,
    t0: float,
    t1: float,
    hosts: np.ndarray,
    period: float,
    spread: float,
    salt: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Events of one timer on every host in ``hosts``; the phase is fixed per host."""
    phases = ((hosts.astype(np.int64) * 40503 + salt * 7919) % 10007) / 10007 * period
    who, ts = periodic_times(rng, t0, t1, period, phases.astype(np.float64), spread)
    return hosts[who], ts
