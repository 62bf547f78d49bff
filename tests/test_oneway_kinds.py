"""One-way learnt per exporter and kind of path (:mod:`vigile.ingest.oneway`).

* :func:`~vigile.ingest.oneway.path_kinds` matches IPv4 integers with NumPy masks and
  text through the config's matcher: both agree with :mod:`ipaddress` (Hypothesis).
* A mixed exporter (both directions of internal traffic, one of internet traffic)
  gets its internet kind learnt one-way while its internal pairs, split by batch
  cuts, are still paired; without a network model it is never learnt (one count per
  exporter, reset by its internal pairs). A two-way exporter is never learnt one-way.
  Every record is stored once (rows + merged = records in), whatever the cuts.
* softflowd exporting a capture filtered as such a firewall meters it, into the
  collector over loopback: the internet records are stored without waiting, the
  internal connections are still one row each with their states.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from pathlib import Path

import dpkt
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from tests import scan_capture as cap
from tests.conftest import require_tool
from tests.netflow_peers import RunningCollector, run_softflowd

from vigile.ingest.flowstate import ACK, FIN, SYN
from vigile.ingest.oneway import PATH_KINDS, path_kinds
from vigile.ingest.pairhold import PairHold
from vigile.store.duckdb import DuckDBStore

INTERNAL = (ipaddress.ip_network("10.0.0.0/8"),)
OUTSIDE = "198.51.100.7"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=20),
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)), max_size=4),
)
def test_path_kinds_agree_with_ipaddress(
    pairs: list[tuple[int, int]], nets: list[tuple[int, int]]
) -> None:
    networks = tuple(ipaddress.ip_network((a, p), strict=False) for a, p in nets)
    text = {
        side: pa.array([str(ipaddress.IPv4Address(p[k])) for p in pairs], pa.string())
        for k, side in enumerate(("src", "dst"))
    }
    ints = {f"_{s}4": pa.array([p[k] for p in pairs], pa.uint32()) for k, s in enumerate(text)}
    by_text = path_kinds(pa.table(text), networks)
    by_ints = path_kinds(pa.table({**text, **ints}), networks)
    inside = [sum(any(ipaddress.IPv4Address(a) in n for n in networks) for a in p) for p in pairs]
    assert by_text.tolist() == by_ints.tolist() == inside


def _record(n: int, sender: tuple[str, int], receiver: tuple[str, int], flags: int) -> dict:
    return {
        "src": sender[0], "src_port": sender[1], "dst": receiver[0], "dst_port": receiver[1],
        "sensor": "fw", "source_pos": n, "_proto": 6, "_flags": flags, "_start_us": n * 1000,
        "_end_us": n * 1000 + 500, "orig_pkts": 1, "orig_ip_bytes": 40,
    }  # fmt: skip


def _table(records: list[dict]) -> pa.Table:
    t = pa.Table.from_pylist(records)
    return t.append_column("resp_pkts", pa.nulls(len(records), pa.int64()))


def _mixed(plan: list[bool]) -> list[dict]:
    """A firewall's records: ``True`` an internal connection, both directions (its
    attempt, then the answer); ``False`` an internet connection, the inside host's
    record only (the answer from outside is not metered)."""
    out: list[dict] = []
    for k, internal in enumerate(plan):
        client, port = ("10.1.0.9", 20000 + k), 80
        if internal:
            out.append(_record(len(out), client, ("10.2.0.5", port), SYN | ACK | FIN))
            out.append(_record(len(out), ("10.2.0.5", port), client, SYN | ACK | FIN))
        else:
            out.append(_record(len(out), client, (OUTSIDE, port), SYN | ACK))
    return out


def _replay(
    records: list[dict], cuts: list[int], internal: tuple = INTERNAL, records_to_learn: int = 5
) -> tuple[PairHold, list[dict]]:
    """The records through a hold in batches cut at ``cuts`` (a clock tick each, well
    within the wait), then a final call; the hold and the rows it stored."""
    hold = PairHold(wait=10, one_way_records=records_to_learn, internal=internal)
    table, out, at = _table(records), [], 0
    for clock, cut in enumerate([*sorted(set(cuts)), len(records)]):
        if cut > at:
            out.append(hold.release(table.slice(at, cut - at), float(clock)))
            at = cut
    out.append(hold.release(None, 1e6, final=True))
    return hold, pa.concat_tables([t for t in out if t.num_rows]).to_pylist()


def _stored_once(hold: PairHold, records: list[dict], rows: list[dict]) -> None:
    """Every record stored exactly once: as a row, or merged into its partner's row."""
    positions = [r["source_pos"] for r in rows]
    assert len(positions) == len(set(positions))
    assert len(rows) + hold.merged == len(records)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.booleans(), min_size=1, max_size=60).filter(lambda p: p.count(True) <= 4),
    st.lists(st.integers(0, 70), max_size=8),
)
def test_a_mixed_exporters_internet_kind_is_learnt_its_internal_pairs_kept(
    plan: list[bool], cuts: list[int]
) -> None:
    """Up to 4 internal connections (fewer lone internal records than the 5 that teach
    a kind) among internet records, cut anywhere: every internal pair is merged, and
    the internet kind is learnt one-way exactly when 5 of its records were seen."""
    records = _mixed(plan)
    hold, rows = _replay(records, cuts)
    _stored_once(hold, records, rows)
    pairs = plan.count(True)
    assert hold.merged == pairs
    merged = [r for r in rows if r["resp_pkts"] is not None]
    assert len(merged) == pairs and all(r["dst"] == "10.2.0.5" for r in merged)
    internet = plan.count(False)
    assert ("fw", "internal") not in hold.exporters.one_way
    if internet >= 5:  # every step but the last (final) learns
        assert hold.exporters.labels() == ["fw (internet)"]
    else:
        assert (hold.exporters.one_way, hold.exporters.not_held) == ({}, 0)


