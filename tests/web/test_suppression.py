"""Console allowlist entries (semantics in vigile.detect.allowlist), table-tested, fuzzed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigile.errors import ConfigError
from vigile.web.allowlist import AllowlistEntry, match_findings, normalise

CASES = [
    # kind, value, detector, finding, matches
    ("wildcard", "*.example.com", None, {"fqdn": "a.example.com"}, True),
    ("wildcard", "*.example.com", None, {"fqdn": "a.b.example.com"}, True),
    ("wildcard", "*.example.com", None, {"fqdn": "example.com"}, False),
    ("wildcard", "*.example.com", None, {"fqdn": "badexample.com"}, False),
    ("wildcard", "*.example.com", None, {"fqdn": "A.Example.COM."}, True),
    ("domain", "example.com", None, {"fqdn": "example.com"}, True),
    ("domain", "example.com", None, {"fqdn": "www.example.com"}, False),
    ("domain", "example.com", None, {"fqdn": None, "dst": "192.0.2.1"}, False),
    ("cidr", "192.0.2.0/24", None, {"src": "10.0.0.1", "dst": "192.0.2.200"}, True),
    ("cidr", "192.0.2.0/24", None, {"src": "192.0.2.7", "dst": None}, True),
    ("cidr", "192.0.2.0/24", None, {"src": "10.0.0.1", "dst": "192.0.3.1"}, False),
    ("cidr", "2001:db8::/32", None, {"src": "10.0.0.1", "dst": "2001:db8::5"}, True),
    ("cidr", "2001:db8::/32", None, {"src": "10.0.0.1", "dst": "192.0.2.1"}, False),
    ("cidr", "192.0.2.0/24", None, {"src": "10.0.0.1", "dst": "not-an-ip"}, False),
    ("domain", "a.example.com", "beacon", {"detector": "beacon", "fqdn": "a.example.com"}, True),
    ("domain", "a.example.com", "beacon", {"detector": "exfil", "fqdn": "a.example.com"}, False),
]


@pytest.mark.parametrize(("kind", "value", "detector", "finding", "expected"), CASES)
def test_entry_matches(
    kind: str, value: str, detector: str | None, finding: dict[str, str | None], expected: bool
) -> None:
    entry = AllowlistEntry("console:1", kind, normalise(kind, value), "why", detector)
    assert entry.matches({"detector": "beacon", **finding}) is expected


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("cidr", "10.0.0.256"),
        ("wildcard", "example.com"),
        ("wildcard", "*.*.com"),
        ("wildcard", "*."),
        ("domain", "*.example.com"),
        ("domain", ""),
        ("regex", "x"),
    ],
)
def test_bad_values_are_refused(kind: str, value: str) -> None:
    with pytest.raises(ConfigError):
        normalise(kind, value)


def test_first_entry_in_id_order_wins() -> None:
    entries = [
        AllowlistEntry("console:10", "cidr", "192.0.2.0/24", "b"),
        AllowlistEntry("console:9", "domain", "x.example", "a"),
    ]
    finding = {"id": "f1", "detector": "beacon", "dst": "192.0.2.1", "fqdn": "x.example"}
    assert match_findings(entries, [finding]) == {"f1": "console:9"}


@given(st.sampled_from(["cidr", "domain", "wildcard"]), st.text(max_size=60))
def test_normalise_returns_a_value_or_a_clear_error(kind: str, value: str) -> None:
    try:
        clean = normalise(kind, value)
    except ConfigError as e:
        assert str(e)
        return
    assert normalise(kind, clean) == clean  # canonical forms are stable
