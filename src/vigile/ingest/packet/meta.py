"""DNS, HTTP and TLS metadata of flows, held until their flow is handed out.

A compiled pre-filter (:mod:`.classify`) picks the packets whose payload can carry
metadata (DNS ports, an HTTP method or status line, a TLS handshake record). DNS over
UDP is read for the whole chunk in compiled code (:mod:`.dnsbatch`) and paired into
rows with NumPy (:mod:`.dnsrows`); TLS hellos and HTTP heads in the common layouts are
read in compiled code too (:mod:`.headkernel`), with each distinct hello fingerprinted
once (:class:`.tls.FieldCache`), and the HTTP requests and responses of the chunk are
paired in columns (:mod:`.httprows`). The rest (DNS over TCP, unusual DNS messages,
hellos split over segments, unusual heads) is parsed in Python. What they yield is
kept per flow (keyed by the byte offset of the flow's first packet) and turned into
rows when the flow ends, since only then is its ``open`` state known. A flow's uid and
endpoints are fixed by its first packet, so some rows go out earlier: DNS rows at the
end of each chunk (a DNS tunnel is one flow for hours), HTTP rows in blocks of
:data:`.httprows.HTTP_BLOCK` answered requests (a C2 channel over one keep-alive
connection).

Pairing follows Zeek: a DNS query and its response (same transaction id in the same
flow) make one row; HTTP responses answer the oldest unanswered request of their
flow; one ``tls`` row per flow from its ClientHello and ServerHello.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from vigile.ingest.packet import dns, http, tls
from vigile.ingest.packet.classify import (
    DNS_TCP,
    DNS_UDP,
    HTTP_REQUEST,
    HTTP_STATUS,
    NONE,
    classify,
)
from vigile.ingest.packet.decode import Decoded
from vigile.ingest.packet.dnsbatch import Batch, parse_columns
from vigile.ingest.packet.dnsrows import MESSAGE, DnsRows
from vigile.ingest.packet.headkernel import DONE, NOT_HEAD, read_heads, text
from vigile.ingest.packet.httprows import REQUEST, HttpRows, request_texts
from vigile.ingest.packet.pcapfile import Packets
from vigile.ingest.packet.services import DNS, HTTP, SSL, Services

MAX_SEGMENTS = 12
TLS_ROW = dict.fromkeys(("sni", "ja3", "ja4", "version", "cipher", "ja3s"), None) | {
    "established": False
}


class Metadata:
    """Parses metadata packets chunk by chunk and holds it per active flow."""

    def __init__(self) -> None:
        self.tls: dict[int, dict[str, Any]] = {}  # the tls row of each flow, by first_pos
        self.services = Services()
        self.dns = DnsRows()
        self.http = HttpRows()
        self.hellos = tls.FieldCache()
        self._hello_at: list[tuple[int, int]] = []  # (flow, position) of this chunk's hellos

    def scan(self, pk: Packets, d: Decoded, flow_pos: np.ndarray) -> None:
        """Parse the metadata packets of a chunk; ``flow_pos`` is per ``d.ok`` packet."""
        fp = np.full(len(pk), -1, np.int64)
        fp[d.ok] = flow_pos
        v, po, cap = pk.buf, d.payload_off, d.payload_cap
        kind = classify(v, d.ok, d.proto, d.sport, d.dport, po, cap)
        udp_dns = np.flatnonzero(kind == DNS_UDP)
        batch = parse_columns(v, po[udp_dns], cap[udp_dns])
        fast = udp_dns[batch.fast]
        kind[fast] = NONE  # read: the rest of them go to dns.parse below
        seg = _Segments(pk, d, fp)
        cand = np.flatnonzero(kind)
        heads, keys = read_heads(v, kind[cand], po[cand], cap[cand])
        http_done = (heads[:, 0] == DONE) & np.isin(kind[cand], (HTTP_REQUEST, HTTP_STATUS))
        mem, key_mem = memoryview(v.data), memoryview(keys.data)
        rest = ~http_done & (heads[:, 0] != NOT_HEAD)
        rest_at = cand[rest]
        columns = (a[rest_at].tolist() for a in (kind, po, cap, fp, pk.ts_ns, pk.pos))
        rows = zip(rest_at.tolist(), *columns, heads[rest].tolist(), strict=True)
        slow: list[tuple[int, int, int, int, dns.DnsMessage]] = []
        requests: list[tuple[int, int, int, http.HttpRequest]] = []
        statuses: list[tuple[int, int, int]] = []
        for i, k, start, size, flow, ts, pos, head in rows:
            if head[0] == DONE:  # a hello
                msg, key = head[1:3], key_mem[head[3] : head[3] + head[4]]
                hello = self.hellos.get(key.tobytes(), mem[msg[0] : sum(msg)])
                self._tls(flow, hello, text(mem, head[5], head[6]), ts, pos)
                continue
            payload = mem[start : start + size].tobytes()
            if k == DNS_UDP:
                _dns(slow, payload, (flow, pos, ts, 0))
            elif k == DNS_TCP:
                size = int.from_bytes(payload[:2], "big")
                _dns(slow, payload[2 : 2 + size], (flow, pos, ts, 1))
            elif k == HTTP_REQUEST:
                if (r := http.parse_request(payload)) is not None:
                    requests.append((flow, pos, ts, r))
            elif k == HTTP_STATUS:
                code = http.parse_status(payload)
                statuses.append((flow, pos, -1 if code is None else code))
            else:
                self._tls_slow(flow, seg.hello(i, payload), ts, pos)
        self.dns.add(_messages(batch, fast, fp, pk, slow))
        self.services.note(DNS, fp[fast], pk.pos[fast])
        self.services.note(DNS, [m[0] for m in slow], [m[1] for m in slow])
        self.services.note(SSL, [f for f, _ in self._hello_at], [p for _, p in self._hello_at])
        self._hello_at = []
        done = cand[http_done]
        req = kind[done] == HTTP_REQUEST
        table, at = _requests(v, fp, pk, done[req], heads[http_done][req], requests)
        self.services.note(HTTP, table["flow"].to_numpy(), at)
        fast_status = done[~req]
        responses = [fp[fast_status], pk.pos[fast_status], heads[http_done][~req][:, 1]]
        if statuses:
            more = np.array(statuses, np.int64).T
            responses = [np.concatenate([a, b]) for a, b in zip(responses, more, strict=True)]
        self.http.add(table, at, tuple(responses))
        self.services.compact()

    def _tls_slow(self, flow: int, msg: bytes | None, ts: int, pos: int) -> None:
        """A hello that :mod:`.headkernel` left to the Python parser."""
        if msg is None:
            return
        try:
            h = tls.parse_hello(msg)
        except tls.TlsError:
            return
        self._tls(flow, tls.fields(h), h.sni, ts, pos)

    def _tls(self, flow: int, hello: tls.Fields | None, sni: str | None, ts: int, pos: int) -> None:
        if hello is None:
            return
        client, version, cipher, ja3, ja4 = hello
        self._hello_at.append((flow, pos))
        row = self.tls.get(flow)
        if row is None:
            row = self.tls[flow] = dict(TLS_ROW, ts=ts // 1000)
        # The first hello of each side counts (a retransmission or a renegotiation does not).
        if client and row["ja3"] is None:
            row.update(sni=sni, ja3=ja3, ja4=ja4)
            if row["version"] is None:
                row["version"] = version
        elif not client and row["ja3s"] is None:
            row.update(version=version, cipher=cipher, ja3s=ja3, established=True)


def _dns(
    slow: list[tuple[int, int, int, int, dns.DnsMessage]],
    payload: bytes,
    where: tuple[int, int, int, int],
) -> None:
    try:
        m = dns.parse(payload)
    except dns.DnsError:
        return
    slow.append((*where, m))


def _messages(
    batch: Batch,
    fast: np.ndarray,
    fp: np.ndarray,
    pk: Packets,
    slow: list[tuple[int, int, int, int, dns.DnsMessage]],
) -> pa.Table:
    """One table (:data:`.dnsrows.MESSAGE`) of the chunk's DNS messages, both paths."""
    keep = pa.array(batch.fast)
    answers, ttls = batch.answers()
    flags = batch.flags[batch.fast]
    cols = [
        pa.array(fp[fast]),
        pa.array(pk.pos[fast]),
        pa.array(pk.ts_ns[fast]),
        pa.array(np.zeros(len(fast), np.int8)),
        pa.array(batch.trans_id[batch.fast].astype(np.int32)),
        pa.array((flags & 0x8000) != 0),
        pa.array((flags & 0xF).astype(np.int32)),
        batch.queries().filter(keep),
        pa.array(batch.qtype[batch.fast].astype(np.int32)),
        answers.filter(keep),
        ttls.filter(keep),
    ]
    table = pa.Table.from_arrays(cols, schema=MESSAGE)
    if not slow:
        return table
    other = [
        {"flow": f, "seq": p, "ts": t, "proto": k, "trans_id": m.trans_id}
        | {"response": m.response, "rcode": m.rcode, "query": m.query, "qtype": m.qtype}
        | {"answers": m.answers, "ttls": m.ttls}
        for f, p, t, k, m in slow
    ]
    return pa.concat_tables([table, pa.Table.from_pylist(other, schema=MESSAGE)])