def test_the_internet_kind_is_learnt_and_internal_pairs_across_a_cut_still_pair() -> None:
    """100 internet records, then internal connections whose two records are on either
    side of a batch cut: the internet records are learnt in their batch and stored at
    once, the internal attempts wait and pair with their answers in the next batch."""
    records = _mixed([False] * 100 + [True] * 3)
    first_answer = 101  # cut between each internal attempt and its answer
    hold, rows = _replay(records, [first_answer, first_answer + 2, first_answer + 4])
    _stored_once(hold, records, rows)
    assert hold.exporters.labels() == ["fw (internet)"]
    assert hold.exporters.not_held == hold.exporters.one_way[("fw", "internet")] == 100
    assert (hold.merged, hold.paired_late) == (3, 3)
    assert Counter(r["conn_state"] for r in rows if r["dst"] == "10.2.0.5") == {"SF": 3}


def test_without_a_network_model_the_mixed_exporter_is_never_learnt() -> None:
    """One count per exporter (as before kinds): its internal pairs reset it."""
    records = _mixed(([False] * 4 + [True]) * 40)
    hold, rows = _replay(records, list(range(0, len(records), 7)), internal=())
    _stored_once(hold, records, rows)
    assert (hold.exporters.one_way, hold.exporters.not_held) == ({}, 0)
    assert hold.held_back - hold.paired_late >= 150  # the internet records, held in vain
    kinds, kinds_rows = _replay(records, list(range(0, len(records), 7)))
    _stored_once(kinds, records, kinds_rows)
    assert kinds.exporters.labels() == ["fw (internet)"]
    assert kinds.held_back - kinds.paired_late < 10 and kinds.merged == hold.merged == 40


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(["internal", "internet", "transit"]), min_size=1, max_size=80),
    st.lists(st.integers(0, 170), max_size=10),
)
def test_a_two_way_exporter_is_never_learnt_one_way(kinds: list[str], cuts: list[int]) -> None:
    """Every connection of every kind exported both ways, records of a connection
    adjacent (softflowd's order), cut anywhere: no kind is learnt one-way, every pair
    is merged, nothing is lost or doubled."""
    hosts = {
        "internal": ("10.1.0.9", "10.2.0.5"),
        "internet": ("10.1.0.9", OUTSIDE),
        "transit": ("192.0.2.1", OUTSIDE),
    }
    records: list[dict] = []
    for k, kind in enumerate(kinds):
        a, b = hosts[kind]
        records.append(_record(len(records), (a, 30000 + k), (b, 443), SYN | ACK))
        records.append(_record(len(records), (b, 443), (a, 30000 + k), SYN | ACK))
    hold, rows = _replay(records, cuts, records_to_learn=2)
    _stored_once(hold, records, rows)
    assert (hold.exporters.one_way, hold.exporters.not_held) == ({}, 0)
    assert hold.merged == len(kinds)
    assert set(PATH_KINDS) >= set(kinds)


PSH = 0x08
#: The capture's connections: every fifth between two inside hosts, the others to the
#: internet; each from its own inside host, so that softflowd (which exports in its flow
#: tree's order) interleaves them as they came.
CONNECTIONS, EVERY = 60, 5


def _firewall_view(path: Path) -> Path:
    """Established TCP sessions (no FIN: softflowd then exports them in time order), as
    a firewall metering its inside interface sees them: both directions between two
    inside hosts, only the inside host's packets of internet sessions."""
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f)
        for k in range(CONNECTIONS):
            client = (f"10.1.0.{10 + k}", 41000 + k)
            server = ("10.1.1.5", 80) if k % EVERY == EVERY - 1 else (f"198.51.100.{k}", 443)
            steps = [(client, server, SYN), (server, client, SYN | ACK), (client, server, ACK)]
            steps += [(client, server, PSH | ACK), (server, client, PSH | ACK)]
            for n, ((a, ap), (b, bp), flags) in enumerate(steps):
                if a.startswith("10."):
                    frame = cap.tcp_frame(a, ap, b, bp, flags)
                    writer.writepkt(frame, ts=cap.START + k * 0.2 + n * 0.01)
    return path


