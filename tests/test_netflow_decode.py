"""NetFlow/IPFIX decoders: template life cycle, odd fields, and fuzzing."""

from __future__ import annotations

import contextlib
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigile.ingest.netflow import (
    DecodeError,
    TemplateCache,
    address_text,
    decode_datagram,
    ipfix,
    v9,
)
from vigile.ingest.netflow.columns import flows_to_conn

EXPORTER = "192.0.2.10"
#: sourceIPv4Address, destinationIPv4Address, ports, protocol, octets, packets,
#: flowStartMilliseconds, flowEndMilliseconds
FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 8), (2, 8), (152, 8), (153, 8)]
START_MS = 1_700_000_000_000


def ipfix_msg(sets: list[tuple[int, bytes]], seq: int = 0, domain: int = 1) -> bytes:
    body = b"".join(struct.pack("!HH", sid, 4 + len(b)) + b for sid, b in sets)
    return ipfix.HEADER.pack(10, 16 + len(body), 1_700_000_100, seq, domain) + body


def template(tid: int, fields: list[tuple[int, int]], pens: dict[int, int] | None = None) -> bytes:
    out = struct.pack("!HH", tid, len(fields))
    for i, (element, length) in enumerate(fields):
        pen = (pens or {}).get(i)
        if pen is None:
            out += struct.pack("!HH", element, length)
        else:
            out += struct.pack("!HHI", element | 0x8000, length, pen)
    return out


def record(src: str, dst: str, pkts: int, octets: int, sport: int = 1234) -> bytes:
    a = bytes(int(x) for x in src.split("."))
    b = bytes(int(x) for x in dst.split("."))
    return a + b + struct.pack("!HHBQQQQ", sport, 80, 6, octets, pkts, START_MS, START_MS + 1500)


def decode(msg: bytes, cache: TemplateCache, now: float = 0.0):  # type: ignore[no-untyped-def]
    """Decode, with the flows' addresses as text (the decoders keep IPv4 as integers)."""
    result = decode_datagram(msg, EXPORTER, cache, now)
    result.flows = [
        (*f[:2], address_text(f[2]), f[3], address_text(f[4]), *f[5:]) for f in result.flows
    ]
    return result


def test_template_then_data_gives_flows_with_times() -> None:
    cache = TemplateCache()
    r = decode(
        ipfix_msg([(2, template(300, FIELDS)), (300, record("10.0.0.1", "10.0.0.2", 3, 180))]),
        cache,
    )
    (flow,) = r.flows
    assert flow == (
        START_MS * 1000,
        (START_MS + 1500) * 1000,
        "10.0.0.1",
        1234,
        "10.0.0.2",
        80,
        6,
        3,
        180,
        None,
        None,
        None,
        None,
    )
    assert (r.templates, r.data_records, r.problems) == (1, 1, [])


def test_data_before_template_is_parked_then_decoded() -> None:
    cache = TemplateCache()
    r1 = decode(ipfix_msg([(300, record("10.0.0.1", "10.0.0.2", 3, 180))]), cache)
    assert (r1.flows, r1.parked, cache.parked_sets) == ([], 1, 1)
    r2 = decode(ipfix_msg([(2, template(300, FIELDS))]), cache)
    assert [f[7:9] for f in r2.flows] == [(3, 180)]
    assert cache.parked_sets == 0 and cache.unknown_template == 0


def test_parked_sets_expire_and_are_counted() -> None:
    cache = TemplateCache(max_parked=2, park_seconds=10)
    for i in range(3):  # the third evicts the first
        decode(ipfix_msg([(400 + i % 1, record("10.0.0.1", "10.0.0.2", 1, 1))]), cache, now=i)
    assert cache.unknown_template == 1
    assert cache.expire(now=100) == 2 and cache.unknown_template == 3


def test_templates_are_per_exporter_and_domain() -> None:
    cache = TemplateCache()
    decode(ipfix_msg([(2, template(300, FIELDS))], domain=1), cache)
    r = decode(ipfix_msg([(300, record("10.0.0.1", "10.0.0.2", 1, 1))], domain=2), cache)
    assert r.flows == [] and r.parked == 1


