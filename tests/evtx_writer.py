"""Write small ``.evtx`` files for tests (no public Exchange .evtx sample is available).

Follows the EVTX layout described in libevtx's format documentation: a 4 KiB file
header, 64 KiB chunks with a 512-byte header, and records holding Binary XML with the
element names inline (no templates). Header and record checksums are CRC32 as the
format requires, so a strict reader accepts the file. Only what the tests need is
written: one chunk, string values.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

CHUNK_SIZE = 65536
EPOCH_AS_FILETIME = 116444736000000000

# An element: (name, attributes, children-or-text).
Element = tuple[str, dict[str, str], "Sequence[Element] | str"]


def _name(offset: int, name: str) -> bytes:
    """A name reference pointing at the inline name struct right after it."""
    units = name.encode("utf-16-le")
    inline = struct.pack("<IHH", 0, 0, len(name)) + units + b"\x00\x00"
    return struct.pack("<I", offset + 4) + inline


def _value(text: str) -> bytes:
    return b"\x05\x01" + struct.pack("<H", len(text)) + text.encode("utf-16-le")


def _element(offset: int, element: Element) -> bytes:
    name, attrs, content = element
    # Elements written directly in a record carry no dependency id (templates do).
    head = b"\x41" if attrs else b"\x01"
    pos = offset + len(head) + 4  # after the data size field
    name_ref = _name(pos, name)
    pos += len(name_ref)
    attr_bytes = b""
    if attrs:
        pos += 4
        items = list(attrs.items())
        for i, (key, val) in enumerate(items):
            tok = b"\x46" if i < len(items) - 1 else b"\x06"
            ref = _name(pos + len(attr_bytes) + 1, key)
            attr_bytes += tok + ref + _value(val)
        pos += len(attr_bytes)
    body = b""
    if isinstance(content, str):
        body = b"\x02" + _value(content) + b"\x04" if content else b"\x03"
    elif not content:
        body = b"\x03"
    else:
        body = b"\x02"
        for child in content:
            body += _element(pos + len(body), child)
        body += b"\x04"
    rest = name_ref + (struct.pack("<I", len(attr_bytes)) + attr_bytes if attrs else b"") + body
    return head + struct.pack("<I", len(rest)) + rest


def event_element(system: dict[str, str], data: dict[str, str] | list[str]) -> Element:
    """``<Event>`` with the usual System children and ``<Data>`` elements.

    ``data`` as a mapping gives named ``<Data Name=…>`` (Sysmon, Security); as a list,
    unnamed ``<Data>`` strings (classic providers such as MSExchange CmdletLogs).
    """
    children: list[Element] = [
        ("Provider", {"Name": system["Provider"]}, ""),
        ("EventID", {}, system["EventID"]),
        ("TimeCreated", {"SystemTime": system["TimeCreated"]}, ""),
        ("Channel", {}, system["Channel"]),
        ("Computer", {}, system["Computer"]),
    ]
    if isinstance(data, dict):
        event_data: list[Element] = [("Data", {"Name": k}, v) for k, v in data.items()]
    else:
        event_data = [("Data", {}, v) for v in data]
    return ("Event", {}, [("System", {}, children), ("EventData", {}, event_data)])


def write_evtx(path: Path, events: Sequence[tuple[datetime, Element]]) -> None:
    """Write ``events`` (time, element) as one chunk of an EVTX file."""
    records = b""
    last_offset = 512
    for number, (when, element) in enumerate(events, 1):
        offset = 512 + len(records)
        binxml = b"\x0f\x01\x01\x00" + _element(offset + 24 + 4, element) + b"\x00"
        size = 24 + len(binxml) + 4
        filetime = EPOCH_AS_FILETIME + int(when.timestamp() * 10_000_000)
        records += struct.pack("<IIQQ", 0x00002A2A, size, number, filetime) + binxml
        records += struct.pack("<I", size)
        last_offset = offset
    count = len(events)
    free = 512 + len(records)
    head = struct.pack("<8sQQQQIIII", b"ElfChnk\x00", 1, count, 1, count, 128, last_offset,
                       free, zlib.crc32(records))  # fmt: skip
    head += b"\x00" * (120 - len(head)) + struct.pack("<I", 0)
    tables = b"\x00" * (512 - 128)
    checksum = zlib.crc32(head[:120] + tables)
    chunk = head + struct.pack("<I", checksum) + tables + records
    chunk += b"\x00" * (CHUNK_SIZE - len(chunk))
    file_head = struct.pack("<8sQQQIHHHH", b"ElfFile\x00", 0, 0, count + 1, 128, 2, 3, 4096, 1)
    file_head += b"\x00" * (120 - len(file_head)) + struct.pack("<I", 0)
    file_head += struct.pack("<I", zlib.crc32(file_head[:120]))
    path.write_bytes(file_head + b"\x00" * (4096 - len(file_head)) + chunk)
