"""Zeek TSV logs: conn, dns, http and ssl, with Zeek's exact headers and field order.

The field lists are those of Zeek 6 with the ja3 package (as in the RITA test data),
so anything that reads real Zeek logs reads these. With ``rotate=True`` the logs are
hourly, gzipped and foldered by day, as a Zeek cluster archives them
(``2026-03-02/conn.09:00:00-10:00:00.log.gz``); otherwise one ``conn.log`` etc.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa

from vigile.simulate.flows import (
    METHODS,
    PROTOS,
    QTYPES,
    RCODES,
    S0,
    SERVICES,
    STATES,
    TCP,
    Flows,
    Vocabs,
    request_times,
    service,
)
from vigile.simulate.writers.columns import decimal6, ints, lookup, tsv_lines, where
from vigile.simulate.writers.payloads import RECORD_TTL, record_answers, response_body

LOGS: dict[str, tuple[tuple[str, str], ...]] = {
    "conn": (
        ("ts", "time"),
        ("uid", "string"),
        ("id.orig_h", "addr"),
        ("id.orig_p", "port"),
        ("id.resp_h", "addr"),
        ("id.resp_p", "port"),
        ("proto", "enum"),
        ("service", "string"),
        ("duration", "interval"),
        ("orig_bytes", "count"),
        ("resp_bytes", "count"),
        ("conn_state", "string"),
        ("local_orig", "bool"),
        ("local_resp", "bool"),
        ("missed_bytes", "count"),
        ("history", "string"),
        ("orig_pkts", "count"),
        ("orig_ip_bytes", "count"),
        ("resp_pkts", "count"),
        ("resp_ip_bytes", "count"),
        ("tunnel_parents", "set[string]"),
    ),
    "dns": (
        ("ts", "time"),
        ("uid", "string"),
        ("id.orig_h", "addr"),
        ("id.orig_p", "port"),
        ("id.resp_h", "addr"),
        ("id.resp_p", "port"),
        ("proto", "enum"),
        ("trans_id", "count"),
        ("rtt", "interval"),
        ("query", "string"),
        ("qclass", "count"),
        ("qclass_name", "string"),
        ("qtype", "count"),
        ("qtype_name", "string"),
        ("rcode", "count"),
        ("rcode_name", "string"),
        ("AA", "bool"),
        ("TC", "bool"),
        ("RD", "bool"),
        ("RA", "bool"),
        ("Z", "count"),
        ("answers", "vector[string]"),
        ("TTLs", "vector[interval]"),
        ("rejected", "bool"),
    ),
    "http": (
        ("ts", "time"),
        ("uid", "string"),
        ("id.orig_h", "addr"),
        ("id.orig_p", "port"),
        ("id.resp_h", "addr"),
        ("id.resp_p", "port"),
        ("trans_depth", "count"),
        ("method", "string"),
        ("host", "string"),
        ("uri", "string"),
        ("referrer", "string"),
        ("version", "string"),
        ("user_agent", "string"),
        ("origin", "string"),
        ("request_body_len", "count"),
        ("response_body_len", "count"),
        ("status_code", "count"),
        ("status_msg", "string"),
        ("info_code", "count"),
        ("info_msg", "string"),
        ("tags", "set[enum]"),
        ("username", "string"),
        ("password", "string"),
        ("proxied", "set[string]"),
        ("orig_fuids", "vector[string]"),
        ("orig_filenames", "vector[string]"),
        ("orig_mime_types", "vector[string]"),
        ("resp_fuids", "vector[string]"),
        ("resp_filenames", "vector[string]"),
        ("resp_mime_types", "vector[string]"),
    ),
    "ssl": (
        ("ts", "time"),
        ("uid", "string"),
        ("id.orig_h", "addr"),
        ("id.orig_p", "port"),
        ("id.resp_h", "addr"),
        ("id.resp_p", "port"),
        ("version", "string"),
        ("cipher", "string"),
        ("curve", "string"),
        ("server_name", "string"),
        ("resumed", "bool"),
        ("last_alert", "string"),
        ("next_protocol", "string"),
        ("established", "bool"),
        ("ssl_history", "string"),
        ("cert_chain_fps", "vector[string]"),
        ("client_cert_chain_fps", "vector[string]"),
        ("sni_matches_cert", "bool"),
        ("validation_status", "string"),
        ("ja3", "string"),
        ("ja3s", "string"),
    ),
}
#: Zeek history strings of each state (TCP, then UDP), as Zeek writes them for the packets
#: the capture writer builds (the responder sends no pure ACK, hence no ``a``).
TCP_HISTORY = {"SF": "ShADdFf", "S0": "S", "REJ": "Sr", "S1": "ShADd", "RSTO": "ShADdR"}
UDP_HISTORY = {"SF": "Dd", "S0": "D", "REJ": "D", "S1": "Dd", "RSTO": "Dd"}
#: JA3 (https://github.com/salesforce/ja3) of the simulator's ClientHello (writers.payloads):
#: TLS 1.2 record version, three TLS 1.3 suites, extensions (server_name when there is
#: an SNI) supported_groups, signature_algorithms, supported_versions, key_share, padding.
JA3_BROWSER = hashlib.md5(
    b"771,4865-4866-4867,0-10-13-43-51-21,29,", usedforsecurity=False
).hexdigest()
JA3_NO_SNI = hashlib.md5(
    b"771,4865-4866-4867,10-13-43-51-21,29,", usedforsecurity=False
).hexdigest()
JA3S = "f4febc55ea12b31ae17cfb7e614afda8"
#: Bytes of IP and transport headers per packet (IPv4 without options).
HEADER = {0: 40, 1: 28, 2: 28}


def _ts_name(t: float, fmt: str) -> str:
    return datetime.fromtimestamp(t, UTC).strftime(fmt)


def header(path: str, opened: float) -> bytes:
    """The ``#``-lines Zeek writes at the top of a TSV log."""
    names, types = zip(*LOGS[path], strict=True)
    return (
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
        f"#path\t{path}\n#open\t{_ts_name(opened, '%Y-%m-%d-%H-%M-%S')}\n"
        f"#fields\t{chr(9).join(names)}\n#types\t{chr(9).join(types)}\n"
    ).encode()


