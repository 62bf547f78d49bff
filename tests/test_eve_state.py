"""Connection states from Suricata EVE, with Suricata itself writing the EVE.

Suricata reads the scan capture (:mod:`tests.scan_capture`) and the shared captures
offline (:mod:`tests.suricata_peer`); vigile ingests its EVE output and must give the
connections the states Zeek gives them, and ``vigile hunt`` must report the scanner
from the EVE alone. On the shared captures the states are compared, connection by
connection, with those vigile's pcap reader (which follows Zeek's TCP state machine
packet by packet) gives the same capture; every difference is named with its cause.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests import scan_capture as cap
from tests.helpers import ingest
from tests.suricata_peer import run_suricata
from typer.testing import CliRunner

from vigile.cli import app
from vigile.ingest.flowstate import STATES
from vigile.store.duckdb import DuckDBStore

EVE = "suricata/slips-test6-malicious.eve.json"


def _ingest(db: Path, paths: list[Path]) -> None:
    result = CliRunner().invoke(app, ["ingest", "--db", str(db), *map(str, paths)])
    assert result.exit_code == 0, result.output


def _rows(db: Path, columns: list[str]) -> list[dict]:
    store = DuckDBStore(db, wait=10)
    try:
        return store.scan("conn", columns).to_pylist()
    finally:
        store.close()


def _states(db: Path) -> Counter[tuple[str, str, str]]:
    rows = _rows(db, ["proto", "src", "conn_state"])
    return Counter((r["proto"], r["src"], r["conn_state"]) for r in rows if r["conn_state"])


def _scan_findings(db: Path, tmp_path: Path, settings: str = "") -> dict[str, dict]:
    config = tmp_path / "vigile.toml"
    config.write_text(f'[network]\ninternal = ["10.1.0.0/16", "192.168.1.0/24"]\n{settings}')
    args = ["hunt", "--db", str(db), "--config", str(config), "--json", "-n", "10000"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    findings = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    return {f["src"]: f for f in findings if f["detector"] == "scan"}


@pytest.mark.parametrize("types", [("flow",), ("netflow",)], ids=["flow", "netflow"])
def test_suricata_eve_of_a_scan_gives_zeek_states_and_the_scanner(
    tmp_path: Path, types: tuple[str, ...]
) -> None:
    """Flow events carry both sides' flags; netflow events one side each, paired."""
    eve = run_suricata(cap.write_capture(tmp_path / "scan.pcap"), tmp_path / "s", types)
    db = tmp_path / "v.duckdb"
    _ingest(db, [eve])
    assert _states(db) == cap.ZEEK_STATES
    scanners = _scan_findings(db, tmp_path)
    assert set(scanners) == {cap.SCANNER}
    evidence = scanners[cap.SCANNER]["evidence"]
    assert evidence["kinds"] == ["port"] and evidence["protocols"] == ["tcp"]
    assert evidence["distinct_ports"] == len(cap.PORTS)


def test_sessions_reset_after_data_make_no_scanner_from_eve_as_from_the_pcap(
    tmp_path: Path,
) -> None:
    """The scan capture with a browser whose 30 HTTPS sessions (30 hosts, one port)
    carried data and ended in a reset. The pcap reader counts their payload and
    leaves them out; EVE gives IP-level bytes only (flow events both sides, netflow
    events one each), and ``scan`` must still tell the data from the headers: only
    the scanner is reported from each."""
    pcap = cap.write_capture(tmp_path / "busy.pcap", busy=True)
    inputs = {"pcap": pcap}
    for kind in ("flow", "netflow"):
        inputs[kind] = run_suricata(pcap, tmp_path / kind, (kind,))
    for name, path in inputs.items():
        db = tmp_path / f"{name}.duckdb"
        _ingest(db, [path])
        assert _states(db) == cap.ZEEK_STATES | cap.BUSY_STATES, name
        rows = [r for r in _rows(db, ["src", "conn_state", "orig_bytes"]) if r["src"] == cap.BUSY]
        assert all((r["orig_bytes"] is None) == (name != "pcap") for r in rows), name
        assert set(_scan_findings(db, tmp_path)) == {cap.SCANNER}, name


