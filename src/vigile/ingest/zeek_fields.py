"""How Zeek's log fields map onto vigile's tables, and how Zeek values become Arrow.

Zeek's TSV conventions (https://docs.zeek.org/en/master/logs/index.html and
``base/frameworks/logging/writers/ascii.zeek``): ``-`` is an unset field, ``(empty)`` an
empty set/vector/string, set and vector elements are joined by ``#set_separator``, and
non-printable bytes and the separator itself are escaped as ``\\xHH``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.schema import TS

#: Zeek log paths vigile reads, and the table each one feeds.
PATH_TABLE = {
    "conn": "conn",
    "open_conn": "conn",
    "dns": "dns",
    "http": "http",
    "open_http": "http",
    "ssl": "tls",
    "open_ssl": "tls",
}

_COMMON = {
    "ts": "ts",
    "uid": "uid",
    "id.orig_h": "src",
    "id.orig_p": "src_port",
    "id.resp_h": "dst",
    "id.resp_p": "dst_port",
}

#: Zeek field -> vigile column, per table.
FIELD_MAP: Mapping[str, Mapping[str, str]] = {
    "conn": {
        **_COMMON,
        "proto": "proto",
        "service": "service",
        "duration": "duration",
        "orig_bytes": "orig_bytes",
        "resp_bytes": "resp_bytes",
        "orig_ip_bytes": "orig_ip_bytes",
        "resp_ip_bytes": "resp_ip_bytes",
        "orig_pkts": "orig_pkts",
        "resp_pkts": "resp_pkts",
        "conn_state": "conn_state",
        "history": "history",
        "_node_name": "sensor",
    },
    "dns": {
        **_COMMON,
        "proto": "proto",
        "trans_id": "trans_id",
        "query": "query",
        "qtype": "qtype",
        "qtype_name": "qtype_name",
        "rcode": "rcode",
        "rcode_name": "rcode_name",
        "answers": "answers",
        "TTLs": "ttls",
        "_node_name": "sensor",
    },
    "http": {
        **_COMMON,
        "trans_depth": "trans_depth",
        "method": "method",
        "host": "host",
        "uri": "uri",
        "referrer": "referrer",
        "user_agent": "user_agent",
        "status_code": "status",
        "request_body_len": "request_body_len",
        "response_body_len": "response_body_len",
        "resp_mime_types": "resp_mime_types",
        "_node_name": "sensor",
    },
    "tls": {
        **_COMMON,
        "version": "version",
        "cipher": "cipher",
        "server_name": "sni",
        "ja3": "ja3",
        "ja3s": "ja3s",
        "ja4": "ja4",
        "subject": "subject",
        "issuer": "issuer",
        "established": "established",
        "_node_name": "sensor",
    },
}

#: Fields without which a row means nothing: a log lacking one is refused.
REQUIRED = {
    "conn": ("ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto"),
    "dns": ("ts", "id.orig_h", "id.resp_h"),
    "http": ("ts", "id.orig_h", "id.resp_h"),
    "tls": ("ts", "id.orig_h", "id.resp_h"),
}

#: Fields Zeek writes that vigile knows and does not store (so they are not "unknown").
KNOWN_UNUSED = frozenset(
    {
        "local_orig",
        "local_resp",
        "missed_bytes",
        "tunnel_parents",
        "rtt",
        "qclass",
        "qclass_name",
        "AA",
        "TC",
        "RD",
        "RA",
        "Z",
        "rejected",
        "info_code",
        "info_msg",
        "status_msg",
        "tags",
        "username",
        "password",
        "proxied",
        "orig_fuids",
        "orig_filenames",
        "orig_mime_types",
        "resp_fuids",
        "resp_filenames",
        "version",
        "curve",
        "resumed",
        "last_alert",
        "next_protocol",
        "cert_chain_fuids",
        "client_cert_chain_fuids",
        "client_subject",
        "client_issuer",
        "validation_status",
        "sni_matches_cert",
        "ssl_history",
        "cert_chain_fps",
        "client_cert_chain_fps",
        "orig_l2_addr",
        "resp_l2_addr",
        "vlan",
        "inner_vlan",
        "community_id",
        "_path",
        "_write_ts",
        "ip_proto",
        "auth_attempts",
        "auth_success",
        "host_key",
    }
)

_INT = re.compile(r"^-?[0-9]+$").pattern
_FLOAT = re.compile(r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$").pattern
_TIME = re.compile(r"^-?[0-9]{1,12}(\.[0-9]{1,6})?$").pattern
_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
_MICRO = pa.scalar(1_000_000, pa.decimal128(7, 0))


@dataclass
class Converted:
    """A converted column and the rows whose value could not be converted."""

    array: pa.Array
    bad: np.ndarray | None = None


def unescape(value: str) -> str:
    r"""Undo Zeek's ``\xHH`` escaping (bytes that are not valid UTF-8 stay escaped).

    >>> unescape(r"a\x09b")
    'a\tb'
    """
    raw = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), value.encode("utf-8"))
    return raw.decode("utf-8", "backslashreplace")


def _unescape_array(arr: pa.Array) -> pa.Array:
    has = pc.match_substring(arr, "\\x")
    if not pc.any(has).as_py():
        return arr
    values = arr.to_pylist()
    flags = has.to_pylist()
    return pa.array(
        [unescape(v) if f else v for v, f in zip(values, flags, strict=True)], pa.string()
    )


def _bad_mask(arr: pa.Array, pattern: str) -> np.ndarray | None:
    ok = pc.match_substring_regex(arr, pattern)
    bad = pc.and_(pc.is_valid(arr), pc.invert(ok)).fill_null(False)
    mask = bad.to_numpy(zero_copy_only=False).astype(bool)
    return mask if mask.any() else None


def _masked(arr: pa.Array, bad: np.ndarray | None) -> pa.Array:
    if bad is None:
        return arr
    return pc.if_else(pa.array(bad), pa.nulls(len(arr), arr.type), arr)


def _cast_number(values: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast text to a number or a time; raises ``ArrowInvalid`` on any bad value."""
    if pa.types.is_timestamp(target):
        # Through a decimal, not a float: 1713484795.943239 keeps its last microsecond.
        exact = pc.cast(values, pa.decimal128(24, 6))
        return pc.cast(pc.multiply(exact, _MICRO), pa.int64()).cast(TS)
    return pc.cast(values, target)


