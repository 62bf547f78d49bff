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
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.detect import HuntContext
from vigile.detect.kernels import group_sorted_rows, offsets_from_counts, pack_pair_keys
from vigile.detect.partitions import SpilledPartitions
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
    mask = ~_never_scored(keys.column("src"))
    if "dst" in keys.column_names:
        mask &= ~_never_scored(keys.column("dst").cast(pa.string()).fill_null(""))
    return mask


def _never_scored(addresses: pa.ChunkedArray) -> np.ndarray:
    encoded = pc.dictionary_encode(addresses.cast(pa.string())).combine_chunks()
    values = encoded.dictionary.to_pylist()
    lookup = np.array([_is_never_scored(v) for v in values] + [False], dtype=bool)
    return lookup[encoded.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)]


@lru_cache(maxsize=1 << 16)
def _is_never_scored(address: str) -> bool:
    """Memoised: the same addresses come back in every partition (``match_networks``
    parses each distinct value of one array only)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in NEVER_SCORED)


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


#: Rows per partition when assembling IP pairs; bounds memory (about 100 bytes per row
#: while a partition is grouped, :data:`WORKERS` partitions at a time).
PARTITION_ROWS = 2_500_000
#: Partitions grouped at once, one per core: NumPy's sort and the compiled loops release
#: the GIL, so threads are enough.
WORKERS = 2
_IP_COLUMNS = ("src", "dst", "ts", "orig_ip_bytes", "resp_payload", "dst_port", "proto")


def ip_pairs(
    store: Store, win: ScoringWindow, exclude_uids: pa.Array | None
) -> Iterator[PairLists]:
    """IP pairs from closed connections in the window, in partitions of whole sources.

    The rows are read once, with the addresses as integer codes (``codes`` in the
    store contract); above :data:`PARTITION_ROWS` they are split by source into
    partitions on disk (:mod:`vigile.detect.partitions`). Each partition is grouped
    in NumPy (:func:`pairs_from_rows`) on :data:`WORKERS` threads, and the partitions
    are yielded in order, so the caller scores one while the next are grouped. (A
    database ``list(ts ORDER BY ts)`` aggregation measured 20-40x slower on 10 M
    rows, and a window-function ``lag()`` slower still.)
    """
    where = [Pred("open", "=", False)]
    if exclude_uids is not None and len(exclude_uids):
        where.append(Pred("uid", "not in", exclude_uids))
    k = max(1, -(-store.count("conn", win.rows) // PARTITION_ROWS))
    codes = {
        c: store.group("conn", [c], [], window=win.rows, order_by=[c]).column(c)
        for c in ("src", "dst", "proto")
    }
    if k == 1:
        rows = store.scan("conn", _IP_COLUMNS, win.rows, where, codes=codes)
        yield pairs_from_rows(rows, ["src", "dst"])
        return
    with TemporaryDirectory(prefix="vigile-pairs-") as tmp:
        parts = SpilledPartitions(Path(tmp), k, codes)
        parts.write(store.scan_batches("conn", _IP_COLUMNS, win.rows, where, codes=codes))

        def grouped(i: int) -> PairLists:
            return pairs_from_rows(parts.load(i), ["src", "dst"])

        with ThreadPoolExecutor(WORKERS) as pool:
            pending = deque(pool.submit(grouped, i) for i in range(min(WORKERS, k)))
            for i in range(len(pending), k + len(pending)):
                pairs = pending.popleft().result()
                if i < k:
                    pending.append(pool.submit(grouped, i))
                yield pairs


def _codes(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, int]:
    """Integer codes of a column's values and their number (nulls get the last code)."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    shared = pa.types.is_dictionary(col.type) and all(
        c.dictionary.equals(chunks[0].dictionary) for c in chunks[1:]
    )
    if not shared:  # strings (or dictionaries that differ): encode here
        encoded = pc.dictionary_encode(col)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.unify_dictionaries().combine_chunks()
        chunks = [encoded]
    n = len(chunks[0].dictionary) if chunks else 0
    parts = [
        (c.indices.fill_null(n) if c.null_count else c.indices).to_numpy(zero_copy_only=False)
        for c in chunks
    ]
    indices = np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.zeros(0)
    return indices.astype(np.int32, copy=False), n + 1


