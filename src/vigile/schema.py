"""The normalised tables, defined once.

Every input format (Zeek, pcap, NetFlow/IPFIX, Suricata EVE) is turned into these
tables, and Parquet files of these tables are read as they are; every store engine
creates them from here; ``docs/schema.md`` is generated from here (``python -m
vigile.schema``) and a test keeps the two in step.

Conventions shared by all tables:

* ``ts`` is UTC with microsecond resolution.
* IP addresses are text in their canonical form (IPv4 dotted quad, IPv6 compressed),
  so the tables read the same in DuckDB, Parquet and Spark without extensions.
* ``sensor`` names what observed the traffic (a Zeek node, a NetFlow exporter, a
  capture file); ``source_id`` and ``source_pos`` point back to the exact file and
  line (or byte offset, or record number) a row came from.
* A Parquet file holding one of the traffic tables names it in its key-value
  metadata: ``vigile.table`` = ``conn``, ``dns``, ``http``, ``tls`` or ``alerts``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

TS = pa.timestamp("us", tz="UTC")
#: Key-value metadata key naming the table a Parquet file holds (set by every writer).
PARQUET_TABLE_KEY = b"vigile.table"


@dataclass(frozen=True)
class Column:
    """One column: its name, Arrow type, whether it may be null, and what it means."""

    name: str
    type: pa.DataType
    doc: str
    nullable: bool = True
    #: A count column whose value above 0 gives this column's where a batch lacks it
    #: or holds null (``resp_payload`` from ``resp_bytes``; see :func:`conform`).
    positive_of: str | None = None

    def field(self) -> pa.Field:
        return pa.field(self.name, self.type, nullable=self.nullable)


@dataclass(frozen=True)
class Table:
    """A normalised table: its columns in order and what one row stands for."""

    name: str
    doc: str
    columns: tuple[Column, ...]

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([c.field() for c in self.columns])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _endpoints() -> tuple[Column, ...]:
    return (
        Column("ts", TS, "Start of the connection or time of the event (UTC, µs).", False),
        Column("uid", pa.string(), "Connection id from the source (Zeek uid, flow id), if any."),
        Column("src", pa.string(), "Originator IP address (IPv4 or IPv6).", False),
        Column("src_port", pa.int32(), "Originator port (ICMP: type)."),
        Column("dst", pa.string(), "Responder IP address (IPv4 or IPv6).", False),
        Column("dst_port", pa.int32(), "Responder port (ICMP: code)."),
    )


def _provenance() -> tuple[Column, ...]:
    return (
        Column("sensor", pa.string(), "What observed it: Zeek node, exporter address, file."),
        Column("source_id", pa.int64(), "The ingested file (`sources.source_id`).", False),
        Column("source_pos", pa.int64(), "Line, byte offset or record number in that file."),
    )


CONN = Table(
    "conn",
    "One row per connection (a bidirectional flow), with Zeek conn.log semantics: the "
    "originator is the host that sent the first packet.",
    (
        *_endpoints(),
        Column("proto", pa.string(), "Transport protocol: tcp, udp, icmp, icmp6 or a number."),
        Column("service", pa.string(), "Application protocol(s) detected, comma-separated."),
        Column("duration", pa.float64(), "Seconds from first to last packet."),
        Column("orig_bytes", pa.int64(), "Payload bytes sent by the originator."),
        Column("resp_bytes", pa.int64(), "Payload bytes sent by the responder."),
        Column("orig_ip_bytes", pa.int64(), "IP-level bytes sent by the originator."),
        Column("resp_ip_bytes", pa.int64(), "IP-level bytes sent by the responder."),
        Column("orig_pkts", pa.int64(), "Packets sent by the originator."),
        Column("resp_pkts", pa.int64(), "Packets sent by the responder."),
        Column("conn_state", pa.string(), "Zeek connection state (S0, S1, SF, REJ, RSTO, …)."),
        Column("history", pa.string(), "Zeek history string, if the source has one."),
        Column("open", pa.bool_(), "True if the connection was still open when logged.", False),
        *_provenance(),
        # Last, so a store written before they existed gets them appended in this order.
        Column(
            "orig_payload",
            pa.bool_(),
            "True if the originator sent payload: `orig_bytes > 0` where payload is "
            "counted, else inferred from IP bytes and packets (NetFlow, EVE; see "
            'docs/detections.md, "Payload from IP bytes"); null when it cannot be told.',
            positive_of="orig_bytes",
        ),
        Column(
            "resp_payload",
            pa.bool_(),
            "True if the responder sent payload (the connection was *answered*), as "
            "`orig_payload`; for a one-direction flow record, from its reverse record; "
            "null when it cannot be told (no reverse record).",
            positive_of="resp_bytes",
        ),
    ),
)

DNS = Table(
    "dns",
    "One row per DNS query/response transaction.",
    (
        *_endpoints(),
        Column("proto", pa.string(), "udp or tcp."),
        Column("trans_id", pa.int32(), "DNS transaction id."),
        Column("query", pa.string(), "Queried name, lower-case, without trailing dot."),
        Column("qtype", pa.int32(), "Query type number (1 = A, 16 = TXT, 28 = AAAA, …)."),
        Column("qtype_name", pa.string(), "Query type name."),
        Column("rcode", pa.int32(), "Response code number (0 = NOERROR, 3 = NXDOMAIN)."),
        Column("rcode_name", pa.string(), "Response code name."),
        Column("answers", pa.list_(pa.string()), "Answer records' data, in order."),
        Column("ttls", pa.list_(pa.float64()), "TTL in seconds of each answer."),
        *_provenance(),
    ),
)

HTTP = Table(
    "http",
    "One row per HTTP request/response pair.",
    (
        *_endpoints(),
        Column("trans_depth", pa.int32(), "Position of the request in its connection."),
        Column("method", pa.string(), "Request method (GET, POST, CONNECT, …)."),
        Column("host", pa.string(), "Host header (null when absent or blank)."),
        Column("uri", pa.string(), "Request URI."),
        Column("referrer", pa.string(), "Referer header."),
        Column("user_agent", pa.string(), "User-Agent header."),
        Column("status", pa.int32(), "Response status code."),
        Column("request_body_len", pa.int64(), "Request body bytes."),
        Column("response_body_len", pa.int64(), "Response body bytes."),
        Column("resp_mime_types", pa.list_(pa.string()), "MIME types of the response body."),
        Column(
            "open",
            pa.bool_(),
            "True if its connection was still open when logged (Zeek's open_http.log).",
            False,
        ),
        *_provenance(),
    ),
)

TLS = Table(
    "tls",
    "One row per TLS (or DTLS/QUIC) handshake.",
    (
        *_endpoints(),
        Column("version", pa.string(), "Negotiated (or offered) version, e.g. TLSv12, TLSv13."),
        Column("cipher", pa.string(), "Negotiated cipher suite."),
        Column("sni", pa.string(), "Server Name Indication from the ClientHello."),
        Column("ja3", pa.string(), "JA3 fingerprint of the ClientHello, if the source has it."),
        Column("ja3s", pa.string(), "JA3S fingerprint of the ServerHello, if known."),
        Column("ja4", pa.string(), "JA4 fingerprint of the ClientHello, if known."),
        Column("subject", pa.string(), "Server certificate subject."),
        Column("issuer", pa.string(), "Server certificate issuer."),
        Column("established", pa.bool_(), "True if the handshake completed."),
        Column(
            "open",
            pa.bool_(),
            "True if its connection was still open when logged (Zeek's open_ssl.log).",
            False,
        ),
        *_provenance(),
    ),
)

ALERTS = Table(
    "alerts",
    "One row per IDS alert (Suricata EVE `alert` events): the signature that fired and the "
    "connection it fired on.",
    (
        *_endpoints(),
        Column("proto", pa.string(), "Transport protocol: tcp, udp, icmp, icmp6 or a number."),
        Column("app_proto", pa.string(), "Application protocol the IDS saw, if any."),
        Column("action", pa.string(), "What the IDS did: allowed or blocked."),
        Column("gid", pa.int32(), "Signature generator id."),
        Column("signature_id", pa.int64(), "Signature id (sid).", False),
        Column("rev", pa.int32(), "Signature revision."),
        Column("signature", pa.string(), "Signature message."),
        Column("category", pa.string(), "Signature classification."),
        Column("severity", pa.int32(), "Severity: 1 (highest) to 4."),
        *_provenance(),
    ),
)

SOURCES = Table(
    "sources",
    "One row per ingested input (file or collector session). Its content hash makes "
    "ingestion idempotent.",
    (
        Column("source_id", pa.int64(), "Id of the input (63 bits of its content hash).", False),
        Column("path", pa.string(), "Path as given when ingested.", False),
        Column(
            "content_hash",
            pa.string(),
            "`blake3:` and the BLAKE3 hash of the file's bytes as stored on disk "
            "(`sha256:` and the SHA-256 in stores written before BLAKE3 was used).",
            False,
        ),
        Column("size_bytes", pa.int64(), "File size in bytes.", False),
        Column("format", pa.string(), "Reader that read it (zeek-tsv, zeek-json, pcap, …).", False),
        Column(
            "log_type", pa.string(), "Kind of log inside (conn, dns, …), if the format has one."
        ),
        Column("ingested_at", TS, "When it was ingested.", False),
        Column("first_ts", TS, "Oldest timestamp among its rows."),
        Column("last_ts", TS, "Newest timestamp among its rows."),
        Column("rows_conn", pa.int64(), "Rows written to conn.", False),
        Column("rows_dns", pa.int64(), "Rows written to dns.", False),
        Column("rows_http", pa.int64(), "Rows written to http.", False),
        Column("rows_tls", pa.int64(), "Rows written to tls.", False),
        Column("rows_alerts", pa.int64(), "Rows written to alerts.", False),
        Column("bad_rows", pa.int64(), "Records rejected (kept in `rejects`).", False),
        Column("first_error", pa.string(), "The first problem found, as file:line: message."),
        Column("notices", pa.string(), "Non-fatal remarks (unknown fields, truncation)."),
    ),
)

REJECTS = Table(
    "rejects",
    "Records that could not be read, kept aside with where they were and why.",
    (
        Column("source_id", pa.int64(), "The input they came from.", False),
        Column("position", pa.int64(), "Line number, byte offset or record number.", False),
        Column("position_unit", pa.string(), "line, byte or record.", False),
        Column("reason", pa.string(), "Why the record was rejected.", False),
        Column("raw", pa.string(), "The record as found (first 4 KiB; bytes as \\x escapes)."),
    ),
)

FINDINGS = Table(
    "findings",
    "One row per finding of a detector; the shape of `vigile hunt --json` (see docs/findings.md).",
    (
        Column("id", pa.string(), "Stable id: detector, subject and window hashed.", False),
        Column("detector", pa.string(), "Detector that produced it.", False),
        Column("src", pa.string(), "Host the finding is about (originator side), if any."),
        Column("dst", pa.string(), "Other side (IP address), if any."),
        Column("fqdn", pa.string(), "Destination name (SNI, HTTP Host, DNS domain), if any."),
        Column("score", pa.float64(), "0 to 1; higher is more suspicious.", False),
        Column("severity", pa.string(), "low, medium, high or critical.", False),
        Column("window_start", TS, "Start of the scored window.", False),
        Column("window_end", TS, "End of the scored window.", False),
        Column(
            "explanation", pa.string(), "One plain sentence with the numbers that matter.", False
        ),
        Column("evidence", pa.string(), "JSON object with every number used.", False),
        Column("suppressed_by", pa.string(), "Allowlist entry that suppressed it, if any."),
        Column("created_at", TS, "When the detector produced it.", False),
        Column(
            "scope",
            pa.string(),
            "What the run that produced it examined: null for a hunt over the stored "
            "traffic, `exchange:<server>` for `vigile inspect exchange` (docs/architecture.md).",
        ),
        Column(
            "scope_start",
            TS,
            "Start of the window that run covered (null: open); for an inspection, of the "
            "span the check's logs covered.",
        ),
        Column("scope_end", TS, "End of the window that run covered (null: open)."),
    ),
)

USERS = Table(
    "console_users",
    "Console accounts (`vigile user add`). Passwords are stored only as Argon2id hashes.",
    (
        Column("username", pa.string(), "Login name, unique.", False),
        Column("password_hash", pa.string(), "Argon2id hash in PHC string format.", False),
        Column("created_at", TS, "When the account was created.", False),
    ),
)

SESSIONS = Table(
    "console_sessions",
    "Console log-in sessions. Only a hash of the cookie's token is kept, so a copy of the "
    "store does not let anyone log in.",
    (
        Column("token_sha256", pa.string(), "SHA-256 of the session cookie's token.", False),
        Column("username", pa.string(), "Who logged in.", False),
        Column("csrf_token", pa.string(), "Token every state-changing request must echo.", False),
        Column("created_at", TS, "When the session started.", False),
        Column("expires_at", TS, "When the session stops being accepted.", False),
    ),
)

ALLOWLIST = Table(
    "allowlist_entries",
    "Suppression rules added in the console (see `vigile.detect.allowlist` for their meaning).",
    (
        Column("entry_id", pa.string(), "Stable id, `console:<n>`; findings.suppressed_by.", False),
        Column(
            "kind", pa.string(), "cidr, domain (exact name) or wildcard (`*.example.com`).", False
        ),
        Column("value", pa.string(), "The network, name or pattern, normalised.", False),
        Column("detector", pa.string(), "Only this detector's findings (null: every detector)."),
        Column("reason", pa.string(), "Why it is allowed, in the user's words.", False),
        Column("created_by", pa.string(), "Who added it.", False),
        Column("created_at", TS, "When it was added.", False),
        Column("updated_at", TS, "When it was last edited.", False),
    ),
)

AUDIT = Table(
    "audit_log",
    "Every change made in the console, with who and when. Rows are only ever added.",
    (
        Column("ts", TS, "When it happened.", False),
        Column("username", pa.string(), "Who did it.", False),
        Column("action", pa.string(), "allowlist.add, allowlist.edit, allowlist.remove, …", False),
        Column("target", pa.string(), "What it was done to (an allowlist entry id)."),
        Column("detail", pa.string(), "JSON: the entry before and after the change."),
        Column("client", pa.string(), "Address the request came from."),
    ),
)

#: Tables that inputs are normalised into.
TRAFFIC_TABLES: Mapping[str, Table] = {t.name: t for t in (CONN, DNS, HTTP, TLS, ALERTS)}
#: Every table a store holds.
ALL_TABLES: Mapping[str, Table] = {
    t.name: t
    for t in (
        CONN,
        DNS,
        HTTP,
        TLS,
        ALERTS,
        SOURCES,
        REJECTS,
        FINDINGS,
        USERS,
        SESSIONS,
        ALLOWLIST,
        AUDIT,
    )
}
#: Tables holding the console's own state, written through ``Store.state_writer``.
STATE_TABLES: Mapping[str, Table] = {t.name: t for t in (USERS, SESSIONS, ALLOWLIST, AUDIT)}


def conform(table: Table, columns: Mapping[str, pa.Array], num_rows: int) -> pa.RecordBatch:
    """Build a batch of ``table``'s schema from the columns a reader has.

    Missing nullable columns are filled with nulls, except a column derived from a
    count (``positive_of``: ``conn.resp_payload`` is ``resp_bytes > 0``), whose
    missing or null values are derived where the count is known; types are cast
    safely.

    >>> b = conform(CONN, {"ts": pa.array([0], TS), "src": pa.array(["10.0.0.1"]),
    ...     "dst": pa.array(["10.0.0.2"]), "open": pa.array([False]),
    ...     "source_id": pa.array([1])}, 1)
    >>> b.num_rows, b.schema.names[:3]
    (1, ['ts', 'uid', 'src'])
    """
    arrays = []
    for col in table.columns:
        arr = columns.get(col.name)
        count = columns.get(col.positive_of) if col.positive_of is not None else None
        if count is not None:
            derived = pc.greater(count, 0)
            arr = derived if arr is None else pc.coalesce(arr.cast(col.type), derived)
        if arr is None:
            if not col.nullable:
                raise ValueError(f"{table.name}.{col.name} is required")
            arr = pa.nulls(num_rows, col.type)
        elif arr.type != col.type:
            arr = arr.cast(col.type)
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, schema=table.arrow_schema)


def render_markdown() -> str:
    """The text of ``docs/schema.md``, generated from the definitions above."""
    out = [
        "# Schema",
        "",
        "Generated from `src/vigile/schema.py` by `python -m vigile.schema`; a test keeps",
        "this file and the code in step. Do not edit by hand.",
        "",
        (__doc__ or "").split("\n\n", 1)[1].strip(),
        "",
    ]
    for table in ALL_TABLES.values():
        out += [f"## `{table.name}`", "", table.doc, "", "| column | type | null | meaning |"]
        out.append("|---|---|---|---|")
        for c in table.columns:
            out.append(f"| `{c.name}` | `{c.type}` | {'yes' if c.nullable else 'no'} | {c.doc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render_markdown(), end="")
