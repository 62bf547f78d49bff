"""Suricata EVE JSON (one event object per line), plain or gzipped.

Event types read (Suricata's "EVE JSON Output" documentation,
https://docs.suricata.io/en/latest/output/eve/eve-json-format.html):
``flow`` and ``netflow`` → ``conn``, ``dns`` → ``dns``, ``http`` → ``http``,
``tls`` → ``tls``, ``alert`` → ``alerts``. Every event becomes one row, so the row
counts equal the event counts. Other event types (``stats``, ``fileinfo``,
``anomaly``, …) are counted in a notice. Positions are line numbers.

``conn_state`` comes from the TCP flags Suricata ORs per side (``tcp.tcp_flags_ts``
and ``tcp.tcp_flags_tc`` of a flow event, ``tcp.tcp_flags`` of a netflow event),
through the module NetFlow uses (:func:`vigile.ingest.flowstate.conn_states`): a
flow event is a biflow whose ``src`` is Suricata's client (the sender of the first
packet; of a SYN/ACK-first session picked up mid-stream, its receiver, as in Zeek),
netflow events are one-direction records paired within a batch. Flags are unknown
(null) for a side that sent no packets and for a flow Suricata kept no TCP session
for (it prints ``00`` for every side and no ``tcp.state``: a first packet that was
not a SYN, with mid-stream pick-up off, its default).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from vigile.ingest.base import Sink, SourceFile
from vigile.ingest.flowstate import (
    ENDED_STATES,
    Pairing,
    conn_payload,
    conn_states,
    pair_records,
)
from vigile.ingest.pairhold import merge_pairs
from vigile.ingest.payload import EVE_FRAMING
from vigile.schema import TRAFFIC_TABLES

BATCH_LINES = 20_000
#: Row keys the reader works with that are not columns (the state's input).
_WORK = {"_flags", "_rflags"}
#: IP protocol numbers of the protocols that get a state (see ``conn_states``).
STATE_PROTOS = {"tcp": 6, "udp": 17}
#: ``tcp.state`` values of a session both sides have finished (RST, or both FINs):
#: ``output-json-flow.c`` prints these names.
TCP_CLOSED = frozenset({"closed", "time_wait", "last_ack", "closing"})
PROTOS = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "ipv6-icmp": "icmp6", "icmpv6": "icmp6"}
QTYPES = {
    "A": 1,
    "NS": 2,
    "CNAME": 5,
    "SOA": 6,
    "PTR": 12,
    "MX": 15,
    "TXT": 16,
    "AAAA": 28,
    "SRV": 33,
    "NAPTR": 35,
    "DS": 43,
    "RRSIG": 46,
    "DNSKEY": 48,
    "HTTPS": 65,
    "ANY": 255,
}
RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5}
TLS_VERSIONS = {
    "TLS 1.0": "TLSv10",
    "TLS 1.1": "TLSv11",
    "TLS 1.2": "TLSv12",
    "TLS 1.3": "TLSv13",
    "SSLv3": "SSLv3",
    "SSLv2": "SSLv2",
}
_SNIFF = re.compile(rb'^\s*\{.*"event_type"\s*:', re.S)


class EveRecordError(ValueError):
    """An event that cannot be turned into a row."""


def _ts(value: Any) -> datetime:
    if not isinstance(value, str):
        raise EveRecordError("missing or non-text timestamp")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise EveRecordError(f"bad timestamp {value[:40]!r}") from None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@lru_cache(maxsize=65_536)
def _ipv6(text: str) -> str:
    """An IPv6 address in its compressed form: Suricata prints every group in full
    (``2a00:0d40:0001:…``), Zeek, NetFlow and the pcap reader the compressed form."""
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        raise EveRecordError(f"bad IPv6 address {text[:60]!r}") from None


def _endpoints(e: dict[str, Any]) -> dict[str, Any]:
    src, dst = e.get("src_ip"), e.get("dest_ip")
    if not isinstance(src, str) or not isinstance(dst, str):
        raise EveRecordError("missing src_ip or dest_ip")
    if ":" in src:
        src = _ipv6(src)
    if ":" in dst:
        dst = _ipv6(dst)
    proto = str(e.get("proto", "")).lower()
    icmp = proto in ("icmp", "ipv6-icmp", "icmpv6")
    flow_id = e.get("flow_id")
    host = e.get("host")
    return {
        "sensor": host if isinstance(host, str) else None,
        "ts": _ts(e.get("timestamp")),
        "uid": None if flow_id is None else str(flow_id),
        "src": src,
        "src_port": _int(e.get("icmp_type") if icmp else e.get("src_port")),
        "dst": dst,
        "dst_port": _int(e.get("icmp_code") if icmp else e.get("dest_port")),
    }


def _proto(e: dict[str, Any]) -> str | None:
    p = e.get("proto")
    return None if p is None else PROTOS.get(str(p).lower(), str(p).lower())


def _hex_flags(value: Any) -> int | None:
    """Suricata's TCP flags, printed as two hex digits (``"1b"``)."""
    try:
        return int(value, 16) if isinstance(value, str) else None
    except ValueError:
        return None