def _sorted_keys(codes: list[tuple[np.ndarray, int]], n: int) -> tuple[np.ndarray, int]:
    """``pair << row_bits | row`` sorted: one SIMD :func:`numpy.sort` of packed int64 keys
    (several times the speed of ``argsort``) groups the rows, in scan order."""
    row_bits = max((n - 1).bit_length(), 1)
    space = int(np.prod([size for _, size in codes], dtype=object))
    if len(codes) == 2 and space.bit_length() + row_bits <= 63:
        key = pack_pair_keys(codes[0][0], codes[1][0], codes[1][1], row_bits)
    else:
        pair = np.zeros(n, dtype=np.int64)
        for values, size in codes:
            pair = pair * size + values
        if space.bit_length() + row_bits > 63:  # too many codes to pack: number the pairs
            pair = np.unique(pair, return_inverse=True)[1].astype(np.int64)
        key = (pair << row_bits) | np.arange(n, dtype=np.int64)
    key.sort()
    return key, row_bits


def pairs_from_rows(rows: pa.Table, keys: list[str]) -> PairLists:
    """Group connection rows (``ts``, ``orig_ip_bytes`` and ``keys``) into time-ordered pairs.

    Pairs with fewer than :data:`MIN_CONNECTIONS` connections are left out. Optional
    columns become per-pair columns of ``keys``: ``dst_port`` and ``proto`` of the first
    connection, and ``answered_share``, the share of connections whose responder sent
    payload (a boolean column ``resp_payload``, or ``answered``; null counts as not
    answered). Key columns may be
    strings or dictionary-encoded.

    >>> t = pa.table({"src": ["a", "b", "a", "a", "a"], "ts": pa.array(
    ...     [5_000, 1_000, 3_000, 9_000, 7_000], pa.timestamp("ms")).cast(pa.timestamp("us")),
    ...     "orig_ip_bytes": [50, 10, 30, 90, 70]})
    >>> p = pairs_from_rows(t, ["src"])
    >>> p.keys.to_pylist(), p.ts_us.tolist(), p.orig_bytes.tolist()
    ([{'src': 'a'}], [3000000, 5000000, 7000000, 9000000], [30, 50, 70, 90])
    """
    if not rows.num_rows:
        empty = np.zeros(0, dtype=np.int64)
        return PairLists(rows.select(keys).slice(0, 0), empty, empty, np.zeros(1, np.int64))
    sorted_keys, row_bits = _sorted_keys([_codes(rows.column(k)) for k in keys], rows.num_rows)
    answered = np.zeros(rows.num_rows, dtype=bool)
    for name in ("answered", "resp_payload"):
        if name in rows.column_names:
            answered = _bools(rows.column(name).combine_chunks())
            break
    ts, b, offsets, firsts, n_answered = group_sorted_rows(
        sorted_keys,
        row_bits,
        _int64(rows.column("ts").combine_chunks().cast(pa.int64())),
        _int64(rows.column("orig_ip_bytes").combine_chunks()),
        answered,
        MIN_CONNECTIONS,
    )
    first_rows = pa.array(firsts)
    table = rows.select(keys).take(first_rows)
    for extra in ("dst_port", "proto"):  # the pair's service, from its first connection
        if extra in rows.column_names:
            table = table.append_column(extra, rows.column(extra).take(first_rows))
    if "resp_payload" in rows.column_names or "answered" in rows.column_names:
        share = np.round(n_answered / np.diff(offsets), 3)
        table = table.append_column("answered_share", pa.array(share))
    return PairLists(table, ts, b, offsets)


def _bools(col: pa.Array) -> np.ndarray:
    return np.asarray(col.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _int64(col: pa.Array) -> np.ndarray:
    if col.null_count:
        col = col.fill_null(0)
    return col.cast(pa.int64()).to_numpy(zero_copy_only=False)


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
    joined = names.join(conns, "uid", join_type="inner")
    pairs = pairs_from_rows(joined, ["src", "fqdn"])
    attrs = joined.group_by(["src", "fqdn"], use_threads=False).aggregate(
        [("via_min", "min"), ("via_min", "count_distinct"), ("proxy_max", "max")]
    )
    attrs = attrs.rename_columns(["src", "fqdn", "dst", "dst_count", "proxy"])
    keys = pairs.keys.append_column("_i", pa.array(np.arange(pairs.keys.num_rows)))
    keys = keys.join(attrs, ["src", "fqdn"]).sort_by("_i").drop_columns(["_i"])
    return PairLists(keys, pairs.ts_us, pairs.orig_bytes, pairs.offsets)


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
