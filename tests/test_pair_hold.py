"""Records of one connection on either side of a batch cut are still paired.

A property test drives :class:`~vigile.ingest.pairhold.PairHold` with random
connections cut into random batches; the end-to-end tests export with nfdump's real
tools (``nfpcapd`` turns the scan capture into one record per direction, ``nfreplay``
sends them as NetFlow v9 in the file's order, the two directions of a connection
often in different datagrams) into the collector cutting a batch after every
datagram, and read the same nfcapd file in batches of three records.
"""

from __future__ import annotations

import itertools
import random
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from bench.netflow_pairing import split_pairs
from hypothesis import given, settings
from hypothesis import strategies as st
from tests import scan_capture as cap
from tests.conftest import require_tool
from tests.netflow_peers import RunningCollector
from tests.test_collector import _flows_msg, _send
from tests.test_netflow_state import _states
from typer.testing import CliRunner

from vigile.cli import app
from vigile.ingest import nfcapd
from vigile.ingest.flowstate import ACK, RST, SYN, conn_states
from vigile.ingest.pairhold import PairHold

EXPECTED = Counter(cap.ZEEK_STATES | cap.BUSY_STATES)


def _records(conns: list[tuple[int, bool, bool]]) -> pa.Table:
    """One record per direction: (start s, answered, tcp) per connection, each with its
    own ports; a TCP attempt answered by a reset, a UDP query answered."""
    rows: list[dict[str, object]] = []
    for k, (t, answered, tcp) in enumerate(conns):
        proto, us = (6 if tcp else 17), t * 1_000_000
        a, b = ("10.0.0.1", 10_000 + k), ("10.0.0.2", 80 if tcp else 53)
        sides = [(a, b, SYN if tcp else None)] + [(b, a, RST | ACK if tcp else None)] * answered
        for side, ((src, sport), (dst, dport), flags) in enumerate(sides):
            rows.append({"src": src, "src_port": sport, "dst": dst, "dst_port": dport})
            rows[-1] |= {"_start_us": us, "_end_us": us + 1000, "_proto": proto, "_flags": flags}
            rows[-1] |= {"orig_pkts": 1 + side, "orig_ip_bytes": 100 + side}
    table = pa.Table.from_pylist(rows)
    table = table.append_column("resp_pkts", pa.nulls(len(rows), pa.int64()))
    table = table.append_column("resp_ip_bytes", pa.nulls(len(rows), pa.int64()))
    return table.append_column("pos", pa.array(np.arange(len(rows))))


def _one_batch_states(t: pa.Table) -> dict[int, str | None]:
    keys = {n: t[n].combine_chunks() for n in ("src", "src_port", "dst", "dst_port")}
    keys["proto"] = t["_proto"].combine_chunks()
    start, end = t["_start_us"].combine_chunks(), t["_end_us"].combine_chunks()
    flags, none = t["_flags"].combine_chunks().cast(pa.int64()), pa.nulls(t.num_rows, pa.int64())
    states = conn_states(keys, start, end, flags, none, none).to_pylist()
    return dict(zip(t["pos"].to_pylist(), states, strict=True))


