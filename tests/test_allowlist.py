"""Allowlist entries and priors: wildcard semantics (table-tested), scope, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigile.detect.allowlist import AllowEntry, Allowlist, load_priors, parse_entry
from vigile.errors import ConfigError

# rule, name, covered: the table in docs/allowlists.md, row by row.
WILDCARD_TABLE = [
    ("example.com", "example.com", True),
    ("example.com", "a.example.com", False),
    ("example.com", "a.b.example.com", False),
    ("*.example.com", "example.com", False),
    ("*.example.com", "a.example.com", True),
    ("*.example.com", "a.b.example.com", True),
    (".example.com", "example.com", True),
    (".example.com", "a.example.com", True),
    (".example.com", "a.b.example.com", True),
    # never a suffix match on a partial label
    ("*.example.com", "badexample.com", False),
    (".example.com", "badexample.com", False),
    ("example.com", "example.com.evil.net", False),
    # case and a trailing dot do not matter
    ("*.Example.COM", "A.EXAMPLE.com.", True),
    ("example.com", "EXAMPLE.COM.", True),
]


@pytest.mark.parametrize(("rule", "name", "covered"), WILDCARD_TABLE)
def test_wildcard_semantics(rule: str, name: str, covered: bool) -> None:
    entry = parse_entry({"domain": rule, "reason": "test"}, "t.toml", 1)
    assert entry.covers_name(name) is covered


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"domain": "a*.example.com", "reason": "x"}, "'*' is allowed only"),
        ({"domain": "*.*.example.com", "reason": "x"}, "'*' is allowed only"),
        ({"domain": "*", "reason": "x"}, "'*' is allowed only"),
        ({"domain": "example.com"}, "a reason is required"),
        ({"domain": "example.com", "reason": " "}, "a reason is required"),
        ({"cidr": "10.0.0.0/33", "reason": "x"}, "is not an IP network"),
        ({"cidr": "10.0.0.0/8", "domain": "a.b", "reason": "x"}, "exactly one of"),
        ({"reason": "x"}, "exactly one of"),
        ({"domain": "a.b", "reason": "x", "detector": ["beacon"]}, "unknown key"),
        ({"domain": "a.b", "reason": "x", "detectors": "beacon"}, "list of detector"),
    ],
)
def test_bad_entries_are_refused_with_file_and_entry(item: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_entry(item, "allow.toml", 3)
    assert str(info.value).startswith("allow.toml: entry 3:")


def test_cidr_rules_match_either_end() -> None:
    entry = parse_entry({"cidr": "17.0.0.0/8", "reason": "Apple"}, "t", 1)
    assert entry.covers_address("17.253.0.1")
    assert not entry.covers_address("18.0.0.1")
    assert not entry.covers_address("fe80::1")
    allow = Allowlist((entry,))
    assert allow.match("beacon", ("10.0.0.5", "17.1.2.3"), None, {}) == entry
    assert allow.match("beacon", ("17.1.2.3", "10.0.0.5"), None, {}) == entry


def test_scope_limits_an_entry_to_its_detectors() -> None:
    entry = parse_entry({"domain": ".ntp.org", "reason": "NTP", "detectors": ["beacon"]}, "t", 1)
    allow = Allowlist((entry,))
    assert allow.match("beacon", ("10.0.0.5", "1.2.3.4"), "0.pool.ntp.org", {}) == entry
    assert allow.match("exfil", ("10.0.0.5", "1.2.3.4"), "0.pool.ntp.org", {}) is None


def test_an_address_is_suppressed_by_names_only_when_every_name_is_covered() -> None:
    entry = parse_entry({"domain": "*.cdn.example", "reason": "CDN"}, "t", 1)
    allow = Allowlist((entry,))
    covered = {"1.2.3.4": frozenset({"a.cdn.example", "b.cdn.example"})}
    mixed = {"1.2.3.4": frozenset({"a.cdn.example", "evil.example"})}
    assert allow.match("beacon", ("10.0.0.5", "1.2.3.4"), None, covered) == entry
    assert allow.match("beacon", ("10.0.0.5", "1.2.3.4"), None, mixed) is None
    assert allow.match("beacon", ("10.0.0.5", "1.2.3.4"), None, {}) is None


def test_first_matching_entry_wins_and_is_named_in_the_label() -> None:
    a = AllowEntry(".example.com", "first", "mine.toml", 1)
    b = AllowEntry("*.example.com", "second", "mine.toml", 2)
    hit = Allowlist((a, b)).match("x", ("10.0.0.1", None), "w.example.com", {})
    assert hit is a
    assert hit.label == "mine.toml#1 .example.com (first)"


def test_priors_are_readable_scoped_and_never_silence_exfil_or_intel() -> None:
    priors = load_priors()
    categories = {e.category for e in priors}
    assert {"cdn", "os_updates", "telemetry", "ntp"} <= categories
    for e in priors:
        assert e.reason and e.ref.startswith(f"priors:{e.category}#")
        assert e.detectors is not None
        assert not e.detectors & {"exfil", "role_violation", "threat_intel"}


def test_user_files_come_first_and_priors_can_be_switched_off(tmp_path: Path) -> None:
    f = tmp_path / "allow.toml"
    f.write_text('[[allow]]\ndomain = ".pool.ntp.org"\nreason = "ours"\n')
    allow = Allowlist.from_config([f], {}, tmp_path)
    hit = allow.match("beacon", ("10.0.0.1", "5.6.7.8"), "2.pool.ntp.org", {})
    assert hit is not None and hit.ref == "allow.toml#1"
    without_ntp = Allowlist.from_config([], {"disable_priors": ["ntp"]})
    assert without_ntp.match("beacon", ("10.0.0.1", "5.6.7.8"), "2.pool.ntp.org", {}) is None
    assert Allowlist.from_config([], {"priors": False}).entries == ()


def test_unreadable_or_broken_allowlist_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read allowlist"):
        Allowlist.from_config([tmp_path / "missing.toml"], {})
    bad = tmp_path / "bad.toml"
    bad.write_text("[[allow]\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        Allowlist.from_config([bad], {})
