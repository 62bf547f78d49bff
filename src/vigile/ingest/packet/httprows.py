"""HTTP requests paired with their responses' status codes into ``http`` rows, as Arrow.

Pairing follows Zeek's ``base/protocols/http/main.zeek``: a response answers the
oldest unanswered request of its flow; with more than :data:`MAX_PENDING` requests
waiting (a capture of one side only, or excessive pipelining), they are all given up
(logged without a status) before the next request, and responses pair from there on.
A request's ``trans_depth`` is its place in its connection, counted from 1.

Requests are held as Arrow tables (one per chunk) and each flow's counters as NumPy
arrays; the pairing itself is one compiled pass over a chunk's requests and
responses in packet order (:func:`pair`), so no Python object is made per request.
Rows go out when their flow ends (:meth:`HttpRows.pop`) or, for a flow that goes on,
in blocks of :data:`HTTP_BLOCK` answered (or given up) requests (:meth:`HttpRows.blocks`):
a C2 channel over one keep-alive connection may carry a request a second for hours.
Rows in a whole block are logged as of a connection still open (``open`` true, as in
Zeek's and RITA's logs of open connections), whenever they are written, so a row's
``open`` does not depend on how the file was cut into chunks.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from vigile.jit import njit

#: Answered HTTP requests of one flow held before they are handed out while the flow
#: goes on (:meth:`HttpRows.blocks`).
HTTP_BLOCK = 4096
#: Zeek's ``HTTP::max_pending_requests``.
MAX_PENDING = 100
TEXT = ("method", "host", "uri", "referrer", "user_agent")
#: Columns of a request table (:meth:`HttpRows.add`): ``flow`` is its flow's first_pos,
#: ``ts`` in microseconds. Rows handed out have ``trans_depth`` after ``flow``, and
#: ``status`` and ``open`` at the end.
REQUEST = pa.schema([("flow", pa.int64()), ("ts", pa.int64())] + [(t, pa.string()) for t in TEXT])


@njit(
    cache=True, nogil=True, aot=["(int64[::1], boolean[::1], int64[::1], int64[::1], int64[::1])"]
)
def pair(
    slot: np.ndarray, request: np.ndarray, code: np.ndarray, count: np.ndarray, answered: np.ndarray
) -> np.ndarray:
    """Pair a chunk's requests and responses, in packet order within each flow.

    ``slot`` is each event's flow (an index into ``count`` and ``answered``, the
    flow's requests so far and those answered or given up; both are updated). Returns
    for a request its trans_depth, for a response the trans_depth of the request it
    answers (0: none; ``code`` -1 is a status line without a code, which answers none).
    """
    out = np.zeros(len(slot), np.int64)
    for i in range(len(slot)):
        f = slot[i]
        if request[i]:
            if count[f] - answered[f] > MAX_PENDING:
                answered[f] = count[f]
            count[f] += 1
            out[i] = count[f]
        elif code[i] >= 0 and answered[f] < count[f]:
            answered[f] += 1
            out[i] = answered[f]
    return out


class HttpRows:
    """Pairs each chunk's requests and responses, and hands out finished rows.

    Per flow with requests held (``flow`` sorted): ``count`` requests so far,
    ``answered`` of them answered or given up, ``logged`` handed out in blocks.
    Statuses of held requests are kept apart (``status``: flow, trans_depth, code)
    and joined to their rows when the rows go out.
    """

    def __init__(self) -> None:
        self.pending: list[pa.Table] = []
        self.flow = np.zeros(0, np.int64)
        self.count = np.zeros(0, np.int64)
        self.answered = np.zeros(0, np.int64)
        self.logged = np.zeros(0, np.int64)
        self.status = np.zeros((0, 3), np.int64)

    def add(self, requests: pa.Table, at: np.ndarray, responses: tuple[np.ndarray, ...]) -> None:
        """One chunk's ``requests`` (:data:`REQUEST` columns), at packet positions ``at``,
        and its responses: (flow, position, code) arrays, code -1 where none."""
        r_flow, r_at, r_code = responses
        flows = np.concatenate([requests["flow"].to_numpy(), r_flow])
        if not len(flows):
            return
        self._track(np.unique(flows))
        slot = np.searchsorted(self.flow, flows)
        is_request = np.arange(len(flows)) < requests.num_rows
        code = np.concatenate([np.full(requests.num_rows, -1, np.int64), r_code])
        order = np.lexsort((np.concatenate([at, r_at]), flows))
        depth = np.empty(len(flows), np.int64)
        depth[order] = pair(slot[order], is_request[order], code[order], self.count, self.answered)
        n = requests.num_rows
        answers = np.flatnonzero(depth[n:] > 0)
        if len(answers):
            found = np.stack([r_flow[answers], depth[n:][answers], r_code[answers]], axis=1)
            self.status = np.concatenate([self.status, found])
        if n:
            depths = pa.array(depth[:n], pa.int32())
            self.pending.append(requests.add_column(1, "trans_depth", depths))

    def _track(self, flows: np.ndarray) -> None:
        """Give flows not seen before their (zero) counters, keeping ``flow`` sorted."""
        new = flows[~np.isin(flows, self.flow)]
        if not len(new):
            return
        zero = np.zeros(len(new), np.int64)
        self.flow = np.concatenate([self.flow, new])
        order = np.argsort(self.flow, kind="stable")
        self.flow = self.flow[order]
        for name in ("count", "answered", "logged"):
            setattr(self, name, np.concatenate([getattr(self, name), zero])[order])

    @property
    def full(self) -> bool:
        """Whether a flow has a whole block of answered requests not yet handed out."""
        return bool((self._block() > self.logged).any())

    def _block(self) -> np.ndarray:
        return self.answered // HTTP_BLOCK * HTTP_BLOCK

    def blocks(self) -> pa.Table | None:
        """The rows in whole blocks of answered requests, of flows still going on (call
        it after :meth:`pop` of the chunk's ended flows), handed out now."""
        block = self._block()
        full = block > self.logged
        if not full.any():
            return None
        rows = self._take(self.flow[full], block[full], block[full], np.ones(full.sum(), bool))
        self.logged[full] = block[full]
        return rows

    def pop(self, ended: np.ndarray, open_: np.ndarray) -> pa.Table | None:
        """Every row of the ended flows (first_pos ``ended``, each flow's ``open``)."""
        known = np.isin(self.flow, ended)
        if not known.any():
            return None
        flows = self.flow[known]
        where = np.searchsorted(ended, flows, sorter=(sorter := np.argsort(ended)))
        rows = self._take(flows, self.count[known], self._block()[known], open_[sorter[where]])
        keep = ~known
        self.flow, self.count = self.flow[keep], self.count[keep]
        self.answered, self.logged = self.answered[keep], self.logged[keep]
        return rows

    def _take(
        self, flows: np.ndarray, upto: np.ndarray, block: np.ndarray, open_: np.ndarray
    ) -> pa.Table | None:
        """Hand out the held rows of ``flows`` (sorted) up to trans_depth ``upto``: open
        if in a whole ``block`` or their flow is ``open``, with their statuses."""
        if not self.pending:
            return None
        held = pa.concat_tables(self.pending)
        flow, depth = held["flow"].to_numpy(), held["trans_depth"].to_numpy()
        at = np.minimum(np.searchsorted(flows, flow), len(flows) - 1)
        mine = (flows[at] == flow) & (depth <= upto[at])
        rest = held.filter(pa.array(~mine))
        self.pending = [rest] if rest.num_rows else []
        if not mine.any():
            return None
        flow, depth, at = flow[mine], depth[mine], at[mine]
        order = np.lexsort((depth, flow))
        rows = held.filter(pa.array(mine)).take(pa.array(order))
        flow, depth, at = flow[order], depth[order], at[order]
        code = np.full(len(flow), -1, np.int64)
        s = self.status
        s_at = np.minimum(np.searchsorted(flows, s[:, 0]), len(flows) - 1)
        done = (flows[s_at] == s[:, 0]) & (s[:, 1] <= upto[s_at])
        if done.any():  # a flow's rows have consecutive depths: its first row, then on
            first = np.searchsorted(flow, s[done, 0])
            code[first + s[done, 1] - depth[first]] = s[done, 2]
            self.status = s[~done]
        status = pa.array(code.astype(np.int32), mask=code < 0)
        is_open = (depth <= block[at]) | open_[at]
        return rows.append_column("status", status).append_column("open", pa.array(is_open))


@njit(cache=True, nogil=True, aot=["(uint8[::1], int64[::1], int64[:])"])
def _gather(v: np.ndarray, start: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arrow offsets and bytes of the spans ``v[start:start+size]`` (empty where -1)."""
    offsets = np.zeros(len(start) + 1, np.int32)
    for i in range(len(start)):
        offsets[i + 1] = offsets[i] + (size[i] if start[i] >= 0 else 0)
    out = np.empty(offsets[-1], np.uint8)
    for i in range(len(start)):
        if start[i] >= 0:
            out[offsets[i] : offsets[i + 1]] = v[start[i] : start[i] + size[i]]
    return offsets, out


def request_texts(v: np.ndarray, heads: np.ndarray) -> list[pa.Array]:
    """The :data:`TEXT` columns of requests that :func:`.headkernel.read_heads` read
    (its rows ``heads``, all DONE HTTP_REQUEST rows, over the chunk ``v``), as
    :func:`.http.parse_request` gives them."""
    h = heads.T
    return [
        texts(v, h[1], h[2], h[1] >= 0),
        texts(v, h[5], h[6], (h[5] >= 0) & (h[6] > 0)),  # a blank Host is no host
        texts(v, h[3], h[4], h[3] >= 0),
        texts(v, h[9], h[10], h[9] >= 0),
        texts(v, h[7], h[8], h[7] >= 0),
    ]


def texts(v: np.ndarray, start: np.ndarray, size: np.ndarray, valid: np.ndarray) -> pa.Array:
    """The spans of ``v`` as strings (null where not ``valid``), decoded as :mod:`.http`
    does: UTF-8, with a backslash escape for each byte that is not."""
    offsets, data = _gather(v, np.where(valid, start, -1), size)
    bits = pa.py_buffer(np.packbits(valid, bitorder="little"))
    raw = pa.Array.from_buffers(
        pa.binary(), len(start), [bits, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    try:
        return raw.cast(pa.string())  # checks that every value is UTF-8
    except pa.ArrowInvalid:
        values = raw.to_pylist()
        return pa.array(
            [None if b is None else b.decode("utf-8", "backslashreplace") for b in values],
            pa.string(),
        )
