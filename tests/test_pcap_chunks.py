"""Reading in small chunks gives the same rows as reading in one go, with progress.

Flows cross chunk boundaries (they are carried over as partial flows), so this holds
the streaming design to the result of one pass over the whole file.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pytest

from vigile.ingest.base import SourceFile
from vigile.ingest.packet.pcapfile import Damage, read_packets
from vigile.ingest.pcap import PcapReader

CAPTURES = ["caldera/sandcat.pcap", "ndpi/dns-tunnel-iodine.pcap", "ndpi/ssh.pcap"]
CAPTURES += ["ndpi/ip_fragmented_garbage.pcap", "ndpi/http_ipv6.pcap"]


class RowSink:
    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {}
        self.progress_calls: list[int] = []

    def emit(self, table: str, columns: Mapping[str, pa.Array], num_rows: int) -> None:
        batch = pa.table(dict(columns)).to_pylist()
        self.rows.setdefault(table, []).extend(batch)

    def reject(self, position: int, reason: str, raw: str | bytes | None = None) -> None:
        raise AssertionError(f"unexpected reject at {position}: {reason}")

    def notice(self, message: str) -> None:
        pass

    def set_log_type(self, log_type: str) -> None:
        pass

    def progress(self, raw_bytes: int) -> None:
        self.progress_calls.append(raw_bytes)


def read(path: Path, chunk_bytes: int, hold_rows: int = 65_536) -> RowSink:
    sink = RowSink()
    PcapReader(chunk_bytes, hold_rows).read(SourceFile.probe(path), sink)
    return sink


def canonical(rows: list[dict]) -> list[str]:
    return sorted(repr(sorted(r.items())) for r in rows)


@pytest.mark.parametrize("name", CAPTURES)
@pytest.mark.parametrize("hold_rows", [65_536, 8])
def test_small_chunks_give_the_same_rows(shared_data: Path, name: str, hold_rows: int) -> None:
    """With ``hold_rows`` 8, the DNS rows of active flows (iodine's tunnel is one flow)
    are written while their flow goes on, and rows go out in many small batches."""
    path = shared_data / "pcap" / name
    whole = read(path, 64 << 20)
    small = read(path, 4096, hold_rows)
    for table in ("conn", "dns", "http"):
        assert canonical(small.rows.get(table, [])) == canonical(whole.rows.get(table, []))
    calls = small.progress_calls
    assert len(calls) > 3 and calls == sorted(calls) and calls[-1] <= path.stat().st_size


@pytest.mark.parametrize("mapped", [True, False])
def test_a_small_capture_gets_a_buffer_of_its_size(shared_data: Path, mapped: bool) -> None:
    """A new buffer is zeroed page by page: a 1 MB capture (or the last part of a mapped
    one) is not read into a buffer sized for a 32 MiB chunk. Unmapped streams of unknown
    length keep chunk-sized buffers."""
    path = shared_data / "pcap" / "caldera" / "sandcat.pcap"
    source = SourceFile.probe(path)
    tracemalloc.start()
    try:
        with source.open() as stream, source.mapped() as m:
            packets = sum(
                len(c)
                for c in read_packets(stream, 32 << 20, m if mapped else None)
                if not isinstance(c, Damage)
            )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert packets > 500
    if mapped:  # the buffer and a copy of the file, and the record walk's arrays
        assert peak < 32 << 20, peak
    else:
        assert peak > 32 << 20, peak
