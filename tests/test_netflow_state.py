"""Connection states from NetFlow: a SYN scan and ordinary traffic exported by real peers.

The capture (:mod:`tests.scan_capture`) is exported by softflowd over loopback to
vigile's collector (v5, v9, IPFIX, IPFIX biflows) and turned into an nfcapd file by
nfdump's nfpcapd; each store must hold the states Zeek would give the connections,
and ``vigile hunt`` must report the scanner through the ``scan`` detector.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests import scan_capture as cap
from tests.conftest import require_tool
from tests.netflow_peers import RunningCollector, run_softflowd
from typer.testing import CliRunner

from vigile.cli import app
from vigile.ingest.flowstate import ACK, FIN, RST, SYN, conn_states, zeek_tcp_state
from vigile.store.duckdb import DuckDBStore

CLOSED = cap.CLOSED
#: What Zeek logs for the capture's connections, one state per connection.
EXPECTED = cap.ZEEK_STATES


def _states(db: Path) -> Counter[tuple[str, str, str]]:
    store = DuckDBStore(db, wait=10)
    try:
        rows = store.scan("conn", ["proto", "src", "conn_state"]).to_pylist()
    finally:
        store.close()
    return Counter((r["proto"], r["src"], r["conn_state"]) for r in rows if r["conn_state"])


def _hunt_scanners(db: Path, tmp_path: Path) -> dict[str, dict]:
    config = tmp_path / "vigile.toml"
    config.write_text('[network]\ninternal = ["10.1.0.0/16"]\n')
    result = CliRunner().invoke(
        app, ["hunt", "--db", str(db), "--config", str(config), "--json", "-n", "100"]
    )
    assert result.exit_code == 0, result.output
    findings = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    return {f["src"]: f for f in findings if f["detector"] == "scan"}


def _collect(tmp_path: Path, version: str, bidir: bool, busy: bool = False) -> Path:
    require_tool("softflowd")
    pcap = cap.write_capture(tmp_path / "scan.pcap", busy=busy)
    db = tmp_path / "v.duckdb"
    with RunningCollector(db, batch_seconds=0.5) as run:
        sent = run_softflowd(pcap, run.collector.port, version, bidir, tmp_path)
        run.wait_for(sent)
    assert (run.counters.malformed, run.counters.lost) == (0, 0)
    return db


@pytest.mark.parametrize("version", ["5", "9", "10"], ids=["v5", "v9", "ipfix"])
def test_softflowd_export_gives_zeek_states_and_a_scan(tmp_path: Path, version: str) -> None:
    db = _collect(tmp_path, version, bidir=False)
    assert _states(db) == EXPECTED
    scanners = _hunt_scanners(db, tmp_path)
    assert set(scanners) == {cap.SCANNER}
    evidence = scanners[cap.SCANNER]["evidence"]
    assert evidence["kinds"] == ["port"] and evidence["protocols"] == ["tcp"]
    assert evidence["distinct_ports"] == CLOSED + len(cap.FILTERED) + len(cap.OPEN)


def test_softflowd_biflows_give_states_where_the_record_starts_with_the_opener(
    tmp_path: Path,
) -> None:
    """softflowd -b puts the lower address first: the web connections' records start
    at the server (their state is symmetric, SF); the scan's start at the target, whose
    peer sent the lone SYN, and are left without a state."""
    db = _collect(tmp_path, "10", bidir=True)
    assert _states(db) == {
        ("tcp", cap.TARGET, "SF"): cap.WEB_CONNECTIONS,
        ("udp", cap.CLIENT, "SF"): 1,
        ("udp", cap.CLIENT, "S0"): 1,
    }


def test_nfcapd_file_gives_zeek_states_and_a_scan(tmp_path: Path) -> None:
    require_tool("nfpcapd")
    require_tool("nfdump")
    pcap = cap.write_capture(tmp_path / "scan.pcap")
    flows = tmp_path / "flows"
    flows.mkdir()
    subprocess.run(
        ["nfpcapd", "-r", str(pcap), "-w", str(flows)], check=True, capture_output=True, timeout=60
    )
    db = tmp_path / "v.duckdb"
    result = CliRunner().invoke(app, ["ingest", "--db", str(db), str(flows)])
    assert result.exit_code == 0, result.output
    assert _states(db) == EXPECTED
    assert set(_hunt_scanners(db, tmp_path)) == {cap.SCANNER}


@pytest.mark.parametrize("export", ["v9", "nfpcapd"])
def test_sessions_reset_after_data_make_no_scanner(tmp_path: Path, export: str) -> None:
    """The scan capture with a browser whose 30 HTTPS sessions (30 hosts on 443)
    carried data and ended in a reset: one record per direction, IP bytes only, and
    the client's records alone (a small request) do not show the data; the server's
    do. Only the scanner is reported, as from the capture itself."""
    if export == "v9":
        db = _collect(tmp_path, "9", bidir=False, busy=True)
    else:
        require_tool("nfpcapd")
        pcap = cap.write_capture(tmp_path / "scan.pcap", busy=True)
        flows = tmp_path / "flows"
        flows.mkdir()
        cmd = ["nfpcapd", "-r", str(pcap), "-w", str(flows)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        db = tmp_path / "v.duckdb"
        result = CliRunner().invoke(app, ["ingest", "--db", str(db), str(flows)])
        assert result.exit_code == 0, result.output
    assert _states(db) == EXPECTED | cap.BUSY_STATES
    assert set(_hunt_scanners(db, tmp_path)) == {cap.SCANNER}


def test_states_follow_zeek_for_one_and_two_sided_flags() -> None:
    assert zeek_tcp_state(SYN, None) == "S0"
    assert zeek_tcp_state(SYN | RST, None) == "RSTOS0"
    assert zeek_tcp_state(SYN, RST | ACK) == "REJ"
    assert zeek_tcp_state(SYN | ACK, SYN | ACK) == "S1"
    assert zeek_tcp_state(SYN | ACK | FIN, SYN | ACK) == "S2"
    assert zeek_tcp_state(SYN | ACK, SYN | ACK | FIN) == "S3"
    assert zeek_tcp_state(SYN | ACK | RST, SYN | ACK) == "RSTO"
    assert zeek_tcp_state(SYN | ACK, SYN | ACK | RST) == "RSTR"
    assert zeek_tcp_state(ACK, SYN | ACK | RST) == "RSTRH"
    assert zeek_tcp_state(ACK, ACK) == "OTH"


@given(st.integers(0, 255), st.one_of(st.none(), st.integers(0, 255)))
def test_every_flag_combination_has_a_zeek_state(orig: int, resp: int | None) -> None:
    states = {"S0", "S1", "S2", "S3", "SF", "REJ", "RSTO", "RSTR", "RSTOS0", "RSTRH"}
    assert zeek_tcp_state(orig, resp) in states | {"SH", "SHR", "OTH"}


FLAGS = st.one_of(st.none(), st.integers(0, 255))
#: A connection: protocol, start, the forward record's flags, and its reverse record's
#: flags and delay (no reverse record when the delay is None).
CONNECTIONS = st.lists(
    st.tuples(
        st.sampled_from([6, 17]),
        st.integers(0, 10_000_000),
        FLAGS,
        FLAGS,
        st.one_of(st.none(), st.integers(0, 4_000_000)),
    ),
    max_size=30,
)


@given(CONNECTIONS, st.randoms())
def test_a_connection_gets_one_state_on_one_of_its_records(connections, random) -> None:  # type: ignore[no-untyped-def]
    records = []  # (connection, forward?, src, sport, dst, dport, proto, start, flags)
    for k, (proto, start, flags, rflags, delay) in enumerate(connections):
        records.append((k, True, "10.0.0.1", 1000 + k, "10.0.0.2", 80, proto, start, flags))
        if delay is not None:
            back = (k, False, "10.0.0.2", 80, "10.0.0.1", 1000 + k, proto, start + delay, rflags)
            records.append(back)
    random.shuffle(records)
    columns = [list(c) for c in zip(*records, strict=True)] if records else [[]] * 9
    keys = dict(zip(["src", "src_port", "dst", "dst_port", "proto"], columns[2:7], strict=True))
    keys = {name: pa.array(v) for name, v in keys.items()}
    t = pa.array(columns[7], pa.int64())
    none = pa.nulls(len(records), pa.int64())
    got = conn_states(keys, t, t, pa.array(columns[8], pa.int64()), none, none).to_pylist()
    states: dict[int, list[str]] = {}
    for r, state in zip(records, got, strict=True):
        if state is not None:
            states.setdefault(r[0], []).append(state)
    for k, (proto, _, flags, rflags, delay) in enumerate(connections):
        found = states.get(k, [])
        if proto == 17:
            assert found == (["S0"] if delay is None else ["SF"])
        elif delay is not None and flags is not None and rflags is not None:
            assert len(found) == 1
        elif delay is None and flags is not None and flags & SYN and not flags & ACK:
            assert found and found[0] in ("S0", "RSTOS0", "SH", "OTH")
        else:
            assert len(found) <= 1


def test_states_from_nfpcapd_flows_agree_with_the_pcap_reader(
    shared_data: Path, tmp_path: Path
) -> None:
    """The shared captures, once read by vigile's pcap reader (which follows Zeek's
    state machine packet by packet) and once turned into NetFlow by nfpcapd: where both
    give a connection a state, TCP states are equal; UDP differs only where a reply was
    exported under other ports (IP fragments carry none), never the other way."""
    require_tool("nfpcapd")
    require_tool("nfdump")
    pcaps = sorted((shared_data / "pcap").glob("*/*.pcap"))
    flows = tmp_path / "flows"
    for pcap in pcaps:
        out = flows / pcap.stem
        out.mkdir(parents=True)
        cmd = ["nfpcapd", "-r", str(pcap), "-w", str(out)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    by_packets = _state_rows(tmp_path / "p.duckdb", pcaps)
    by_flows = _state_rows(tmp_path / "n.duckdb", [flows])
    pairs: Counter[tuple[str, str, str]] = Counter()
    for key, (ts, state) in by_packets.items():
        match = by_flows.get(key)
        if match and abs(match[0] - ts) < 5 and state and match[1]:
            pairs[(key[4], state, match[1])] += 1
    tcp = {k: n for k, n in pairs.items() if k[0] == "tcp"}
    assert sum(tcp.values()) >= 40
    assert all(pcap == netflow for _, pcap, netflow in tcp)
    udp_wrong = {k: n for k, n in pairs.items() if k[0] == "udp" and k[1] != k[2]}
    assert set(udp_wrong) <= {("udp", "SF", "S0")}
    assert sum(udp_wrong.values()) * 10 <= sum(n for k, n in pairs.items() if k[0] == "udp")


def _state_rows(db: Path, paths: list[Path]) -> dict[tuple, tuple[float, str | None]]:
    result = CliRunner().invoke(app, ["ingest", "--db", str(db), *map(str, paths)])
    assert result.exit_code == 0, result.output
    store = DuckDBStore(db)
    try:
        rows = store.scan("conn", ["ts", "src", "src_port", "dst", "dst_port", "proto"])
        states = store.scan("conn", ["conn_state"])["conn_state"].to_pylist()
    finally:
        store.close()
    return {
        (r["src"], r["src_port"], r["dst"], r["dst_port"], r["proto"]): (r["ts"].timestamp(), s)
        for r, s in zip(rows.to_pylist(), states, strict=True)
    }


def test_a_lone_udp_reply_is_no_probe_by_the_server() -> None:
    """A resolver's answer whose query went out in another batch is not the resolver
    probing the client (it was reported as a UDP port scanner of a busy client): a
    lone record from a likely server port to one that is not stays without a state;
    a lone query is S0, a pair SF on the query's record; two server ports, S0."""
    records = [  # src, sport, dst, dport, start µs
        ("9.9.9.9", 53, "10.0.0.5", 51234, 0),  # the answer; its query is elsewhere
        ("10.0.0.5", 51999, "9.9.9.9", 53, 60_000_000),  # a query never answered
        ("10.0.0.5", 52000, "9.9.9.9", 53, 120_000_000),  # a query and its answer
        ("9.9.9.9", 53, "10.0.0.5", 52000, 120_020_000),
        ("10.0.0.9", 123, "192.0.2.1", 123, 180_000_000),  # NTP server to server
    ]
    columns = list(zip(*records, strict=True))
    keys = {
        "src": pa.array(columns[0]),
        "src_port": pa.array(columns[1]),
        "dst": pa.array(columns[2]),
        "dst_port": pa.array(columns[3]),
        "proto": pa.array([17] * len(records)),
    }
    t = pa.array(columns[4], pa.int64())
    none = pa.nulls(len(records), pa.int64())
    assert conn_states(keys, t, t, none, none, none).to_pylist() == [None, "S0", "SF", None, "S0"]
