"""pcapng framing (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-01.html).

Sections of either byte order, several interfaces with their own link type,
``if_tsresol`` and ``if_tsoffset``. Runs of enhanced packet blocks are walked in
compiled code (:func:`.framing.walk_epbs`) and read with NumPy; every other block
(section and interface headers, simple and obsolete packet blocks) and any damage is
read here one block at a time.
"""

from __future__ import annotations

import struct

import numpy as np

from vigile.ingest.packet.framing import walk_epbs
from vigile.ingest.packet.records import (
    MAX_CAPLEN,
    MAX_RECORDS,
    Chunk,
    Framer,
    Interface,
    Walk,
    gather_u32,
)

#: The longest block taken for a packet block; a longer length is damage.
MAX_BLOCK = MAX_CAPLEN + 1024


class PcapngFramer(Framer):
    def __init__(self) -> None:
        super().__init__()
        self.little = True
        self.iface_base = 0  # interfaces of earlier sections come first in the list

    def walk(self, buf: Chunk, end: int, start: int, base: int, walk: Walk) -> int:
        runs: list[np.ndarray] = []
        try:
            return self._walk(buf, end, start, base, walk, runs)
        finally:
            walk.pos = np.concatenate(runs) if runs else np.empty(0, np.int64)

    def _walk(
        self, buf: Chunk, end: int, start: int, base: int, walk: Walk, runs: list[np.ndarray]
    ) -> int:
        off, count = start, 0
        u32 = struct.Struct("<I" if self.little else ">I").unpack_from
        view = np.frombuffer(buf, np.uint8)
        while off + 12 <= end and count < MAX_RECORDS:
            run, off = walk_epbs(view, off, end, self.little, MAX_RECORDS - count, MAX_BLOCK)
            runs.append(run)
            count += len(run)
            if off + 12 > end or count >= MAX_RECORDS:
                break
            # The block at ``off`` is not a complete, valid enhanced packet block.
            btype = u32(buf, off)[0]
            if btype == 0x0A0D0D0A:
                if count or walk.singles:
                    return off  # a new section starts a new chunk (byte order may change)
                bom = bytes(buf[off + 8 : off + 12])
                if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                    return self.fail(buf, off, base, "section header without byte-order magic")
                self.little = bom == b"\x4d\x3c\x2b\x1a"
                u32 = struct.Struct("<I" if self.little else ">I").unpack_from
            blen = u32(buf, off + 4)[0]
            if blen < 12 or blen % 4 or blen > MAX_BLOCK:
                return self.fail(buf, off, base, f"block length {blen} is not valid")
            if off + blen > end:
                break
            if btype == 6:
                return self.fail(buf, off, base, "packet block shorter than its header")
            if btype == 0x0A0D0D0A:
                self.iface_base = len(self.interfaces)
            elif btype == 1:
                self._interface(buf, off, blen)
            elif btype in (2, 3):
                self._single(buf, off, blen, walk)
            off += blen
        return off

    def _interface(self, buf: Chunk, off: int, blen: int) -> None:
        e = "<" if self.little else ">"
        linktype, _, snaplen = struct.unpack_from(e + "HHI", buf, off + 8)
        iface = Interface(linktype, snaplen, 1_000.0)
        opt, stop = off + 16, off + blen - 4
        while opt + 4 <= stop:
            code, length = struct.unpack_from(e + "HH", buf, opt)
            if code == 0:
                break
            if code == 9 and length >= 1:  # if_tsresol: power of 10, or of 2 if MSB set
                r = buf[opt + 4]
                unit = 2.0 ** -(r & 0x7F) if r & 0x80 else 10.0**-r
                iface.ns_per_unit = unit * 1e9
            elif code == 14 and length == 8:  # if_tsoffset, seconds
                iface.offset_s = struct.unpack_from(e + "q", buf, opt + 4)[0]
            opt += 4 + (length + 3) // 4 * 4
        self.interfaces.append(iface)

    def _single(self, buf: Chunk, off: int, blen: int, walk: Walk) -> None:
        e = "<" if self.little else ">"
        if buf[off] == 3 or (not self.little and buf[off + 3] == 3):  # simple packet block
            (wire,) = struct.unpack_from(e + "I", buf, off + 8)
            cap = min(wire, blen - 16)
            walk.singles.append((off, off + 12, cap, wire, self.iface_base, -1))
            return
        iface, _, hi, lo, cap, wire = struct.unpack_from(e + "HHIIII", buf, off + 8)
        cap = min(cap, blen - 32)
        walk.singles.append((off, off + 28, cap, wire, self.iface_base + iface, hi << 32 | lo))

    def columns(self, view: np.ndarray, pos: np.ndarray, walk: Walk) -> tuple[np.ndarray, ...]:
        f = gather_u32(view, pos + 8, 5, self.little)
        return pos + 28, f[:, 3], f[:, 4], f[:, 0] + self.iface_base, f[:, 1] << 32 | f[:, 2]
