"""Packet captures (pcap, pcapng) into the ``conn``, ``dns``, ``http`` and ``tls`` tables.

The passes are listed in :mod:`vigile.ingest.packet`. Every row's ``source_pos`` is
the byte offset of its flow's first packet record in the file (``position_unit``
``byte``); the uid is derived from the file and that offset, so it is the same on
every run. A damaged file keeps every complete packet before the damage; the damage
is rejected with its byte offset and nothing after it is read.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa

from vigile.ingest.base import Sink, SourceFile
from vigile.ingest.packet.dnsrows import named
from vigile.ingest.packet.magic import Timeouts, capture_kind
from vigile.ingest.packet.records import CHUNK_BYTES
from vigile.schema import TS

if TYPE_CHECKING:
    from vigile.ingest.packet.meta import Metadata

#: Rows of one table held back before they are emitted together (one insert).
EMIT_ROWS = 65_536
PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}
BASE62_BYTES = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8
)


class PcapReader:
    """pcap and pcapng captures, recognised by their magic number."""

    name: ClassVar[str] = "pcap"
    position_unit: ClassVar[str] = "byte"
    description: ClassVar[str] = "Packet captures (pcap, pcapng): flows with DNS, HTTP and TLS"

    def __init__(
        self,
        chunk_bytes: int = CHUNK_BYTES,
        hold_rows: int = EMIT_ROWS,
        *,
        tcp_inactivity_timeout: float = Timeouts.tcp,
        udp_inactivity_timeout: float = Timeouts.udp,
        icmp_inactivity_timeout: float = Timeouts.other,
    ) -> None:
        """The options (``[ingest.pcap]`` in vigile.toml) are Zeek's inactivity
        timeouts, in seconds: a flow with no packet for that long ends, and a later
        packet starts a new one. ``icmp_inactivity_timeout`` also covers IP protocols
        other than TCP and UDP. ``chunk_bytes`` (the read size) and ``hold_rows`` (rows
        held back before they are written, see :meth:`_hold`) are not options."""
        self.timeouts = Timeouts(
            tcp_inactivity_timeout, udp_inactivity_timeout, icmp_inactivity_timeout
        )
        self.chunk_bytes = chunk_bytes
        self.hold_rows = hold_rows
        self._addr_text: dict[tuple[int, int], str] = {}
        self._held: dict[str, list[pa.Table]] = {}

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return capture_kind(head) is not None

    def read(self, source: SourceFile, sink: Sink) -> None:
        # The passes load numba's compiled code: imported when a capture is read (see
        # :mod:`.packet.magic`).
        from vigile.ingest.packet.connstate import conn_columns, endpoints
        from vigile.ingest.packet.decode import decode
        from vigile.ingest.packet.flows import FlowTable
        from vigile.ingest.packet.fragments import FragmentTable
        from vigile.ingest.packet.meta import Metadata
        from vigile.ingest.packet.pcapfile import Damage, read_packets

        sink.set_log_type("packets")
        self.source_id = source.source_id
        flows, meta, fragments = FlowTable(self.timeouts), Metadata(), FragmentTable()
        packets = not_ip = 0
        with source.open() as stream, source.mapped() as mapped:
            for chunk in read_packets(stream, self.chunk_bytes, mapped):
                if isinstance(chunk, Damage):
                    sink.reject(chunk.position, chunk.reason, chunk.raw)
                    if not chunk.fatal:
                        continue
                    sink.notice(f"nothing after byte {chunk.position} was read")
                    break
                if not len(chunk):
                    continue
                d = decode(chunk, fragments)
                packets += len(chunk)
                not_ip += len(chunk) - int(d.ok.sum())
                finished, flow_pos = flows.add(chunk, d)
                meta.scan(chunk, d, flow_pos)
                self._emit(sink, conn_columns(finished, None, self.timeouts), meta)
                if meta.dns.held or meta.http.full:  # rows of active flows, written now
                    active = endpoints(flows.active())
                    self._emit_dns(sink, meta.dns.paired(), active)
                    self._emit_http(sink, meta.http.blocks(), active)
                if mapped is not None:
                    sink.progress(int(chunk.pos[-1]))
                else:
                    sink.progress(stream.consumed_counter.consumed)  # type: ignore[attr-defined]
        last = flows.finish()
        if last is not None:
            self._emit(sink, conn_columns(last, flows.now, self.timeouts), meta)
        for table in list(self._held):
            self._flush(sink, table)
        if not_ip:
            sink.notice(f"{not_ip} of {packets} packets carry no IP flow (ARP, …): not counted")

    def _emit(self, sink: Sink, c: dict[str, np.ndarray], meta: Metadata) -> None:
        n = len(c["proto"])
        if not n:
            return
        uids = self._uids(c["first_pos"])
        src, dst = self._addresses(c["orig"]), self._addresses(c["resp"])
        tls_rows: list[dict[str, Any]] = []
        for i, pos in enumerate(c["first_pos"].tolist() if meta.tls else ()):
            row = meta.tls.pop(pos, None)
            if row is None:
                continue
            ends = {"uid": uids[i], "src": src[i], "dst": dst[i], "source_pos": pos}
            ends |= {"src_port": int(c["sport"][i]), "dst_port": int(c["dport"][i])}
            tls_rows.append(row | ends | {"open": bool(c["open"][i])})
        protos, which = np.unique(c["proto"], return_inverse=True)
        proto = pa.array([PROTO_NAMES.get(p, str(p)) for p in protos.tolist()]).take(which)
        columns = {
            "ts": pa.array(c["ts_ns"] // 1000, pa.int64()).cast(TS),
            "uid": pa.array(uids),
            "src": pa.array(src),
            "dst": pa.array(dst),
            "src_port": pa.array(c["sport"], pa.int32()),
            "dst_port": pa.array(c["dport"], pa.int32()),
            "proto": proto,
            "service": meta.services.pop(c["first_pos"]),
            "conn_state": pa.array(c["conn_state"].tolist(), pa.string()),
            "history": pa.array(c["history"].tolist(), pa.string()),
            "source_pos": pa.array(c["first_pos"], pa.int64()),
        }
        for k in ("duration", "open", "orig_bytes", "resp_bytes", "orig_ip_bytes"):
            columns[k] = pa.array(c[k])
        for k in ("resp_ip_bytes", "orig_pkts", "resp_pkts"):
            columns[k] = pa.array(c[k])
        self._hold(sink, "conn", columns)
        self._emit_dns(sink, meta.dns.pop(c["first_pos"]), c)
        self._emit_http(sink, meta.http.pop(c["first_pos"], c["open"]), c)
        if tls_rows:
            self._hold(sink, "tls", _columns(tls_rows))

    def _emit_dns(self, sink: Sink, rows: pa.Table | None, c: dict[str, np.ndarray]) -> None:
        """``dns`` rows of :mod:`.dnsrows` (see :meth:`_emit_rows`)."""
        if rows is not None:
            self._emit_rows(sink, "dns", named(rows), rows["flow"].to_numpy(), c)

    def _emit_http(self, sink: Sink, rows: pa.Table | None, c: dict[str, np.ndarray]) -> None:
        """``http`` rows of :mod:`.httprows` (see :meth:`_emit_rows`)."""
        if rows is not None:
            columns = dict(zip(rows.column_names, rows.columns, strict=True))
            self._emit_rows(sink, "http", columns, columns.pop("flow").to_numpy(), c)

    def _emit_rows(
        self,
        sink: Sink,
        table: str,
        columns: dict[str, pa.Array | pa.ChunkedArray],
        flow: np.ndarray,
        c: dict[str, np.ndarray],
    ) -> None:
        """Rows of ``table`` (``ts`` in µs) with their flow's uid and endpoints, from the
        :func:`.connstate.endpoints` columns ``c`` of flows that include each row's
        ``flow`` (first_pos)."""
        flows, row_flow = np.unique(flow, return_inverse=True)  # texts made once a flow
        at = _locate(c["first_pos"], flows)
        take = pa.array(row_flow)
        columns["ts"] = columns["ts"].cast(pa.int64()).cast(TS)
        columns |= {
            "uid": pa.array(self._uids(flows)).take(take),
            "src": pa.array(self._addresses(c["orig"][at])).take(take),
            "dst": pa.array(self._addresses(c["resp"][at])).take(take),
            "src_port": pa.array(c["sport"][at][row_flow], pa.int32()),
            "dst_port": pa.array(c["dport"][at][row_flow], pa.int32()),
            "source_pos": pa.array(flow, pa.int64()),
        }
        self._hold(sink, table, columns)

    def _hold(self, sink: Sink, table: str, columns: dict[str, pa.Array]) -> None:
        """Rows to emit, held until there are ``hold_rows`` of them.

        Each emit is one insert into the store, whose fixed cost outweighs a few
        thousand rows; memory stays bounded by the limit. Rows come here when their flow
        ends, except the DNS rows of flows still active, which come at the end of each
        chunk, and the HTTP blocks of :meth:`.HttpRows.blocks`: a long-lived flow (a
        DNS tunnel, a C2 channel) does not hold its transactions until it ends.
        """
        held = self._held.setdefault(table, [])
        held.append(pa.table(columns))
        if sum(t.num_rows for t in held) >= self.hold_rows:
            self._flush(sink, table)

    def _flush(self, sink: Sink, table: str) -> None:
        held = pa.concat_tables(self._held.pop(table, []), promote_options="default")
        if held.num_rows:
            columns = {
                name: col.combine_chunks()
                for name, col in zip(held.column_names, held.columns, strict=True)
            }
            sink.emit(table, columns, held.num_rows)

    def _uids(self, positions: np.ndarray) -> list[str]:
        """Zeek-style uids: 'C' and 11 base-62 digits of a 64-bit mix of file id and offset."""
        with np.errstate(over="ignore"):
            seed = np.uint64(self.source_id) * np.uint64(0x9E3779B97F4A7C15)
            x = positions.astype(np.uint64) + seed
            x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            x ^= x >> np.uint64(31)
        digits = np.empty((len(positions), 11), np.uint8)
        for k in range(11):
            x, digits[:, k] = x // np.uint64(62), (x % np.uint64(62)).astype(np.uint8)
        text = BASE62_BYTES[digits].tobytes().decode("ascii")
        return ["C" + text[i : i + 11] for i in range(0, 11 * len(positions), 11)]

    def _addresses(self, a: np.ndarray) -> list[str]:
        # Distinct (hi, lo) pairs by a two-key sort: a row-wise np.unique sorts slowly.
        order = np.lexsort((a[:, 1], a[:, 0]))
        ranked = a[order]
        new = np.ones(len(a), bool)
        new[1:] = (ranked[1:] != ranked[:-1]).any(axis=1)
        inverse = np.empty(len(a), np.int64)
        inverse[order] = np.cumsum(new) - 1
        texts = [self._text(int(hi), int(lo)) for hi, lo in ranked[new].tolist()]
        return [texts[i] for i in inverse.tolist()]

    def _text(self, hi: int, lo: int) -> str:
        text = self._addr_text.get((hi, lo))
        if text is None:
            addr = ipaddress.IPv6Address(hi << 64 | lo)
            text = str(addr.ipv4_mapped or addr)
            if len(self._addr_text) < 1 << 20:
                self._addr_text[(hi, lo)] = text
        return text


def _locate(first_pos: np.ndarray, flows: np.ndarray) -> np.ndarray:
    """Where each of ``flows`` (first positions, all present) is in ``first_pos``."""
    order = np.argsort(first_pos)
    rank = np.searchsorted(first_pos, flows, sorter=order)
    at = order[np.minimum(rank, len(order) - 1)] if len(order) else rank
    if not np.array_equal(first_pos[at] if len(order) else at[:0], flows):
        raise AssertionError("rows of a flow that is neither ended nor active")
    return at


def _columns(rows: list[dict[str, Any]]) -> dict[str, pa.Array]:
    """Row dicts (``ts`` in µs since the epoch) to Arrow columns."""
    batch = pa.RecordBatch.from_pylist(rows)
    out = dict(zip(batch.schema.names, batch.columns, strict=True))
    out["ts"] = out["ts"].cast(pa.int64()).cast(TS)
    return out
