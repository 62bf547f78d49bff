"""``scan`` on records without payload byte counts (NetFlow, Suricata EVE).

Their conn rows give IP-level bytes and packets per side and null ``orig_bytes`` /
``resp_bytes``; the readers infer ``orig_payload``/``resp_payload`` from IP bytes
beyond the headers' allowance (:mod:`vigile.ingest.payload`), for one-direction
records from the responder's record (:func:`vigile.ingest.flowstate.conn_payload`),
and ``scan`` reads those columns. The rows are laid out as the EVE reader (one biflow
per connection, frames as Suricata counts them) and the NetFlow readers (one record
per direction, the state on the originator's) write them, and get their payload
columns from the same functions the readers call.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from vigile.config import Config
from vigile.detect import HuntContext, default_window
from vigile.detect.probes import failed_probes
from vigile.detect.scan import ScanDetector
from vigile.ingest.flowstate import conn_payload, pair_records
from vigile.ingest.payload import EVE_FRAMING, NETFLOW_FRAMING, TCP_HEADER_BYTES
from vigile.schema import CONN, conform
from vigile.store import SourceRecord, SourceSummary
from vigile.store.duckdb import DuckDBStore

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
SCANNER, TARGET, BUSY = "203.0.113.66", "10.1.0.5", "10.1.0.9"
SERVERS = [f"198.51.100.{k}" for k in range(1, 31)]  # 30 ≥ the address scan's 25
SCANNED = range(1, 21)  # 20 ports ≥ the port scan's 15


def _conn(
    k: int,
    src: str,
    sport: int,
    dst: str,
    dport: int,
    state: str | None,
    orig: tuple[int, int],
    resp: tuple[int, int] | None,
    delay: float = 0,
) -> dict[str, Any]:
    """A TCP row; ``orig``/``resp`` are (packets, IP bytes); ``resp`` None: one direction."""
    return {
        "ts": T0 + timedelta(seconds=k + delay),
        "src": src, "src_port": sport, "dst": dst, "dst_port": dport, "proto": "tcp",
        "conn_state": state, "orig_pkts": orig[0], "orig_ip_bytes": orig[1],
        "resp_pkts": None if resp is None else resp[0],
        "resp_ip_bytes": None if resp is None else resp[1],
    }  # fmt: skip


def _eve_rows() -> list[dict[str, Any]]:
    """Flow events: a SYN scan (closed ports RST/ACK, four filtered, SYNs sent thrice),
    and a browser whose HTTPS sessions carried data and ended in a reset (RSTO, RSTR).
    Bytes are frames: a SYN with its usual options 74, a bare RST/ACK padded to 60."""
    rows = []
    for port in SCANNED:
        filtered = port <= 4
        state, resp = ("S0", (0, 0)) if filtered else ("REJ", (1, 60))
        syns = (3, 222) if filtered else (1, 74)
        rows.append(_conn(port, SCANNER, 61234, TARGET, port, state, syns, resp))
    for k, server in enumerate(SERVERS):
        state = "RSTO" if k % 2 else "RSTR"
        rows.append(_conn(k, BUSY, 50000 + k, server, 443, state, (9, 1450), (8, 6100)))
    return rows


def _netflow_rows(small: bool) -> list[dict[str, Any]]:
    """One record per direction, the state on the originator's, as softflowd exports
    and :mod:`vigile.ingest.flowstate` pairs them (IP bytes, no link layer). With
    ``small``, the browser's requests fit in the headers' allowance (4 packets, 240
    bytes): only the server's record shows the session carried data."""
    rows = []
    for port in SCANNED:
        rows.append(_conn(port, SCANNER, 61234, TARGET, port, "REJ", (1, 60), None))
        rows.append(_conn(port, TARGET, port, SCANNER, 61234, None, (1, 40), None, 0.001))
    for k, server in enumerate(SERVERS):
        state = "RSTO" if k % 2 else "RSTR"
        request = (4, 240) if small else (9, 1450)
        rows.append(_conn(k, BUSY, 50000 + k, server, 443, state, request, None))
        rows.append(_conn(k, server, 443, BUSY, 50000 + k, None, (3, 1320), None, 0.01))
    return rows


