"""Connection pairs for the C2 detectors: who talked to whom, when, with how many bytes.

Two kinds of pair, as in RITA v5 (``analysis/spagooper.go``):

* **IP pairs** ``src -> dst`` from ``conn``.
* **FQDN pairs** ``src -> name`` where the name is the TLS SNI or the HTTP ``Host``
  (an HTTP ``CONNECT`` through a proxy names the real destination, so a beacon
  through a proxy is scored against its destination name, with the proxy recorded
  in the evidence). Each connection (Zeek ``uid``) counts once per name even when
  both ``http`` and ``tls`` name it; its time and bytes come from ``conn``.
  Connections that belong to an FQDN pair are left out of the IP pairs, so one
  beacon is not reported twice.

Time handling follows RITA's: the scoring window ends at the newest timestamp, and
rows are read from the start of the hour in which the window starts (RITA filters
its hourly aggregates with ``hour >= toStartOfHour(min_ts)``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.config import match_networks
from vigile.detect import HuntContext
from vigile.detect.kernels import offsets_from_counts, segment_ids
from vigile.store import Agg, Pred, Store, Window

#: Pairs with fewer connections than this are not worth a beacon score.
MIN_CONNECTIONS = 4

#: Never scored, as in RITA's mandatory ``never_included_subnets``
#: (``config/filter.go``): unspecified, loopback, link-local, multicast, broadcast.
NEVER_SCORED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/32",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "224.0.0.0/4",
        "255.255.255.255/32",
        "::1/128",
        "::/128",
        "fe80::/10",
        "ff00::/8",
    )
)


def scorable(keys: pa.Table) -> np.ndarray:
    """Mask of pairs whose addresses are not in :data:`NEVER_SCORED`."""
    mask = ~match_networks(keys.column("src"), NEVER_SCORED)
    if "dst" in keys.column_names:
        dst = keys.column("dst").fill_null("")
        mask &= ~match_networks(dst, NEVER_SCORED)
    return mask


@dataclass(frozen=True)
class ScoringWindow:
    """RITA's beacon window in whole seconds and the rows it reads."""

    start_s: int
    end_s: int
    rows: Window
    kind: str

    def evidence(self) -> dict[str, object]:
        return {
            "window": self.kind,
            "window_start_s": self.start_s,
            "window_end_s": self.end_s,
            "rows_from": self.rows.start.isoformat() if self.rows.start else None,
        }


def scoring_window(ctx: HuntContext) -> ScoringWindow | None:
    """The window of ``ctx`` in RITA's terms (None when the store holds no connection)."""
    first, newest = ctx.store.time_bounds("conn")
    if newest is None or first is None:
        return None
    end_s = int(newest.timestamp())
    start = ctx.window.start if ctx.window.start is not None else first
    start_s = max(int(start.timestamp()), int(first.timestamp()))
    if ctx.window.start is not None and ctx.window.end is not None:
        span = (ctx.window.end - ctx.window.start).total_seconds()
        start_s = max(end_s - round(span), int(first.timestamp()))
    hour = datetime.fromtimestamp(start_s - start_s % 3600, UTC)
    rows = Window(hour, datetime.fromtimestamp(end_s, UTC) + timedelta(seconds=1))
    return ScoringWindow(start_s, end_s, rows, ctx.window_kind)


@dataclass
class PairLists:
    """Pairs with their connections' times (µs) and originator IP bytes, flattened."""

    keys: pa.Table
    ts_us: np.ndarray
    orig_bytes: np.ndarray
    offsets: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def take(self, idx: np.ndarray) -> PairLists:
        """The pairs at positions ``idx`` (ascending), with their connections."""
        mask = np.zeros(len(self.counts), dtype=bool)
        mask[idx] = True
        rows = np.repeat(mask, self.counts)
        return PairLists(
            self.keys.take(pa.array(idx, type=pa.int64())),
            self.ts_us[rows],
            self.orig_bytes[rows],
            offsets_from_counts(self.counts[idx]),
        )


