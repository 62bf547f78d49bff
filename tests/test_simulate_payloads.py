"""Payload builders: exact sizes for any connection the simulator can make (property tests)."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vigile.simulate.flows import TCP, UDP, Flows, Vocabs, service
from vigile.simulate.writers import services

NAMES = st.from_regex(r"[a-z0-9]{1,40}(\.[a-z0-9]{1,20}){1,3}", fullmatch=True)


def _one(v: Vocabs, svc: str, ob: int, rb: int, **kw: object) -> Flows:
    proto = UDP if svc in ("dns", "ntp") else TCP
    return Flows.of(1, service=service(svc), proto=proto, obytes=ob, rbytes=rb, **kw)


@settings(max_examples=200)
@given(
    svc=st.sampled_from(["http", "ssl"]),
    ob=st.integers(0, 200_000),
    rb=st.integers(0, 200_000),
    name=NAMES,
    seed=st.integers(0, 2**32 - 1),
)
def test_http_and_tls_payloads_have_the_row_sizes(
    svc: str, ob: int, rb: int, name: str, seed: int
) -> None:
    v = Vocabs.new()
    f = _one(
        v,
        svc,
        ob,
        rb,
        name=v.name.id(name),
        uri=v.uri.id("/a/b?c=1"),
        agent=v.agent.id("Agent/1.0"),
        method=1,
        status=200,
    )
    # Rows are raised to what the protocol needs before any writer sees them.
    out, back = services.build(v, f, 0, int(f.obytes[0]), int(f.rbytes[0]))
    assert (len(out), len(back)) == (f.obytes[0], f.rbytes[0])
    assert f.obytes[0] >= ob and f.rbytes[0] >= rb


@settings(max_examples=200)
@given(
    name=NAMES,
    qtype=st.sampled_from([1, 16, 10]),
    data=st.integers(16, 199),
    answered=st.booleans(),
)
def test_dns_messages_have_the_row_sizes(name: str, qtype: int, data: int, answered: bool) -> None:
    v = Vocabs.new()
    query = len(name) + 18
    answer = 16 if qtype == 1 else 12 + 1 + data
    f = _one(
        v,
        "dns",
        query,
        query + answer,
        name=v.name.id(name),
        qtype=qtype,
        rcode=0,
        answer=v.addr.id("192.0.2.7") if qtype == 1 and answered else -1,
    )
    out, back = services.build(v, f, 0, query, query + answer)
    assert len(out) == query
    assert len(back) == query + answer


ADDRESSES = st.sampled_from(["10.30.0.10", "10.30.255.254", "203.0.113.25", "45.1.2.3"])


@settings(max_examples=150)
@given(
    svc=st.sampled_from(["krb", "ldap", "smb", "smtp"]),
    ob=st.integers(0, 300_000),
    rb=st.integers(0, 2_000_000),
    src=ADDRESSES,
    ts=st.floats(1.7e9, 1.9e9),
)
@example(svc="smb", ob=0, rb=20_000_000, src="10.30.0.10", ts=1.8e9)  # three READs
@example(svc="ldap", ob=27_638, rb=0, src="10.30.0.10", ts=1.7e9)  # 212 searches
def test_domain_and_mail_payloads_have_the_row_sizes(
    svc: str, ob: int, rb: int, src: str, ts: float
) -> None:
    v = Vocabs.new()
    f = _one(v, svc, ob, rb, src=v.addr.id(src), dst=v.addr.id("10.20.1.10"), ts=ts)
    # Rows are raised to what the protocol needs (Flows.enforce_minimums) first.
    out, back = services.build(v, f, 0, int(f.obytes[0]), int(f.rbytes[0]))
    assert (len(out), len(back)) == (f.obytes[0], f.rbytes[0])


@settings(max_examples=300)
@given(ob=st.integers(0, 120), rb=st.integers(300, 700), dst=ADDRESSES, ts=st.floats(1.7e9, 2e9))
def test_snmp_polls_have_the_row_sizes(ob: int, rb: int, dst: str, ts: float) -> None:
    v = Vocabs.new()
    size = int(services.snmp_size(np.array([ob]))[0])
    assert size <= max(ob, services._snmp_smallest())  # chatter.monitoring draws 80-119
    f = Flows.of(1, service=service("snmp"), proto=UDP, dst=v.addr.id(dst), ts=ts)
    out, back = services.build(v, f, 0, size, rb)
    assert (len(out), len(back)) == (size, rb)


@settings(max_examples=100)
@given(ob=st.integers(0, 2000), rb=st.integers(0, 2000))
def test_ipmi_and_unnamed_payloads_have_the_row_sizes(ob: int, rb: int) -> None:
    v = Vocabs.new()
    o, r = (int(x) for x in services.rmcp_plus_size(np.array([ob, rb])))
    f = Flows.of(1, service=service("ipmi"), proto=UDP, src=v.addr.id("10.20.1.40"))
    assert tuple(map(len, services.build(v, f, 0, o, r))) == (o, r)
    for port in (10051, 9100, 8443):
        f = Flows.of(1, dport=port, src=v.addr.id("10.20.1.40"))
        assert tuple(map(len, services.build(v, f, 0, ob, rb))) == (ob, rb)