def _backscatter(path: Path) -> Path:
    """A server answering 40 spoofed SYNs: lone SYN/ACKs to one address, 40 ports."""
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f)
        for k in range(40):
            frame = cap.tcp_frame(cap.TARGET, 80, cap.SILENT, 20_000 + k, cap.SYN | cap.ACK)
            writer.writepkt(frame, ts=cap.START + k * 0.01)
    return path


@pytest.mark.parametrize("midstream", [False, True], ids=["default", "midstream"])
def test_lone_syn_acks_get_no_state_and_make_no_scanner(tmp_path: Path, midstream: bool) -> None:
    """Without mid-stream pick-up Suricata keeps no session (flags ``00``); with it,
    it turns each flow around so that ``src`` is the address that received the
    SYN/ACK and sent nothing. Neither side knocked: no state, no scan finding."""
    pcap = _backscatter(tmp_path / "backscatter.pcap")
    eve = run_suricata(pcap, tmp_path / "s", midstream=midstream)
    events = [json.loads(line) for line in eve.read_text().splitlines()]
    assert len(events) == 40
    expected_src = cap.SILENT if midstream else cap.TARGET
    assert {e["src_ip"] for e in events} == {expected_src}
    db = tmp_path / "v.duckdb"
    _ingest(db, [eve])
    assert [r["conn_state"] for r in _rows(db, ["conn_state"])] == [None] * 40
    assert _scan_findings(db, tmp_path) == {}


def _sources(db: Path) -> dict[int, str]:
    store = DuckDBStore(db, wait=10)
    try:
        rows = store.scan("sources", ["source_id", "path"]).to_pylist()
    finally:
        store.close()
    return {r["source_id"]: Path(r["path"]).name for r in rows}


def _connection(r: dict) -> tuple:
    """A connection's 5-tuple with its ends in a fixed order (orientations may differ)."""
    ends = sorted([(r["src"], r["src_port"]), (r["dst"], r["dst_port"])], key=str)
    return (r["proto"], *ends)


@pytest.mark.parametrize("midstream", [False, True], ids=["default", "midstream"])
def test_states_from_suricata_agree_with_the_pcap_reader(
    shared_data: Path, tmp_path: Path, midstream: bool
) -> None:
    """Every shared capture, read by vigile's pcap reader and by Suricata. Where both
    give a connection (same 5-tuple, same first packet) a state, they are equal. The
    differences, each named:

    * connections the capture caught after their SYN (no ``S``/``s`` in the pcap
      reader's history): Suricata keeps no TCP session for them unless mid-stream
      pick-up is on, so no flags and no state; with it on they are ``OTH`` as in
      Zeek, except where the first packet seen is a FIN or RST (Suricata sets up no
      session from those);
    * ``ip_fragmented_garbage.pcap`` (deliberately broken IP fragments): four TCP
      connections the pcap reader logs are absent from Suricata's flows or start at
      another packet.
    """
    pcaps = sorted((shared_data / "pcap").glob("*/*.pcap*"))
    eves = [run_suricata(p, tmp_path / p.name, midstream=midstream) for p in pcaps]
    _ingest(tmp_path / "p.duckdb", pcaps)
    _ingest(tmp_path / "e.duckdb", eves)
    columns = ["ts", "src", "src_port", "dst", "dst_port", "proto", "conn_state", "history"]
    by_packets = _rows(tmp_path / "p.duckdb", [*columns, "source_id"])
    names = _sources(tmp_path / "p.duckdb")
    by_eve: dict[tuple, list[dict]] = {}
    for r in _rows(tmp_path / "e.duckdb", columns):
        by_eve.setdefault(_connection(r), []).append(r)
    pairs: Counter[tuple[str, str | None, str | None]] = Counter()
    unmatched, turned = Counter(), Counter()
    for r in (r for r in by_packets if r["proto"] in ("tcp", "udp")):
        candidates = by_eve.get(_connection(r), [])
        match = [e for e in candidates if abs((e["ts"] - r["ts"]).total_seconds()) < 1e-3]
        if not match:
            unmatched[names[r["source_id"]]] += 1
            continue
        e = match[0]
        pairs[(r["proto"], r["conn_state"], e["conn_state"])] += 1
        if (e["src"], e["src_port"]) != (r["src"], r["src_port"]):
            turned[(r["history"] or "")[:1]] += 1
        if e["conn_state"] is None and r["conn_state"] is not None:
            history = r["history"] or ""
            assert "S" not in history and "s" not in history, r
            if midstream:
                assert history.lstrip("^")[:1] in ("F", "f", "R", "r"), r
    both = {k: n for k, n in pairs.items() if k[1] and k[2]}
    assert all(pcap == eve for _, pcap, eve in both), both
    assert sum(n for k, n in both.items() if k[0] == "tcp") >= 40
    assert sum(n for k, n in both.items() if k[0] == "udp") >= 40
    assert not {k: n for k, n in pairs.items() if k[1] is None and k[2]}
    assert set(unmatched) == {"ip_fragmented_garbage.pcap"} and sum(unmatched.values()) <= 4
    if not midstream:  # Suricata's src is the first packet's sender; Zeek turns some
        assert set(turned) <= {"^"}