def _tcp_flags(e: dict[str, Any], row: dict[str, Any], netflow: bool) -> tuple[Any, Any]:
    """The ORed TCP flags of the event's ``src`` and ``dst`` side (None: unknown)."""
    tcp = e.get("tcp")
    if row["proto"] != "tcp" or not isinstance(tcp, dict):
        return None, None
    if netflow:  # one side; "00" is what Suricata prints without a session
        flags = _hex_flags(tcp.get("tcp_flags"))
        return (flags or None) if row["orig_pkts"] else None, None
    if "state" not in tcp and _hex_flags(tcp.get("tcp_flags")) in (None, 0):
        return None, None  # no TCP session: Suricata prints 00 for both sides
    orig, resp = _hex_flags(tcp.get("tcp_flags_ts")), _hex_flags(tcp.get("tcp_flags_tc"))
    return (orig if row["orig_pkts"] else None), (resp if row["resp_pkts"] else None)


def _still_open(e: dict[str, Any], flow: dict[str, Any]) -> bool:
    """Whether the flow was still active when the capture ended (Zeek's sense).

    Suricata logs every flow left in its table at exit with ``flow.reason``
    ``"shutdown"``, also TCP sessions it had seen closed and was only keeping until
    their timeout; those are not open. Closed is Suricata's own ``flow.state
    "closed"``, which its stream engine sets on the TCP states in :data:`TCP_CLOSED`
    (``StreamTcpPacketSetState`` in ``src/stream-tcp.c``), or ``tcp.state`` among
    them (plus ``closing``: both FINs sent). Half-closed sessions (``fin_wait1``,
    ``fin_wait2``, ``close_wait``) stay open, as Zeek's and the pcap reader's
    ``S2``/``S3`` connections do; a flow whose flags show a reset Suricata did not
    act on (out of its window) is closed later, by its ``conn_state``
    (:data:`vigile.ingest.flowstate.ENDED_STATES`).
    """
    if flow.get("reason") != "shutdown":
        return False
    tcp = e.get("tcp")
    tcp_state = tcp.get("state") if isinstance(tcp, dict) else None
    return flow.get("state") != "closed" and tcp_state not in TCP_CLOSED


def _conn(e: dict[str, Any]) -> dict[str, Any]:
    row = _endpoints(e)
    netflow = e.get("netflow")
    flow = netflow if isinstance(netflow, dict) else e.get("flow") or {}
    start = _ts(flow["start"]) if "start" in flow else row["ts"]
    end = _ts(flow["end"]) if "end" in flow else start
    app = e.get("app_proto")
    row.update(
        ts=start,
        proto=_proto(e),
        service=app if isinstance(app, str) and app not in ("failed", "unknown") else None,
        duration=max((end - start).total_seconds(), 0.0),
        open=_still_open(e, flow),
    )
    if isinstance(netflow, dict):  # one direction only
        row.update(orig_pkts=_int(flow.get("pkts")), orig_ip_bytes=_int(flow.get("bytes")))
    else:
        row.update(
            orig_pkts=_int(flow.get("pkts_toserver")),
            resp_pkts=_int(flow.get("pkts_toclient")),
            orig_ip_bytes=_int(flow.get("bytes_toserver")),
            resp_ip_bytes=_int(flow.get("bytes_toclient")),
        )
    row["_flags"], row["_rflags"] = _tcp_flags(e, row, isinstance(netflow, dict))
    return row


def _dns(e: dict[str, Any]) -> dict[str, Any]:
    row = _endpoints(e)
    d = e.get("dns") or {}
    queries = d.get("queries")
    q = queries[0] if isinstance(queries, list) and queries and isinstance(queries[0], dict) else d
    name, rrtype, rcode = q.get("rrname"), q.get("rrtype"), d.get("rcode")
    answers, ttls = [], []
    for a in d.get("answers") or []:
        if isinstance(a, dict) and "rdata" in a:
            answers.append(str(a["rdata"]))
            ttl = a.get("ttl")
            ttls.append(float(ttl) if isinstance(ttl, int | float) else None)
    if not answers and isinstance(d.get("grouped"), dict):
        answers = [
            str(v) for vals in d["grouped"].values() for v in vals if not isinstance(v, dict)
        ]
        ttls = [None] * len(answers)
    row.update(
        proto=_proto(e),
        trans_id=_int(d.get("id")),
        query=name.lower().rstrip(".") if isinstance(name, str) else None,
        qtype=QTYPES.get(rrtype) if isinstance(rrtype, str) else None,
        qtype_name=rrtype if isinstance(rrtype, str) else None,
        rcode=RCODES.get(rcode) if isinstance(rcode, str) else None,
        rcode_name=rcode if isinstance(rcode, str) else None,
        answers=answers or None,
        ttls=ttls or None,
    )
    return row