def test_withdrawal_forgets_the_template() -> None:
    cache = TemplateCache()
    decode(ipfix_msg([(2, template(300, FIELDS))]), cache)
    decode(ipfix_msg([(2, struct.pack("!HH", 300, 0))]), cache)  # RFC 7011 §8.1
    r = decode(ipfix_msg([(300, record("10.0.0.1", "10.0.0.2", 1, 1))]), cache)
    assert r.flows == [] and r.parked == 1
    decode(ipfix_msg([(2, template(300, FIELDS)), (2, template(301, FIELDS))]), cache)
    decode(ipfix_msg([(2, struct.pack("!HH", 2, 0))]), cache)  # withdraw all
    assert not cache.templates


def test_refresh_replaces_the_template() -> None:
    cache = TemplateCache()
    decode(ipfix_msg([(2, template(300, [(8, 4), (12, 4), (2, 4)]))]), cache)
    decode(ipfix_msg([(2, template(300, FIELDS))]), cache)
    r = decode(ipfix_msg([(300, record("10.0.0.1", "10.0.0.2", 9, 900))]), cache)
    assert [f[7:9] for f in r.flows] == [(9, 900)]


def test_enterprise_fields_are_skipped_and_reverse_fields_read() -> None:
    fields = [*FIELDS, (1, 8), (2, 8), (77, 3), (6, 2), (6, 1)]
    # RFC 5103 reverse octets/packets, unknown PEN, tcpControlBits and its reverse
    pens = {9: 29305, 10: 29305, 11: 9999, 13: 29305}
    cache = TemplateCache()
    rec = record("10.0.0.1", "10.0.0.2", 3, 180) + struct.pack("!QQ", 5000, 7) + b"xyz"
    rec += struct.pack("!HB", 0x1B, 0x14)
    r = decode(ipfix_msg([(2, template(300, fields, pens)), (300, rec)]), cache)
    (flow,) = r.flows
    assert flow[7:] == (3, 180, 7, 5000, 0x1B, 0x14)


def test_variable_length_fields() -> None:
    # applicationName (96) variable length: once short form, once the 255 + 2-byte form
    fields = [(8, 4), (96, 65535), (12, 4), (2, 4), (1, 4)]
    rec1 = bytes([10, 0, 0, 1]) + b"\x03ssh" + bytes([10, 0, 0, 2]) + struct.pack("!II", 4, 400)
    name = b"n" * 300
    rec2 = bytes([10, 0, 0, 3]) + b"\xff" + struct.pack("!H", 300) + name
    rec2 += bytes([10, 0, 0, 4]) + struct.pack("!II", 5, 500)
    cache = TemplateCache()
    r = decode(ipfix_msg([(2, template(300, fields)), (300, rec1 + rec2)]), cache)
    assert [(f[2], f[4], f[7], f[8]) for f in r.flows] == [
        ("10.0.0.1", "10.0.0.2", 4, 400),
        ("10.0.0.3", "10.0.0.4", 5, 500),
    ]


def test_options_template_gives_uptime_origin() -> None:
    # options template: scope meteringProcessId (143), systemInitTimeMilliseconds (160)
    opt = struct.pack("!HHH", 256, 2, 1) + struct.pack("!HHHH", 143, 4, 160, 8)
    uptime_fields = [(8, 4), (12, 4), (2, 4), (1, 4), (22, 4), (21, 4)]
    data = bytes([10, 0, 0, 1, 10, 0, 0, 2]) + struct.pack("!IIII", 1, 60, 2000, 2500)
    cache = TemplateCache()
    msg = ipfix_msg(
        [
            (3, opt),
            (2, template(300, uptime_fields)),
            (256, struct.pack("!IQ", 1, START_MS)),
            (300, data),
        ]
    )
    r = decode(msg, cache)
    assert r.options_records == 1
    assert r.flows[0][:2] == ((START_MS + 2000) * 1000, (START_MS + 2500) * 1000)


