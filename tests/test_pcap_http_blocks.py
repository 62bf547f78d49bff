"""A long keep-alive HTTP flow (a C2 channel) has its rows written while it goes on.

Its answered requests go out in blocks of ``HTTP_BLOCK`` rows marked ``open`` (logged
while the connection was open), so what the reader holds for the flow stays bounded;
the rows after the last whole block go out when the flow ends, with its own state.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import dpkt
import pyarrow as pa
import pytest

from test_pcap_chunks import RowSink
from vigile.ingest.base import SourceFile
from vigile.ingest.packet.httprows import HTTP_BLOCK
from vigile.ingest.pcap import PcapReader

CLIENT, SERVER = bytes([10, 0, 0, 5]), bytes([203, 0, 113, 9])
REQUESTS = 2 * HTTP_BLOCK + 100


def _status(k: int) -> int:
    return 404 if k % 3 == 0 else 200


def _capture(path: Path, script: list[tuple[bytes, int]] | None = None) -> None:
    """Handshake, then ``script`` (who sends, request number) on one connection, then
    FIN both ways. The default script is REQUESTS request/response pairs."""
    if script is None:
        script = [(side, k) for k in range(REQUESTS) for side in (CLIENT, SERVER)]
    ts, seq = [1_700_000_000.0], {CLIENT: 1000, SERVER: 5000}

    def tcp(writer: dpkt.pcap.Writer, src: bytes, flags: int, data: bytes = b"") -> None:
        dst = SERVER if src == CLIENT else CLIENT
        ports = (40000, 80) if src == CLIENT else (80, 40000)
        seg = dpkt.tcp.TCP(sport=ports[0], dport=ports[1], seq=seq[src], ack=seq[dst])
        seg.flags, seg.data = flags, data
        seq[src] += len(data) + (1 if flags & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_FIN) else 0)
        ip = dpkt.ip.IP(src=src, dst=dst, p=6, data=seg)
        ip.len = len(ip)
        eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip)
        ts[0] += 0.01
        writer.writepkt(bytes(eth), ts=ts[0])

    ack = dpkt.tcp.TH_ACK
    with path.open("wb") as f:
        w = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        tcp(w, CLIENT, dpkt.tcp.TH_SYN)
        tcp(w, SERVER, dpkt.tcp.TH_SYN | ack)
        tcp(w, CLIENT, ack)
        for side, k in script:
            if side == CLIENT:
                tcp(w, side, ack, f"GET /b/{k} HTTP/1.1\r\nHost: c2.example\r\n\r\n".encode())
            else:
                head = f"HTTP/1.1 {_status(k)} X\r\nContent-Length: 0\r\n\r\n"
                tcp(w, side, ack, head.encode())
        tcp(w, CLIENT, dpkt.tcp.TH_FIN | ack)
        tcp(w, SERVER, dpkt.tcp.TH_FIN | ack)
        tcp(w, CLIENT, ack)


class OrderSink(RowSink):
    """Keeps the rows, and the order in which the tables' batches came."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[str] = []

    def emit(self, table: str, columns: Mapping[str, pa.Array], num_rows: int) -> None:
        super().emit(table, columns, num_rows)
        self.batches.append(table)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keepalive") / "keepalive.pcap"
    _capture(path)
    return path


def _read(path: Path, chunk_bytes: int) -> OrderSink:
    sink = OrderSink()
    PcapReader(chunk_bytes, hold_rows=8).read(SourceFile.probe(path), sink)
    return sink


@pytest.mark.parametrize("chunk_bytes", [64 << 20, 4096])
def test_blocks_go_out_while_the_flow_goes_on(capture: Path, chunk_bytes: int) -> None:
    sink = _read(capture, chunk_bytes)
    (conn,) = sink.rows["conn"]
    assert conn["conn_state"] == "SF" and conn["orig_pkts"] == REQUESTS + 4
    rows = sink.rows["http"]
    assert [r["trans_depth"] for r in rows] == list(range(1, REQUESTS + 1))
    assert [r["uri"] for r in rows] == [f"/b/{k}" for k in range(REQUESTS)]
    assert [r["status"] for r in rows] == [_status(k) for k in range(REQUESTS)]
    assert {(r["uid"], r["src"], r["dst"], r["src_port"], r["dst_port"]) for r in rows} == {
        (conn["uid"], "10.0.0.5", "203.0.113.9", 40000, 80)
    }
    whole = 2 * HTTP_BLOCK  # rows in whole blocks: logged while the connection was open
    assert [r["open"] for r in rows] == [True] * whole + [conn["open"]] * (REQUESTS - whole)
    if chunk_bytes == 4096:  # each block was written as it came, the rest at the end
        assert sink.batches.count("http") == 3


def test_chunking_does_not_change_the_rows(capture: Path) -> None:
    whole, small = _read(capture, 64 << 20), _read(capture, 4096)
    assert small.rows == whole.rows


def test_a_one_sided_capture_gives_up_pending_requests_like_zeek(tmp_path: Path) -> None:
    """Zeek's ``HTTP::max_pending_requests``: the requests of a capture that missed the
    server's side are given up 101 at a time, so they are written as the flow goes on."""
    path = tmp_path / "client-only.pcap"
    _capture(path, [(CLIENT, k) for k in range(REQUESTS)])
    sink = _read(path, 4096)
    rows = sink.rows["http"]
    assert [r["trans_depth"] for r in rows] == list(range(1, REQUESTS + 1))
    assert {r["status"] for r in rows} == {None}
    assert sink.batches.count("http") == 3  # two blocks as they came, the rest at the end


def test_responses_pair_again_after_pending_requests_are_given_up(tmp_path: Path) -> None:
    """As in Zeek: 150 requests, then one response. At request 102, 101 are pending (over
    100): they are given up, and the response answers request 102, the oldest left."""
    path = tmp_path / "burst.pcap"
    _capture(path, [(CLIENT, k) for k in range(150)] + [(SERVER, 101)])
    rows = _read(path, 64 << 20).rows["http"]
    assert [r["status"] for r in rows] == [None] * 101 + [_status(101)] + [None] * 48
