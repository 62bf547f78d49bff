"""Exporters that send one direction only: their lone records are not held for a partner.

:class:`~vigile.ingest.pairhold.PairHold` holds each lone one-direction record back
for its partner. Some exporters never send one: a firewall exporting one interface
or one direction (ingress only), a router that sees one side of asymmetric routes.
There every record waits ``wait`` in vain, rows appear that much later, and above
about 5,000 flows/s the hold fills and releases early. :class:`OneWayExporters`
learns this per exporter (the ``sensor`` of the rows: the exporter address for the
collector and nfcapd files), from what the hold sees:

* an exporter is **one-way** once :data:`ONE_WAY_RECORDS` of its one-direction TCP
  and UDP records in a row arrived without a partner (counted at arrival, so a held
  record that pairs later resets the count too);
* from then on its lone records are stored at once, not held (counted in
  :attr:`OneWayExporters.not_held`), and those it had waiting go with the same batch;
* a pair from it (two records of one connection in one batch, or a record that finds
  its partner among those still waiting) makes it two-way again: holding resumes and
  the count restarts (counted in :attr:`OneWayExporters.resumed`).

Pairing within a batch is unchanged, so a wrong guess costs only the pairs that
straddle a batch cut until the next pair is seen; records are never lost or doubled.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Lone records in a row, with no pair between them, that make an exporter one-way.
#: Where both directions are exported nearly every record pairs (98.6 % of the records
#: of a simulated day; docs/netflow.md): even if half the records were unanswered
#: probes, 5,000 unpaired ones in a row would have a chance of 2^-5000. A one-way
#: exporter reaches it within a second at 5,000 flows/s, the rate above which its
#: waiting records filled the hold, and within a minute at 100 flows/s, where the
#: wait costs latency only. Kept well below the hold's 50,000 rows.
ONE_WAY_RECORDS = 5_000


class OneWayExporters:
    """Per exporter, whether it sends one direction only (see the module docstring)."""

    def __init__(self, records: int = ONE_WAY_RECORDS) -> None:
        self.records = records
        #: Lone records in a row since the exporter's last pair.
        self.run: dict[object, int] = {}
        #: One-way exporters and how many of their records were stored without waiting.
        self.one_way: dict[object, int] = {}
        self.not_held = self.resumed = 0

    def learn(
        self, sensor: pa.Array, lone: np.ndarray, one_way: np.ndarray, new_from: int
    ) -> np.ndarray:
        """Update what is known from one hold step; the rows not to hold.

        Args:
            sensor: Each row's exporter (any Arrow type; null is an exporter too).
            lone: Rows that are one-direction TCP/UDP records with no partner.
            one_way: Rows that are one-direction TCP/UDP records (paired or not).
            new_from: Index of the first row that arrived in this step.

        >>> ex = OneWayExporters(records=3)
        >>> lone, everyone = np.array([True, True, True]), np.ones(3, bool)
        >>> ex.learn(pa.array(["r1", "r1", "r2"]), lone, everyone, 0).tolist()
        [False, False, False]
        >>> ex.learn(pa.array(["r1", "r2"]), lone[:2], everyone[:2], 0).tolist()
        [True, False]
        >>> ex.learn(pa.array(["r1", "r1"]), np.zeros(2, bool), everyone[:2], 0).tolist()
        [False, False]
        >>> ex.resumed, ex.not_held, list(ex.one_way)
        (1, 1, [])
        """
        codes, names = _encode(sensor)
        fresh = np.zeros(len(lone), bool)
        fresh[new_from:] = True
        paired = np.bincount(codes[one_way & ~lone], minlength=len(names))
        arrived = np.bincount(codes[lone & fresh], minlength=len(names))
        skip = np.zeros(len(names), bool)
        for i, name in enumerate(names):
            if paired[i]:
                self.run[name] = 0
                if self.one_way.pop(name, None) is not None:
                    self.resumed += 1
                continue
            self.run[name] = self.run.get(name, 0) + int(arrived[i])
            if self.run[name] >= self.records:
                self.one_way.setdefault(name, 0)
                skip[i] = True
        rows = skip[codes] & lone
        counted = np.bincount(codes[rows & fresh], minlength=len(names))
        for i in np.flatnonzero(counted).tolist():
            self.one_way[names[i]] += int(counted[i])
        self.not_held += int(counted.sum())
        return rows

    def notices(self) -> list[str]:
        """One line per one-way exporter, for the user."""
        return [
            f"exporter {'(no address recorded)' if name is None else name} sends one "
            f"direction only: its records are not held for a partner ({n:,} stored at once)"
            for name, n in self.one_way.items()
        ]


def _encode(values: pa.Array) -> tuple[np.ndarray, list[object]]:
    """Each value's index into the list of distinct values (nulls are one value)."""
    encoded = pc.dictionary_encode(values, null_encoding="encode")
    codes = np.asarray(encoded.indices.cast(pa.int64()))
    return codes, encoded.dictionary.to_pylist()