def test_v9_template_and_uptime() -> None:
    fields = [(8, 4), (12, 4), (2, 4), (1, 4), (22, 4), (21, 4)]
    tmpl = struct.pack("!HH", 300, len(fields)) + b"".join(struct.pack("!HH", *f) for f in fields)
    data = bytes([10, 0, 0, 1, 10, 0, 0, 2]) + struct.pack("!IIII", 2, 120, 9000, 9500)
    body = (
        struct.pack("!HH", 0, 4 + len(tmpl)) + tmpl + struct.pack("!HH", 300, 4 + len(data)) + data
    )
    pkt = v9.HEADER.pack(9, 2, 10_000, 1_700_000_000, 1, 0) + body
    (flow,) = decode(pkt, TemplateCache()).flows
    assert flow[0] == (1_700_000_000_000 - 10_000 + 9000) * 1000
    assert flow[7:9] == (2, 120)


def test_malformed_sets_are_reported_not_raised() -> None:
    cache = TemplateCache()
    good = (2, template(300, FIELDS))
    r = decode(ipfix_msg([good, (2, struct.pack("!HH", 300, 50))]), cache)  # fields missing
    assert r.templates == 1 and len(r.problems) == 1
    msg = ipfix_msg([good])
    bad_len = msg[:2] + struct.pack("!H", len(msg) + 10) + msg[4:]
    try:
        decode(bad_len, cache)
    except DecodeError as e:
        assert "says" in str(e)
    else:
        raise AssertionError("a wrong message length must raise DecodeError")


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=1500))
def test_fuzz_any_bytes(data: bytes) -> None:
    cache = TemplateCache()
    ipfix_len = b"\x00\x0a" + struct.pack("!H", 4 + len(data))  # a length that agrees
    for prefix in (b"", b"\x00\x05", b"\x00\x09", b"\x00\x0a", ipfix_len):
        with contextlib.suppress(DecodeError):
            decode(prefix + data, cache)


_field = st.tuples(
    st.sampled_from(
        [1, 2, 4, 7, 8, 11, 12, 21, 22, 27, 28, 32, 85, 150, 152, 154, 156, 158, 160, 99]
    ),
    st.sampled_from([0, 1, 2, 3, 4, 8, 16, 65535]),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_field, max_size=12), st.binary(max_size=600), st.booleans())
def test_fuzz_templates_with_random_data(fields, data, options) -> None:  # type: ignore[no-untyped-def]
    """Arbitrary (absurd) templates followed by arbitrary data: results or DecodeError."""
    cache = TemplateCache()
    if options:
        tset = (
            3,
            struct.pack("!HHH", 300, len(fields), 1 if fields else 0)
            + b"".join(struct.pack("!HH", *f) for f in fields),
        )
    else:
        tset = (2, template(300, fields))
    msg = ipfix_msg([tset, (300, data)])
    r = decode_datagram(msg, EXPORTER, cache, 0.0)
    if r.flows:  # whatever was decoded must fit the conn table
        n = len(r.flows)
        assert flows_to_conn(r.flows, [EXPORTER] * n, [1] * n, 1).num_rows == n


def test_values_that_do_not_fit_the_store_are_problems() -> None:
    """A 4-byte port of 70,000 and a 1-byte-short NTP time cannot be stored: counted."""
    fields = [(8, 4), (12, 4), (7, 4), (11, 2), (4, 1), (2, 4), (1, 4), (154, 4)]
    ok = bytes([10, 0, 0, 1, 10, 0, 0, 2]) + struct.pack("!IHBIII", 80, 443, 6, 1, 60, 0)
    bad_port = bytes([10, 0, 0, 1, 10, 0, 0, 2]) + struct.pack("!IHBIII", 70_000, 443, 6, 1, 60, 0)
    cache = TemplateCache()
    r = decode_datagram(
        ipfix_msg([(2, template(300, fields)), (300, ok + bad_port)]), EXPORTER, cache, 0.0
    )
    assert r.flows == [] and r.problems == ["2 records with impossible times or counters"]
    fields[-1] = (150, 4)  # flowStartSeconds: fine
    cache = TemplateCache()
    r = decode_datagram(
        ipfix_msg([(2, template(300, fields)), (300, ok + bad_port)]), EXPORTER, cache, 0.0
    )
    assert [f[3] for f in r.flows] == [80] and len(r.problems) == 1
    assert flows_to_conn(r.flows, [EXPORTER], [1], 1).num_rows == 1
