"""Flow assembly in compiled code (numba): one pass over a chunk's packets.

Packets are looked up in an open-addressing hash table keyed by the canonical
5-tuple (side ``a`` is the smaller endpoint) and summed into their flow's row in
place. The rows live in three arrays so they can be carried from chunk to chunk:
``keys`` (a and b addresses, uint64 halves), ``ints`` (one value per flow, columns
:data:`INTS`) and ``sides`` (per direction, columns :data:`SIDES`; history letters
last). Hand-written because a hash table walked packet by packet is what no NumPy
operation does; the sort-and-reduce it replaces spent most of its time moving columns.
"""

from __future__ import annotations

import numpy as np

from vigile.jit import njit

INTS = (
    *("pa", "pb", "proto", "first_ts", "last_ts", "first_pos", "first_dir", "first_flags"),
    *("first_sport", "first_dport", "prev_ts"),
)
SIDES = ("pkts", "ipb", "pay", "flg", "sbase", "slo", "shi")
LETTERS = 6  # S H A D F R, as flows.LETTERS
PA, PB, PROTO, FIRST_TS, LAST_TS, FIRST_POS, FIRST_DIR, FIRST_FLAGS = range(8)
FIRST_SPORT, FIRST_DPORT, PREV_TS = 8, 9, 10
PKTS, IPB, PAY, FLG, SBASE, SLO, SHI, HIST = range(8)
BIG = np.iinfo(np.int64).max
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10


@njit(cache=True, nogil=True, inline=True)
def _mix(keys: np.ndarray, ints: np.ndarray, j: int) -> np.uint64:
    """64-bit mix of a flow key (splitmix64 finaliser); equal keys, equal hashes."""
    ports = np.uint64(ints[j, PA] << 24 | ints[j, PB] << 8 | ints[j, PROTO])
    h = np.uint64(0)
    for col in (keys[j, 0], keys[j, 1], keys[j, 2], keys[j, 3], ports):
        h = (h ^ col) * GOLDEN
        h ^= h >> np.uint64(31)
    return h


@njit(cache=True, nogil=True, inline=True)
def _same(keys: np.ndarray, ints: np.ndarray, s: int, t: int) -> bool:
    for k in range(4):
        if keys[s, k] != keys[t, k]:
            return False
    return (
        ints[s, PA] == ints[t, PA]
        and ints[s, PB] == ints[t, PB]
        and (ints[s, PROTO] == ints[t, PROTO])
    )


@njit(cache=True, nogil=True)
def _new_row(sides: np.ndarray, j: int) -> None:
    for side in range(2):
        for k in range(HIST):
            sides[j, side, k] = 0
        sides[j, side, SBASE], sides[j, side, SLO], sides[j, side, SHI] = -1, BIG, -1
        for k in range(HIST, HIST + LETTERS):
            sides[j, side, k] = BIG


@njit(cache=True, nogil=True, inline=True)
def _letters(
    sides: np.ndarray, j: int, side: int, tcp: bool, flags: int, pay: int, pos: int
) -> None:
    """Note the first position of each history letter this packet shows."""
    syn, ack = flags & SYN != 0, flags & ACK != 0
    seen = (
        tcp and syn and not ack,
        tcp and syn and ack,
        tcp and ack and not syn and flags & (FIN | RST) == 0 and pay == 0,
        pay > 0,
        tcp and flags & FIN != 0,
        tcp and flags & RST != 0,
    )
    for k in range(LETTERS):
        if seen[k] and pos < sides[j, side, HIST + k]:
            sides[j, side, HIST + k] = pos


@njit(cache=True, nogil=True, inline=True)
def _find(
    table: np.ndarray, keys: np.ndarray, ints: np.ndarray, j: int, h: np.uint64
) -> tuple[np.int64, int]:
    """(table slot, row of the flow with row ``j``'s key or -1) for hash ``h``."""
    mask = len(table) - 1
    at = np.int64(h & np.uint64(mask))  # int(uint64) + 1 would be a float in numba
    while table[at] >= 0:
        if _same(keys, ints, table[at], j):
            return at, table[at]
        at = (at + 1) & mask
    return at, -1