def convert_tsv(values: pa.Array, target: pa.DataType, set_sep: str, empty: str) -> Converted:
    """Convert a column of Zeek TSV text (``-`` already null) to ``target``.

    Numbers and times are first cast directly, which validates every value in C++; only
    a column holding a bad value takes the slower path that finds which rows are bad.
    """
    if pa.types.is_timestamp(target) or pa.types.is_integer(target) or pa.types.is_floating(target):
        try:
            return Converted(_cast_number(values, target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    if pa.types.is_timestamp(target):
        bad = _bad_mask(values, _TIME)
        clean = _masked(values, bad)
        return Converted(_cast_number(clean, target), bad)
    if pa.types.is_integer(target) or pa.types.is_floating(target):
        bad = _bad_mask(values, _INT if pa.types.is_integer(target) else _FLOAT)
        clean = _masked(values, bad)
        if pa.types.is_integer(target):
            # Out-of-range values (a port of 70000) are bad rows, not an exception.
            wide = pc.cast(clean, pa.decimal128(38, 0))
            info = np.iinfo(np.int32 if target == pa.int32() else np.int64)
            over = pc.or_(
                pc.less(wide, pa.scalar(info.min, pa.decimal128(38, 0))),
                pc.greater(wide, pa.scalar(info.max, pa.decimal128(38, 0))),
            )
            over_np = over.fill_null(False).to_numpy(zero_copy_only=False)
            if over_np.any():
                bad = over_np if bad is None else (bad | over_np)
                clean = _masked(clean, bad)
        return Converted(pc.cast(clean, target), bad)
    if pa.types.is_boolean(target):
        valid = pc.or_kleene(pc.is_in(values, pa.array(["T", "F"])), pc.is_null(values))
        bad_np = pc.invert(valid).to_numpy(zero_copy_only=False)
        bad = bad_np if bad_np.any() else None
        return Converted(pc.equal(_masked(values, bad), "T"), bad)
    if pa.types.is_list(target):
        is_empty = pc.equal(values, empty)
        parts = pc.split_pattern(pc.if_else(is_empty, "", values), set_sep)
        parts = pc.if_else(is_empty, pa.array([[]] * len(values), parts.type), parts)
        if target.value_type == pa.string():
            flat = _unescape_array(parts.flatten())
            return Converted(pa.ListArray.from_arrays(parts.offsets, flat, mask=parts.is_null()))
        flat_text = parts.flatten()
        bad_flat = _bad_mask(flat_text, _FLOAT)
        if bad_flat is not None:
            # A row is bad if any of its elements is: map element positions to rows.
            rows = pc.list_parent_indices(parts).to_numpy()
            bad = np.zeros(len(values), dtype=bool)
            bad[rows[bad_flat]] = True
            flat_text = _masked(flat_text, bad_flat)
            typed = pa.ListArray.from_arrays(
                parts.offsets, pc.cast(flat_text, target.value_type), mask=parts.is_null()
            )
            return Converted(typed, bad)
        typed = pa.ListArray.from_arrays(
            parts.offsets, pc.cast(flat_text, target.value_type), mask=parts.is_null()
        )
        return Converted(typed)
    text = pc.if_else(pc.equal(values, empty), "", values)
    return Converted(_unescape_array(text))


def normalise(table: str, columns: dict[str, pa.Array]) -> None:
    """Same meaning whatever the source: DNS names lower-case without the final dot;
    a blank HTTP Host or TLS SNI is absent (null)."""
    if table == "dns" and "query" in columns:
        q = pc.utf8_lower(columns["query"])
        columns["query"] = pc.utf8_rtrim(q, characters=".")
    for name in ("host", "sni"):
        if name in columns:
            col = columns[name]
            columns[name] = pc.if_else(
                pc.equal(pc.utf8_trim_whitespace(col), ""), pa.nulls(len(col), pa.string()), col
            )
