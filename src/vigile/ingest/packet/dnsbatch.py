"""DNS messages of a whole chunk at once: compiled parse, Arrow columns out.

:func:`.dnskernel.parse_messages` reads the common messages (header, question,
answers) of a chunk in one compiled pass; :class:`Batch` holds its columns and turns
them into Arrow arrays without a Python object per message. Messages outside the
common case have status :data:`.dnskernel.SLOW` and go through :func:`.dns.parse`;
both paths give the same :class:`.dns.DnsMessage` (:func:`parse_batch`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from vigile.ingest.packet.dns import DnsMessage
from vigile.ingest.packet.dnskernel import FAST, parse_messages


@dataclass
class Batch:
    """Columns of one chunk's DNS messages; text as Arrow string offsets and bytes."""

    status: np.ndarray  # FAST where the columns hold the message
    trans_id: np.ndarray
    flags: np.ndarray
    qtype: np.ndarray
    query_end: np.ndarray  # end offset of each query name in query_text
    query_text: np.ndarray
    answer_first: np.ndarray  # index of each message's first answer; one more entry
    answer_end: np.ndarray  # end offset of each answer text in answer_text
    ttls: np.ndarray
    answer_text: np.ndarray

    @property
    def fast(self) -> np.ndarray:
        return self.status == FAST

    def queries(self) -> pa.Array:
        """Query names of all messages (empty where not FAST)."""
        offsets = np.concatenate([[0], self.query_end]).astype(np.int32)
        return pa.StringArray.from_buffers(
            len(self.query_end), pa.py_buffer(offsets), pa.py_buffer(self.query_text)
        )

    def answers(self) -> tuple[pa.Array, pa.Array]:
        """Answers and TTLs of all messages as list arrays (empty where not FAST)."""
        ends = np.concatenate([[0], self.answer_end]).astype(np.int32)
        text = pa.StringArray.from_buffers(
            len(self.answer_end), pa.py_buffer(ends), pa.py_buffer(self.answer_text)
        )
        first = pa.array(self.answer_first.astype(np.int32))
        return pa.ListArray.from_arrays(first, text), pa.ListArray.from_arrays(
            first, pa.array(self.ttls, pa.float64())
        )


def parse_columns(view: np.ndarray, start: np.ndarray, size: np.ndarray) -> Batch:
    """The messages at ``view[start:start + size]`` as a :class:`Batch`."""
    if not view.flags.writeable:  # one compiled signature: the reader's buffers are writable
        view = view.copy()
    start = np.ascontiguousarray(start, np.int64)
    size = np.ascontiguousarray(size, np.int64)
    return Batch(*parse_messages(view, start, size))


def parse_batch(view: np.ndarray, start: np.ndarray, size: np.ndarray) -> list[DnsMessage | None]:
    """Messages at ``view[start:start + size]``; None where :func:`.dns.parse` must do it."""
    b = parse_columns(view, start, size)
    queries = b.queries().to_pylist()
    answers, ttls = (a.to_pylist() for a in b.answers())
    out: list[DnsMessage | None] = []
    for i, fast in enumerate(b.fast.tolist()):
        if not fast:
            out.append(None)
            continue
        f = int(b.flags[i])
        m = DnsMessage(int(b.trans_id[i]), bool(f & 0x8000), f & 0xF, queries[i], int(b.qtype[i]))
        m.answers, m.ttls = answers[i], ttls[i]
        out.append(m)
    return out
