"""Mutated captures into the pcap reader: rows or rejects, never a crash or a hang."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import shared_data_dir
from vigile.ingest.base import SourceFile
from vigile.ingest.pcap import PcapReader
from vigile.schema import TRAFFIC_TABLES, conform

SMALL = ["teredo.pcap", "gre.pcapng", "4in6tunnel.pcap", "dns_long_domainname.pcap"]
SMALL += ["custom_rules_ipv6.pcapng", "tls_1.3_unidirectional_client.pcapng", "rmcp.pcap"]


class CheckingSink:
    """Conforms every emitted batch to its table schema, as the pipeline does."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.rejects: list[tuple[int, str]] = []

    def emit(self, table: str, columns: Mapping[str, pa.Array], num_rows: int) -> None:
        cols = dict(columns) | {"source_id": pa.array([1] * num_rows, pa.int64())}
        conform(TRAFFIC_TABLES[table], cols, num_rows)
        self.rows[table] = self.rows.get(table, 0) + num_rows

    def reject(self, position: int, reason: str, raw: str | bytes | None = None) -> None:
        assert position >= 0 and reason
        self.rejects.append((position, reason))

    def notice(self, message: str) -> None:
        pass

    def set_log_type(self, log_type: str) -> None:
        pass

    def progress(self, raw_bytes: int) -> None:
        pass


def originals() -> list[bytes]:
    folder = shared_data_dir() / "pcap" / "ndpi"
    return [(folder / n).read_bytes() for n in SMALL if (folder / n).exists()]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(originals())))
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(max_size=64))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@pytest.mark.timeout(300)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_mutated_captures_give_rows_or_rejects(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    if not originals():
        pytest.skip("shared captures not found")
    path: Path = tmp_path_factory.mktemp("fuzz") / "m.pcap"
    path.write_bytes(data)
    source = SourceFile.probe(path)
    sink = CheckingSink()
    if PcapReader.sniff(source.head):
        PcapReader().read(source, sink)
    for position, _ in sink.rejects:
        assert position <= len(data)
