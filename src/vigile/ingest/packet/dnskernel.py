"""DNS messages of a whole chunk in compiled code (numba), answers included.

:func:`parse_messages` reads the header, the question and every answer of each
message, the way :func:`.dns.parse` does (names escaped as ``\\DDD`` the same way),
and writes the text of query names and answers into two byte buffers laid out as
Arrow string data (offsets and bytes), so no Python object is made per message. A
message outside the common case (a TXT string that is not ASCII, an IPv4-mapped
AAAA, any error in the question) gets status 1 and is left to :func:`.dns.parse`,
which is the reference: both give the same rows (``tests/test_pcap_dns.py`` holds
them to it).
"""

from __future__ import annotations

import numpy as np

from vigile.ingest.packet.dns import MAX_POINTERS, NAME_TYPES, QTYPES
from vigile.jit import njit

_QT = sorted(QTYPES.items())
QT_CODES = np.array([code for code, _ in _QT], np.int64)
QT_TEXT = np.frombuffer("".join(name for _, name in _QT).encode(), np.uint8)
QT_ENDS = np.cumsum([len(name) for _, name in _QT]).astype(np.int64)
HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
FAST, SLOW = 0, 1


@njit(cache=True, nogil=True)
def _room(out: np.ndarray, used: int, need: int) -> np.ndarray:
    if used + need <= len(out):
        return out
    grown = np.empty(max(2 * len(out), used + need), np.uint8)
    grown[:used] = out[:used]
    return grown


@njit(cache=True, nogil=True)
def _name(m: np.ndarray, off: int, out: np.ndarray, used: int, lower: bool) -> tuple[int, int]:
    """Like :func:`.dns.read_name`: (offset after the name, bytes written), or (-1, 0)."""
    size, end, jumps, start = len(m), -1, 0, used
    while True:
        if off >= size:
            return -1, 0
        n = m[off]
        if n == 0:
            return (end if end >= 0 else off + 1), used - start
        if n >= 0xC0:
            if off + 1 >= size or jumps >= MAX_POINTERS:
                return -1, 0
            if end < 0:
                end = off + 2
            off, jumps = (n & 0x3F) << 8 | m[off + 1], jumps + 1
            continue
        if n & 0xC0 or off + 1 + n > size:
            return -1, 0
        if used > start:
            out[used] = 0x2E
            used += 1
        for k in range(off + 1, off + 1 + n):
            b = m[k]
            if b < 0x21 or b > 0x7E or b == 0x2E or b == 0x5C:  # as dns.ESCAPES: \DDD
                out[used] = 0x5C
                used = _decimal3(int(b), out, used + 1)
                continue
            out[used] = b + 0x20 if lower and 0x41 <= b <= 0x5A else b
            used += 1
        off += 1 + n


@njit(cache=True, nogil=True)
def _skip_name(m: np.ndarray, off: int) -> int:
    size = len(m)
    while off < size:
        n = m[off]
        if n == 0:
            return off + 1
        if n >= 0xC0:
            return off + 2 if off + 1 < size else -1
        if n & 0xC0:
            return -1
        off += 1 + n
    return -1


@njit(cache=True, nogil=True)
def _decimal(value: int, out: np.ndarray, used: int) -> int:
    digits = 1
    while value >= 10**digits:
        digits += 1
    for k in range(digits):
        out[used + digits - 1 - k] = 48 + value // 10**k % 10
    return used + digits


@njit(cache=True, nogil=True)
def _decimal3(value: int, out: np.ndarray, used: int) -> int:
    out[used], out[used + 1], out[used + 2] = (
        48 + value // 100,
        48 + value // 10 % 10,
        48 + value % 10,
    )
    return used + 3


@njit(cache=True, nogil=True)
def _ipv6(r: np.ndarray, out: np.ndarray, used: int) -> int:
    """RFC 5952 text, exactly as :class:`ipaddress.IPv6Address` writes it; -1 if mapped."""
    g = np.empty(8, np.int64)
    for k in range(8):
        g[k] = int(r[2 * k]) << 8 | r[2 * k + 1]
    if g[0] == 0 and g[1] == 0 and g[2] == 0 and g[3] == 0 and g[4] == 0 and g[5] == 0xFFFF:
        return -1  # IPv4-mapped: its text differs between Python versions
    best, best_len, run = -1, 0, 0
    for k in range(8):
        run = run + 1 if g[k] == 0 else 0
        if run > best_len:
            best, best_len = k - run + 1, run
    for k in range(8):
        if best_len > 1 and best <= k < best + best_len:
            if k == best:
                out[used], out[used + 1] = 0x3A, 0x3A
                used += 2
            continue
        if k > 0 and not (best_len > 1 and k == best + best_len):
            out[used] = 0x3A
            used += 1
        started = False
        for shift in (12, 8, 4, 0):
            nib = g[k] >> shift & 0xF
            if nib or started or shift == 0:
                out[used] = HEX[nib]
                used += 1
                started = True
    return used


