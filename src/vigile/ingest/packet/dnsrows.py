"""DNS messages paired into ``dns`` rows, as Arrow tables, held until their flow ends.

Pairing follows Zeek: a query and the response with the same transaction id in the
same flow make one row; a response without an open query makes a row of its own; a
second query with an open transaction id closes the first row unanswered. Within a
chunk this is done with NumPy over all messages at once (sorted by flow, transaction
id and position); a query still unanswered at the end of a chunk is kept as a Python
row so a response in a later chunk can complete it.
"""

from __future__ import annotations

from typing import Any

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
QTYPE_NAMES = pa.array([QTYPES.get(code) for code in range(65536)], pa.string())
RCODE_NAMES = pa.array([RCODES.get(code) for code in range(16)], pa.string())
PROTO_NAMES = pa.array(["udp", "tcp"])


class DnsRows:
    """Pairs each chunk's messages into rows and hands out the rows of ended flows."""

    def __init__(self) -> None:
        self.pending: list[pa.Table] = []
        self.open: dict[int, dict[str, Any]] = {}  # flow << 16 | trans_id -> unanswered row
        self.closed: list[dict[str, Any]] = []  # rows completed across a chunk boundary

    def add(self, msgs: pa.Table) -> None:
        """Pair one chunk's messages (``MESSAGE`` columns, any order) into rows."""
        if not msgs.num_rows:
            return
        key = msgs["flow"].to_numpy() << 16 | msgs["trans_id"].to_numpy().astype(np.int64)
        order = np.lexsort((msgs["seq"].to_numpy(), key))
        msgs, key = msgs.take(order), key[order]
        resp = msgs["response"].to_numpy(zero_copy_only=False)
        n = len(key)
        first = np.ones(n, bool)
        first[1:] = key[1:] != key[:-1]
        carried = first & np.isin(key, np.fromiter(self.open, np.int64, len(self.open)))
        prev_resp = np.concatenate([[True], resp[:-1]])
        opens = ~resp | np.where(first, ~carried, prev_resp)
        for i in np.flatnonzero(carried).tolist():  # rows left open by an earlier chunk
            row = self.open.pop(int(key[i]))
            if resp[i]:
                row |= {k: msgs[k][i].as_py() for k in FROM_RESPONSE}
            self.closed.append(row)
        openers = np.flatnonzero(opens)
        nxt = np.minimum(openers + 1, n - 1)
        joined = (openers + 1 < n) & ~first[nxt] & ~opens[nxt]
        responder = np.where(resp[openers], openers, np.where(joined, nxt, -1))
        last = (openers + 1 == n) | first[nxt]
        still_open = (responder < 0) & last
        rows = self._rows(msgs, openers, responder)
        if still_open.any():
            for k, row in zip(
                key[openers[still_open]].tolist(),
                rows.filter(pa.array(still_open)).to_pylist(),
                strict=True,
            ):
                self.open[k] = row
            rows = rows.filter(pa.array(~still_open))
        self.pending.append(rows)

    @staticmethod
    def _rows(msgs: pa.Table, openers: np.ndarray, responder: np.ndarray) -> pa.Table:
        base = msgs.select(list(FROM_OPENER)).take(openers)
        answered = pa.array(responder, mask=responder < 0)
        reply = msgs.select(list(FROM_RESPONSE)).take(answered)
        return pa.Table.from_arrays(
            [*base.columns, *reply.columns], names=[*FROM_OPENER, *FROM_RESPONSE]
        )

    @property
    def held(self) -> int:
        """Paired rows held: :meth:`paired` hands them out."""
        return sum(t.num_rows for t in self.pending) + len(self.closed)

    def paired(self) -> pa.Table | None:
        """Every paired row held, of any flow; unanswered queries stay, to be answered.

        Lets the rows of a long-lived flow (a DNS tunnel keeps one 5-tuple for hours) be
        written before the flow ends, so that what is held stays bounded.
        """
        tables = [*self.pending]
        if self.closed:
            tables.append(pa.Table.from_pylist(self.closed, schema=self._schema()))
        self.pending, self.closed = [], []
        tables = [t for t in tables if t.num_rows]
        return pa.concat_tables(tables) if tables else None

    def pop(self, flows: np.ndarray) -> pa.Table | None:
        """Every row of the flows whose first_pos is in ``flows`` (they ended)."""
        ended = set(flows.tolist())
        mine = [r for r in self.closed if r["flow"] in ended]
        if mine:
            self.closed = [r for r in self.closed if r["flow"] not in ended]
        for k in [k for k, r in self.open.items() if r["flow"] in ended]:
            mine.append(self.open.pop(k))
        tables = [pa.Table.from_pylist(mine, schema=self._schema())] if mine else []
        if self.pending:
            held = pa.concat_tables(self.pending)
            mask = pc.is_in(held["flow"], pa.array(flows, pa.int64()))
            tables.append(held.filter(mask))
            rest = held.filter(pc.invert(mask))
            self.pending = [rest] if rest.num_rows else []
        tables = [t for t in tables if t.num_rows]
        return pa.concat_tables(tables) if tables else None

    @staticmethod
    def _schema() -> pa.Schema:
        return pa.schema([MESSAGE.field(k) for k in (*FROM_OPENER, *FROM_RESPONSE)])


def named(rows: pa.Table) -> dict[str, pa.Array]:
    """The ``dns`` table columns of paired rows (without the flow's endpoints and uid)."""
    rcode, qtype = rows["rcode"].combine_chunks(), rows["qtype"].combine_chunks()
    return {
        "ts": pa.array(rows["ts"].to_numpy() // 1000),
        "proto": PROTO_NAMES.take(rows["proto"].combine_chunks()),
        "trans_id": rows["trans_id"].combine_chunks(),
        "query": rows["query"].combine_chunks(),
        "qtype": qtype,
        "qtype_name": QTYPE_NAMES.take(qtype),
        "rcode": rcode,
        "rcode_name": RCODE_NAMES.take(rcode),
        "answers": rows["answers"].combine_chunks(),
        "ttls": rows["ttls"].combine_chunks(),
    }