def _export(
    work: Path, db: Path, patience: float, **kwargs: object
) -> tuple[RunningCollector, int]:
    """softflowd sends the firewall's view into a collector that waits 30 s for
    partners and learns after 8 records; the collector, stopped, and how many rows it
    had stored before the stop (once all were stored, or after ``patience`` seconds)."""
    require_tool("softflowd")
    pcap = _firewall_view(work / "firewall.pcap")
    DuckDBStore(db).close()
    with RunningCollector(db, batch_rows=1, pair_wait=30, one_way_records=8, **kwargs) as run:
        sent = run_softflowd(pcap, run.collector.port, "10", False, work)
        run.wait_for(sent)
        deadline = time.monotonic() + patience
        c = run.collector.counters
        while run.count("conn") + c.merged < c.flows and time.monotonic() < deadline:
            time.sleep(0.1)
        before_stop = run.count("conn")
    return run, before_stop


INTERNAL_PAIRS = CONNECTIONS // EVERY
INTERNET = CONNECTIONS - INTERNAL_PAIRS


def test_softflowd_mixed_export_is_learnt_per_kind(tmp_path: Path) -> None:
    """With the network model: the internet records are stored at once, long before
    their 30 s wait; the internal sessions are one row each, paired."""
    db = tmp_path / "kinds.duckdb"
    run, before_stop = _export(tmp_path, db, 10, internal=INTERNAL)
    c = run.counters
    assert c.flows == INTERNET + 2 * INTERNAL_PAIRS
    assert c.one_way_exporters == ["127.0.0.1 (internet)"] and c.resumed == 0
    assert c.not_held >= INTERNET - 8 and c.held_back - c.paired_late <= 8
    assert before_stop == c.rows_written == INTERNET + INTERNAL_PAIRS
    assert c.merged == INTERNAL_PAIRS
    store = DuckDBStore(db, read_only=True)
    rows = store.scan("conn", ["dst", "conn_state", "resp_pkts"]).to_pylist()
    notices = store.scan("sources", ["notices"])["notices"].to_pylist()
    store.close()
    inside = Counter((r["conn_state"], r["resp_pkts"]) for r in rows if r["dst"] == "10.1.1.5")
    assert inside == {("S1", 2): INTERNAL_PAIRS}
    assert any("sends one direction only of its internet traffic" in (n or "") for n in notices)


def test_softflowd_mixed_export_without_a_network_model_waits(tmp_path: Path) -> None:
    """The same export, one count per exporter (as before kinds): the internal pairs
    keep the exporter two-way, so its internet records wait for partners that never
    come, and are stored only at the stop."""
    run, before_stop = _export(tmp_path, tmp_path / "one.duckdb", 2)
    c = run.counters
    assert c.rows_written + c.merged == c.flows and c.merged == INTERNAL_PAIRS
    assert c.one_way_exporters == [] and c.held_back - c.paired_late == INTERNET
    assert before_stop == INTERNAL_PAIRS < c.rows_written


def test_a_pair_makes_only_its_own_kind_two_way_again() -> None:
    """Internet and transit kinds learnt one-way; an internet pair resumes holding for
    internet only (counted in ``resumed``), the transit kind stays one-way, and an
    internal attempt keeps waiting for its answer throughout."""
    hold = PairHold(wait=10, one_way_records=3, internal=INTERNAL)
    internet = [_record(k, ("10.1.0.9", 20000 + k), (OUTSIDE, 443), SYN | ACK) for k in range(3)]
    transit = [
        _record(3 + k, ("192.0.2.1", 20000 + k), (OUTSIDE, 443), SYN | ACK) for k in range(3)
    ]
    attempt = _record(6, ("10.1.0.9", 30000), ("10.2.0.5", 22), SYN | ACK)
    out = hold.release(_table([*internet, *transit, attempt]), 0)
    assert out.num_rows == 6 and hold.rows == 1  # the internal attempt waits
    assert hold.exporters.labels() == ["fw (internet)", "fw (transit)"]
    pair = [
        _record(7, ("10.1.0.9", 40000), (OUTSIDE, 443), SYN | ACK),
        _record(8, (OUTSIDE, 443), ("10.1.0.9", 40000), SYN | ACK),
    ]
    late = _record(9, ("10.1.0.9", 40001), (OUTSIDE, 443), SYN | ACK)  # held again
    out = hold.release(_table([*pair, late]), 1)
    assert (out.num_rows, hold.rows, hold.merged, hold.exporters.resumed) == (1, 2, 1, 1)
    assert hold.exporters.labels() == ["fw (transit)"]
    answer = _record(10, ("10.2.0.5", 22), ("10.1.0.9", 30000), SYN | ACK)
    out = hold.release(_table([answer]), 2)
    assert (hold.merged, hold.paired_late, hold.rows) == (2, 1, 1)
    assert hold.release(None, 99, final=True).num_rows == 1 and hold.rows == 0
