"""Exporters that send one direction only: their lone records are not held for a partner.

:class:`~vigile.ingest.pairhold.PairHold` holds each lone one-direction record back
for its partner. Some exporters never send one: a firewall exporting one interface
or one direction (ingress only), a router that sees one side of asymmetric routes.
There every record waits ``wait`` in vain, rows appear that much later, and above
about 5,000 flows/s the hold fills and releases early. :class:`OneWayExporters`
learns this per exporter (the ``sensor`` of the rows: the exporter address for the
collector and nfcapd files) and, given the network model, per **kind of path**
(:func:`path_kinds`: how many of a record's two addresses are internal), from what
the hold sees:

* an exporter's kind is **one-way** once :data:`ONE_WAY_RECORDS` of its one-direction
  TCP and UDP records of that kind in a row arrived without a partner (counted at
  arrival, so a held record that pairs later resets the count too);
* from then on its lone records of that kind are stored at once, not held (counted
  in :attr:`OneWayExporters.not_held`), and those it had waiting go with the same batch;
* a pair of that kind from it (two records of one connection in one batch, or a
  record that finds its partner among those still waiting) makes that kind two-way
  again: holding resumes and the count restarts (counted in
  :attr:`OneWayExporters.resumed`).

Kinds matter for mixed exporters: a firewall that sees both directions between its
internal networks but meters one direction of internet traffic (its inside
interface's ingress, or asymmetric routes upstream) pairs its internal records all
the time, and with one count per exporter those pairs kept its internet records
waiting in vain. A record and its reverse have the same two addresses, hence the same
kind, so per-kind counting never keeps a record from its partner. Without a network
model (no internal networks) every record is of one kind, :data:`ANY_PATH`: one count
per exporter.

Pairing within a batch is unchanged, so a wrong guess costs only the pairs that
straddle a batch cut until the next pair of that kind is seen; records are never lost
or doubled.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.config import IPNetwork

#: Lone records in a row, with no pair between them, that make an exporter one-way.
#: Where both directions are exported nearly every record pairs (98.6 % of the records
#: of a simulated day; docs/netflow.md): even if half the records were unanswered
#: probes, 5,000 unpaired ones in a row would have a chance of 2^-5000. A one-way
#: exporter reaches it within a second at 5,000 flows/s, the rate above which its
#: waiting records filled the hold, and within a minute at 100 flows/s, where the
#: wait costs latency only. Kept well below the hold's 50,000 rows. Counted per kind
#: of path: a kind with few records (transit) takes longer to be learnt.
ONE_WAY_RECORDS = 5_000

#: Kinds of path, indexed by how many of a record's two addresses are internal:
#: neither (``transit``: passing through, or addresses missing from the model), one
#: (``internet``: between an internal and an external address, either way), both
#: (``internal``).
PATH_KINDS = ("transit", "internet", "internal")
#: The kind of every record when there is no network model.
ANY_PATH = None

#: What :class:`OneWayExporters` learns about: (exporter, kind of path or ANY_PATH).
Key = tuple[object, str | None]


def path_kinds(rows: pa.Table, internal: Sequence[IPNetwork]) -> np.ndarray:
    """Each row's kind of path, an index into :data:`PATH_KINDS`: how many of its
    ``src`` and ``dst`` are in ``internal``. The same for a record and its reverse.

    IPv4 addresses given as integers (the ``_src4``/``_dst4`` work columns) are
    matched with NumPy masks; text (IPv6, or a batch without them) once per distinct
    address of the batch, each address's answer remembered across batches (traffic
    repeats its addresses: 50,000 rows of 100,000 distinct addresses took 0.9 s at
    first sight and 0.03 s again on the 2-core test machine; IPv4 integers, 0.2 ms).

    >>> t = pa.table({"src": ["10.0.0.1", "10.0.0.1", "8.8.8.8", None],
    ...               "dst": ["10.0.0.2", "9.9.9.9", "1.1.1.1", "10.0.0.3"]})
    >>> path_kinds(t, (ipaddress.ip_network("10.0.0.0/8"),)).tolist()
    [2, 1, 0, 1]
    """
    nets = tuple(internal)
    inside = [_internal_mask(rows, side, nets) for side in ("src", "dst")]
    return (inside[0].astype(np.int8) + inside[1].astype(np.int8)).astype(np.int8)


def _internal_mask(rows: pa.Table, side: str, nets: tuple[IPNetwork, ...]) -> np.ndarray:
    ints = rows[f"_{side}4"] if f"_{side}4" in rows.column_names else None
    if ints is None or ints.null_count or pa.types.is_null(ints.type):
        encoded = pc.dictionary_encode(rows[side].combine_chunks())
        values, internal = encoded.dictionary.to_pylist(), _matcher(nets)
        lookup = np.array([internal(v) for v in values] + [False], bool)
        return lookup[encoded.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)]
    values = ints.to_numpy().astype(np.uint32)
    hit = np.zeros(len(values), bool)
    for net in nets:  # a handful of networks: one vectorised comparison each
        if net.version == 4:
            hit |= (values & np.uint32(int(net.netmask))) == np.uint32(int(net.network_address))
    return hit


@lru_cache(maxsize=8)
def _matcher(nets: tuple[IPNetwork, ...]) -> Callable[[str], bool]:
    """Whether an address is in ``nets``, remembered per address (hashing ``nets`` for
    every address would cost more than the match)."""

    @lru_cache(maxsize=1 << 17)
    def internal(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for net in nets)

    return internal


class OneWayExporters:
    """Per exporter and kind of path, whether it sends one direction only (see the
    module docstring). Keys are ``(exporter, kind)``, the kind ``None`` without a
    network model."""

    def __init__(self, records: int = ONE_WAY_RECORDS) -> None:
        self.records = records
        #: Lone records in a row since the exporter's kind's last pair.
        self.run: dict[Key, int] = {}
        #: One-way (exporter, kind)s and how many of their records were stored without waiting.
        self.one_way: dict[Key, int] = {}
        self.not_held = self.resumed = 0

    def learn(
        self,
        sensor: pa.Array,
        lone: np.ndarray,
        one_way: np.ndarray,
        new_from: int,
        kind: np.ndarray | None = None,
    ) -> np.ndarray:
        """Update what is known from one hold step; the rows not to hold.

        Args:
            sensor: Each row's exporter (any Arrow type; null is an exporter too).
            lone: Rows that are one-direction TCP/UDP records with no partner.
            one_way: Rows that are one-direction TCP/UDP records (paired or not).
            new_from: Index of the first row that arrived in this step.
            kind: Each row's kind of path (:func:`path_kinds`), or None: one kind.

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
        >>> internet, internal = np.ones(3, np.int8), np.full(3, 2, np.int8)
        >>> ex.learn(pa.array(["r3"] * 3), lone, everyone, 0, internet).tolist()
        [True, True, True]
        >>> ex.learn(pa.array(["r3"] * 3), ~lone, everyone, 0, internal).tolist()
        [False, False, False]
        >>> ex.labels()
        ['r3 (internet)']
        """
        codes, names = _encode(sensor)
        kinds = len(PATH_KINDS) if kind is not None else 1
        if kind is not None:
            codes = codes * kinds + kind.astype(np.int64)
        groups = len(names) * kinds
        fresh = np.zeros(len(lone), bool)
        fresh[new_from:] = True
        paired = np.bincount(codes[one_way & ~lone], minlength=groups)
        arrived = np.bincount(codes[lone & fresh], minlength=groups)
        present = np.bincount(codes, minlength=groups)
        skip = np.zeros(groups, bool)
        for i in np.flatnonzero(present).tolist():  # per exporter and kind, not per record
            key = _key(names, i, kind is not None)
            if paired[i]:
                self.run[key] = 0
                if self.one_way.pop(key, None) is not None:
                    self.resumed += 1
                continue
            self.run[key] = self.run.get(key, 0) + int(arrived[i])
            if self.run[key] >= self.records:
                self.one_way.setdefault(key, 0)
                skip[i] = True
        rows = skip[codes] & lone
        counted = np.bincount(codes[rows & fresh], minlength=groups)
        for i in np.flatnonzero(counted).tolist():
            self.one_way[_key(names, i, kind is not None)] += int(counted[i])
        self.not_held += int(counted.sum())
        return rows

    def labels(self) -> list[str]:
        """The one-way exporters, each with its kind of path when there is one, sorted."""
        return sorted(_label(key) for key in self.one_way)

    def notices(self) -> list[str]:
        """One line per one-way exporter and kind, for the user."""
        lines = []
        for (name, kind), n in self.one_way.items():
            who = "(no address recorded)" if name is None else name
            if kind is ANY_PATH:
                lines.append(
                    f"exporter {who} sends one direction only: its records are not held "
                    f"for a partner ({n:,} stored at once)"
                )
            else:
                lines.append(
                    f"exporter {who} sends one direction only of its {kind} traffic "
                    f"({_MEANING[kind]}): those records are not held for a partner "
                    f"({n:,} stored at once)"
                )
        return lines


_MEANING = {
    "transit": "neither address internal",
    "internet": "one address internal, the other external",
    "internal": "both addresses internal",
}


def _key(names: list[object], group: int, by_kind: bool) -> Key:
    if not by_kind:
        return names[group], ANY_PATH
    return names[group // len(PATH_KINDS)], PATH_KINDS[group % len(PATH_KINDS)]


def _label(key: Key) -> str:
    name, kind = key
    who = "(no address recorded)" if name is None else str(name)
    return who if kind is ANY_PATH else f"{who} ({kind})"


def _encode(values: pa.Array) -> tuple[np.ndarray, list[object]]:
    """Each value's index into the list of distinct values (nulls are one value)."""
    encoded = pc.dictionary_encode(values, null_encoding="encode")
    codes = np.asarray(encoded.indices.cast(pa.int64()))
    return codes, encoded.dictionary.to_pylist()
