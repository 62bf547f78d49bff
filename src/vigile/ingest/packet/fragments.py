"""IP fragments: later fragments take the ports of their datagram's first fragment.

vigile does not reassemble fragments (see docs/pcap.md); it attributes each later
fragment to the flow of its first fragment, found by (source, destination, protocol,
IP id), and counts it as the packet it is.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from vigile.ingest.packet.decode import Decoded


class FragmentTable:
    """Ports of first fragments, to attribute later fragments of the same datagram.

    Within a chunk the match is vectorised; first fragments are also remembered
    (the newest :attr:`limit` datagrams) for later fragments in the next chunks.
    """

    def __init__(self, limit: int = 65_536) -> None:
        self.limit = limit
        self.ports: OrderedDict[int, tuple[int, int]] = OrderedDict()

    def attribute(self, d: Decoded, ip_id: np.ndarray, first: np.ndarray) -> None:
        """Give later fragments (``~first``) the ports of their first fragment."""
        frag = np.flatnonzero(d.fragment)
        if not len(frag):
            return
        key = _fragment_key(d, ip_id, frag)
        heads = first[frag]
        # The latest first fragment before each later one, with the same key: search
        # (dense key, packet index) pairs packed into one sortable integer.
        _, dense = np.unique(key, return_inverse=True)
        packed = dense.reshape(-1) * (len(d.ok) + 1) + frag
        order = np.argsort(packed[heads])
        head_packed, head_idx, head_keys = (
            packed[heads][order],
            frag[heads][order],
            key[heads][order],
        )
        tails, tail_keys = frag[~heads], key[~heads]
        at = np.searchsorted(head_packed, packed[~heads]) - 1
        found = at >= 0
        found[found] = head_keys[at[found]] == tail_keys[found]
        d.sport[tails[found]] = d.sport[head_idx[at[found]]]
        d.dport[tails[found]] = d.dport[head_idx[at[found]]]
        for i, k in zip(tails[~found].tolist(), tail_keys[~found].tolist(), strict=True):
            if k in self.ports:
                d.sport[i], d.dport[i] = self.ports[k]
        for i, k in zip(head_idx.tolist(), head_keys.tolist(), strict=True):
            self.ports[k] = (int(d.sport[i]), int(d.dport[i]))
        while len(self.ports) > self.limit:
            self.ports.popitem(last=False)


def _fragment_key(d: Decoded, ip_id: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """64-bit hash of (source, destination, protocol, IP id) of packets ``idx``."""
    h = np.zeros(len(idx), np.uint64)
    cols = (d.src[idx, 0], d.src[idx, 1], d.dst[idx, 0], d.dst[idx, 1])
    for col in (*cols, (d.proto[idx] << 32 | ip_id[idx]).astype(np.uint64)):
        h = (h ^ col.astype(np.uint64)) * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
    return h