def _raw_flows(path: Path) -> list[dict[str, str]]:
    """Flow events' protocol, flags and packet counts by regular expression, no JSON."""
    fields = ("proto", "tcp_flags_ts", "tcp_flags_tc", "pkts_toclient")
    patterns = {f: re.compile(rf'"{f}":"?([^",}}]*)') for f in fields}
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if '"event_type":"flow"' in line:
                found = {k: p.search(line) for k, p in patterns.items()}
                out.append({k: m.group(1) if m else "" for k, m in found.items()})
    return out


def test_slips_eve_states_and_scans(shared_data: Path, tmp_path: Path) -> None:
    """A day of an internet-facing host seen by Suricata: the states the flags decide
    on their face, counted independently, and the scanners ``scan`` reports.

    The host is knocked on all day, but slowly: the busiest scanner, 193.46.255.92,
    fails on 482 ports over the day and at most 7 in any 5 minutes, below Zeek's
    threshold of 15, so ``scan`` reports nothing at its defaults and that scanner
    (with one more) at a threshold of 5. Without states it could report none.
    """
    raw = _raw_flows(shared_data / EVE)
    tcp = [f for f in raw if f["proto"] == "TCP"]
    rejected = [f for f in tcp if int(f["tcp_flags_ts"], 16) & 0x17 == 0x02]
    rejected = [f for f in rejected if int(f["tcp_flags_tc"], 16) & 0x04]
    no_session = [f for f in tcp if f["tcp_flags_ts"] == f["tcp_flags_tc"] == "00"]
    udp = [f for f in raw if f["proto"] == "UDP"]
    answered = sum(1 for f in udp if f["pkts_toclient"] != "0")
    db = tmp_path / "v.duckdb"
    _ingest(db, [shared_data / EVE])
    states = Counter((r["proto"], r["conn_state"]) for r in _rows(db, ["proto", "conn_state"]))
    assert states[("tcp", "REJ")] == len(rejected) > 1900
    assert states[("tcp", None)] == len(no_session) == 15
    assert states[("udp", "SF")] == answered and states[("udp", "S0")] == len(udp) - answered
    assert sum(n for (p, _), n in states.items() if p == "tcp") == len(tcp) == 2336
    assert _scan_findings(db, tmp_path) == {}
    found = _scan_findings(db, tmp_path, "[detectors.scan]\nport_threshold = 5\n")
    assert set(found) == {"193.46.255.92", "120.48.18.30"}
    evidence = found["193.46.255.92"]["evidence"]
    assert evidence["kinds"] == ["port"] and evidence["distinct_ports"] == 482


def test_slips_flows_suricata_saw_closed_are_not_open(shared_data: Path, tmp_path: Path) -> None:
    """Suricata logs every flow left in its table at exit with reason ``shutdown``,
    also the 1,917 TCP sessions it had seen closed (``flow.state`` ``closed``); only
    flows still active are open: the half-closed TCP sessions (``close_wait``) and
    flows without a session, less 8 whose flags show a reset Suricata did not act on
    (``RSTO``, ended as in the pcap reader), and UDP flows. Counted on the raw lines.
    """
    lines = (shared_data / EVE).read_text(encoding="utf-8").splitlines()
    flows = [line for line in lines if '"event_type":"flow"' in line]
    shutdown = [line for line in flows if '"reason":"shutdown"' in line]
    closed = [line for line in shutdown if '"state":"closed","reason"' in line]
    tcp_closed = [line for line in closed if '"proto":"TCP"' in line]
    db = tmp_path / "v.duckdb"
    _ingest(db, [shared_data / EVE])
    rows = _rows(db, ["proto", "open", "conn_state", "uid"])
    is_open = Counter((r["proto"], r["open"]) for r in rows)
    assert len(tcp_closed) == len(closed) == 1917
    closed_ids = {m.group(1) for m in (re.search(r'"flow_id":(\d+)', x) for x in closed) if m}
    assert len(closed_ids) == len(closed)
    assert not [r for r in rows if r["uid"] in closed_ids and r["open"]]
    assert is_open[("udp", True)] == sum('"proto":"UDP"' in line for line in shutdown) == 1079
    assert is_open[("tcp", True)] == 335
    tcp_open = Counter(r["conn_state"] for r in rows if r["open"] and r["proto"] == "tcp")
    assert tcp_open == {"S2": 319, None: 13, "OTH": 3}
    assert sum(is_open.values()) == len(flows) == 3512


