"""TLS hellos and HTTP heads of a whole chunk in one compiled pass (numba).

:func:`read_heads` reads what most metadata packets carry: a hello whose handshake
message lies whole in the packet's first handshake record, an HTTP request head with
CRLF line ends, a status line. For those it returns byte offsets into the chunk; a
packet it leaves (status :data:`SLOW`: a hello split over records or segments, a
head with bare LF line ends, a message too short to be sure) goes to the Python
parsers of :mod:`.tls` and :mod:`.http`, which stay the reference. Both give the
same fields; a property test compares them on arbitrary bytes.

A hello's fingerprints are not computed here. The kernel writes for each hello a
key: the bytes every fingerprint and column other than the SNI is made of (the
side, legacy version, cipher list, extension types in order, the contents of the
extensions that :data:`.tls.READ_EXTENSIONS` names, and whether a server_name entry
is there). Every length in it is written before its bytes, so two hellos have the
same key exactly when those inputs are the same, and :mod:`.meta` asks :mod:`.tls`
for the fingerprints once per distinct key.

Hand-written because no library parses hellos or heads in compiled code over a
batch of packets; the Python parsers stay as the fallback and the oracle.
"""

from __future__ import annotations

import numpy as np

from vigile.ingest.packet import http
from vigile.ingest.packet.classify import HTTP_REQUEST, HTTP_STATUS, TLS_HELLO
from vigile.jit import njit

SLOW, DONE, NOT_HEAD = 0, 1, -1
#: Columns of the result: status, then per kind (see :func:`read_heads`).
COLUMNS = 11
MAX_HEAD = http.MAX_HEAD
MAX_HELLO = 1 << 16
METHOD_BYTES = np.zeros((len(http.METHODS), 16), np.uint8)
METHOD_LENS = np.array([len(m) for m in http.METHODS], np.int64)
for _i, _m in enumerate(http.METHODS):
    METHOD_BYTES[_i, : len(_m)] = np.frombuffer(_m, np.uint8)
NAMES = (b"host", b"user-agent", b"referer")
NAME_BYTES = np.zeros((len(NAMES), 10), np.uint8)
NAME_LENS = np.array([len(n) for n in NAMES], np.int64)
for _i, _n in enumerate(NAMES):
    NAME_BYTES[_i, : len(_n)] = np.frombuffer(_n, np.uint8)


@njit(cache=True, nogil=True)
def _b(v: np.ndarray, p: int) -> int:
    """Byte ``p`` as a signed integer: numba keeps uint8 unsigned, and unsigned mixed
    with signed integers gives floats."""
    return v[p] + 0


@njit(cache=True, nogil=True)
def _u16(v: np.ndarray, p: int) -> int:
    return _b(v, p) << 8 | _b(v, p + 1)


@njit(cache=True, nogil=True)
def _put(keys: np.ndarray, k: int, v: np.ndarray, start: int, n: int) -> int:
    """Write ``n`` as two bytes, then ``v[start:start+n]``; return the new key end."""
    keys[k] = n >> 8
    keys[k + 1] = n & 0xFF
    keys[k + 2 : k + 2 + n] = v[start : start + n]
    return k + 2 + n


@njit(cache=True, nogil=True)
def _message(v: np.ndarray, p: int, cap: int) -> tuple[int, int]:
    """Offset and length of the first handshake message, if whole in its record."""
    off = 0
    while off + 5 <= cap:
        ctype, major, length = v[p + off], v[p + off + 1], _u16(v, p + off + 3)
        if (ctype == 20 or ctype == 21) and major == 3:
            off += 5 + length
            continue
        if ctype != 22 or major != 3:
            return -1, 0
        body = min(length, cap - off - 5)
        if body < 4:
            return -1, 0
        need = 4 + (_b(v, p + off + 6) << 16 | _u16(v, p + off + 7))
        if need > MAX_HELLO or need > body:
            return -1, 0
        return p + off + 5, need
    return -1, 0


@njit(cache=True, nogil=True)
def _hello(v: np.ndarray, m: int, n: int, keys: np.ndarray, k: int, row: np.ndarray) -> int:
    """Read the hello at ``v[m:m+n]`` into ``row`` and its key at ``keys[k:]``."""
    end = m + n
    if n < 39 or (v[m] != 1 and v[m] != 2) or v[m + 4] != 3 or v[m + 38] > 32:
        return k
    client = v[m] == 1
    off = m + 39 + _b(v, m + 38)
    start = k
    keys[k] = v[m]
    keys[k + 1] = v[m + 4]
    keys[k + 2] = v[m + 5]
    k += 3
    if client:
        if off + 2 > end:
            return start
        count = _u16(v, off)
        if off + 2 + count // 2 * 2 > end or off + 2 + count >= end:
            return start
        k = _put(keys, k, v, off + 2, count)
        off += 2 + count
        off += 1 + _b(v, off)
    else:
        if off + 2 > end:
            return start
        k = _put(keys, k, v, off, 2)
        off += 3
    sni_at, sni_len = -1, -1
    if off + 2 <= end:
        data_end = min(off + 2 + _u16(v, off), end)
        e = off + 2
        while e + 4 <= data_end:
            etype, size = _u16(v, e), _u16(v, e + 2)
            body, body_len = e + 4, min(size, data_end - e - 4)
            keys[k] = etype >> 8
            keys[k + 1] = etype & 0xFF
            k += 2
            if etype == 0:
                has_name = client and body_len >= 5
                keys[k] = 1 if has_name else 0
                k += 1
                if has_name:
                    sni_at = body + 5
                    sni_len = min(_u16(v, body + 3), body_len - 5)
            elif etype == 10 or etype == 11 or etype == 13 or etype == 16 or etype == 43:
                k = _put(keys, k, v, body, body_len)
            e += 4 + size
    row[0] = DONE
    row[1], row[2], row[3], row[4] = m, n, start, k - start
    row[5], row[6], row[7] = sni_at, sni_len, 1 if client else 0
    return k


