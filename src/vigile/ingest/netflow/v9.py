"""NetFlow v9 (RFC 3954): a 20-byte header, then template, options template and
data flowsets. Field types share IPFIX's numbering; v9 has no enterprise bit.
"""

from __future__ import annotations

import struct

from vigile.ingest.netflow.cache import TemplateCache
from vigile.ingest.netflow.records import decode_data_set, learn_template
from vigile.ingest.netflow.templates import DecodeError, DecodeResult, Template, TimeBase

HEADER = struct.Struct("!HHIIII")  # version, count, sys uptime, unix secs, sequence, source id
PAIR = struct.Struct("!HH")
TEMPLATE_FLOWSET, OPTIONS_FLOWSET = 0, 1


def decode(data: bytes, exporter: str, cache: TemplateCache, now: float) -> DecodeResult:
    """Decode a v9 export packet (see the contract in :mod:`vigile.ingest.netflow`).

    >>> pkt = HEADER.pack(9, 2, 5_000, 1_700_000_000, 7, 0)
    >>> pkt += PAIR.pack(0, 12) + struct.pack("!HHHH", 300, 1, 8, 4)
    >>> pkt += PAIR.pack(300, 8) + bytes([192, 0, 2, 7])
    >>> r = decode(pkt, "198.51.100.1", TemplateCache(), 0.0)
    >>> r.sequence, r.templates, r.data_records
    (7, 1, 1)
    """
    if len(data) < HEADER.size:
        raise DecodeError(f"v9 packet of {len(data)} bytes is shorter than its header")
    _, _, uptime, secs, sequence, source_id = HEADER.unpack_from(data)
    result = DecodeResult(9, source_id, sequence)
    base = TimeBase(secs * 1_000_000, secs * 1000 - uptime)
    pos, length = HEADER.size, len(data)
    while pos < length:
        if length - pos < PAIR.size:
            result.problems.append(f"{length - pos} stray bytes after the last flowset")
            break
        set_id, set_len = PAIR.unpack_from(data, pos)
        if set_len < PAIR.size or pos + set_len > length:
            result.problems.append(
                f"flowset {set_id} at byte {pos} has impossible length {set_len}"
            )
            break
        body = data[pos + PAIR.size : pos + set_len]
        try:
            if set_id == TEMPLATE_FLOWSET:
                _templates(body, exporter, source_id, cache, result, now)
            elif set_id == OPTIONS_FLOWSET:
                _options_template(body, exporter, source_id, cache, result, now)
            elif set_id >= 256:
                decode_data_set(cache, (exporter, source_id, set_id), body, base, result, now)
            else:
                result.problems.append(f"reserved flowset id {set_id} at byte {pos}")
        except DecodeError as e:
            result.problems.append(f"flowset {set_id} at byte {pos}: {e}")
        pos += set_len
    return result


def _fields(body: bytes, pos: int, count: int, template_id: int) -> list[tuple[int, int, int]]:
    if len(body) - pos < 4 * count:
        raise DecodeError(f"template {template_id} runs past its flowset")
    return [(*PAIR.unpack_from(body, pos + 4 * i), 0) for i in range(count)]


def _templates(
    body: bytes,
    exporter: str,
    source_id: int,
    cache: TemplateCache,
    result: DecodeResult,
    now: float,
) -> None:
    pos = 0
    while len(body) - pos >= 4:
        template_id, count = PAIR.unpack_from(body, pos)
        if template_id < 256:
            raise DecodeError(f"template id {template_id} is reserved")
        fields = _fields(body, pos + 4, count, template_id)
        pos += 4 + 4 * count
        tmpl = Template.compile_cached(template_id, tuple(fields))
        learn_template(cache, (exporter, source_id, template_id), tmpl, result, now)


def _options_template(
    body: bytes,
    exporter: str,
    source_id: int,
    cache: TemplateCache,
    result: DecodeResult,
    now: float,
) -> None:
    """RFC 3954 §6.1: id, scope length and option length in bytes, then the fields."""
    pos = 0
    while len(body) - pos >= 6:
        template_id, scope_len, option_len = struct.unpack_from("!HHH", body, pos)
        if template_id < 256 or scope_len % 4 or option_len % 4:
            raise DecodeError(f"options template {template_id} is malformed")
        count = (scope_len + option_len) // 4
        if count == 0:
            break  # the rest is padding
        fields = _fields(body, pos + 6, count, template_id)
        pos += 6 + 4 * count
        tmpl = Template.compile_cached(template_id, tuple(fields), options=True)
        learn_template(cache, (exporter, source_id, template_id), tmpl, result, now)