def _store(rows: list[dict[str, Any]], framing: int = NETFLOW_FRAMING) -> DuckDBStore:
    store = DuckDBStore(":memory:")
    columns = {c: [r[c] for r in rows] for c in rows[0]}
    arrays = {c: pa.array(v, CONN.arrow_schema.field(c).type) for c, v in columns.items()}
    arrays |= {"open": pa.array([False] * len(rows)), "source_id": pa.array([1] * len(rows))}
    keys = {c: arrays[c] for c in ("src", "src_port", "dst", "dst_port")}
    keys["proto"] = pa.array([6] * len(rows))
    start, none = arrays["ts"].cast(pa.int64()), pa.nulls(len(rows), pa.int64())
    pairing = pair_records(keys, start, start, none, arrays["resp_pkts"])
    sent = (arrays["orig_ip_bytes"], arrays["orig_pkts"])
    received = (arrays["resp_ip_bytes"], arrays["resp_pkts"])
    payload = conn_payload(keys, pairing, sent, received, framing)
    arrays["orig_payload"], arrays["resp_payload"] = payload
    with store.source_writer(SourceRecord(1, "t", "h" * 64, 0, "test")) as w:
        w.append("conn", conform(CONN, arrays, len(rows)))
        w.finish(SourceSummary())
    return store


def _probers(store: DuckDBStore) -> tuple[dict[str, int], set[str]]:
    ctx = HuntContext(store, Config(), default_window(store, 24))
    probes = failed_probes(ctx, ctx.window, timedelta(minutes=5))["src"].to_pylist()
    found = {f.src for f in ScanDetector().run(ctx)}
    return {s: probes.count(s) for s in set(probes)}, found


@pytest.mark.parametrize(
    "rows, framing",
    [
        (_eve_rows(), EVE_FRAMING),
        (_netflow_rows(small=False), NETFLOW_FRAMING),
        (_netflow_rows(small=True), NETFLOW_FRAMING),
    ],
    ids=["eve-flow", "netflow", "netflow-small-requests"],
)
def test_sessions_reset_after_data_are_no_probes(rows: list[dict[str, Any]], framing: int) -> None:
    store = _store(rows, framing)
    try:
        probes, found = _probers(store)
    finally:
        store.close()
    assert probes == {SCANNER: len(SCANNED)}
    assert found == {SCANNER}


def test_without_the_counters_every_reset_is_a_probe() -> None:
    """The same browser with unknown IP bytes: nothing tells its sessions carried data,
    so they count as failed, as before (an address scan of 443)."""
    rows = _eve_rows()
    for r in rows:
        r["orig_ip_bytes"] = r["resp_ip_bytes"] = None
    store = _store(rows, EVE_FRAMING)
    try:
        probes, found = _probers(store)
    finally:
        store.close()
    assert probes == {SCANNER: len(SCANNED), BUSY: len(SERVERS)}
    assert found == {SCANNER, BUSY}


@pytest.mark.parametrize("extra, counted", [(0, True), (1, False)], ids=["at", "over"])
def test_header_allowance_is_per_packet(extra: int, counted: bool) -> None:
    """Up to an IPv4 header and :data:`TCP_HEADER_BYTES` per packet is headers (a
    probe); one byte more is payload. Checked on the responder's side of a biflow and
    on a partner record (IP bytes, as NetFlow counts them)."""
    bytes_ = 2 * (20 + TCP_HEADER_BYTES) + extra
    rows = [_conn(0, SCANNER, 61234, TARGET, 22, "RSTO", (1, 60), (2, bytes_))]
    rows.append(_conn(1, SCANNER, 61234, TARGET, 23, "RSTO", (1, 60), None))
    rows.append(_conn(1, TARGET, 23, SCANNER, 61234, None, (2, bytes_), None, 0.001))
    rows.append(_conn(99, TARGET, 24, SCANNER, 61234, None, (9, 9000), None))  # no partner
    store = _store(rows)
    try:
        probes, _ = _probers(store)
    finally:
        store.close()
    assert probes == ({SCANNER: 2} if counted else {})


def test_a_partner_record_outside_the_pairing_slack_does_not_count() -> None:
    rows = [_conn(0, SCANNER, 61234, TARGET, 22, "REJ", (1, 60), None)]
    rows.append(_conn(0, TARGET, 22, SCANNER, 61234, None, (5, 5000), None, 60))
    store = _store(rows)
    try:
        probes, _ = _probers(store)
    finally:
        store.close()
    assert probes == {SCANNER: 1}
