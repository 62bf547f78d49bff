"""DNS questions of a whole chunk at once, with NumPy.

Most DNS messages have one question with a plain name (letters, digits, hyphens)
and no compression: their header and question are read here for all messages in
lock step, label by label, and only the answers of responses are left to Python
(:func:`.dns.read_answers`). Messages outside that common case get None and go
through :func:`.dns.parse`; both paths give the same :class:`.dns.DnsMessage`.
"""

from __future__ import annotations

import numpy as np

from vigile.ingest.packet.dns import PLAIN, DnsMessage, read_answers
from vigile.ingest.packet.link import u8, u16

MAX_LABELS = 128
PLAIN_BYTE = np.zeros(256, bool)
PLAIN_BYTE[list(PLAIN)] = True


def parse_batch(view: np.ndarray, start: np.ndarray, size: np.ndarray) -> list[DnsMessage | None]:
    """Messages at ``view[start:start + size]``; None where :func:`.dns.parse` must do it."""
    end = start + size
    flags, qd, an = u16(view, start + 2), u16(view, start + 4), u16(view, start + 6)
    ok = (size >= 17) & ((flags >> 11 & 0xF) <= 6) & (qd == 1)
    p, length_bytes = _walk_labels(view, start + 12, end, ok)
    ok &= p + 5 <= end
    names = _names(view, start, p, ok, length_bytes)
    tid, qtype = u16(view, start).tolist(), u16(view, p + 1).tolist()
    mem = memoryview(view.data)
    out: list[DnsMessage | None] = []
    rows = zip(ok.tolist(), flags.tolist(), an.tolist(), strict=True)
    for i, (good, f, count) in enumerate(rows):
        name = names[i]
        if not good or name is None:
            out.append(None)
            continue
        m = DnsMessage(tid[i], bool(f & 0x8000), f & 0xF, name, qtype[i])
        if count and m.response:
            s = int(start[i])
            read_answers(mem[s : int(end[i])].tobytes(), int(p[i]) + 5 - s, count, m)
        out.append(m)
    return out


def _walk_labels(
    view: np.ndarray, p: np.ndarray, end: np.ndarray, ok: np.ndarray
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Follow uncompressed labels from ``p``; return the root label's offsets.

    Clears ``ok`` where a name is compressed, runs past its message or never ends.
    Also returns the offsets of inner length bytes (row, offset) to become dots.
    """
    p = p.copy()
    active = ok.copy()
    length_bytes = []
    first = True
    for _ in range(MAX_LABELS):
        idx = np.flatnonzero(active)
        if not len(idx):
            break
        n = u8(view, p[idx])
        bad = (n >= 64) | (p[idx] + 1 + n >= end[idx])
        ok[idx[bad]] = False
        go = (n > 0) & ~bad
        if not first:
            length_bytes.append((idx[go], p[idx[go]]))
        first = False
        p[idx[go]] += n[go] + 1
        active[idx[~go]] = False
    ok &= ~active
    return p, length_bytes


def _names(
    view: np.ndarray,
    start: np.ndarray,
    root: np.ndarray,
    ok: np.ndarray,
    length_bytes: list[tuple[np.ndarray, np.ndarray]],
) -> list[str | None]:
    """Dotted, lower-case names; None where a label holds a byte that needs escaping."""
    first = start + 13
    lens = np.where(ok, np.maximum(root - first, 0), 0)
    offsets = np.concatenate([[0], np.cumsum(lens)])
    total = int(offsets[-1])
    flat = np.arange(total) + np.repeat(first - offsets[:-1], lens)
    raw = view.take(flat, mode="clip")
    plain = PLAIN_BYTE[raw]
    for rows, at in length_bytes:
        keep = ok[rows]
        dots = offsets[rows[keep]] + at[keep] - first[rows[keep]]
        plain[dots] = True
        raw[dots] = 0x2E
    not_plain = np.concatenate([[0], np.cumsum(~plain)])
    escaped = not_plain[offsets[1:]] - not_plain[offsets[:-1]] > 0
    upper = (raw >= 0x41) & (raw <= 0x5A)
    raw[upper] += 0x20
    text = raw.tobytes().decode("ascii", "replace")
    bounds = zip(offsets[:-1].tolist(), offsets[1:].tolist(), (ok & ~escaped).tolist(), strict=True)
    return [text[a:b] if good else None for a, b, good in bounds]
