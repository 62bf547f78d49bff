"""The payload rule (:mod:`vigile.ingest.payload`), its derivation from payload counts,
and stores written before ``conn`` had the payload columns."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from vigile.ingest.flowstate import conn_payload, conn_states, pair_records
from vigile.ingest.payload import (
    EVE_FRAMING,
    IPV4_HEADER_BYTES,
    IPV6_HEADER_BYTES,
    TCP_HEADER_BYTES,
    UDP_HEADER_BYTES,
    from_ip_bytes,
)
from vigile.schema import CONN, TS, Table, conform
from vigile.store import SourceRecord, SourceSummary
from vigile.store.duckdb import DuckDBStore, _ddl

HEADERS = {6: TCP_HEADER_BYTES, 17: UDP_HEADER_BYTES}


@given(
    pkts=st.integers(1, 10_000),
    proto=st.sampled_from([6, 17]),
    ipv6=st.booleans(),
    framing=st.sampled_from([0, EVE_FRAMING]),
    short=st.integers(0, 40),
    extra=st.integers(1, 100_000),
)
def test_bytes_beyond_the_headers_allowance_are_payload(
    pkts: int, proto: int, ipv6: bool, framing: int, short: int, extra: int
) -> None:
    """Header-only packets (at most the allowance each) are no payload, one byte over
    the allowance of all the packets is."""
    per_packet = (IPV6_HEADER_BYTES if ipv6 else IPV4_HEADER_BYTES) + HEADERS[proto] + framing
    headers_only = pkts * per_packet - min(short, pkts * per_packet)
    sent = pkts * per_packet + extra

    def told(ip_bytes: int) -> int:
        arrays = [np.array([v]) for v in (ip_bytes, pkts, proto)]
        return int(from_ip_bytes(*arrays, np.array([ipv6]), framing)[0])

    assert told(headers_only) == 0
    assert told(sent) == 1


def test_unknown_counters_and_other_protocols_cannot_be_told() -> None:
    got = from_ip_bytes(
        np.array([-1, 500, 500, 0]),
        np.array([3, -1, 2, 0]),
        np.array([6, 17, 1, 6]),
        np.zeros(4, bool),
        0,
    )
    assert got.tolist() == [-1, -1, -1, 0]


def test_conform_derives_payload_from_counts_unless_given() -> None:
    counts = {"orig_bytes": pa.array([5, 0, None]), "resp_bytes": pa.array([0, 9, None])}
    batch = _batch(counts)
    assert batch.column("orig_payload").to_pylist() == [True, False, None]
    assert batch.column("resp_payload").to_pylist() == [False, True, None]
    nulls = {"resp_payload": pa.nulls(3, pa.bool_())}  # a batch built from every column
    assert _batch(counts | nulls).column("resp_payload").to_pylist() == [False, True, None]
    batch = _batch({"resp_payload": pa.array([True, None, False])})
    assert batch.column("resp_payload").to_pylist() == [True, None, False]
    assert batch.column("orig_payload").null_count == 3


def test_a_store_without_the_payload_columns_gets_them_on_open(tmp_path: Path) -> None:
    """A store written before the columns: they are appended and, where payload was
    counted, filled as ingest fills them; the rows stay, and new batches go in."""
    db = tmp_path / "old.duckdb"
    old = Table("conn", CONN.doc, CONN.columns[:-2])
    rows = _batch({"orig_bytes": pa.array([12, 3, None]), "resp_bytes": pa.array([0, 700, None])})
    before = pa.Table.from_batches([rows]).select(old.column_names)
    con = duckdb.connect(str(db))
    con.execute(_ddl(old))
    con.register("before", before)
    con.execute("INSERT INTO conn SELECT * FROM before")
    con.close()
    store = DuckDBStore(db, read_only=True)  # cannot upgrade: a view adds the columns
    try:
        got = store.scan("conn", ["orig_bytes", "orig_payload", "resp_payload"]).to_pylist()
    finally:
        store.close()
    assert [tuple(r.values()) for r in got] == [(12, True, False), (3, True, True), (None,) * 3]
    store = DuckDBStore(db)
    try:
        with store.source_writer(SourceRecord(2, "new", "h", 0, "test")) as w:
            w.append("conn", _batch({"resp_payload": pa.array([True, False, None])}))
            w.finish(SourceSummary())
        got = store.scan("conn", ["orig_bytes", "orig_payload", "resp_payload"]).to_pylist()
    finally:
        store.close()
    assert [tuple(r.values()) for r in got] == [
        (12, True, False),
        (3, True, True),
        (None, None, None),
        (None, None, True),
        (None, None, False),
        (None, None, None),
    ]


def _batch(columns: dict[str, pa.Array]) -> pa.RecordBatch:
    base = {
        "ts": pa.array([0, 0, 0], TS),
        "src": pa.array(["10.0.0.1"] * 3),
        "dst": pa.array(["10.0.0.2"] * 3),
        "open": pa.array([False] * 3),
        "source_id": pa.array([1] * 3),
    }
    return conform(CONN, base | columns, 3)


#: A connection: protocol, start, the forward record's flags and (bytes, packets), and
#: its reverse record's flags, counters and delay (no reverse record when None).
SIDE = st.tuples(st.one_of(st.none(), st.integers(0, 255)), st.integers(0, 3000), st.integers(1, 9))
CONNECTIONS = st.lists(
    st.tuples(
        st.sampled_from([6, 17]),
        st.integers(0, 10_000_000),
        SIDE,
        SIDE,
        st.one_of(st.none(), st.integers(0, 4_000_000)),
    ),
    max_size=25,
)


@given(CONNECTIONS, st.randoms())
def test_a_pair_tells_the_responder_side_on_the_originator_record(connections, random) -> None:  # type: ignore[no-untyped-def]
    """Of two records of one connection, the one that gets the state gets the other's
    payload as ``resp_payload``, the other none; a record alone gets none."""
    records = []  # (connection, src, sport, dst, dport, proto, start, flags, bytes, pkts)
    for k, (proto, start, fwd, back, delay) in enumerate(connections):
        records.append((k, "10.0.0.1", 1000 + k, "10.0.0.2", 80, proto, start, *fwd))
        if delay is not None:
            records.append((k, "10.0.0.2", 80, "10.0.0.1", 1000 + k, proto, start + delay, *back))
    random.shuffle(records)
    cols = [list(c) for c in zip(*records, strict=True)] if records else [[]] * 10
    keys = dict(zip(["src", "src_port", "dst", "dst_port", "proto"], cols[1:6], strict=True))
    keys = {name: pa.array(v) for name, v in keys.items()}
    t, flags = pa.array(cols[6], pa.int64()), pa.array(cols[7], pa.int64())
    none = pa.nulls(len(records), pa.int64())
    pairing = pair_records(keys, t, t, flags, none)
    sent = (pa.array(cols[8], pa.int64()), pa.array(cols[9], pa.int64()))
    own, resp = (a.to_pylist() for a in conn_payload(keys, pairing, sent, (none, none), 0))
    states = conn_states(keys, t, t, flags, none, none, pairing=pairing).to_pylist()
    by_conn: dict[int, list[int]] = {}
    for i, r in enumerate(records):
        by_conn.setdefault(r[0], []).append(i)
    for rows in by_conn.values():
        if len(rows) == 1:
            assert resp[rows[0]] is None
            continue
        told = [i for i in rows if resp[i] is not None]
        assert len(told) == 1
        (i,) = told
        (j,) = [r for r in rows if r != i]
        assert resp[i] == own[j]
        assert states[j] is None


def test_a_side_that_sent_no_ack_sent_no_payload() -> None:
    """A Linux SYN (60 IP bytes) under a Linux cooked capture header (16 bytes) in an
    EVE flow is 76 bytes, over the Ethernet allowance: its flags, SYN without ACK,
    still say it carried nothing; unknown or zero flags leave it to the bytes."""
    one = [np.array([v]) for v in (76, 1, 6)]
    got = [
        int(from_ip_bytes(*one, np.zeros(1, bool), EVE_FRAMING, np.array([f]))[0])
        for f in (0x02, 0x06, 0x12, -1, 0)
    ]
    assert got == [0, 0, 1, 1, 1]