def _requests(
    v: np.ndarray,
    fp: np.ndarray,
    pk: Packets,
    fast: np.ndarray,
    heads: np.ndarray,
    slow: list[tuple[int, int, int, http.HttpRequest]],
) -> tuple[pa.Table, np.ndarray]:
    """The chunk's HTTP requests as a :data:`.httprows.REQUEST` table, and their packets'
    positions: those :mod:`.headkernel` read (packets ``fast``, rows ``heads``), then
    the ``slow`` ones the Python parser read."""
    columns = [pa.array(fp[fast]), pa.array(pk.ts_ns[fast] // 1000), *request_texts(v, heads)]
    table = pa.Table.from_arrays(columns, schema=REQUEST)
    at = pk.pos[fast]
    if not slow:
        return table, at
    other = [
        {"flow": f, "ts": t // 1000, "method": r.method, "host": r.host, "uri": r.uri}
        | {"referrer": r.referrer, "user_agent": r.user_agent}
        for f, _, t, r in slow
    ]
    more = pa.Table.from_pylist(other, schema=REQUEST)
    return pa.concat_tables([table, more]), np.concatenate([at, [p for _, p, _, _ in slow]])


class _Segments:
    """Follows a TCP direction over the next segments of a chunk to complete a hello."""

    def __init__(self, pk: Packets, d: Decoded, fp: np.ndarray) -> None:
        self.pk, self.d, self.fp = pk, d, fp
        self.order: np.ndarray | None = None
        self.rank: np.ndarray | None = None

    def _following(self, i: int) -> Iterator[int]:
        """The packets after ``i`` in flow order, a few at a time (the walk stops soon)."""
        assert self.order is not None and self.rank is not None
        start = int(self.rank[i]) + 1
        while start < len(self.order):
            yield from self.order[start : start + 64].tolist()
            start += 64

    def hello(self, i: int, payload: bytes) -> bytes | None:
        try:
            msg = tls.handshake_message(payload)
        except tls.TlsError:
            return None
        if msg is not None:
            return msg
        if self.order is None:
            self.order = np.argsort(self.fp, kind="stable")
            self.rank = np.empty(len(self.fp), np.int64)
            self.rank[self.order] = np.arange(len(self.fp))
        assert self.rank is not None
        d, v = self.d, self.pk.buf
        expect = (int(d.seq[i]) + len(payload)) & 0xFFFFFFFF
        data, seen = payload, 0
        for j in self._following(i):
            if self.fp[j] != self.fp[i] or seen >= MAX_SEGMENTS:
                break
            same_side = (d.src[j] == d.src[i]).all() and d.sport[j] == d.sport[i]
            if not same_side or int(d.seq[j]) != expect or d.payload_cap[j] == 0:
                continue
            seen += 1
            data += bytes(v[d.payload_off[j] : d.payload_off[j] + d.payload_cap[j]])
            expect = (expect + int(d.payload_cap[j])) & 0xFFFFFFFF
            try:
                msg = tls.handshake_message(data)
            except tls.TlsError:
                return None
            if msg is not None:
                return msg
        return None
