"""DNS messages paired into ``dns`` rows, as Arrow tables, held until their flow ends.

Pairing follows Zeek: a query and the response with the same transaction id in the
same flow make one row; a response without an open query makes a row of its own; a
second query with an open transaction id closes the first row unanswered. Within a
chunk this is done with NumPy over all messages at once (sorted by flow, transaction
id and position); a query still unanswered at the end of a chunk is kept, as a row
with no response, so a response in a later chunk can complete it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.ingest.packet.dns import QTYPES, RCODES

#: Columns of a message table (:meth:`DnsRows.add`); a row table has the same ones.
MESSAGE = pa.schema(
    [
        ("flow", pa.int64()),  # first_pos of the flow
        ("seq", pa.int64()),  # file offset of the message's packet
        ("ts", pa.int64()),  # nanoseconds
        ("proto", pa.int8()),  # 0 udp, 1 tcp
        ("trans_id", pa.int32()),
        ("response", pa.bool_()),
        ("rcode", pa.int32()),
        ("query", pa.string()),
        ("qtype", pa.int32()),
        ("answers", pa.list_(pa.string())),
        ("ttls", pa.list_(pa.float64())),
    ]
)
FROM_OPENER = ("flow", "seq", "ts", "proto", "trans_id", "query", "qtype")
FROM_RESPONSE = ("rcode", "answers", "ttls")
#: Names of the query types :mod:`.dns` knows, and each code's place among them (-1 for
#: none): a table of 65,536 names took 12 ms to build at every start.
QTYPE_TEXT = pa.array(list(QTYPES.values()), pa.string())
QTYPE_AT = np.full(65536, -1, np.int32)
QTYPE_AT[list(QTYPES)] = np.arange(len(QTYPES))
RCODE_NAMES = pa.array([RCODES.get(code) for code in range(16)], pa.string())
PROTO_NAMES = pa.array(["udp", "tcp"])


class DnsRows:
    """Pairs each chunk's messages into rows and hands out the rows of ended flows.

    Everything is held as Arrow tables: ``pending`` the paired rows, ``open`` the queries
    still unanswered at the end of a chunk (response columns null), with their keys
    (``flow << 16 | trans_id``) in ``open_keys``.
    """

    def __init__(self) -> None:
        self.pending: list[pa.Table] = []
        self.open: pa.Table = ROW.empty_table()
        self.open_keys = np.zeros(0, np.int64)

    def add(self, msgs: pa.Table) -> None:
        """Pair one chunk's messages (``MESSAGE`` columns, any order) into rows."""
        if not msgs.num_rows:
            return
        key = msgs["flow"].to_numpy() << 16 | msgs["trans_id"].to_numpy().astype(np.int64)
        order = np.lexsort((msgs["seq"].to_numpy(), key))  # messages stay where they are
        key = key[order]
        resp = msgs["response"].to_numpy(zero_copy_only=False)[order]
        n = len(key)
        first = np.ones(n, bool)
        first[1:] = key[1:] != key[:-1]
        carried = first & np.isin(key, self.open_keys)  # rows left open by an earlier chunk
        if carried.any():
            self._close(msgs, order[carried], key[carried], resp[carried])
        prev_resp = np.concatenate([[True], resp[:-1]])
        opens = ~resp | np.where(first, ~carried, prev_resp)
        openers = np.flatnonzero(opens)
        nxt = np.minimum(openers + 1, n - 1)
        joined = (openers + 1 < n) & ~first[nxt] & ~opens[nxt]
        responder = np.where(resp[openers], openers, np.where(joined, nxt, -1))
        last = (openers + 1 == n) | first[nxt]
        still_open = (responder < 0) & last
        rows = _rows(msgs, msgs, order[openers], np.where(responder < 0, -1, order[responder]))
        if still_open.any():
            self.open = pa.concat_tables([self.open, rows.filter(still_open)]).combine_chunks()
            self.open_keys = np.concatenate([self.open_keys, key[openers[still_open]]])
            rows = rows.filter(~still_open)
        self.pending.append(rows)

    def _close(self, msgs: pa.Table, at: np.ndarray, keys: np.ndarray, resp: np.ndarray) -> None:
        """Close the open rows of ``keys``: answered by the messages at ``at`` that are
        responses; a query (the transaction id used again) leaves its row unanswered."""
        sorter = np.argsort(self.open_keys)
        rows = sorter[np.searchsorted(self.open_keys, keys, sorter=sorter)]
        self.pending.append(_rows(self.open, msgs, rows, np.where(resp, at, -1)))
        keep = np.ones(len(self.open_keys), bool)
        keep[rows] = False
        self.open, self.open_keys = self.open.filter(keep), self.open_keys[keep]

    @property
    def held(self) -> int:
        """Paired rows held: :meth:`paired` hands them out."""
        return sum(t.num_rows for t in self.pending)

    def paired(self) -> pa.Table | None:
        """Every paired row held, of any flow; unanswered queries stay, to be answered.

        Lets the rows of a long-lived flow (a DNS tunnel keeps one 5-tuple for hours) be
        written before the flow ends, so that what is held stays bounded.
        """
        tables = [t for t in self.pending if t.num_rows]
        self.pending = []
        return pa.concat_tables(tables) if tables else None

    def pop(self, flows: np.ndarray) -> pa.Table | None:
        """Every row of the flows whose first_pos is in ``flows`` (they ended)."""
        tables = []
        if len(self.open_keys):
            ended = np.isin(self.open_keys >> 16, flows)
            if ended.any():
                tables.append(self.open.filter(ended))
                self.open, self.open_keys = self.open.filter(~ended), self.open_keys[~ended]
        if self.pending:
            held = pa.concat_tables(self.pending)
            mask = np.isin(held["flow"].to_numpy(), flows)
            tables.append(held.filter(mask))
            rest = held.filter(~mask)
            self.pending = [rest] if rest.num_rows else []
        tables = [t for t in tables if t.num_rows]
        return pa.concat_tables(tables) if tables else None