def _http(e: dict[str, Any]) -> dict[str, Any]:
    row = _endpoints(e)
    h = e.get("http") or {}
    tx = _int(e.get("tx_id"))
    host = h.get("hostname")
    mime = h.get("http_content_type")
    row.update(
        trans_depth=None if tx is None else tx + 1,
        method=h.get("http_method"),
        host=host if isinstance(host, str) and host.strip() else None,
        uri=h.get("url"),
        referrer=h.get("http_refer"),
        user_agent=h.get("http_user_agent"),
        status=_int(h.get("status")),
        response_body_len=_int(h.get("length")),
        resp_mime_types=[mime] if isinstance(mime, str) else None,
        open=False,
    )
    return row


def _hash(value: Any) -> str | None:
    return (
        value.get("hash") if isinstance(value, dict) else value if isinstance(value, str) else None
    )


def _tls(e: dict[str, Any]) -> dict[str, Any]:
    row = _endpoints(e)
    t = e.get("tls") or {}
    version = t.get("version")
    row.update(
        version=TLS_VERSIONS.get(version, version) if isinstance(version, str) else None,
        sni=t.get("sni"),
        ja3=_hash(t.get("ja3")),
        ja3s=_hash(t.get("ja3s")),
        ja4=_hash(t.get("ja4")),
        subject=t.get("subject"),
        issuer=t.get("issuerdn"),
        open=False,
    )
    return row


def _alert(e: dict[str, Any]) -> dict[str, Any]:
    row = _endpoints(e)
    a = e.get("alert") or {}
    sid = _int(a.get("signature_id"))
    if sid is None:
        raise EveRecordError("alert without signature_id")
    row.update(
        proto=_proto(e),
        app_proto=e.get("app_proto"),
        action=a.get("action"),
        gid=_int(a.get("gid")),
        signature_id=sid,
        rev=_int(a.get("rev")),
        signature=a.get("signature"),
        category=a.get("category"),
        severity=_int(a.get("severity")),
    )
    return row


#: event type -> (table, row builder)
EVENTS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "flow": ("conn", _conn),
    "netflow": ("conn", _conn),
    "dns": ("dns", _dns),
    "http": ("http", _http),
    "tls": ("tls", _tls),
    "alert": ("alerts", _alert),
}


class EveReader:
    """Suricata EVE JSON lines."""

    name: ClassVar[str] = "suricata-eve"
    position_unit: ClassVar[str] = "line"
    description: ClassVar[str] = "Suricata EVE JSON (flow, netflow, dns, http, tls, alert)"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        first = head.lstrip().split(b"\n", 1)[0]
        try:
            event = json.loads(first)
        except ValueError:
            return bool(_SNIFF.match(first)) and b'"timestamp"' in first
        return isinstance(event, dict) and "event_type" in event and "timestamp" in event

    def read(self, source: SourceFile, sink: Sink) -> None:
        sink.set_log_type("eve")
        rows: dict[str, list[dict[str, Any]]] = {t: [] for t, _ in EVENTS.values()}
        other: dict[str, int] = {}
        with source.open() as stream:
            for number, line in enumerate(stream, 1):
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                    if not isinstance(event, dict):
                        raise EveRecordError("not a JSON object")
                    kind = event.get("event_type")
                    if kind not in EVENTS:
                        if not isinstance(kind, str):
                            raise EveRecordError("no event_type")
                        other[kind] = other.get(kind, 0) + 1
                        continue
                    table, build = EVENTS[kind]
                    rows[table].append({**build(event), "source_pos": number})
                except (ValueError, TypeError, KeyError, AttributeError) as e:
                    reason = str(e) if isinstance(e, EveRecordError) else f"bad event: {e}"
                    sink.reject(number, reason, line)
                    continue
                if len(rows[table]) >= BATCH_LINES:
                    _emit(sink, table, rows[table])
                    sink.progress(stream.consumed_counter.consumed)  # type: ignore[attr-defined]
        for table, pending in rows.items():
            _emit(sink, table, pending)
        if other:
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(other.items()))
            sink.notice(f"event types not stored: {kinds}")


