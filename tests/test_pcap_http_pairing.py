"""HTTP pairing in columns (:mod:`vigile.ingest.packet.httprows`) against Zeek's rules
written out plainly, one request at a time, over random conversations cut at random.

The rules (``base/protocols/http/main.zeek``): a response answers the oldest
unanswered request of its flow; a status line without a code answers none; with more
than ``HTTP::max_pending_requests`` (100) requests waiting, they are all given up before
the next request. A row in a whole block of answered requests is logged as open.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigile.ingest.packet import httprows
from vigile.ingest.packet.httprows import MAX_PENDING, REQUEST, HttpRows

BLOCK = 4  # small blocks, so that conversations of a few dozen messages fill some
FLOWS = 3

# A run of requests or of responses on one flow; a code of -1 is a status line
# without a code. Long runs of requests make the given-up case common.
runs = st.lists(
    st.tuples(
        st.integers(0, FLOWS - 1),
        st.booleans(),
        st.integers(1, 3) | st.just(MAX_PENDING + 5),
        st.sampled_from([200, 404, -1]),
    ),
    max_size=12,
)


def expected(events: list[tuple[int, bool, int]], is_open: list[bool]) -> list[tuple]:
    """Rows by Zeek's rules: (flow, trans_depth, uri, status, open)."""
    requests: dict[int, list[int | None]] = {f: [] for f in range(FLOWS)}
    answered = dict.fromkeys(range(FLOWS), 0)
    for flow, is_request, code in events:
        if is_request:
            if len(requests[flow]) - answered[flow] > MAX_PENDING:
                answered[flow] = len(requests[flow])
            requests[flow].append(None)
        elif code >= 0 and answered[flow] < len(requests[flow]):
            requests[flow][answered[flow]] = code
            answered[flow] += 1
    return [
        (f, k + 1, f"/{f}/{k}", status, k + 1 <= answered[f] // BLOCK * BLOCK or is_open[f])
        for f in range(FLOWS)
        for k, status in enumerate(requests[f])
    ]


flags = st.lists(st.booleans(), min_size=FLOWS, max_size=FLOWS)


@settings(max_examples=300)
@given(runs, st.lists(st.integers(0, 400), max_size=6), flags, flags)
def test_pairing_follows_zeek_however_the_chunks_fall(
    script: list, cuts: list[int], is_open: list[bool], early: list[bool]
) -> None:
    """Flows marked ``early`` end with the chunk of their last message, the others
    with the capture; ended flows are popped before the blocks, as the reader does."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httprows, "HTTP_BLOCK", BLOCK)
        check(script, cuts, is_open, early)


def check(script: list, cuts: list[int], is_open: list[bool], early: list[bool]) -> None:
    events = [(f, req, code) for f, req, n, code in script for _ in range(n)]
    bounds = sorted({0, len(events), *(c for c in cuts if c < len(events))})
    last = {f: pos for pos, (f, _, _) in enumerate(events)}
    rows, seen, alive = HttpRows(), [0] * FLOWS, set(range(FLOWS))
    out: list[pa.Table] = []
    for start, end in itertools.pairwise(bounds):
        reqs: dict[str, list] = {name: [] for name in REQUEST.names}
        at, responses = [], ([], [], [])
        for pos in range(start, end):
            flow, is_request, code = events[pos]
            if is_request:
                values = (flow, pos, "GET", "h", f"/{flow}/{seen[flow]}", None, "ua")
                for name, value in zip(REQUEST.names, values, strict=True):
                    reqs[name].append(value)
                at.append(pos)
                seen[flow] += 1
            else:
                for column, value in zip(responses, (flow, pos, code), strict=True):
                    column.append(value)
        table = pa.Table.from_pydict(reqs, schema=REQUEST)
        rows.add(table, np.array(at, np.int64), tuple(np.array(c, np.int64) for c in responses))
        done = [f for f in alive if end == len(events) or (early[f] and last.get(f, -1) < end)]
        alive -= set(done)
        ended = np.array(done[::-1], np.int64)  # any order
        out += [t for t in [rows.pop(ended, np.array([is_open[f] for f in done[::-1]]))] if t]
        out += [t for t in [rows.blocks()] if t is not None]
        assert not rows.full
    got = [
        (r["flow"], r["trans_depth"], r["uri"], r["status"], r["open"])
        for t in out
        for r in t.to_pylist()
    ]
    want = expected(events, is_open)
    assert sorted(got) == want
    for f in range(FLOWS):  # each flow's rows go out in order
        assert [g[1] for g in got if g[0] == f] == [w[1] for w in want if w[0] == f]
    assert not rows.pending and not len(rows.status) and not len(rows.flow)
