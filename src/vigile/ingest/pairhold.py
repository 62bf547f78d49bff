"""Lone flow records held back until their reverse-direction record can have arrived.

NetFlow and IPFIX exporters mostly send one record per direction, and
:func:`vigile.ingest.flowstate.conn_states` pairs the two records of a connection
within the rows it is given. Readers hand rows over in batches (a collector batch,
50,000 records of an nfcapd file), so the two records of a connection that arrive
on either side of a batch cut would each be judged alone: a query answered in the
next batch says ``S0``. :class:`PairHold` sits between the batches and the state
step:

* :meth:`PairHold.release` takes a batch's rows, adds the rows held so far, pairs
  them, and returns every row except the *lone* ones (a one-direction TCP or UDP
  record with no partner, :func:`~vigile.ingest.flowstate.pair_records`) that have
  waited less than ``wait``; those are held for the next call. The returned rows
  carry their ``conn_state``, ``orig_payload`` and ``resp_payload``, computed over
  all the rows returned together (:func:`~vigile.ingest.flowstate.conn_states`,
  :func:`~vigile.ingest.flowstate.conn_payload`).
* Time is the caller's: ``now`` is any clock that grows (the collector's batch cut
  time in seconds, the nfcapd reader's batch number). A row is held at most until
  the first call at least ``wait`` after the call that brought it, so none waits
  forever; ``final=True`` (the last batch: a collector's stop, a file's end) holds
  nothing.
* Memory is bounded: at most ``max_rows`` rows are held; beyond that the
  longest-waiting ones are released early (counted in :attr:`PairHold.early`).
* Records pair only with records of the same exporter (their ``sensor``): two
  routers that each export one direction of different connections, or one
  connection seen by two sensors, are not one connection's two sides.
* An exporter that sends one direction only is learnt and its records are not held
  (:mod:`vigile.ingest.oneway`, :attr:`PairHold.exporters`); holding resumes as soon
  as one of its records pairs. Given the internal networks, this is learnt per kind
  of path (internal, internet, transit), so a firewall that exports both directions
  of internal traffic but one of internet traffic stops holding the latter only.
* A row is returned exactly once, by exactly one call: nothing is lost or doubled
  between batches. Rows that pair are returned together, so a connection's state is
  decided once, on the originator's record.
* **A pair is one row** (:func:`merge_pairs`): the originator's record, its
  responder side (``resp_pkts``, ``resp_ip_bytes``, ``resp_bytes``) taken from its
  partner's own counters, ``ts`` the earlier start and ``duration`` spanning both
  records; the partner is not returned as a row of its own but counted in
  :attr:`PairHold.merged`. Only mutual pairs merge (each record the other's
  nearest); a record whose nearest partner is another's keeps its row, as does
  every lone record and every biflow. A lone reply (from a likely server port to a
  port that is not one) is turned around to its likely originator
  (:func:`turn_replies`).

Rows are Arrow tables with the columns a reader stores (``src``, ``src_port``,
``dst``, ``dst_port``, ``orig_pkts``, ``orig_ip_bytes``, ``resp_pkts``,
``resp_ip_bytes``, …) followed by the work columns in :data:`WORK`, which
:meth:`~PairHold.release` drops.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.config import IPNetwork
from vigile.ingest.flowstate import Pairing, conn_payload, conn_states, pair_records
from vigile.ingest.oneway import ONE_WAY_RECORDS, OneWayExporters, path_kinds
from vigile.ingest.payload import NETFLOW_FRAMING

#: Work columns: record start and end (Unix µs), IP protocol number, ORed TCP flags, a
#: biflow's reverse flags (may be absent), IPv4 addresses as integers (may be absent:
#: pairing on integers is cheaper than on text; text is used when any row lacks them).
WORK = ("_start_us", "_end_us", "_proto", "_flags", "_rflags", "_src4", "_dst4")
_SINCE = "_since"
#: A row's kind of path (oneway.path_kinds), set when it arrives if there is a network model.
_KIND = "_kind"
#: Rows held at most: about one default collector batch (50,000 flows) more in memory.
HOLD_ROWS = 50_000


class PairHold:
    """Holds lone records back across batch cuts until their partner can have come."""

    def __init__(
        self,
        wait: float,
        max_rows: int = HOLD_ROWS,
        framing: int = NETFLOW_FRAMING,
        one_way_records: int = ONE_WAY_RECORDS,
        internal: Sequence[IPNetwork] = (),
    ) -> None:
        self.wait, self.max_rows, self.framing = wait, max_rows, framing
        #: The internal networks: one-way is learnt per kind of path; none: per exporter.
        self.internal = tuple(internal)
        self.held: pa.Table | None = None
        #: Rows held back at least once, those of them that found their partner later,
        #: and those released before their wait was over because ``max_rows`` were held.
        self.held_back = self.paired_late = self.early = 0
        #: Responder records merged into their originator's row (not stored as rows).
        self.merged = 0
        #: Which exporters send one direction only (their lone records are not held).
        self.exporters = OneWayExporters(one_way_records)
        #: The most rows held at once, and the most bytes they took (Arrow buffers).
        self.peak_rows = self.peak_bytes = 0

    @property
    def rows(self) -> int:
        """How many rows are held now."""
        return 0 if self.held is None else self.held.num_rows

    def due(self) -> float | None:
        """When the longest-held row's wait ends (on the caller's clock), or None."""
        if not self.rows:
            return None
        assert self.held is not None
        return float(pc.min(self.held[_SINCE]).as_py()) + self.wait

    def release(self, rows: pa.Table | None, now: float, *, final: bool = False) -> pa.Table:
        """The rows to store now, with ``conn_state`` and the payload columns, work
        columns dropped (an empty table when there are none).

        >>> hold = PairHold(wait=1)
        >>> def row(src, sport, dst, dport, flags):
        ...     return pa.table({"src": [src], "src_port": [sport], "dst": [dst],
        ...         "dst_port": [dport], "resp_pkts": pa.nulls(1, pa.int64()),
        ...         "_start_us": [0], "_end_us": [0], "_proto": [6], "_flags": [flags]})
        >>> hold.release(row("a", 5000, "b", 80, 2), now=0).num_rows, hold.rows
        (0, 1)
        >>> hold.release(row("b", 80, "a", 5000, 20), now=0.5)["conn_state"].to_pylist()
        ['REJ']
        >>> hold.merged
        1
        """
        prior = self.rows
        fresh = _stamped(rows, now, self.internal)
        parts = [t for t in (self.held, fresh) if t is not None and t.num_rows]
        if not parts:
            self.held = None
            return pa.table({})
        merged = pa.concat_tables(parts, promote_options="default")
        keys, start, end = _keys(merged), _column(merged, "_start_us"), _column(merged, "_end_us")
        rpkts, proto = _column(merged, "resp_pkts"), merged["_proto"].to_numpy()
        pairing = pair_records(keys, start, end, _column(merged, "_flags"), rpkts)
        # Lone: a one-direction TCP or UDP record with no partner (yet).
        one_way = ~pairing.biflow & ((proto == 6) | (proto == 17))
        lone = (pairing.partner < 0) & one_way
        keep = lone & (now - merged[_SINCE].to_numpy() < self.wait) & (not final)
        if self.wait > 0 and not final:
            kind = merged[_KIND].to_numpy() if _KIND in merged.column_names else None
            sensor = _column(merged, "sensor")
            keep &= ~self.exporters.learn(sensor, lone, one_way, prior, kind)
        waiting = np.flatnonzero(keep)
        if len(waiting) > self.max_rows:
            keep[waiting[: len(waiting) - self.max_rows]] = False
            self.early += len(waiting) - self.max_rows
        self.held_back += int(keep[prior:].sum())
        self.paired_late += int((~lone[:prior]).sum())
        if not keep.any():  # nothing waits (a final call, a one-way exporter): no copies
            self.held = None
            return self._finish(merged, pairing)
        held = merged.filter(pa.array(keep))  # chunks of the batches it came in: bounded
        self.held = held.combine_chunks() if held.column(0).num_chunks > 8 else held
        self.peak_rows = max(self.peak_rows, self.held.num_rows)
        self.peak_bytes = max(self.peak_bytes, self.held.nbytes)
        out = merged.filter(pa.array(~keep))
        # A waiting row is no row's partner: the others' partners, renumbered, stay.
        return self._finish(out, pairing.take(~keep))

    def _finish(self, t: pa.Table, pairing: Pairing) -> pa.Table:
        """``t`` with its state and payload columns, work columns dropped."""
        keys, rpkts = _keys(t), _column(t, "resp_pkts")
        flags, rflags = _column(t, "_flags"), _column(t, "_rflags")
        start, end = _column(t, "_start_us"), _column(t, "_end_us")
        sent = (_column(t, "orig_ip_bytes"), _column(t, "orig_pkts"))
        received = (_column(t, "resp_ip_bytes"), rpkts)
        derived = {
            "conn_state": conn_states(keys, start, end, flags, rflags, rpkts, pairing=pairing)
        }
        derived["orig_payload"], derived["resp_payload"] = conn_payload(
            keys, pairing, sent, received, self.framing, (flags, rflags)
        )
        for name, values in derived.items():
            if name in t.column_names:
                t = t.set_column(t.column_names.index(name), name, values)
            else:
                t = t.append_column(name, values)
        t, merged = merge_pairs(t, pairing)
        self.merged += merged
        return t.drop_columns([c for c in (*WORK, _SINCE, _KIND) if c in t.column_names])


#: A responder column filled from the partner's own counter of the same side.
_FROM_PARTNER = {"resp_pkts": "orig_pkts", "resp_ip_bytes": "orig_ip_bytes"}
_FROM_PARTNER["resp_bytes"] = "orig_bytes"


def merge_pairs(t: pa.Table, pairing: Pairing) -> tuple[pa.Table, int]:
    """Each mutual pair of one-direction records of ``t`` as one row, and how many
    responder records were merged away.

    The originator's row keeps its own side, ``src``/``dst``, ``source_pos``,
    ``sensor`` and derived columns (``conn_state``, payload), and gets its partner's
    own counters as its responder side, ``ts`` the earlier start and ``duration``
    from the earlier start to the later end (``_start_us``/``_end_us``). Rows that
    are not in a mutual pair (lone records, biflows, a record whose nearest partner
    pairs with another) are kept in their order, as they are except lone replies,
    which are turned around first (:func:`turn_replies`).

    >>> t = pa.table({"ts": pa.array([10, 4], pa.timestamp("us", "UTC")),
    ...     "duration": [0.0, 0.0], "orig_pkts": [3, 2], "orig_ip_bytes": [300, 120],
    ...     "resp_pkts": pa.nulls(2, pa.int64()), "_start_us": [10, 4], "_end_us": [10, 9]})
    >>> pairing = Pairing(np.array([1, 0]), np.array([False, True]), np.zeros(2, bool))
    >>> one, n = merge_pairs(t, pairing)
    >>> n, one["orig_pkts"].to_pylist(), one["resp_pkts"].to_pylist(), one["duration"][0]
    (1, [2], [3], <pyarrow.DoubleScalar: 6e-06>)
    """
    t = turn_replies(t, pairing)
    partner, n = pairing.partner, t.num_rows
    p = np.where(partner >= 0, partner, 0)
    mutual = (partner >= 0) & ~pairing.biflow & (partner[p] == np.arange(n))
    orig = np.flatnonzero(mutual & pairing.originator)
    if not len(orig):
        return t, 0
    resp = partner[orig]
    idx, other = pa.array(orig), pa.array(resp)
    columns = {name: t[name].combine_chunks() for name in t.column_names}
    for mine, theirs in _FROM_PARTNER.items():
        if mine in columns and theirs in columns:
            columns[mine] = _put(columns[mine], orig, columns[theirs].take(other))
    if "_start_us" in columns and "_end_us" in columns:
        start, end = columns["_start_us"], columns["_end_us"]
        lo = pc.min_element_wise(start.take(idx), start.take(other))
        hi = pc.max_element_wise(end.take(idx), end.take(other))
        if "ts" in columns:
            columns["ts"] = _put(columns["ts"], orig, lo.cast(pa.int64()).cast(columns["ts"].type))
        if "duration" in columns:
            # safe=False: a span beyond 2**53 µs (285 years, a damaged end time) is not
            # exact as a double, which Arrow's safe cast refuses; rounded is what it means.
            span = pc.max_element_wise(pc.subtract(hi, lo), 0).cast(pa.float64(), safe=False)
            columns["duration"] = _put(columns["duration"], orig, pc.divide(span, 1e6))
        columns["_start_us"], columns["_end_us"] = (
            _put(start, orig, lo),
            _put(end, orig, hi),
        )
    keep = np.ones(n, dtype=bool)
    keep[resp] = False
    return pa.table(columns).filter(pa.array(keep)), len(resp)


#: Columns a turned row swaps: its sender becomes the responder.
_SWAPPED = [("src", "dst"), ("src_port", "dst_port"), ("_src4", "_dst4")]
_SWAPPED.append(("orig_payload", "resp_payload"))
_TO_RESPONDER = {"orig_pkts": "resp_pkts", "orig_ip_bytes": "resp_ip_bytes"}
_TO_RESPONDER["orig_bytes"] = "resp_bytes"


def turn_replies(t: pa.Table, pairing: Pairing) -> pa.Table:
    """``t`` with each lone reply (``pairing.reply``) turned around to its likely
    originator, as Zeek turns a connection whose first packet came from a likely
    server port: ``src``/``dst`` and the ports swapped, the record's own counters
    (and payload) as the responder's side, the originator's side null (its record
    was not seen, which is not the same as silent). ``conn_state`` was set for the
    turned row already (:func:`~vigile.ingest.flowstate.conn_states`).

    >>> t = pa.table({"src": ["10.0.0.53"], "src_port": [53], "dst": ["10.0.0.9"],
    ...     "dst_port": [40000], "orig_pkts": [1], "resp_pkts": pa.nulls(1, pa.int64())})
    >>> one = Pairing(np.array([-1]), np.array([False]), np.array([False]), np.array([True]))
    >>> turn_replies(t, one).select(["src", "dst_port", "orig_pkts", "resp_pkts"]).to_pylist()
    [{'src': '10.0.0.9', 'dst_port': 53, 'orig_pkts': None, 'resp_pkts': 1}]
    """
    at = np.flatnonzero(pairing.turned)
    if not len(at):
        return t
    columns = {name: t[name].combine_chunks() for name in t.column_names}
    idx = pa.array(at)
    for a, b in _SWAPPED:
        if a in columns and b in columns:
            mine, theirs = columns[a].take(idx), columns[b].take(idx)
            columns[a], columns[b] = _put(columns[a], at, theirs), _put(columns[b], at, mine)
    for own, back in _TO_RESPONDER.items():
        if own in columns:
            values = columns[own]
            if back in columns:
                columns[back] = _put(columns[back], at, values.take(idx))
            columns[own] = _put(values, at, pa.nulls(len(at), values.type))
    return pa.table(columns)


def _put(values: pa.Array, at: np.ndarray, new: pa.Array) -> pa.Array:
    """``values`` with the elements at indices ``at`` replaced by ``new``."""
    if pa.types.is_null(values.type):  # a column the reader left untyped (all null)
        values = values.cast(new.type)
    order = np.arange(len(values))
    order[at] = len(values) + np.arange(len(at))
    both = pa.concat_arrays([values, new.cast(values.type)])
    return both.take(pa.array(order))


def _stamped(rows: pa.Table | None, now: float, internal: tuple[IPNetwork, ...]) -> pa.Table | None:
    """``rows`` with their arrival time and, given internal networks, kind of path."""
    if rows is None:
        return None
    rows = rows.append_column(_SINCE, pa.array(np.full(rows.num_rows, now, np.float64)))
    if internal and rows.num_rows:
        rows = rows.append_column(_KIND, pa.array(path_kinds(rows, internal)))
    return rows


def _column(t: pa.Table, name: str) -> pa.Array:
    """A column as one array; a work column a reader did not give, as nulls."""
    if name not in t.column_names:
        return pa.nulls(t.num_rows, pa.int64())
    return t[name].combine_chunks()


def _keys(t: pa.Table) -> dict[str, pa.Array]:
    keys = {name: _column(t, name) for name in ("src_port", "dst_port", "sensor")}
    keys["proto"] = _column(t, "_proto")
    src4, dst4 = _column(t, "_src4"), _column(t, "_dst4")
    ints = t.num_rows and src4.null_count == 0 and dst4.null_count == 0
    keys["src"] = src4 if ints else _column(t, "src")
    keys["dst"] = dst4 if ints else _column(t, "dst")
    return keys
