"""JA4 fingerprints against an independent implementation (ja4plus, on scapy)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ja4plus.fingerprinters.ja4 import JA4Fingerprinter
from scapy.all import rdpcap

from conftest import shared_data_dir
from test_pcap_fuzz import CheckingSink
from vigile.ingest.base import SourceFile
from vigile.ingest.pcap import PcapReader

TLS_CAPTURES = [
    "4in6tunnel.pcap",
    "6in4tunnel.pcap",
    "googledns_android10.pcap",
    "http_ipv6.pcap",
    "long_tls_certificate.pcap",
    "ookla.pcap",
    "tls_1.3_unidirectional_client.pcapng",
]


class Ja4Sink(CheckingSink):
    def __init__(self) -> None:
        super().__init__()
        self.ja4: set[str] = set()

    def emit(self, table: str, columns, num_rows: int) -> None:  # type: ignore[no-untyped-def]
        super().emit(table, columns, num_rows)
        if table == "tls":
            self.ja4 |= {v for v in columns["ja4"].to_pylist() if v}


@pytest.mark.parametrize("name", TLS_CAPTURES)
def test_ja4_matches_ja4plus(shared_data: Path, name: str) -> None:
    path = shared_data_dir() / "pcap" / "ndpi" / name
    reference = JA4Fingerprinter()
    expected = {fp for p in rdpcap(str(path)) if (fp := reference.process_packet(p))}
    sink = Ja4Sink()
    PcapReader().read(SourceFile.probe(path), sink)
    assert expected, "the capture holds ClientHellos"
    assert sink.ja4 == expected