@njit(cache=True, nogil=True)
def _rdata(m: np.ndarray, rtype: int, off: int, rdlen: int, out: np.ndarray, used: int) -> int:
    """The answer text of one record at ``out[used:]``: its end; -1: slow; -2: error."""
    if rtype == 1 and rdlen == 4:
        for k in range(4):
            if k:
                out[used] = 0x2E
                used += 1
            used = _decimal(int(m[off + k]), out, used)
        return used
    if rtype == 28 and rdlen == 16:
        return _ipv6(m[off : off + 16], out, used)
    if rtype in NAME_TYPES or (rtype == 15 and rdlen > 2):
        after, wrote = _name(m, off + 2 if rtype == 15 else off, out, used, False)
        return used + wrote if after >= 0 else -2
    if rtype == 16:  # each character-string as "TXT <length> <text>", like .dns._txt
        i, stop = off, off + rdlen
        while i < stop:
            n = m[i]
            if i > off:
                out[used] = 0x20
                used += 1
            out[used], out[used + 1], out[used + 2], out[used + 3] = 84, 88, 84, 32  # "TXT "
            used = _decimal(min(int(n), stop - i - 1), out, used + 4)
            out[used] = 0x20
            used += 1
            for k in range(i + 1, min(i + 1 + n, stop)):
                if m[k] >= 0x80:
                    return -1
                out[used] = m[k]
                used += 1
            i += 1 + n
        return used
    out[used] = 0x3C
    used += 1
    at = np.searchsorted(QT_CODES, rtype)
    if at < len(QT_CODES) and QT_CODES[at] == rtype:
        first = QT_ENDS[at - 1] if at else 0
        for k in range(first, QT_ENDS[at]):
            out[used] = QT_TEXT[k]
            used += 1
    else:
        used = _decimal(rtype, out, used)
    out[used] = 0x3E
    return used + 1


@njit(cache=True, nogil=True)
def _questions(m: np.ndarray, qd: int, out: np.ndarray, used: int) -> tuple[int, int, int]:
    """Like the question loop of :func:`.dns.parse`: (offset after, qtype, name bytes).

    The offset is negative where the message is left to :func:`.dns.parse`.
    """
    off, wrote = _name(m, 12, out, used, True)
    if off < 0 or off + 4 > len(m):
        return -1, 0, 0
    qtype = int(m[off]) << 8 | m[off + 1]
    off += 4
    for _ in range(qd - 1):  # later questions are only checked (scratch text after the name)
        off = _name(m, off, out, used + wrote, False)[0]
        if off < 0 or off + 4 > len(m):
            return -1, 0, 0
        off += 4
    return off, qtype, wrote


@njit(cache=True, nogil=True)
def _be(m: np.ndarray, off: int, count: int) -> int:
    value = 0
    for k in range(count):
        value = value << 8 | m[off + k]
    return value


@njit(cache=True, nogil=True, aot=["(uint8[::1], int64[::1], int64[::1])"])
def parse_messages(v: np.ndarray, start: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, ...]:
    """Messages at ``v[start:start + size]``, as columns (see :class:`.dnsbatch.Batch`).

    Returns status (:data:`FAST` or :data:`SLOW`), transaction id, flags, qtype,
    query-name end offsets and bytes, each message's first answer, answer end offsets,
    TTLs and answer bytes.
    """
    n = len(start)
    status, tid = np.full(n, SLOW, np.int8), np.zeros(n, np.int64)
    flags, qtype = np.zeros(n, np.int64), np.zeros(n, np.int64)
    q_end, a_first = np.zeros(n, np.int64), np.zeros(n + 1, np.int64)
    slots = 0
    for i in range(n):
        slots += size[i] // 11  # an answer record takes at least 11 bytes
    a_end, ttl = np.zeros(slots, np.int64), np.zeros(slots, np.float64)
    qtext, atext = np.empty(1024 + 64 * n, np.uint8), np.empty(1024 + 64 * n, np.uint8)
    qused, aused, answers = 0, 0, 0
    for i in range(n):
        m = v[start[i] : start[i] + size[i]]
        a_first[i], q_end[i] = answers, qused
        if len(m) < 12:
            continue
        f, qd, an = _be(m, 2, 2), _be(m, 4, 2), _be(m, 6, 2)
        if f >> 11 & 0xF > 6 or qd == 0 or qd > 16:
            continue
        # A name's label bytes are read at most 33 times (32 pointers) and written as at
        # most 4 bytes each (escapes), with fewer dots than label bytes.
        qtext = _room(qtext, qused, 340 * len(m) + 64)
        off, qt, wrote = _questions(m, qd, qtext, qused)
        if off < 0:
            continue
        slow = False
        for _ in range(an):  # as dns.read_answers: stop at the first broken record
            off = _skip_name(m, off)
            if off < 0 or off + 10 > len(m):
                break
            rtype, seconds, rdlen = _be(m, off, 2), _be(m, off + 4, 4), _be(m, off + 8, 2)
            off += 10
            if off + rdlen > len(m):
                break
            atext = _room(atext, aused, 170 * len(m) + 64)
            end = _rdata(m, rtype, off, rdlen, atext, aused)
            if end == -2:
                break
            if end < 0:
                slow = True
                break
            aused, a_end[answers], ttl[answers] = end, end, seconds
            answers += 1
            off += rdlen
        if slow:
            answers = a_first[i]
            aused = a_end[answers - 1] if answers else 0
            continue
        status[i], tid[i], flags[i], qtype[i] = FAST, _be(m, 0, 2), f, qt
        qused += wrote
        q_end[i] = qused
    a_first[n] = answers
    return (
        status, tid, flags, qtype, q_end, qtext[:qused].copy(),
        a_first, a_end[:answers].copy(), ttl[:answers].copy(), atext[:aused].copy(),
    )  # fmt: skip