def _flatten(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    offsets = arr.offsets.to_numpy().astype(np.int64)
    values = arr.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    return values.to_numpy(zero_copy_only=False), offsets - offsets[0]


def ip_pairs(store: Store, win: ScoringWindow, exclude_uids: pa.Array | None) -> PairLists:
    """IP pairs from closed connections in the window, lists ordered by time."""
    where = [Pred("open", "=", False)]
    if exclude_uids is not None and len(exclude_uids):
        where.append(Pred("uid", "not in", exclude_uids))
    table = store.group(
        "conn",
        ["src", "dst"],
        [Agg("bag", "ts", "ts"), Agg("bag", "orig_ip_bytes", "bytes")],
        window=win.rows,
        where=where,
    )
    return _pairs_from_lists(table, ["src", "dst"])


def time_order(ts: np.ndarray, other: np.ndarray, offsets: np.ndarray):  # type: ignore[no-untyped-def]
    """Sort each pair's connections by time (only the pairs that are out of order).

    >>> time_order(np.array([3, 1, 5, 7]), np.array([30, 10, 50, 70]), np.array([0, 2, 4]))
    (array([1, 3, 5, 7]), array([10, 30, 50, 70]))
    """
    if len(ts) < 2:
        return ts, other
    seg = segment_ids(offsets)
    back = (np.diff(ts) < 0) & (seg[1:] == seg[:-1])
    if not back.any():
        return ts, other
    bad = np.zeros(len(offsets) - 1, dtype=bool)
    bad[seg[1:][back]] = True
    rows = np.flatnonzero(bad[seg])
    rel = ts[rows] - ts[rows].min()
    if int(rel.max()) < (1 << 40) and len(bad) < (1 << 23):
        # one SIMD argsort of (pair, time) packed in an int64: ~10x faster than lexsort
        order = rows[np.argsort((seg[rows] << 40) | rel)]
    else:
        order = rows[np.lexsort((ts[rows], seg[rows]))]
    ts, other = ts.copy(), other.copy()
    ts[rows], other[rows] = ts[order], other[order]
    return ts, other


def _pairs_from_lists(table: pa.Table, keys: list[str]) -> PairLists:
    ts, offsets = _flatten(table.column("ts"))
    b, _ = _flatten(table.column("bytes"))
    ts_us = ts.astype("datetime64[us]").astype(np.int64) if ts.dtype.kind == "M" else ts
    b = np.nan_to_num(b.astype(np.float64)).astype(np.int64)
    ts_us = ts_us.astype(np.int64)
    keep = np.diff(offsets) >= MIN_CONNECTIONS
    if not keep.all():
        idx = np.flatnonzero(keep)
        mask = np.repeat(keep, np.diff(offsets))
        ts_us, b = ts_us[mask], b[mask]
        offsets = offsets_from_counts(np.diff(offsets)[keep])
        table = table.take(pa.array(idx))
    ts_us, b = time_order(ts_us, b, offsets)
    return PairLists(table.select(keys), ts_us, b, offsets)


def _strip_port(names: pa.Array) -> pa.Array:
    lowered = pc.utf8_lower(names)
    return pc.replace_substring_regex(lowered, r":\d+$", "")


def fqdn_connections(store: Store, win: ScoringWindow) -> pa.Table:
    """One row per (src, name, uid): names from HTTP Host / CONNECT and TLS SNI."""
    http = store.scan(
        "http",
        ["uid", "src", "dst", "host", "method"],
        window=win.rows,
        where=[Pred("host", "is not null"), Pred("uid", "is not null")],
    )
    tls = store.scan(
        "tls",
        ["uid", "src", "dst", "sni"],
        window=win.rows,
        where=[Pred("sni", "is not null"), Pred("uid", "is not null")],
    )
    proxy = pc.equal(http.column("method"), "CONNECT").fill_null(False)
    names = pa.table(
        {
            "uid": pa.concat_arrays(
                [http.column("uid").combine_chunks(), tls.column("uid").combine_chunks()]
            ),
            "src": pa.concat_arrays(
                [http.column("src").combine_chunks(), tls.column("src").combine_chunks()]
            ),
            "fqdn": pa.concat_arrays(
                [
                    _strip_port(http.column("host").combine_chunks()),
                    _strip_port(tls.column("sni").combine_chunks()),
                ]
            ),
            "via": pa.concat_arrays(
                [http.column("dst").combine_chunks(), tls.column("dst").combine_chunks()]
            ),
            "proxy": pa.concat_arrays(
                [proxy.combine_chunks(), pa.array(np.zeros(tls.num_rows, dtype=bool))]
            ),
        }
    )
    names = names.filter(pc.not_equal(names.column("fqdn"), ""))
    return names.group_by(["src", "fqdn", "uid"], use_threads=False).aggregate(
        [("via", "min"), ("proxy", "max")]
    )


def fqdn_pairs(store: Store, win: ScoringWindow, names: pa.Table) -> PairLists:
    """FQDN pairs with the times and bytes of their connections from ``conn``."""
    uids = pc.unique(names.column("uid"))
    conns = store.scan(
        "conn",
        ["uid", "ts", "orig_ip_bytes"],
        window=win.rows,
        where=[Pred("open", "=", False), Pred("uid", "in", uids)],
    )
    joined = names.join(conns, "uid", join_type="inner").sort_by(
        [("src", "ascending"), ("fqdn", "ascending"), ("ts", "ascending")]
    )
    grouped = joined.group_by(["src", "fqdn"], use_threads=False).aggregate(
        [
            ("ts", "list"),
            ("orig_ip_bytes", "list"),
            ("via_min", "min"),
            ("via_min", "count_distinct"),
            ("proxy_max", "max"),
        ]
    )
    grouped = grouped.rename_columns(["src", "fqdn", "ts", "bytes", "dst", "dst_count", "proxy"])
    return _pairs_from_lists(grouped, ["src", "fqdn", "dst", "dst_count", "proxy"])


def missing_host(store: Store, win: ScoringWindow) -> dict[tuple[str, str], tuple[int, str]]:
    """HTTP requests without a Host header per IP pair, with one of their user agents."""
    t = store.group(
        "http",
        ["src", "dst"],
        [Agg("count", None, "n"), Agg("any", "user_agent", "ua")],
        window=win.rows,
        where=[Pred("host", "is null")],
    )
    return {(r["src"], r["dst"]): (r["n"], r["ua"]) for r in t.to_pylist()}