@njit(cache=True, nogil=True)
def _strip(v: np.ndarray, a: int, b: int) -> tuple[int, int]:
    """``bytes.strip()``: ASCII whitespace off both ends of ``v[a:b]``."""
    while a < b and (v[a] == 32 or 9 <= v[a] <= 13):
        a += 1
    while b > a and (v[b - 1] == 32 or 9 <= v[b - 1] <= 13):
        b -= 1
    return a, b


@njit(cache=True, nogil=True)
def _is(v: np.ndarray, a: int, b: int, word: np.ndarray, size: int, lower: bool) -> bool:
    if b - a != size:
        return False
    for j in range(size):
        c = v[a + j]
        if lower and 65 <= c <= 90:
            c += 32
        if c != word[j]:
            return False
    return True


@njit(cache=True, nogil=True)
def _request(v: np.ndarray, p: int, cap: int, row: np.ndarray) -> None:
    """Request line, Host, User-Agent and Referer of the head at ``v[p:p+cap]``."""
    limit = p + min(cap, MAX_HEAD)
    head_end, eol = limit, -1
    for i in range(p, limit - 1):
        if v[i] == 13 and v[i + 1] == 10:
            if eol < 0:
                eol = i
            if i + 3 < limit and v[i + 2] == 13 and v[i + 3] == 10:
                head_end = i
                break
    if eol < 0 or eol >= head_end:
        return  # no CRLF in the head: Python splits on bare LF
    s1 = s2 = -1
    for i in range(p, eol):
        if v[i] == 32:
            if s1 < 0:
                s1 = i
            elif s2 < 0:
                s2 = i
            else:
                row[0] = NOT_HEAD
                return
    row[0] = NOT_HEAD
    if s2 < 0 or eol - s2 - 1 < 5:
        return
    method = False
    for j in range(len(METHOD_LENS)):
        method = method or _is(v, p, s1, METHOD_BYTES[j], METHOD_LENS[j], False)
    version = v[s2 + 1] == 72 and v[s2 + 2] == 84 and v[s2 + 3] == 84 and v[s2 + 4] == 80
    if not method or not version or v[s2 + 5] != 47:
        return
    row[0] = DONE
    row[1], row[2], row[3], row[4] = p, s1 - p, s1 + 1, s2 - s1 - 1
    row[5] = row[7] = row[9] = -1
    a = eol + 2
    while a <= head_end:
        b = a
        while b + 1 < head_end and not (v[b] == 13 and v[b + 1] == 10):
            b += 1
        if b + 1 >= head_end:
            b = head_end
        colon = a
        while colon < b and v[colon] != 58:
            colon += 1
        if colon < b:
            na, nb = _strip(v, a, colon)
            for j in range(len(NAME_LENS)):
                if row[5 + 2 * j] < 0 and _is(v, na, nb, NAME_BYTES[j], NAME_LENS[j], True):
                    va, vb = _strip(v, colon + 1, b)
                    row[5 + 2 * j], row[6 + 2 * j] = va, vb - va
        a = b + 2


@njit(cache=True, nogil=True)
def _status(v: np.ndarray, p: int, cap: int, row: np.ndarray) -> None:
    row[0], row[1] = DONE, -1
    prefix = (72, 84, 84, 80, 47, 49, 46)  # HTTP/1.
    if cap < 12 or v[p + 8] != 32:
        return
    for j in range(7):
        if v[p + j] != prefix[j]:
            return
    code = 0
    for j in range(9, 12):
        if not 48 <= v[p + j] <= 57:
            return
        code = code * 10 + _b(v, p + j) - 48
    row[1] = code


@njit(cache=True, nogil=True, aot=["(uint8[::1], int64[::1], int64[::1], int64[::1])"])
def read_heads(
    v: np.ndarray, kind: np.ndarray, po: np.ndarray, cap: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows for packets of kind HTTP_REQUEST, HTTP_STATUS or TLS_HELLO, and hello keys.

    Row columns (offsets into ``v``; a missing field has offset -1):

    - TLS_HELLO: status, message offset and length, key offset and length (into the
      returned key bytes), SNI offset and length, 1 for a ClientHello;
    - HTTP_REQUEST: status (:data:`NOT_HEAD` when it is no request), method offset
      and length, URI, Host, User-Agent and Referer offsets and lengths;
    - HTTP_STATUS: status, the code (-1 when the status line has none).
    """
    rows = np.zeros((len(kind), COLUMNS), np.int64)
    room = 0
    for i in range(len(kind)):
        if kind[i] == TLS_HELLO:
            room += 8 + min(cap[i], MAX_HELLO)
    keys = np.empty(room, np.uint8)
    k = 0
    for i in range(len(kind)):
        row = rows[i]
        if kind[i] == TLS_HELLO:
            m, n = _message(v, po[i], cap[i])
            if m >= 0:
                k = _hello(v, m, n, keys, k, row)
        elif kind[i] == HTTP_REQUEST:
            _request(v, po[i], cap[i], row)
        elif kind[i] == HTTP_STATUS:
            _status(v, po[i], cap[i], row)
    return rows, keys[:k]


def text(mem: memoryview, at: int, size: int) -> str | None:
    """The text at ``mem[at:at+size]`` (None when ``at`` is -1), as :mod:`.http` decodes it."""
    return None if at < 0 else str(mem[at : at + size], "utf-8", "backslashreplace")
