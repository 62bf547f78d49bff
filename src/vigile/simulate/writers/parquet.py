"""Parquet files in vigile's own schema (``conn.parquet``, ``dns.parquet``, …).

This is the fast path for large runs (tens of millions of connections): rows go
straight from NumPy to Arrow, chunk by chunk, without text. Rows carry
``sensor = "simulate"`` and a ``source_id`` derived from the seed; ``source_pos``
is the row number in the file (from 1, as ``vigile ingest`` numbers them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vigile.schema import PARQUET_TABLE_KEY, TRAFFIC_TABLES, conform
from vigile.simulate.flows import (
    METHODS,
    PROTOS,
    QTYPES,
    RCODES,
    S0,
    SERVICES,
    STATES,
    Flows,
    Vocabs,
    request_times,
    service,
)
from vigile.simulate.writers.columns import lookup
from vigile.simulate.writers.payloads import RECORD_TTL, record_answers, response_body
from vigile.simulate.writers.zeek import (
    HEADER,
    JA3_BROWSER,
    JA3_NO_SNI,
    JA3S,
    dns_ids,
    histories,
)

TS_TYPE = TRAFFIC_TABLES["conn"].arrow_schema.field("ts").type


def source_id_for(seed: int) -> int:
    """A stable 63-bit id for a simulated run, like the ids of ingested files."""
    return int(hashlib.sha256(f"simulate:{seed}".encode()).hexdigest()[:16], 16) >> 1


def tagged_schema(table: str) -> pa.Schema:
    """The table's schema with the key-value metadata that names it (``vigile.table``),
    which ``vigile ingest`` reads to know the table without guessing from columns."""
    return TRAFFIC_TABLES[table].arrow_schema.with_metadata({PARQUET_TABLE_KEY: table.encode()})


def _ts(seconds: np.ndarray) -> pa.Array:
    return pa.array(np.round(seconds * 1e6).astype(np.int64), pa.int64()).cast(TS_TYPE)


def endpoint_columns(
    v: Vocabs, f: Flows, uid: pa.Array, ts: np.ndarray | None = None
) -> dict[str, pa.Array]:
    return {
        "ts": _ts(f.ts if ts is None else ts),
        "uid": uid,
        "src": lookup(v.addr.values, f.src),
        "src_port": pa.array(f.sport),
        "dst": lookup(v.addr.values, f.dst),
        "dst_port": pa.array(f.dport),
    }


def conn_columns(v: Vocabs, f: Flows, uid: pa.Array) -> dict[str, pa.Array]:
    hdr = np.array([HEADER[p] for p in range(3)])[f.proto]
    hist = histories(f)
    single = (f.state == S0) & (f.opkts <= 1)
    return {
        **endpoint_columns(v, f, uid),
        "proto": lookup(PROTOS, f.proto),
        "service": lookup(SERVICES, np.where(f.service == 0, -1, f.service.astype(np.int32))),
        # Microseconds, as Zeek prints an interval: the same value the conn.log gives.
        "duration": pa.array(np.round(f.duration * 1e6) / 1e6, mask=single),
        "orig_bytes": pa.array(f.obytes, mask=single),
        "resp_bytes": pa.array(f.rbytes, mask=single),
        "orig_ip_bytes": pa.array(f.obytes + f.opkts * hdr),
        "resp_ip_bytes": pa.array(f.rbytes + f.rpkts * hdr),
        "orig_pkts": pa.array(f.opkts),
        "resp_pkts": pa.array(f.rpkts),
        "conn_state": lookup(STATES, f.state),
        "history": pa.array(hist),
        "open": pa.array(np.zeros(len(f), bool)),
    }


def _answers(v: Vocabs, f: Flows) -> tuple[pa.Array, pa.Array]:
    """Answers and TTLs as lists: A answers, and the TXT and NULL ones the packets carry."""
    records = record_answers(v, f)
    has = (f.answer >= 0) | np.isin(np.arange(len(f)), list(records))
    offsets = pa.array(np.concatenate([[0], np.cumsum(has)]).astype(np.int32))
    text = lookup(v.addr.values, f.answer)
    ttl = np.where(f.answer >= 0, 300.0, RECORD_TTL)
    if records:
        listed = text.to_pylist()
        for i, answer in records.items():
            listed[i] = answer
        text = pa.array(listed, pa.string())
    rows = np.flatnonzero(has)
    return (
        pa.ListArray.from_arrays(offsets, text.take(pa.array(rows))),
        pa.ListArray.from_arrays(offsets, pa.array(ttl[rows])),
    )


def dns_columns(v: Vocabs, f: Flows, uid: pa.Array) -> dict[str, pa.Array]:
    answers, ttls = _answers(v, f)
    return {
        **endpoint_columns(v, f, uid),
        "proto": lookup(PROTOS, f.proto),
        "query": lookup(v.name.values, f.name),
        "qtype": pa.array(f.qtype.astype(np.int32)),
        "qtype_name": lookup(
            [QTYPES.get(q, str(q)) for q in range(max(QTYPES) + 1)], f.qtype.astype(np.int32)
        ),
        "rcode": pa.array(f.rcode.astype(np.int32), mask=f.rcode < 0),
        "rcode_name": lookup([RCODES.get(r, "") for r in range(4)], f.rcode.astype(np.int32)),
        "answers": answers,
        "ttls": ttls,
        "trans_id": pa.array(dns_ids(f.ts).astype(np.int32)),
    }


def http_columns(v: Vocabs, f: Flows, uid: pa.Array) -> dict[str, pa.Array]:
    return {
        **endpoint_columns(v, f, uid, request_times(f.ts, f.duration)),
        "trans_depth": pa.array(np.ones(len(f), np.int32)),
        "method": lookup(METHODS, f.method),
        "host": lookup(v.name.values, f.name),
        "uri": lookup(v.uri.values, f.uri),
        "user_agent": lookup(v.agent.values, f.agent),
        "status": pa.array(f.status.astype(np.int32)),
        "request_body_len": pa.array(np.where(f.method == 1, 0, np.maximum(f.obytes - 250, 0))),
        "response_body_len": pa.array(response_body(f.rbytes, f.status)[0]),
        "open": pa.array(np.zeros(len(f), bool)),
    }


def tls_columns(v: Vocabs, f: Flows, uid: pa.Array) -> dict[str, pa.Array]:
    n = len(f)
    return {
        **endpoint_columns(v, f, uid, request_times(f.ts, f.duration)),
        "version": pa.array(np.full(n, "TLSv13")),
        "cipher": pa.array(np.full(n, "TLS_AES_128_GCM_SHA256")),
        "sni": lookup(v.name.values, f.name),
        "ja3": pa.array(np.where(f.name >= 0, JA3_BROWSER, JA3_NO_SNI)),
        "ja3s": pa.array(np.full(n, JA3S)),
        "established": pa.array(np.ones(n, bool)),
        "open": pa.array(np.zeros(n, bool)),
    }


Maker = Callable[[Vocabs, Flows, pa.Array], dict[str, pa.Array]]
TABLES: dict[str, tuple[int | None, Maker]] = {
    "conn": (None, conn_columns),
    "dns": (service("dns"), dns_columns),
    "http": (service("http"), http_columns),
    "tls": (service("ssl"), tls_columns),
}


class ParquetWriter:
    """One Parquet file per table under ``out``, appended chunk by chunk."""

    def __init__(
        self, out: Path, vocabs: Vocabs, seed: int, tables: tuple[str, ...] = tuple(TABLES)
    ):
        self.out, self.vocabs, self.tables = out, vocabs, tables
        self.source_id = source_id_for(seed)
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._rows: dict[str, int] = dict.fromkeys(tables, 0)

    def write(
        self, flows: Flows, uid: pa.Array, t0: float, t1: float, rng: np.random.Generator
    ) -> None:
        for name in self.tables:
            svc, make = TABLES[name]
            if svc is None:
                part, part_uid = flows, uid
            else:
                rows = np.flatnonzero(flows.service == svc)
                part, part_uid = flows.take(rows), uid.take(pa.array(rows))
            n = len(part)
            if n == 0:
                continue
            cols = make(self.vocabs, part, part_uid)
            cols["sensor"] = pa.array(np.full(n, "simulate"))
            cols["source_id"] = pa.array(np.full(n, self.source_id, np.int64))
            # Row numbers from 1, the positions `vigile ingest` gives the rows of this file.
            cols["source_pos"] = pa.array(np.arange(self._rows[name] + 1, self._rows[name] + n + 1))
            self._rows[name] += n
            batch = conform(TRAFFIC_TABLES[name], cols, n)
            writer = self._writers.get(name)
            if writer is None:
                writer = self._writers[name] = pq.ParquetWriter(
                    self.out / f"{name}.parquet", tagged_schema(name), compression="zstd"
                )
            writer.write_batch(batch)

    @property
    def rows(self) -> dict[str, int]:
        return dict(self._rows)

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()