FLAGS = st.one_of(
    st.none(), st.integers(-5, 300), st.text(max_size=4), st.sampled_from(["00", "02", "1b"])
)
EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["flow", "netflow"]),
        st.sampled_from(["TCP", "UDP", "ICMP", "tcp", "254"]),
        st.tuples(FLAGS, FLAGS, FLAGS),
        st.one_of(st.none(), st.sampled_from(["syn_sent", "closed", ""])),
        st.tuples(
            st.one_of(st.none(), st.integers(-1, 3)), st.one_of(st.none(), st.integers(0, 3))
        ),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(EVENTS)
def test_any_tcp_object_gives_a_row_with_a_zeek_state_or_none(tmp_path_factory, events) -> None:  # type: ignore[no-untyped-def]
    lines = []
    for k, (kind, proto, (flags, ts, tc), state, (pkts, rpkts)) in enumerate(events):
        times = {"start": "2024-05-01T10:00:00+00:00", "end": "2024-05-01T10:00:01+00:00"}
        event: dict = {"timestamp": times["start"], "event_type": kind, "proto": proto}
        event |= {"src_ip": "10.0.0.1", "src_port": 1000 + k, "dest_ip": "10.0.0.2"}
        event |= {"dest_port": 80}
        if kind == "flow":
            event["flow"] = {**times, "pkts_toserver": pkts, "pkts_toclient": rpkts}
        else:
            event["netflow"] = {**times, "pkts": pkts}
        tcp = {"tcp_flags": flags, "tcp_flags_ts": ts, "tcp_flags_tc": tc}
        event["tcp"] = tcp if state is None else {**tcp, "state": state}
        lines.append(json.dumps(event))
    path = tmp_path_factory.mktemp("eve") / "eve.json"
    path.write_text("\n".join(lines) + "\n")
    store = DuckDBStore(":memory:")
    try:
        (result,) = ingest(store, path).files
        assert result.status in ("ingested", "partial")
        states = store.scan("conn", ["conn_state"])["conn_state"].to_pylist()
        assert len(states) + store.count("rejects") == len(events)
        assert set(states) <= {*STATES, None}
    finally:
        store.close()


def test_netflow_events_of_a_connection_are_one_row_as_its_flow_event(
    shared_data: Path, tmp_path: Path
) -> None:
    """Suricata's one-direction ``netflow`` events of a connection become one conn row
    with both sides' counters: the row its ``flow`` event (a biflow) gives."""
    sides = ["src", "src_port", "dst", "dst_port", "proto"]
    counters = ["orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes"]
    merged = 0
    for pcap in ("caldera/sandcat.pcap", "caldera/ragdoll.pcap"):
        rows = {}
        for kind in ("flow", "netflow"):
            eve = run_suricata(shared_data / "pcap" / pcap, tmp_path / kind / pcap, (kind,))
            db = tmp_path / f"{kind}-{Path(pcap).stem}.duckdb"
            _ingest(db, [eve])
            rows[kind] = {tuple(r[c] for c in sides): r for r in _rows(db, sides + counters)}
            events = sum(1 for line in eve.open() if f'"event_type":"{kind}"' in line)
            merged += events - len(rows[kind]) if kind == "netflow" else 0
        assert rows["netflow"].keys() == rows["flow"].keys()
        for key, row in rows["flow"].items():
            got = [rows["netflow"][key][c] for c in counters]
            if got[2] is None:  # a lone event: no reply seen, so the flow event has none
                got[2:] = [0, 0]
            assert got == [row[c] for c in counters]
    assert merged > 0
