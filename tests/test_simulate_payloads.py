"""Payload builders: exact sizes for any connection the simulator can make (property tests)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vigile.simulate.flows import TCP, UDP, Flows, Vocabs, service
from vigile.simulate.writers import services

NAMES = st.from_regex(r"[a-z0-9]{1,40}(\.[a-z0-9]{1,20}){1,3}", fullmatch=True)


def _one(v: Vocabs, svc: str, ob: int, rb: int, **kw: object) -> Flows:
    proto = UDP if svc in ("dns", "ntp") else TCP
    return Flows.of(1, service=service(svc), proto=proto, obytes=ob, rbytes=rb, **kw)


@settings(max_examples=200, deadline=None)
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


@settings(max_examples=200, deadline=None)
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
