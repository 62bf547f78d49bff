"""IPFIX (RFC 7011): a 16-byte message header, then sets of templates, options
templates and data records, with RFC 5103 biflows read through the templates.
"""

from __future__ import annotations

import struct

from vigile.ingest.netflow.cache import TemplateCache
from vigile.ingest.netflow.records import decode_data_set, learn_template
from vigile.ingest.netflow.templates import DecodeError, DecodeResult, Template, TimeBase

HEADER = struct.Struct("!HHIII")  # version, length, export time, sequence, domain
SET_HEADER = struct.Struct("!HH")
TEMPLATE_SET, OPTIONS_SET = 2, 3


def decode(data: bytes, exporter: str, cache: TemplateCache, now: float) -> DecodeResult:
    """Decode an IPFIX message (see the contract in :mod:`vigile.ingest.netflow`).

    >>> msg = HEADER.pack(10, 16 + 12 + 8, 1_700_000_000, 0, 1)
    >>> msg += SET_HEADER.pack(2, 12) + struct.pack("!HHHHHH", 256, 1, 8, 4, 0, 0)[:8]
    >>> msg += SET_HEADER.pack(256, 8) + bytes([192, 0, 2, 7])
    >>> r = decode(msg, "198.51.100.1", TemplateCache(), 0.0)
    >>> r.templates, r.data_records, r.flows
    (1, 1, [])
    """
    if len(data) < HEADER.size:
        raise DecodeError(f"IPFIX message of {len(data)} bytes is shorter than its header")
    _, length, export_time, sequence, domain = HEADER.unpack_from(data)
    if length != len(data):
        raise DecodeError(f"IPFIX header says {length} bytes but the datagram has {len(data)}")
    result = DecodeResult(10, domain, sequence)
    export_us = export_time * 1_000_000
    pos = HEADER.size
    while pos < length:
        if length - pos < SET_HEADER.size:
            result.problems.append(f"{length - pos} stray bytes after the last set")
            break
        set_id, set_len = SET_HEADER.unpack_from(data, pos)
        if set_len < SET_HEADER.size or pos + set_len > length:
            result.problems.append(f"set {set_id} at byte {pos} has impossible length {set_len}")
            break
        body = data[pos + SET_HEADER.size : pos + set_len]
        try:
            if set_id in (TEMPLATE_SET, OPTIONS_SET):
                _templates(body, set_id == OPTIONS_SET, exporter, domain, cache, result, now)
            elif set_id >= 256:
                base = TimeBase(export_us, cache.system_init_ms.get((exporter, domain)))
                decode_data_set(cache, (exporter, domain, set_id), body, base, result, now)
            else:
                result.problems.append(f"reserved set id {set_id} at byte {pos}")
        except DecodeError as e:
            result.problems.append(f"set {set_id} at byte {pos}: {e}")
        pos += set_len
    return result


def _templates(
    body: bytes,
    options: bool,
    exporter: str,
    domain: int,
    cache: TemplateCache,
    result: DecodeResult,
    now: float,
) -> None:
    """Read the template records of one (options) template set (RFC 7011 §3.4)."""
    pos, end = 0, len(body)
    head = 6 if options else 4
    while end - pos >= 4:
        template_id, count = SET_HEADER.unpack_from(body, pos)
        if count == 0:  # withdrawal (RFC 7011 §8.1); id 2 / 3 withdraws them all
            if template_id in (TEMPLATE_SET, OPTIONS_SET):
                cache.withdraw_all(exporter, domain, options)
            else:
                cache.withdraw((exporter, domain, template_id))
            pos += 4
            continue
        if end - pos < head:
            raise DecodeError("options template record shorter than its header")
        if template_id < 256:
            raise DecodeError(f"template id {template_id} is reserved")
        pos += head
        fields = []
        for _ in range(count):
            if end - pos < 4:
                raise DecodeError(f"template {template_id} runs past its set")
            element, length = SET_HEADER.unpack_from(body, pos)
            pos += 4
            pen = 0
            if element & 0x8000:  # enterprise bit: a 4-byte enterprise number follows
                if end - pos < 4:
                    raise DecodeError(f"template {template_id} runs past its set")
                pen = int.from_bytes(body[pos : pos + 4], "big")
                element &= 0x7FFF
                pos += 4
            fields.append((element, length, pen))
        tmpl = Template.compile_cached(template_id, tuple(fields), options)
        learn_template(cache, (exporter, domain, template_id), tmpl, result, now)