@njit(
    cache=True,
    nogil=True,
    aot=[
        "(uint64[:, ::1], int64[:, ::1], int64[:, :, ::1], int64[::1], UniTuple(int64[::1], 9),"
        " uint64[:, ::1], uint64[:, ::1], int64[::1])"
    ],
)
def assemble(
    keys0: np.ndarray,
    ints0: np.ndarray,
    sides0: np.ndarray,
    idx: np.ndarray,
    fields: tuple[np.ndarray, ...],
    src: np.ndarray,
    dst: np.ndarray,
    timeouts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Add packets ``idx`` of a chunk to the flows carried over (``keys0``, ``ints0``, ``sides0``).

    ``fields`` are the chunk's per-packet columns proto, sport, dport, flags, seq, ip
    bytes, payload bytes, timestamp and position; ``src`` and ``dst`` its address
    halves; ``timeouts`` the inactivity timeout of TCP, UDP and other flows in
    nanoseconds. Returns the flows (keys, ints, sides), their hashes, which ones ended
    because a packet came after their timeout (a new flow took the key), and the row
    of each packet of ``idx``.
    """
    n0, n = len(ints0), len(idx)
    protos, sports, dports, flagss, seqs, ipbs, pays, tss, poss = fields
    cap = n0 + n
    keys = np.empty((cap, 4), np.uint64)
    ints = np.empty((cap, len(INTS)), np.int64)
    sides = np.empty((cap, 2, HIST + LETTERS), np.int64)
    hashes, ended = np.empty(cap, np.uint64), np.zeros(cap, np.bool_)
    keys[:n0], ints[:n0], sides[:n0] = keys0, ints0, sides0
    size = 1
    while size < 2 * cap + 2:
        size *= 2
    table = np.full(size, -1, np.int64)
    for j in range(n0):
        hashes[j] = _mix(keys, ints, j)
        table[_find(table, keys, ints, j, hashes[j])[0]] = j
    row_of = np.empty(n, np.int64)
    rows = n0
    for i in range(n):
        p = idx[i]
        proto, sport, dport, flags = protos[p], sports[p], dports[p], flagss[p]
        seq, ipb, pay, ts, pos = seqs[p], ipbs[p], pays[p], tss[p], poss[p]
        s0, s1, d0, d1 = src[p, 0], src[p, 1], dst[p, 0], dst[p, 1]
        sp, dp = (0, 0) if proto == 1 or proto == 58 else (sport, dport)
        swap = s0 > d0 or (s0 == d0 and (s1 > d1 or (s1 == d1 and sp > dp)))
        j = rows  # the candidate row, kept only if the flow is new
        if swap:
            keys[j, 0], keys[j, 1], keys[j, 2], keys[j, 3] = d0, d1, s0, s1
            ints[j, PA], ints[j, PB] = dp, sp
        else:
            keys[j, 0], keys[j, 1], keys[j, 2], keys[j, 3] = s0, s1, d0, d1
            ints[j, PA], ints[j, PB] = sp, dp
        ints[j, PROTO] = proto
        h = _mix(keys, ints, j)
        at, found = _find(table, keys, ints, j, h)
        timeout = timeouts[0] if proto == 6 else (timeouts[1] if proto == 17 else timeouts[2])
        if found >= 0 and ts - ints[found, PREV_TS] > timeout:
            ended[found], found = True, -1
        if found < 0:
            ints[j, FIRST_TS], ints[j, LAST_TS], ints[j, FIRST_POS] = ts, ts, pos
            ints[j, FIRST_DIR], ints[j, FIRST_FLAGS] = int(swap), flags
            ints[j, FIRST_SPORT], ints[j, FIRST_DPORT], ints[j, PREV_TS] = sport, dport, ts
            _new_row(sides, j)
            hashes[j], table[at], found = h, j, j
            rows += 1
        side = int(swap)
        # Indexed in full, not through a view of the row: a view is a new array (a
        # reference taken and given back per packet).
        sides[found, side, PKTS] += 1
        sides[found, side, IPB] += ipb
        sides[found, side, PAY] += pay
        sides[found, side, FLG] |= flags
        if proto == 6 and pay > 0:
            if sides[found, side, SBASE] < 0:
                sides[found, side, SBASE] = seq
            # Serial number arithmetic (RFC 1982): distance from the base, signed 32-bit.
            shift = ((seq - sides[found, side, SBASE] + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
            sides[found, side, SLO] = min(sides[found, side, SLO], shift)
            sides[found, side, SHI] = max(sides[found, side, SHI], pay + shift)
        _letters(sides, found, side, proto == 6, flags, pay, pos)
        ints[found, LAST_TS] = max(ints[found, LAST_TS], ts)
        ints[found, PREV_TS] = ts
        row_of[i] = found
    for j in range(rows):  # a flow carried over is compared with its latest time
        ints[j, PREV_TS] = ints[j, LAST_TS]
    return keys[:rows], ints[:rows], sides[:rows], hashes[:rows], ended[:rows], row_of
