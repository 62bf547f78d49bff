"""The conn ``service`` column (:mod:`vigile.ingest.packet.services`) against the plain
rule: the services a flow carried, joined by commas in the order first seen."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from vigile.ingest.packet.services import NAMES, Services

# (chunk, flow, service) sightings; positions are their order once sorted by chunk, as
# packet positions grow from chunk to chunk.
sightings = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(0, 2)))


@given(sightings, st.lists(st.integers(0, 3), min_size=6, max_size=6))
def test_services_in_the_order_first_seen(seen: list, ends: list[int]) -> None:
    """Each flow ends after the chunk ``ends[flow]``; a sighting after its flow ended
    belongs to no flow and is left out."""
    seen = sorted(seen, key=lambda x: x[0])
    services, got, want = Services(), {}, {}
    first: dict[int, dict[int, int]] = {}
    for chunk in range(4):
        mine = [
            (pos, f, s) for pos, (c, f, s) in enumerate(seen) if c == chunk and chunk <= ends[f]
        ]
        for pos, f, s in mine:
            first.setdefault(f, {}).setdefault(s, pos)
        services.note(0, [], [])  # nothing noted: no change
        for s in range(3):
            rows = [(f, pos) for pos, f, kind in mine if kind == s]
            services.note(s, [f for f, _ in rows], [p for _, p in rows])
        services.compact()
        assert len(services.seen) <= 3 * len({f for _, f, _ in mine} | set(first))
        ended = np.array([f for f in range(6) if ends[f] == chunk][::-1], np.int64)
        got |= dict(zip(ended.tolist(), services.pop(ended).to_pylist(), strict=True))
        for f in ended.tolist():
            order = sorted(first.get(f, {}), key=first.get(f, {}).__getitem__)
            want[f] = ",".join(NAMES[s] for s in order) or None
    assert got == want
    assert not len(services.seen)
