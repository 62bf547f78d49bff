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
  record with no partner, :func:`~vigile.ingest.flowstate.partners`) that have
  waited less than ``wait``; those are held for the next call. The returned rows
  carry their ``conn_state``, computed over all the rows returned together.
* Time is the caller's: ``now`` is any clock that grows (the collector's batch cut
  time in seconds, the nfcapd reader's batch number). A row is held at most until
  the first call at least ``wait`` after the call that brought it, so none waits
  forever; ``final=True`` (the last batch: a collector's stop, a file's end) holds
  nothing.
* Memory is bounded: at most ``max_rows`` rows are held; beyond that the
  longest-waiting ones are released early (counted in :attr:`PairHold.early`).
* A row is returned exactly once, by exactly one call: nothing is lost or doubled
  between batches. Rows that pair are returned together, so a connection's state is
  decided once, on the originator's record.

Rows are Arrow tables with the columns a reader stores (``src``, ``src_port``,
``dst``, ``dst_port``, ``resp_pkts``, …) followed by the work columns in
:data:`WORK`, which :meth:`~PairHold.release` drops.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.ingest.flowstate import conn_states, partners

#: Work columns: record start and end (Unix µs), IP protocol number, ORed TCP flags, a
#: biflow's reverse flags (may be absent), IPv4 addresses as integers (may be absent:
#: pairing on integers is cheaper than on text; text is used when any row lacks them).
WORK = ("_start_us", "_end_us", "_proto", "_flags", "_rflags", "_src4", "_dst4")
_SINCE = "_since"
#: Rows held at most: about one default collector batch (50,000 flows) more in memory.
HOLD_ROWS = 50_000


class PairHold:
    """Holds lone records back across batch cuts until their partner can have come."""

    def __init__(self, wait: float, max_rows: int = HOLD_ROWS) -> None:
        self.wait, self.max_rows = wait, max_rows
        self.held: pa.Table | None = None
        #: Rows held back at least once, those of them that found their partner later,
        #: and those released before their wait was over because ``max_rows`` were held.
        self.held_back = self.paired_late = self.early = 0

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
        """The rows to store now, with ``conn_state``, work columns dropped.

        >>> hold = PairHold(wait=1)
        >>> def row(src, sport, dst, dport, flags):
        ...     return pa.table({"src": [src], "src_port": [sport], "dst": [dst],
        ...         "dst_port": [dport], "resp_pkts": pa.nulls(1, pa.int64()),
        ...         "_start_us": [0], "_end_us": [0], "_proto": [6], "_flags": [flags]})
        >>> hold.release(row("a", 5000, "b", 80, 2), now=0).num_rows, hold.rows
        (0, 1)
        >>> hold.release(row("b", 80, "a", 5000, 20), now=0.5)["conn_state"].to_pylist()
        ['REJ', None]
        """
        prior = self.rows
        parts = [t for t in (self.held, _stamped(rows, now)) if t is not None and t.num_rows]
        if not parts:
            self.held = None
            return _finish(_stamped(rows, now) if rows is not None else pa.table({}), [])
        merged = pa.concat_tables(parts, promote_options="default")
        keys, start, end = _keys(merged), _column(merged, "_start_us"), _column(merged, "_end_us")
        rpkts, proto = merged["resp_pkts"].combine_chunks(), merged["_proto"].to_numpy()
        partner = partners(keys, start, end, rpkts)
        # Lone: a one-direction TCP or UDP record with no partner (yet).
        lone = (partner < 0) & ((proto == 6) | (proto == 17))
        lone &= np.asarray(rpkts.is_null(), dtype=bool)
        keep = lone & (now - merged[_SINCE].to_numpy() < self.wait) & (not final)
        waiting = np.flatnonzero(keep)
        if len(waiting) > self.max_rows:
            keep[waiting[: len(waiting) - self.max_rows]] = False
            self.early += len(waiting) - self.max_rows
        self.held_back += int(keep[prior:].sum())
        self.paired_late += int((~lone[:prior]).sum())
        held = merged.filter(pa.array(keep))  # chunks of the batches it came in: bounded
        self.held = held.combine_chunks() if held.column(0).num_chunks > 8 else held
        out = merged.filter(pa.array(~keep))
        # A waiting row is no row's partner: the others' partners, renumbered, stay.
        renumber = np.cumsum(~keep) - 1
        return _finish(out, _states(out, np.where(partner >= 0, renumber[partner], -1)[~keep]))


def _states(t: pa.Table, partner: np.ndarray) -> pa.Array:
    """``conn_state`` of rows whose partners (indices into ``t``) are known."""
    flags, rpkts = _column(t, "_flags"), _column(t, "resp_pkts")
    start, end = _column(t, "_start_us"), _column(t, "_end_us")
    return conn_states(_keys(t), start, end, flags, _column(t, "_rflags"), rpkts, partner=partner)


def _stamped(rows: pa.Table | None, now: float) -> pa.Table | None:
    if rows is None:
        return None
    return rows.append_column(_SINCE, pa.array(np.full(rows.num_rows, now, np.float64)))


def _column(t: pa.Table, name: str) -> pa.Array:
    """A column as one array; a work column a reader did not give, as nulls."""
    if name not in t.column_names:
        return pa.nulls(t.num_rows, pa.int64())
    return t[name].combine_chunks()


def _keys(t: pa.Table) -> dict[str, pa.Array]:
    keys = {name: _column(t, name) for name in ("src_port", "dst_port")}
    keys["proto"] = _column(t, "_proto")
    src4, dst4 = _column(t, "_src4"), _column(t, "_dst4")
    ints = t.num_rows and src4.null_count == 0 and dst4.null_count == 0
    keys["src"] = src4 if ints else _column(t, "src")
    keys["dst"] = dst4 if ints else _column(t, "dst")
    return keys


def _finish(t: pa.Table, states: pa.Array | list[str]) -> pa.Table:
    t = t.drop_columns([c for c in (*WORK, _SINCE) if c in t.column_names])
    states = pa.array(states, pa.string()) if isinstance(states, list) else states
    if "conn_state" in t.column_names:
        return t.set_column(t.column_names.index("conn_state"), "conn_state", states)
    return t.append_column("conn_state", states)
