"""Shared reads and statistics for the server-side detectors.

Helpers only (no detector here): window bounds, the names seen for each address,
per-window byte totals for history baselines, and a robust baseline (median/MAD).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import numpy as np

from vigile.config import IPNetwork
from vigile.detect import HuntContext
from vigile.store import Agg, Pred, Store, Window

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: MAD of a normal distribution is 0.6745 σ; scale it so robust z-scores read like z-scores.
MAD_TO_SIGMA = 1.4826


def bounds(ctx: HuntContext) -> tuple[datetime, datetime]:
    """The window's start and end, with an empty store's open window made concrete."""
    end = ctx.window.end or EPOCH
    start = ctx.window.start or (end - timedelta(hours=ctx.config.window_hours))
    return start, end


def in_networks(address: str | None, networks: Iterable[IPNetwork]) -> bool:
    """True if ``address`` lies in one of ``networks``.

    >>> in_networks("10.1.2.3", [ipaddress.ip_network("10.0.0.0/8")])
    True
    """
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in networks)


def internal_lookup(ctx: HuntContext) -> Callable[[str | None], bool]:
    """``is_internal`` with a memo: traffic repeats the same few addresses many times."""
    nets = ctx.config.network.internal
    memo: dict[str | None, bool] = {}

    def lookup(address: str | None) -> bool:
        hit = memo.get(address)
        if hit is None:
            hit = memo[address] = in_networks(address, nets)
        return hit

    return lookup


@lru_cache(maxsize=65536)
def is_public(address: str | None) -> bool:
    """True for a globally routable address (not private, loopback, multicast, …).

    >>> is_public("8.8.8.8"), is_public("10.0.0.1"), is_public("224.0.0.251")
    (True, False, False)
    """
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return False
    return ip.is_global and not ip.is_multicast


def names_by_address(store: Store, window: Window) -> dict[str, frozenset[str]]:
    """Names seen for each address in the window: DNS answers, TLS SNI, HTTP Host."""
    names: dict[str, set[str]] = defaultdict(set)
    dns = store.scan("dns", ["query", "answers"], window=window)
    for query, answers in zip(
        dns.column("query").to_pylist(), dns.column("answers").to_pylist(), strict=True
    ):
        for answer in answers or ():
            if query and _is_address(answer):
                names[answer].add(query.rstrip(".").lower())
    for table, column in (("tls", "sni"), ("http", "host")):
        rows = store.group(table, ["dst", column], [Agg("count", None, "n")], window=window)
        for dst, name in zip(
            rows.column("dst").to_pylist(), rows.column(column).to_pylist(), strict=True
        ):
            if name and not _is_address(name.split(":")[0]):
                names[dst].add(name.split(":")[0].rstrip(".").lower())
    return {a: frozenset(n) for a, n in names.items()}


def _is_address(text: str | None) -> bool:
    try:
        ipaddress.ip_address(text or "")
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Baseline:
    """A robust baseline of past values: median, MAD-based σ and the sample count."""

    median: float
    sigma: float
    samples: int

    def z(self, value: float) -> float:
        """Robust z-score of ``value``; a zero spread counts as 1 % of the median (≥ 1)."""
        spread = max(self.sigma, 0.01 * self.median, 1.0)
        return (value - self.median) / spread


def robust_baseline(values: Iterable[float]) -> Baseline:
    """Median and scaled MAD of ``values``.

    >>> b = robust_baseline([10, 11, 9, 10, 50])
    >>> b.median, round(b.sigma, 3), b.samples
    (10.0, 1.483, 5)
    """
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return Baseline(0.0, 0.0, 0)
    median = float(np.median(arr))
    mad = float(np.median(np.abs(arr - median)))
    return Baseline(median, MAD_TO_SIGMA * mad, int(arr.size))


def window_series(ctx: HuntContext, periods: int) -> list[tuple[Window, datetime, datetime]]:
    """The scoring window and up to ``periods`` equal windows before it, newest first,
    stopping at the oldest connection in the store."""
    start, end = bounds(ctx)
    oldest, _ = ctx.store.time_bounds("conn")
    length = end - start
    out = []
    for k in range(periods + 1):
        w_end = end - k * length
        w_start = w_end - length
        if k and (oldest is None or w_end <= oldest):
            break
        out.append((Window(w_start, w_end), w_start, w_end))
    return out


@dataclass
class PairTraffic:
    """TCP/UDP connections from one address to another in a window, by responder port."""

    ports: set[int] = field(default_factory=set)
    connections: int = 0
    answered: int = 0
    answered_ports: set[int] = field(default_factory=set)


def pair_traffic(ctx: HuntContext, window: Window) -> dict[tuple[str, str], PairTraffic]:
    """Per (originator, responder): ports, connections and which ports answered (sent
    payload). ICMP is left out: replies such as port-unreachable are logged with the
    replier as originator, and they are answers, not connections a host opened."""
    rows = ctx.store.group(
        "conn",
        ["src", "dst", "dst_port"],
        [Agg("count", None, "n"), Agg("max", "resp_bytes", "max_resp")],
        window=window,
        where=[Pred("proto", "in", ["tcp", "udp"])],
    )
    pairs: dict[tuple[str, str], PairTraffic] = defaultdict(PairTraffic)
    for src, dst, port, n, max_resp in zip(
        *(rows.column(c).to_pylist() for c in ("src", "dst", "dst_port", "n", "max_resp")),
        strict=True,
    ):
        p = pairs[(src, dst)]
        p.connections += int(n)
        if port is not None:
            p.ports.add(int(port))
        if (max_resp or 0) > 0:
            p.answered += int(n)
            if port is not None:
                p.answered_ports.add(int(port))
    return pairs


def format_ports(ports: set[int]) -> str:
    """At most eight ports, sorted.

    >>> format_ports({443, 22}), format_ports(set(range(12)))
    ('22, 443', '0, 1, 2, 3, 4, 5, 6, 7 and 4 more')
    """
    s = sorted(ports)
    text = ", ".join(str(q) for q in s[:8])
    return text + (f" and {len(s) - 8} more" if len(s) > 8 else "")
