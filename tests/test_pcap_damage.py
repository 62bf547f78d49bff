"""Damaged captures: every complete packet before the damage is kept, the damage is
rejected with its byte offset, and the exit code says so. tshark reads the same
damaged files as the reference for how many packets come before the damage.
"""

from __future__ import annotations

import random
import struct
import subprocess
from pathlib import Path

import dpkt
import pytest
from typer.testing import CliRunner

from conftest import require_tool
from test_pcap_chunks import RowSink, canonical
from vigile.cli import app
from vigile.ingest import ingest_file, registered_readers
from vigile.ingest.base import SourceFile
from vigile.ingest.pcap import PcapReader
from vigile.store.duckdb import DuckDBStore


def tshark_caplens(path: Path) -> list[int]:
    """Captured length of each frame tshark reads (it stops at damage too)."""
    tshark = require_tool("tshark")
    run = subprocess.run(
        [tshark, "-r", str(path), "-T", "fields", "-e", "frame.cap_len"],
        capture_output=True,
        text=True,
    )
    return [int(v) for v in run.stdout.split()]


def ingest(tmp_path: Path, data: bytes, name: str = "x.pcap") -> tuple:
    path = tmp_path / name
    path.write_bytes(data)
    store = DuckDBStore(tmp_path / "t.duckdb")
    result = ingest_file(store, path, registered_readers())
    conn = store.scan("conn").to_pylist()
    rejects = store.scan("rejects").to_pylist()
    store.close()
    return result, sum(r["orig_pkts"] + r["resp_pkts"] for r in conn), rejects


def ip_packets(data: bytes, caplens: list[int]) -> int:
    """How many of the leading records of a pcap hold IPv4/IPv6 (tshark's count)."""
    off, n = 24, 0
    for caplen in caplens:
        eth = dpkt.ethernet.Ethernet(data[off + 16 : off + 16 + caplen])
        n += isinstance(eth.data, dpkt.ip.IP | dpkt.ip6.IP6)
        off += 16 + caplen
    return n


def test_truncated_last_record(tmp_path: Path, shared_data: Path) -> None:
    full = (shared_data / "pcap/ndpi/smtp.pcap").read_bytes()
    caplens = tshark_caplens(shared_data / "pcap/ndpi/smtp.pcap")
    damaged = full[:-10]
    (tmp_path / "cut.pcap").write_bytes(damaged)
    kept = tshark_caplens(tmp_path / "cut.pcap")
    assert len(kept) == len(caplens) - 1
    result, packets, rejects = ingest(tmp_path, damaged)
    assert result.status == "partial"
    assert packets == ip_packets(full, kept)
    last = len(full) - 16 - caplens[-1]
    assert [(r["position"], r["position_unit"]) for r in rejects] == [(last, "byte")]
    assert "truncated" in rejects[0]["reason"]
    assert f"@byte {last}" in result.message


@pytest.mark.parametrize("caplen", [0x7FFF_FFFF, 300_000])
def test_absurd_caplen_keeps_packets_before(tmp_path: Path, shared_data: Path, caplen: int) -> None:
    full = bytearray((shared_data / "pcap/ndpi/smtp.pcap").read_bytes())
    caplens = tshark_caplens(shared_data / "pcap/ndpi/smtp.pcap")
    k = 40
    offset = 24 + sum(16 + c for c in caplens[:k])
    struct.pack_into("<I", full, offset + 8, caplen)
    (tmp_path / "bad.pcap").write_bytes(full)
    assert len(tshark_caplens(tmp_path / "bad.pcap")) == k
    result, packets, rejects = ingest(tmp_path, bytes(full))
    assert packets == ip_packets(bytes(full), caplens[:k])
    assert [r["position"] for r in rejects] == [offset]
    assert rejects[0]["reason"] == f"record length {caplen} exceeds 262144"  # an integer
    assert result.status == "partial"