def _emit(sink: Sink, table: str, rows: list[dict[str, Any]]) -> None:
    """Hand rows to the sink; a row whose values do not fit the schema is rejected."""
    if not rows:
        return
    try:
        columns, pairing = _columns(table, rows)
    except (pa.ArrowException, OverflowError, ValueError, TypeError):
        good = []
        for row in rows:
            try:
                _columns(table, [row])
                good.append(row)
            except (pa.ArrowException, OverflowError, ValueError, TypeError) as e:
                sink.reject(row["source_pos"], f"value out of range or of the wrong type: {e}")
        columns, pairing = _columns(table, good)
        rows[:] = good
    n = len(rows)
    if pairing is not None:
        columns, merged = _merged(columns, pairing)
        if merged:
            sink.notice(
                f"{merged} responder records of netflow events merged into their "
                "originator's row (one row per connection)"
            )
        n -= merged
    sink.emit(table, columns, n)
    rows.clear()


def _merged(columns: dict[str, pa.Array], pairing: Pairing) -> tuple[dict[str, pa.Array], int]:
    """One row per connection: the two one-direction ``netflow`` events of a connection
    become the originator's row with the responder's counters
    (:func:`~vigile.ingest.pairhold.merge_pairs`, as for NetFlow); flow events, which
    are biflows already, and lone events stay as they are."""
    n = len(columns["ts"])
    for side in ("resp_pkts", "resp_ip_bytes"):  # netflow events alone have no responder
        columns.setdefault(side, pa.nulls(n, pa.int64()))
    start = columns["ts"].cast(pa.int64())
    end = pc.add(start, pc.round(pc.multiply(columns["duration"], 1e6)).cast(pa.int64()))
    work = {"_start_us": start, "_end_us": end}
    table, merged = merge_pairs(pa.table(columns | work), pairing)
    return {name: table[name].combine_chunks() for name in columns}, merged


def _columns(table: str, rows: list[dict[str, Any]]) -> tuple[dict[str, pa.Array], Pairing | None]:
    """The rows as columns, and for conn rows how their records pair."""
    schema = TRAFFIC_TABLES[table].arrow_schema
    names = set().union(*rows) - _WORK
    columns = {n: pa.array([r.get(n) for r in rows], schema.field(n).type) for n in names}
    pairing = None
    if table == "conn" and rows:
        pairing = _pairing(columns, rows)
        state, columns["orig_payload"], columns["resp_payload"] = _states(columns, rows, pairing)
        columns["conn_state"] = state
        tcp = pc.equal(columns["proto"], "tcp")  # a UDP "SF" is answered, not ended
        ended = pc.fill_null(pc.and_(tcp, pc.is_in(state, pa.array(ENDED_STATES))), False)
        columns["open"] = pc.and_(columns["open"], pc.invert(ended))
    return columns, pairing


def _states(
    columns: dict[str, pa.Array], rows: list[dict[str, Any]], pairing: Pairing
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """``conn_state``, ``orig_payload`` and ``resp_payload`` of a batch of conn rows
    (flow events are biflows: ``resp_pkts``), over ``pairing`` of its records."""
    start = columns["ts"].cast(pa.int64())
    end = pc.add(start, pc.round(pc.multiply(columns["duration"], 1e6)).cast(pa.int64()))
    keys = _keys(columns, rows)
    flags = pa.array([r["_flags"] for r in rows], pa.int64())
    rflags = pa.array([r["_rflags"] for r in rows], pa.int64())
    n = len(rows)
    rpkts = columns.get("resp_pkts", pa.nulls(n, pa.int64()))
    none = pa.nulls(n, pa.int64())
    sent = (columns.get("orig_ip_bytes", none), columns.get("orig_pkts", none))
    received = (columns.get("resp_ip_bytes", none), rpkts)
    orig, resp = conn_payload(keys, pairing, sent, received, EVE_FRAMING, (flags, rflags))
    state = conn_states(keys, start, end, flags, rflags, rpkts, one_sensor=True, pairing=pairing)
    return state, orig, resp


def _keys(columns: dict[str, pa.Array], rows: list[dict[str, Any]]) -> dict[str, pa.Array]:
    proto = pa.array([STATE_PROTOS.get(r["proto"], 0) for r in rows], pa.int32())
    keys = {k: columns[k] for k in ("src", "src_port", "dst", "dst_port")} | {"proto": proto}
    if "sensor" in columns:  # records of two sensors are never one connection's sides
        keys["sensor"] = columns["sensor"]
    return keys


def _pairing(columns: dict[str, pa.Array], rows: list[dict[str, Any]]) -> Pairing:
    """The records of a batch paired (:func:`~vigile.ingest.flowstate.pair_records`)."""
    start = columns["ts"].cast(pa.int64())
    end = pc.add(start, pc.round(pc.multiply(columns["duration"], 1e6)).cast(pa.int64()))
    flags = pa.array([r["_flags"] for r in rows], pa.int64())
    rpkts = columns.get("resp_pkts", pa.nulls(len(rows), pa.int64()))
    return pair_records(_keys(columns, rows), start, end, flags, rpkts)