def _ids(v: Vocabs, f: Flows, uid: pa.Array, ts: np.ndarray | None = None) -> list[pa.Array]:
    return [
        decimal6(f.ts if ts is None else ts),
        uid,
        lookup(v.addr.values, f.src),
        ints(f.sport),
        lookup(v.addr.values, f.dst),
        ints(f.dport),
    ]


def histories(f: Flows) -> np.ndarray:
    """Zeek's history string of every row, for the packets the capture writer sends.

    A completed TCP connection is ``ShA``, then ``D``/``d`` if each side sent data,
    ``a`` if the responder also sent pure ACKs (keep-alives), then ``Ff``.
    """
    hist = np.where(
        f.proto == TCP,
        np.array([TCP_HISTORY[s] for s in STATES])[f.state],
        np.array([UDP_HISTORY[s] for s in STATES])[f.state],
    )
    done = (f.proto == TCP) & (f.state == STATES.index("SF"))
    keepalive = f.rpkts > 2 + -(-f.rbytes // 1448)
    parts = [np.where(f.obytes > 0, "D", ""), np.where(f.rbytes > 0, "d", "")]
    middle = np.char.add(np.char.add(parts[0], parts[1]), np.where(keepalive, "a", ""))
    return np.where(done, np.char.add(np.char.add("ShA", middle), "Ff"), hist)


def conn_columns(v: Vocabs, f: Flows, uid: pa.Array, local: np.ndarray) -> list[pa.Array]:
    states = np.array(STATES)[f.state]
    single = (f.state == S0) & (f.opkts <= 1)
    hdr = np.array([HEADER[p] for p in range(3)])[f.proto]
    svc = lookup(SERVICES, np.where(f.service == 0, -1, f.service.astype(np.int32)))
    return [
        *_ids(v, f, uid),
        lookup(PROTOS, f.proto),
        svc,
        where(single, "-", decimal6(f.duration)),
        where(single, "-", ints(f.obytes)),
        where(single, "-", ints(f.rbytes)),
        pa.array(states),
        where(local[f.src], "T", "F"),
        where(local[f.dst], "T", "F"),
        ints(np.zeros(len(f), np.int64)),
        pa.array(histories(f)),
        ints(f.opkts),
        ints(f.obytes + f.opkts * hdr),
        ints(f.rpkts),
        ints(f.rbytes + f.rpkts * hdr),
        pa.nulls(len(f), pa.string()),
    ]


def dns_ids(ts: np.ndarray) -> np.ndarray:
    """DNS transaction ids, derived from the time so every output agrees on them."""
    return (np.round(ts * 1e6).astype(np.int64) & 0xFFFF).astype(np.int64)


def _answers(v: Vocabs, f: Flows, has_answer: np.ndarray) -> list[pa.Array]:
    """The answers and TTLs columns: A answers, then TXT and NULL ones where rows have them."""
    answers = lookup(v.addr.values, np.where(has_answer, f.answer, -1))
    ttls = where(has_answer, "300.000000", "-")
    records = record_answers(v, f)
    if not records:
        return [answers, ttls]
    text, ttl = answers.to_pylist(), ttls.to_pylist()
    for i, answer in records.items():
        text[i], ttl[i] = answer, f"{RECORD_TTL:.6f}"
    return [pa.array(text, pa.string()), pa.array(ttl, pa.string())]


def dns_columns(v: Vocabs, f: Flows, uid: pa.Array, rng: np.random.Generator) -> list[pa.Array]:
    n = len(f)
    has_answer = f.answer >= 0
    qnames = [QTYPES.get(q, str(q)) for q in range(max(QTYPES) + 1)]
    rnames = [RCODES.get(r, str(r)) for r in range(max(RCODES) + 1)]
    responded = f.rcode >= 0
    return [
        *_ids(v, f, uid),
        lookup(PROTOS, f.proto),
        ints(dns_ids(f.ts)),  # as in the packets
        where(responded, decimal6(f.duration), "-"),
        lookup(v.name.values, f.name),
        pa.array(np.full(n, "1")),
        pa.array(np.full(n, "C_INTERNET")),
        ints(f.qtype),
        lookup(qnames, f.qtype.astype(np.int32)),
        where(responded, ints(f.rcode), "-"),
        lookup(rnames, f.rcode.astype(np.int32)),
        pa.array(np.full(n, "F")),
        pa.array(np.full(n, "F")),
        pa.array(np.full(n, "T")),
        where(responded, "T", "F"),
        pa.array(np.full(n, "0")),
        *_answers(v, f, has_answer),
        pa.array(np.full(n, "F")),
    ]


def http_columns(v: Vocabs, f: Flows, uid: pa.Array, rng: np.random.Generator) -> list[pa.Array]:
    n = len(f)
    none = pa.nulls(n, pa.string())
    body_out = np.where(f.method == 1, 0, np.maximum(f.obytes - 250, 0))
    return [
        *_ids(v, f, uid, request_times(f.ts, f.duration)),  # Zeek: when the request came
        pa.array(np.full(n, "1")),
        lookup(METHODS, f.method),
        lookup(v.name.values, f.name),
        lookup(v.uri.values, f.uri),
        none,
        pa.array(np.full(n, "1.1")),
        lookup(v.agent.values, f.agent),
        none,
        ints(body_out),
        ints(response_body(f.rbytes, f.status)[0]),  # the Content-Length sent
        ints(f.status),
        pa.array(np.full(n, "OK")),
        none,
        none,
        pa.array(np.full(n, "(empty)")),
        none,
        none,
        none,
        none,
        none,
        none,
        none,
        none,
        none,
    ]


def ssl_columns(v: Vocabs, f: Flows, uid: pa.Array, rng: np.random.Generator) -> list[pa.Array]:
    n = len(f)
    none = pa.nulls(n, pa.string())
    return [
        *_ids(v, f, uid, request_times(f.ts, f.duration)),  # Zeek: at the ClientHello
        pa.array(np.full(n, "TLSv13")),
        pa.array(np.full(n, "TLS_AES_128_GCM_SHA256")),
        pa.array(np.full(n, "x25519")),
        lookup(v.name.values, f.name),
        pa.array(np.full(n, "F")),
        none,
        where(f.name >= 0, "h2", "-"),
        pa.array(np.full(n, "T")),
        pa.array(np.full(n, "CsiI")),
        none,
        none,
        none,
        none,
        where(f.name >= 0, JA3_BROWSER, JA3_NO_SNI),
        pa.array(np.full(n, JA3S)),
    ]


ColumnMaker = Callable[[Vocabs, Flows, pa.Array, np.random.Generator], list[pa.Array]]
APP_LOGS: dict[str, tuple[int, ColumnMaker]] = {
    "dns": (service("dns"), dns_columns),
    "http": (service("http"), http_columns),
    "ssl": (service("ssl"), ssl_columns),
}


class ZeekWriter:
    """Writes one chunk of time after another into Zeek logs under ``out``."""

    def __init__(
        self, out: Path, vocabs: Vocabs, local: Callable[[], np.ndarray], rotate: bool = False
    ) -> None:
        self.out, self.vocabs, self.rotate = out, vocabs, rotate
        self._local = local
        self._files: dict[str, IO[bytes]] = {}
        self._last = 0.0

    def write(
        self, flows: Flows, uid: pa.Array, t0: float, t1: float, rng: np.random.Generator
    ) -> None:
        """Append ``flows`` (sorted, with their ``uid``) for the time ``[t0, t1)``."""
        self._last = t1
        local = self._local()
        blocks = {"conn": conn_columns(self.vocabs, flows, uid, local)}
        for name, (svc, make) in APP_LOGS.items():
            rows = np.flatnonzero(flows.service == svc)
            blocks[name] = make(self.vocabs, flows.take(rows), uid.take(pa.array(rows)), rng)
        for name, cols in blocks.items():
            if self.rotate:
                stem = f"{name}.{_ts_name(t0, '%H:00:00')}-{_ts_name(t1, '%H:00:00')}.log.gz"
                path = self.out / _ts_name(t0, "%Y-%m-%d") / stem
                path.parent.mkdir(parents=True, exist_ok=True)
                # mtime=0 keeps the files byte-identical from run to run.
                with (
                    path.open("wb") as raw,
                    gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
                ):
                    gz.write(header(name, t0) + tsv_lines(cols) + self._close_line(t1))
            else:
                handle = self._files.get(name)
                if handle is None:
                    handle = self._files[name] = (self.out / f"{name}.log").open("wb")
                    handle.write(header(name, t0))
                handle.write(tsv_lines(cols))

    @staticmethod
    def _close_line(t: float) -> bytes:
        return f"#close\t{_ts_name(t, '%Y-%m-%d-%H-%M-%S')}\n".encode()

    def close(self) -> None:
        for handle in self._files.values():
            handle.write(self._close_line(self._last))
            handle.close()
        self._files.clear()
