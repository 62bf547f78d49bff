"""Pairing per exporter, exporters that send one direction only, lone replies turned.

* Two records with reversed 5-tuples from two exporters are not one connection
  (PairHold, a Hypothesis property over random exporters and batch cuts, the
  collector over two loopback source addresses, Suricata netflow events of two
  hosts).
* An exporter whose records never pair is learnt (:mod:`vigile.ingest.oneway`):
  softflowd exporting one direction of the scan capture (a capture filtered to one
  side), and the collector load test's own one-direction records at the default
  threshold, are stored without waiting ``pair_wait``; softflowd exporting both
  directions never is, and an exporter learnt one-way is held again once it pairs.
* A lone reply is turned to its likely originator with Zeek's state for a
  connection whose originator was not seen: softflowd exporting only the server
  side of the scan capture is compared with vigile's pcap reader (which follows
  Zeek's packet-by-packet state machine and its ``likely_server_ports`` flip) on
  the same capture.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from subprocess import PIPE

import dpkt
import pyarrow as pa
import pytest
from bench.netflow_collector import build_messages
from hypothesis import given, settings
from hypothesis import strategies as st
from tests import scan_capture as cap
from tests.conftest import require_tool
from tests.netflow_peers import RunningCollector, free_udp_port, run_softflowd
from tests.test_netflow_decode import ipfix_msg, template
from tests.test_netflow_state import _states
from tests.test_pair_hold import EXPECTED
from typer.testing import CliRunner

from vigile.cli import app
from vigile.ingest import nfcapd
from vigile.ingest.flowstate import ACK, RST, SYN
from vigile.ingest.pairhold import PairHold
from vigile.store.duckdb import DuckDBStore

CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.2", 80)


def _records(rows: list[tuple[tuple[str, int], tuple[str, int], int, str]]) -> pa.Table:
    """One-direction TCP records (sender, receiver, flags, sensor), all at one time."""
    out = [
        {"src": a, "src_port": ap, "dst": b, "dst_port": bp, "sensor": sensor, "_proto": 6}
        | {"_flags": flags, "_start_us": 0, "_end_us": 1000, "orig_pkts": 1, "orig_ip_bytes": 40}
        for (a, ap), (b, bp), flags, sensor in rows
    ]
    t = pa.Table.from_pylist(out)
    return t.append_column("resp_pkts", pa.nulls(len(out), pa.int64()))


def test_reversed_records_of_two_exporters_are_two_rows() -> None:
    attempt, answer = (CLIENT, SERVER, SYN), (SERVER, CLIENT, RST | ACK)
    one = PairHold(0).release(_records([(*attempt, "r1"), (*answer, "r1")]), 0, final=True)
    assert one.select(["sensor", "conn_state", "resp_pkts"]).to_pylist() == [
        {"sensor": "r1", "conn_state": "REJ", "resp_pkts": 1}
    ]
    hold = PairHold(0)
    two = hold.release(_records([(*attempt, "r1"), (*answer, "r2")]), 0, final=True)
    assert hold.merged == 0
    # Each its own exporter's row: the attempt unanswered as far as r1 saw, r2's answer
    # turned to its originator, whose own record r2 did not see.
    assert two.select(["sensor", "src", "dst_port", "conn_state"]).to_pylist() == [
        {"sensor": "r1", "src": "10.0.0.1", "dst_port": 80, "conn_state": "S0"},
        {"sensor": "r2", "src": "10.0.0.1", "dst_port": 80, "conn_state": "RSTRH"},
    ]


#: sourceIPv4Address, destinationIPv4Address, ports, protocol, tcpControlBits, octets,
#: packets, flowStart/EndMilliseconds.
FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (1, 8), (2, 8), (152, 8), (153, 8)]


def _message(sender: tuple[str, int], receiver: tuple[str, int], flags: int) -> bytes:
    start = 1_700_000_000_000
    rec = socket.inet_aton(sender[0]) + socket.inet_aton(receiver[0])
    rec += struct.pack("!HHBBQQQQ", sender[1], receiver[1], 6, flags, 40, 1, start, start + 1)
    return ipfix_msg([(2, template(300, FIELDS)), (300, rec)])


def _send_from(address: str, port: int, message: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        s.sendto(message, ("127.0.0.1", port))


def test_the_collector_pairs_records_of_one_exporter_only(tmp_path: Path) -> None:
    """The same 5-tuple's two directions from two exporters (127.0.0.1 and .2) stay two
    rows with their own sensors; from one exporter they are one row."""
    with RunningCollector(tmp_path / "v.duckdb", pair_wait=30) as run:
        port = run.collector.port
        _send_from("127.0.0.1", port, _message(CLIENT, SERVER, SYN))
        _send_from("127.0.0.2", port, _message(SERVER, CLIENT, RST | ACK))
        _send_from("127.0.0.1", port, _message((CLIENT[0], 40001), SERVER, SYN))
        _send_from("127.0.0.1", port, _message(SERVER, (CLIENT[0], 40001), RST | ACK))
        run.wait_for(4)
    store = run.open()
    rows = store.scan("conn", ["sensor", "src_port", "conn_state"], order_by=["src_port"])
    store.close()
    assert run.counters.merged == 1
    assert sorted(rows.to_pylist(), key=lambda r: (r["src_port"], r["sensor"])) == [
        {"sensor": "127.0.0.1", "src_port": 40000, "conn_state": "S0"},
        {"sensor": "127.0.0.2", "src_port": 40000, "conn_state": "RSTRH"},
        {"sensor": "127.0.0.1", "src_port": 40001, "conn_state": "REJ"},
    ]


def _netflow_event(host: str, sender: tuple[str, int], receiver: tuple[str, int]) -> str:
    return json.dumps(
        {
            "timestamp": "2024-01-01T00:00:00.000000+0000",
            "event_type": "netflow",
            "host": host,
            "src_ip": sender[0],
            "src_port": sender[1],
            "dest_ip": receiver[0],
            "dest_port": receiver[1],
            "proto": "UDP",
            "netflow": {"pkts": 1, "bytes": 80, "start": "2024-01-01T00:00:00.000000+0000"},
        }
    )


def test_suricata_netflow_events_of_two_sensors_are_two_rows(tmp_path: Path) -> None:
    dns = ("10.0.0.53", 53)
    lines = [_netflow_event("s1", CLIENT, dns), _netflow_event("s2", dns, CLIENT)]
    lines += [_netflow_event("s1", (CLIENT[0], 40001), dns)]
    lines += [_netflow_event("s1", dns, (CLIENT[0], 40001))]
    eve = tmp_path / "eve.json"
    eve.write_text("\n".join(lines) + "\n")
    db = tmp_path / "v.duckdb"
    result = CliRunner().invoke(app, ["ingest", "--db", str(db), str(eve)])
    assert result.exit_code == 0, result.output
    store = DuckDBStore(db, read_only=True)
    rows = store.scan("conn", ["sensor", "src", "src_port", "conn_state", "resp_pkts"])
    store.close()
    got = sorted(rows.to_pylist(), key=lambda r: (r["src_port"], r["sensor"]))
    assert got == [
        {"sensor": "s1", "src": "10.0.0.1", "src_port": 40000, "conn_state": "S0"}
        | {"resp_pkts": None},
        {"sensor": "s2", "src": "10.0.0.1", "src_port": 40000, "conn_state": None}
        | {"resp_pkts": 1},  # s2's answer, turned: s2 did not see the query
        {"sensor": "s1", "src": "10.0.0.1", "src_port": 40001, "conn_state": "SF"}
        | {"resp_pkts": 1},
    ]


def test_an_exporter_learnt_one_way_is_held_again_once_it_pairs() -> None:
    hold = PairHold(wait=5, one_way_records=10)
    lone = [((f"10.0.0.{k}", 40000), SERVER, SYN | ACK, "r1") for k in range(12)]
    other = [((f"10.0.1.{k}", 40000), SERVER, SYN | ACK, "r2") for k in range(3)]
    out = hold.release(_records(lone + other), now=0)
    assert out.num_rows == 12 and hold.rows == 3  # r1's are stored at once, r2's wait
    assert (hold.exporters.not_held, list(hold.exporters.one_way)) == (12, [("r1", None)])
    pair = [(CLIENT, SERVER, SYN, "r1"), (SERVER, CLIENT, SYN | ACK, "r1")]
    late = [(("10.0.2.1", 40000), SERVER, SYN | ACK, "r1")]
    out = hold.release(_records(pair + late), now=1)
    assert out["conn_state"].to_pylist() == ["OTH"]  # the pair's row; the lone record waits
    assert (hold.rows, hold.exporters.resumed, hold.exporters.one_way) == (4, 1, {})
    assert hold.exporters.notices() == []


def _one_side(path: Path, senders: set[str]) -> Path:
    """The scan capture (with the busy client) with only the packets ``senders`` sent."""
    frames = cap.packets() + cap.busy_packets(cap.START + 2.5)
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f)
        for ts, frame in sorted(frames, key=lambda p: p[0]):
            if socket.inet_ntoa(dpkt.ethernet.Ethernet(frame).data.src) in senders:
                writer.writepkt(frame, ts=ts)
    return path


ORIGINATORS = {cap.SCANNER, cap.CLIENT, cap.BUSY}


def _export(tmp_path: Path, run: RunningCollector, pcap: Path) -> None:
    before = run.collector.counters.datagrams
    sent = run_softflowd(pcap, run.collector.port, "10", False, tmp_path)
    run.wait_for(before + sent)


def test_softflowd_one_direction_is_learnt_and_stored_without_waiting(tmp_path: Path) -> None:
    """Only the originators' packets: every record is lone. Learnt after 8, they are
    stored at once, not after the 30 s wait; the same exporter sending both
    directions is then held again (softflowd: no exporter of both is ever one-way)."""
    require_tool("softflowd")
    pcap = _one_side(tmp_path / "originators.pcap", ORIGINATORS)
    db = tmp_path / "v.duckdb"
    DuckDBStore(db).close()  # created before the test reads it while the collector writes
    with RunningCollector(db, batch_rows=1, pair_wait=30, one_way_records=8) as run:
        _export(tmp_path, run, pcap)
        deadline = time.monotonic() + 10
        while run.count("conn") < run.collector.counters.flows and time.monotonic() < deadline:
            time.sleep(0.1)
        c = run.collector.counters
        assert run.count("conn") == c.flows > 40  # all stored while the wait runs
        assert c.one_way_exporters == ["127.0.0.1"] and c.not_held >= c.flows - 8
        store = run.open()
        notices = store.scan("sources", ["notices"])["notices"].to_pylist()
        store.close()
        assert any("exporter 127.0.0.1 sends one direction only" in (n or "") for n in notices)
        both = cap.write_capture(tmp_path / "both.pcap", busy=True)
        _export(tmp_path, run, both)
    assert run.counters.one_way_exporters == [] and run.collector._hold.exporters.resumed == 1


def test_softflowd_both_directions_is_never_one_way(tmp_path: Path) -> None:
    require_tool("softflowd")
    both = cap.write_capture(tmp_path / "both.pcap", busy=True)
    db = tmp_path / "v.duckdb"
    with RunningCollector(db, batch_rows=1, pair_wait=30, one_way_records=8) as run:
        _export(tmp_path, run, both)
    c = run.counters
    assert (c.one_way_exporters, c.not_held) == ([], 0) and c.merged > 30
    assert _states(db) == EXPECTED


def test_the_load_tests_one_direction_records_are_learnt_at_the_default(tmp_path: Path) -> None:
    """6,000 one-direction records (the collector load test's generator) at the default
    threshold and wait: stored within seconds, most of them without waiting."""
    messages = build_messages(200)
    DuckDBStore(tmp_path / "v.duckdb").close()
    with RunningCollector(tmp_path / "v.duckdb", batch_seconds=0.2) as run:
        started = time.monotonic()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for seq, m in enumerate(messages):
                struct.pack_into("!I", m, 8, seq * 30)
                s.sendto(m, ("127.0.0.1", run.collector.port))
                time.sleep(0.001)
        run.wait_for(len(messages))
        while run.count("conn") < 6_000 and time.monotonic() - started < 8:
            time.sleep(0.1)
        assert run.count("conn") == 6_000  # before the 10 s wait of the first records
    c = run.counters
    assert c.one_way_exporters == ["127.0.0.1"] and c.not_held >= 1_000 and c.lost == 0


def _conns(db: Path) -> list[dict[str, object]]:
    store = DuckDBStore(db, read_only=True)
    cols = ["proto", "src", "dst", "dst_port", "conn_state", "orig_pkts", "resp_pkts"]
    rows = store.scan("conn", cols).to_pylist()
    store.close()
    return rows


def test_lone_replies_are_turned_as_zeek_turns_them(tmp_path: Path) -> None:
    """Only the servers' packets, exported by softflowd: each reply from a likely
    server port is a row from its client, with the state the pcap reader (Zeek's
    rules) gives the same packets; the other lone replies keep the sender's side."""
    require_tool("softflowd")
    pcap = _one_side(tmp_path / "servers.pcap", {cap.TARGET, cap.RESOLVER, *cap.SERVERS})
    db = tmp_path / "flows.duckdb"
    with RunningCollector(db, pair_wait=0) as run:
        _export(tmp_path, run, pcap)
    packets_db = tmp_path / "pcap.duckdb"
    result = CliRunner().invoke(app, ["ingest", "--db", str(packets_db), str(pcap)])
    assert result.exit_code == 0, result.output
    zeek = {(r["proto"], r["src"], r["dst"], r["dst_port"]): r for r in _conns(packets_db)}
    flows = _conns(db)
    turned = [r for r in flows if r["orig_pkts"] is None]
    kept = [r for r in flows if r["orig_pkts"] is not None]
    # Turned: the 2 open and 2 closed scanned ports among likely server ports (22, 25;
    # 21, 23), 3 web connections, 30 TLS sessions, 1 DNS answer.
    assert Counter((r["proto"], r["src"]) for r in turned) == {
        ("tcp", cap.SCANNER): 4,
        ("tcp", cap.CLIENT): 3,
        ("tcp", cap.BUSY): 30,
        ("udp", cap.CLIENT): 1,
    }
    for r in turned:
        z = zeek[r["proto"], r["src"], r["dst"], r["dst_port"]]  # Zeek's orientation
        assert r["resp_pkts"] == z["resp_pkts"] and z["orig_pkts"] == 0
        if r["proto"] == "tcp":
            assert r["conn_state"] == z["conn_state"], r
        else:  # Zeek's SHR would make the resolver an unanswered prober: no state
            assert (r["conn_state"], z["conn_state"]) == (None, "SHR")
    states = Counter(r["conn_state"] for r in turned if r["proto"] == "tcp")
    assert states == {"RSTRH": 2 + 15, "OTH": 2 + 15, "SHR": 3}
    # Closed ports that are not likely server ports: a lone RST/ACK, not turned, no state.
    assert Counter((r["src"], r["conn_state"]) for r in kept) == {(cap.TARGET, None): 32}


@pytest.mark.parametrize(
    ("internal", "named", "said"),
    [
        (None, "127.0.0.1 (internet)", "exporter 127.0.0.1 sends one direction only of its "
         "internet traffic (one address internal, the other external): those records"),
        ([], "127.0.0.1", "exporter 127.0.0.1 sends one direction only: its records"),
    ],
)  # fmt: skip
def test_collect_names_a_one_way_exporter_on_exit(
    tmp_path: Path, internal: list[str] | None, named: str, said: str
) -> None:
    """The load test's records (10.x to 192.0.2.x): with the default network model they
    are internet traffic, learnt as such; with no internal networks, per exporter."""
    port = free_udp_port()
    cmd = [sys.executable, "-m", "vigile", "collect", "--listen", f"127.0.0.1:{port}"]
    cmd += ["--db", str(tmp_path / "v.duckdb"), "--batch-seconds", "0.2", "--quiet", "--json"]
    if internal is not None:
        (tmp_path / "vigile.toml").write_text(f"[network]\ninternal = {internal!r}\n")
        cmd += ["--config", str(tmp_path / "vigile.toml")]
    proc = subprocess.Popen(cmd, stdout=PIPE, stderr=PIPE, text=True, cwd=tmp_path)
    try:
        assert proc.stderr is not None
        assert "listening on" in proc.stderr.readline()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for seq, m in enumerate(build_messages(200)):
                struct.pack_into("!I", m, 8, seq * 30)
                s.sendto(m, ("127.0.0.1", port))
                time.sleep(0.001)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    counters = json.loads(out)
    assert counters["one_way_exporters"] == [named] and counters["not_held"] >= 1_000
    assert said in " ".join(err.split())


def test_an_nfcapd_file_of_one_direction_is_learnt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """6,000 unanswered DNS queries (each its own client port) through nfpcapd, read in
    batches of 500: the reader stops holding them after 5,000 and says so in the
    file's notices."""
    monkeypatch.setattr(nfcapd, "BATCH", 500)
    for tool in ("nfpcapd", "nfdump"):
        require_tool(tool)
    pcap = tmp_path / "queries.pcap"
    with pcap.open("wb") as f:
        writer = dpkt.pcap.Writer(f)
        for k in range(6_000):
            frame = cap._udp(cap.CLIENT, 10_000 + k, cap.RESOLVER, 53, b"\x12\x34" + b"\0" * 10)
            writer.writepkt(frame, ts=cap.START + k * 0.001)
    flows = tmp_path / "flows"
    flows.mkdir()
    subprocess.run(["nfpcapd", "-r", str(pcap), "-w", str(flows)], check=True, timeout=60)
    (file,) = (p for p in flows.rglob("nfcapd.*") if p.is_file())
    db = tmp_path / "v.duckdb"
    result = CliRunner().invoke(app, ["ingest", "--db", str(db), str(file)])
    assert result.exit_code == 0, result.output
    store = DuckDBStore(db, read_only=True)
    states = Counter(store.scan("conn", ["conn_state"])["conn_state"].to_pylist())
    notices = store.scan("sources", ["notices"])["notices"].to_pylist()
    store.close()
    assert states == {"S0": 6_000}
    assert any("(no address recorded) sends one direction only" in (n or "") for n in notices)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.booleans(), st.sampled_from(["r1", "r2", None])),
        min_size=1,
        max_size=30,
    ),
    st.integers(0, 4),
)
def test_a_row_never_joins_two_exporters(
    records: list[tuple[int, bool, str | None]], cuts: int
) -> None:
    """Attempts and answers of four 5-tuples, each record from any of three exporters
    (one without an address), in batches: a merged row's two records come from one
    exporter, and none is lost."""
    rows = [
        ((CLIENT[0], 40000 + k), SERVER, SYN, sensor)
        if forward
        else (SERVER, (CLIENT[0], 40000 + k), SYN | ACK, sensor)
        for k, forward, sensor in records
    ]
    hold, out, step = PairHold(wait=10), [], max(1, len(rows) // (cuts + 1))
    table = _records(rows)
    for clock, lo in enumerate(range(0, len(rows), step)):
        out.append(hold.release(table.slice(lo, step), clock))
    out.append(hold.release(None, 99, final=True))
    stored = pa.concat_tables([t for t in out if t.num_rows]).to_pylist()
    assert len(stored) + hold.merged == len(rows)
    sides = Counter((sensor, k, forward) for k, forward, sensor in records)
    most = sum(min(sides[s, k, True], sides[s, k, False]) for s, k, _ in sides)
    merged = [r for r in stored if r["resp_pkts"] is not None and r["orig_pkts"] is not None]
    assert len(merged) == hold.merged <= most
    for r in merged:  # the attempt's row: its answer came from its own exporter
        assert sides[r["sensor"], r["src_port"] - 40000, False] > 0
