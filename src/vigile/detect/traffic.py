"""Shared reads and statistics for the server-side detectors.

Helpers only (no detector here): window bounds, address classes, the names seen
for each address, traffic per pair and per port, bytes per host and time slice
oriented from the internal host's side, and a robust baseline (median/MAD).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.config import IPNetwork, match_networks
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


@dataclass
class PairTraffic:
    """TCP/UDP connections from one address to another in a window, by responder port."""

    ports: set[int] = field(default_factory=set)
    connections: int = 0
    answered: int = 0
    answered_ports: set[int] = field(default_factory=set)


def pair_traffic(ctx: HuntContext, window: Window) -> dict[tuple[str, str], PairTraffic]:
    """Per (originator, responder): ports, connections and which ports answered (the
    responder sent payload: ``resp_payload``). ICMP is left out: replies such as
    port-unreachable are logged with the replier as originator, and they are answers,
    not connections a host opened."""
    rows = ctx.store.group(
        "conn",
        ["src", "dst", "dst_port"],
        [Agg("count", None, "n"), Agg("max", "resp_payload", "answered")],
        window=window,
        where=[Pred("proto", "in", ["tcp", "udp"])],
    )
    pairs: dict[tuple[str, str], PairTraffic] = defaultdict(PairTraffic)
    for src, dst, port, n, answered in zip(
        *(rows.column(c).to_pylist() for c in ("src", "dst", "dst_port", "n", "answered")),
        strict=True,
    ):
        p = pairs[(src, dst)]
        p.connections += int(n)
        if port is not None:
            p.ports.add(int(port))
        if answered:
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


@dataclass
class HostFlows:
    """One host's outbound/inbound bytes per slice and per (peer, slice)."""

    out: dict[datetime, float] = field(default_factory=lambda: defaultdict(float))
    inb: dict[datetime, float] = field(default_factory=lambda: defaultdict(float))
    pair: dict[tuple[str, datetime], float] = field(default_factory=lambda: defaultdict(float))


def directed_flows(ctx: HuntContext, window: Window, bucket: timedelta) -> dict[str, HostFlows]:
    """Per internal host: bytes to and from external peers, by slice and by peer."""
    t = ctx.store.time_series(
        "conn",
        bucket,
        [Agg("sum", "orig_ip_bytes", "ob"), Agg("sum", "resp_ip_bytes", "rb")],
        window=window,
        keys=["src", "dst"],
    )
    nets = ctx.config.network.internal
    s_in = match_networks(t.column("src"), nets)
    d_in = match_networks(t.column("dst"), nets)
    keep = pa.array(s_in != d_in)
    as_src = pa.array(s_in)
    t = t.filter(keep)
    as_src = as_src.filter(keep)
    ob, rb = _floats(t.column("ob")), _floats(t.column("rb"))
    # Orient every row from the internal host's side (originator or responder).
    oriented = pa.table(
        {
            "host": pc.if_else(as_src, t.column("src"), t.column("dst")),
            "peer": pc.if_else(as_src, t.column("dst"), t.column("src")),
            "bucket": t.column("bucket"),
            "out": pc.if_else(as_src, ob, rb),
            "inb": pc.if_else(as_src, rb, ob),
        }
    )
    hosts: dict[str, HostFlows] = defaultdict(HostFlows)
    per_host = oriented.group_by(["host", "bucket"]).aggregate([("out", "sum"), ("inb", "sum")])
    for h, b, o, i in zip(
        *(per_host.column(c).to_pylist() for c in per_host.column_names), strict=True
    ):
        hosts[h].out[b] += o
        hosts[h].inb[b] += i
    per_pair = oriented.group_by(["host", "peer", "bucket"]).aggregate([("out", "sum")])
    for h, p, b, o in zip(
        *(per_pair.column(c).to_pylist() for c in per_pair.column_names), strict=True
    ):
        hosts[h].pair[(p, b)] += o
    return hosts


def _floats(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.fill_null(col.cast(pa.float64()), 0.0)