connections = st.lists(
    st.tuples(st.integers(0, 100), st.booleans(), st.booleans()), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(
    conns=connections,
    order=st.randoms(use_true_random=False),
    cuts=st.lists(st.integers(0, 80), max_size=6),
    wait=st.integers(0, 8),
    max_rows=st.integers(0, 100),
)
def test_held_records_are_stored_once_within_their_wait(
    conns: list[tuple[int, bool, bool]],
    order: random.Random,
    cuts: list[int],
    wait: int,
    max_rows: int,
) -> None:
    table = _records(conns)
    arrival = list(range(table.num_rows))
    order.shuffle(arrival)  # the records of a connection anywhere in the stream
    table = table.take(pa.array(arrival))
    bounds = [0, *sorted({c for c in cuts if c < table.num_rows}), table.num_rows]
    hold, out = PairHold(wait, max_rows), []
    for clock, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        out.append(hold.release(table.slice(lo, hi - lo), clock))
        assert hold.rows <= max_rows
        due = hold.due()
        assert due is None or due > clock  # no record is kept past its wait
    out.append(hold.release(None, len(bounds), final=True))
    assert hold.rows == 0
    stored = pa.concat_tables([t for t in out if t.num_rows])
    pos = stored["pos"].to_pylist()
    assert len(set(pos)) == len(pos)  # once each ...
    assert len(pos) + hold.merged == table.num_rows  # ... or merged into its partner's row
    # A merged row is a pair (the answer's own counters as its responder side, one row per
    # connection, as the conn log has); every other row is a record as it came.
    rows = stored.to_pylist()
    merged = [r for r in rows if r["resp_pkts"] is not None and r["orig_pkts"] is not None]
    assert len(merged) == hold.merged
    assert all((r["orig_pkts"], r["resp_pkts"], r["resp_ip_bytes"]) == (1, 2, 101) for r in merged)
    # An answer stored without its query is turned to its originator (the query's sender).
    turned = [r for r in rows if r["orig_pkts"] is None]
    assert all(
        (r["src"], r["dst"], r["resp_pkts"], r["resp_ip_bytes"]) == ("10.0.0.1", "10.0.0.2", 2, 101)
        and r["dst_port"] in (80, 53)
        for r in turned
    )
    firsts = {r["pos"] for r in table.to_pylist() if r["orig_pkts"] == 1}
    assert firsts <= set(pos)  # an originator's record is always a row of its own
    if wait >= len(bounds) and max_rows >= table.num_rows:  # every record could wait
        got = dict(zip(pos, stored["conn_state"].to_pylist(), strict=True))
        expected = _one_batch_states(table)
        answered = sum(a for _, a, _ in conns)
        assert hold.merged == answered  # every answered connection is one row
        assert set(pos) == firsts  # and every answer is in its row
        assert {p: expected[p] for p in got} == got
        assert all(expected[p] is None for p in set(expected) - set(got))  # responders only


def test_a_query_answered_in_the_next_batch_is_answered() -> None:
    table = _records([(0, True, False), (1, False, False)])  # query, answer; lone query
    hold = PairHold(wait=5)
    first = hold.release(table.slice(0, 1), now=0)
    assert first.num_rows == 0 and hold.rows == 1
    second = hold.release(table.slice(1), now=1)
    assert second["conn_state"].to_pylist() == ["SF"]  # one row; the lone query still waits
    assert second.select(["orig_pkts", "resp_pkts", "resp_ip_bytes"]).to_pylist() == [
        {"orig_pkts": 1, "resp_pkts": 2, "resp_ip_bytes": 101}
    ]
    assert (hold.rows, hold.held_back, hold.paired_late, hold.merged) == (1, 2, 1, 1)
    assert hold.release(None, now=6)["conn_state"].to_pylist() == ["S0"]  # its wait is over


def test_a_pair_is_one_row_spanning_both_records() -> None:
    """The originator's row takes the earlier start and the later end; a third record of
    the 5-tuple whose nearest reverse record is taken stays a row of its own."""
    a, b = ("10.0.0.1", 40000), ("10.0.0.2", 443)
    rows = [(a, b, SYN | ACK, 2_000_000, 9_000_000, 5), (b, a, SYN | ACK, 1_000_000, 8_000_000, 4)]
    rows.append((b, a, ACK, 12_000_000, 12_000_000, 1))  # nearest to a's record: taken
    t = pa.Table.from_pylist(
        [
            {"src": s[0], "src_port": s[1], "dst": d[0], "dst_port": d[1], "_proto": 6}
            | {"_flags": f, "_start_us": lo, "_end_us": hi, "orig_pkts": n}
            | {"orig_ip_bytes": 100 * n, "pos": i}
            for i, (s, d, f, lo, hi, n) in enumerate(rows)
        ]
    )
    t = t.append_column("ts", pc.cast(t["_start_us"], pa.timestamp("us", "UTC")))
    t = t.append_column("duration", pc.divide(pc.subtract(t["_end_us"], t["_start_us"]), 1e6))
    for name in ("resp_pkts", "resp_ip_bytes"):
        t = t.append_column(name, pa.nulls(3, pa.int64()))
    hold = PairHold(wait=0)
    out = hold.release(t, 0, final=True).sort_by("pos").to_pylist()
    assert hold.merged == 1 and [r["pos"] for r in out] == [1, 2]
    # b's record started first: b is the originator of the pair, a its responder.
    one = out[0]
    assert (one["orig_pkts"], one["orig_ip_bytes"], one["resp_pkts"], one["resp_ip_bytes"]) == (
        4,
        400,
        5,
        500,
    )
    assert one["ts"].timestamp() == 1.0 and one["duration"] == 8.0
    assert (out[1]["resp_pkts"], out[1]["duration"]) == (None, 0.0)


def _nfpcapd_file(tmp_path: Path) -> Path:
    for tool in ("nfpcapd", "nfdump", "nfreplay"):
        require_tool(tool)
    pcap = cap.write_capture(tmp_path / "scan.pcap", busy=True)
    flows = tmp_path / "flows"
    flows.mkdir()
    subprocess.run(["nfpcapd", "-r", str(pcap), "-w", str(flows)], check=True, timeout=60)
    (file,) = (p for p in flows.rglob("nfcapd.*") if p.is_file())
    return file


def _replay(file: Path, db: Path, pair_wait: float) -> RunningCollector:
    expected_flows = sum(1 for _ in nfcapd._objects(_nfdump_json(file)))
    with RunningCollector(db, batch_rows=1, batch_seconds=60, pair_wait=pair_wait) as run:
        cmd = ["nfreplay", "-r", str(file), "-H", "127.0.0.1", "-v", "9"]
        subprocess.run([*cmd, "-p", str(run.collector.port)], check=True, timeout=60)
        deadline = time.monotonic() + 10
        while run.collector.counters.flows < expected_flows and time.monotonic() < deadline:
            time.sleep(0.02)
    assert (run.counters.malformed, run.counters.flows) == (0, expected_flows)
    return run


def _nfdump_json(file: Path) -> list[str]:
    out = subprocess.run(["nfdump", "-r", str(file), "-o", "json"], capture_output=True)
    return out.stdout.decode().splitlines(keepends=True)


def test_nfreplay_records_split_by_batch_cuts_are_paired(tmp_path: Path) -> None:
    """A batch after every datagram: without waiting, pairs split across datagrams lose
    their answer (REJ reads S0); with it, every state is Zeek's."""
    file = _nfpcapd_file(tmp_path)
    split = _replay(file, tmp_path / "nowait.duckdb", pair_wait=0)
    assert split.counters.batches > 3 and _states(split.db) != EXPECTED  # the cut matters
    run = _replay(file, tmp_path / "wait.duckdb", pair_wait=30)
    assert _states(run.db) == EXPECTED
    c = run.counters  # every flow stored once: as a row, or as its originator's responder side
    assert c.paired_late > 0 and c.rows_written + c.merged == c.flows and c.merged > 0


def test_nfcapd_batches_pair_across_their_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = _nfpcapd_file(tmp_path)
    monkeypatch.setattr(nfcapd, "BATCH", 3)  # most pairs straddle a boundary
    db = tmp_path / "v.duckdb"
    result = CliRunner().invoke(app, ["ingest", "--db", str(db), str(file)])
    assert result.exit_code == 0, result.output
    assert _states(db) == EXPECTED


def _simulated_export(tmp_path: Path, pair_wait: float) -> tuple[RunningCollector, int]:
    """Three simulated hours exported as IPFIX into a collector cutting a batch every
    250 records (about every ninth datagram); returns the collector and how many
    records had no partner in their own batch though one is in the store."""
    db = tmp_path / f"wait{pair_wait}.duckdb"
    with RunningCollector(db, batch_rows=250, batch_seconds=60, pair_wait=pair_wait) as run:
        args = ["simulate", "--out", str(tmp_path / f"sim{pair_wait}"), "--days", "0.125"]
        args += ["--hosts", "3", "-f", "parquet", "--export", f"127.0.0.1:{run.collector.port}"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        sent = re.search(r"in ([\d,]+) datagrams", result.output)
        assert sent is not None, result.output
        datagrams = int(sent.group(1).replace(",", ""))
        run.wait_for(datagrams)
    assert (run.counters.datagrams, run.counters.lost) == (datagrams, 0)
    paired, split = split_pairs(db)
    assert paired > 100
    return run, split


def test_simulated_export_cut_between_records_is_paired(tmp_path: Path) -> None:
    """The simulator sends a connection's two records together; where they straddle two
    datagrams, a cut can fall between them: without waiting they stay apart."""
    _, split = _simulated_export(tmp_path, pair_wait=0)
    assert split > 0
    run, split = _simulated_export(tmp_path, pair_wait=30)
    assert split == 0 and run.counters.paired_late > 0


def test_held_records_are_written_while_no_datagram_comes(tmp_path: Path) -> None:
    """Lone records (one direction only) wait, then go to the store without new traffic."""
    with RunningCollector(tmp_path / "v.duckdb", batch_seconds=0.2, pair_wait=0.5) as run:
        _send(run.collector.port, [_flows_msg(0, 5)])
        run.wait_for(1)
        time.sleep(0.4)
        assert run.count("conn") == 0  # waiting for partners that never come
        deadline = time.monotonic() + 5
        while run.count("conn") < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert run.count("conn") == 5  # the wait is over: stored alone, still running
        assert run.collector.counters.held_back == 5