def test_zero_and_oversized_records_are_rejected_and_reading_goes_on(tmp_path: Path) -> None:
    eth = dpkt.ethernet.Ethernet(
        src=b"\x00" * 6,
        dst=b"\x01" * 6,
        data=dpkt.ip.IP(
            src=b"\x0a\0\0\1", dst=b"\x0a\0\0\2", p=17, data=dpkt.udp.UDP(sport=1, dport=2)
        ),
    )
    pkt = bytes(eth)
    path = tmp_path / "w.pcap"
    with path.open("wb") as f:
        w = dpkt.pcap.Writer(f, snaplen=100)
        w.writepkt(pkt, ts=1.0)
        w.writepkt(b"", ts=2.0)  # no captured bytes
        w.writepkt(pkt + bytes(200), ts=3.0)  # longer than the snap length
        w.writepkt(pkt, ts=4.0)
    data = path.read_bytes()
    result, packets, rejects = ingest(tmp_path, data, "z.pcap")
    second = 24 + 16 + len(pkt)
    assert [r["position"] for r in rejects] == [second, second + 16]
    assert packets == 2
    assert result.status == "partial"


def test_garbage_inserted_in_the_middle(tmp_path: Path, shared_data: Path) -> None:
    full = (shared_data / "pcap/ndpi/smtp.pcap").read_bytes()
    caplens = tshark_caplens(shared_data / "pcap/ndpi/smtp.pcap")
    k = 30
    offset = 24 + sum(16 + c for c in caplens[:k])
    garbage = random.Random(7).randbytes(37)
    damaged = full[:offset] + garbage + full[offset:]
    result, packets, rejects = ingest(tmp_path, damaged)
    assert result.status == "partial"
    assert len(rejects) >= 1 and rejects[0]["position"] >= offset
    assert packets >= ip_packets(full, caplens[:k])


def test_cli_exit_code_and_message(tmp_path: Path, shared_data: Path) -> None:
    full = (shared_data / "pcap/ndpi/smtp.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(full[:-10])
    runner = CliRunner()
    res = runner.invoke(app, ["ingest", str(cut), "--db", str(tmp_path / "c.duckdb"), "--json"])
    assert res.exit_code == 3
    assert "truncated record at end of file" in res.output
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"\xd4\xc3\xb2\xa0" + bytes(100))
    res = runner.invoke(app, ["ingest", str(garbage), "--db", str(tmp_path / "c.duckdb"), "--json"])
    assert res.exit_code == 3
    assert "not a Zeek log, packet capture" in res.output


class _Collect(RowSink):
    """A sink keeping rows and rejects."""

    def __init__(self) -> None:
        super().__init__()
        self.rejects: list[tuple[int, str]] = []

    def reject(self, position: int, reason: str, raw: str | bytes | None = None) -> None:
        self.rejects.append((position, reason))


def _damaged_files(tmp_path: Path, shared_data: Path) -> list[Path]:
    full = (shared_data / "pcap/ndpi/smtp.pcap").read_bytes()
    caplens = tshark_caplens(shared_data / "pcap/ndpi/smtp.pcap")
    at = 24 + sum(16 + c for c in caplens[:30])
    absurd = bytearray(full)
    struct.pack_into("<I", absurd, at + 8, 300_000)
    zero = bytearray(full)
    struct.pack_into("<II", zero, at + 8, 0, 0)  # a record with no bytes, then misframing
    variants = {
        "absurd": bytes(absurd),
        "garbage": full[:at] + random.Random(7).randbytes(37) + full[at:],
        "cut": full[:-10],
        "zero": bytes(zero) + full,
    }
    for name, data in variants.items():
        (tmp_path / f"{name}.pcap").write_bytes(data)
    return [tmp_path / f"{name}.pcap" for name in variants]


def test_damage_is_found_the_same_in_mapped_chunks(tmp_path: Path, shared_data: Path) -> None:
    """Small chunks are windows of the memory-mapped file; one big chunk is a copy: both
    keep the same packets and report the same damage at the same offsets."""
    for path in _damaged_files(tmp_path, shared_data):
        whole, windows = _Collect(), _Collect()
        PcapReader(chunk_bytes=64 << 20).read(SourceFile.probe(path), whole)
        PcapReader(chunk_bytes=2048).read(SourceFile.probe(path), windows)
        assert windows.rejects == whole.rejects and whole.rejects, path.name
        for table in ("conn", "dns", "http", "tls"):
            got, want = windows.rows.get(table, []), whole.rows.get(table, [])
            assert canonical(got) == canonical(want), (path.name, table)
