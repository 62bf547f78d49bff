"""The ``service`` of flows: the protocols their payloads spoke, in the order first seen.

The names are joined by commas, as in Zeek's conn.log, in the order the flow first
carried each: ``dns`` for a DNS message read, ``http`` for an HTTP request, ``ssl`` for
a TLS hello. Sightings are kept as (flow, service, position) rows in NumPy arrays and
the column of ended flows is made from them at once, so no Python object is made per
flow: a capture has as many flows as packets of metadata, or more.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa

NAMES = ("dns", "http", "ssl")
DNS, HTTP, SSL = range(len(NAMES))


def _texts() -> pa.Array:
    """The column text of each order of services, by key: 2 bits a place, service + 1."""
    texts: list[str | None] = [None] * (1 << 2 * len(NAMES))
    for n in range(1, len(NAMES) + 1):
        for order in itertools.permutations(range(len(NAMES)), n):
            texts[sum((s + 1) << 2 * k for k, s in enumerate(order))] = ",".join(
                NAMES[s] for s in order
            )
    return pa.array(texts, pa.string())


TEXTS = _texts()


class Services:
    """Sightings of services on active flows; :meth:`pop` makes the column."""

    def __init__(self) -> None:
        self.seen = np.zeros((0, 3), np.int64)  # first sightings, by flow then position
        self.new: list[np.ndarray] = []

    def note(
        self, service: int, flows: np.ndarray | list[int], pos: np.ndarray | list[int]
    ) -> None:
        """Service ``service`` was seen on ``flows`` (first_pos) at packet positions ``pos``."""
        if len(flows):
            kind = np.full(len(flows), service, np.int64)
            self.new.append(np.stack([np.asarray(flows, np.int64), kind, pos], axis=1))

    def pop(self, flows: np.ndarray) -> pa.Array:
        """The ``service`` column of the ended ``flows`` (null where none); they are
        forgotten."""
        seen = self.compact()
        mine = np.isin(seen[:, 0], flows)
        self.seen, s = seen[~mine], seen[mine]
        keys = np.zeros(len(flows), np.int64)
        if len(s):
            start = np.ones(len(s), bool)
            start[1:] = s[1:, 0] != s[:-1, 0]
            first = np.flatnonzero(start)
            place = np.arange(len(s)) - first[np.cumsum(start) - 1]
            key = np.add.reduceat((s[:, 1] + 1) << 2 * place, first)
            order = np.argsort(flows)
            keys[order[np.searchsorted(flows, s[first, 0], sorter=order)]] = key
        return TEXTS.take(pa.array(keys))

    def compact(self) -> np.ndarray:
        """The first sighting of each service of each flow, by flow then position; the
        later sightings are forgotten (call it once a chunk: a DNS tunnel is one flow with
        a sighting in every packet)."""
        if self.new:
            seen = np.concatenate([self.seen, *self.new])
            self.new = []
            seen = seen[np.lexsort((seen[:, 2], seen[:, 1], seen[:, 0]))]
            first = np.ones(len(seen), bool)
            first[1:] = (seen[1:, 0] != seen[:-1, 0]) | (seen[1:, 1] != seen[:-1, 1])
            seen = seen[first]
            self.seen = seen[np.lexsort((seen[:, 2], seen[:, 0]))]
        return self.seen