#: Columns of a row table: the opener's, then its response's.
ROW = pa.schema([MESSAGE.field(k) for k in (*FROM_OPENER, *FROM_RESPONSE)])


def _rows(openers: pa.Table, msgs: pa.Table, at: np.ndarray, responder: np.ndarray) -> pa.Table:
    """Rows of the openers at ``at`` in ``openers``, answered by the messages of ``msgs``
    at ``responder`` (-1: unanswered, the response columns null)."""
    base = openers.select(list(FROM_OPENER)).take(at)
    reply = msgs.select(list(FROM_RESPONSE)).take(pa.array(responder, mask=responder < 0))
    return pa.Table.from_arrays([*base.columns, *reply.columns], schema=ROW)


def named(rows: pa.Table) -> dict[str, pa.Array]:
    """The ``dns`` table columns of paired rows (without the flow's endpoints and uid)."""
    rcode, qtype = rows["rcode"].combine_chunks(), rows["qtype"].combine_chunks()
    return {
        "ts": pa.array(rows["ts"].to_numpy() // 1000),
        "proto": PROTO_NAMES.take(rows["proto"].combine_chunks()),
        "trans_id": rows["trans_id"].combine_chunks(),
        "query": rows["query"].combine_chunks(),
        "qtype": qtype,
        "qtype_name": qtype_names(qtype),
        "rcode": rcode,
        "rcode_name": RCODE_NAMES.take(rcode),
        "answers": rows["answers"].combine_chunks(),
        "ttls": rows["ttls"].combine_chunks(),
    }


def qtype_names(qtype: pa.Array) -> pa.Array:
    """The name of each query type (null where unknown or null)."""
    at = QTYPE_AT[pc.fill_null(qtype, 0).to_numpy().astype(np.int64) & 0xFFFF]
    missing = (at < 0) | qtype.is_null().to_numpy(zero_copy_only=False)
    return QTYPE_TEXT.take(pa.array(at, mask=missing))
