"""Indicator files (plain, CSV, STIX 2.1) and the optional MaxMind-format ASN lookup."""

from __future__ import annotations

import json
from pathlib import Path

import netaddr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mmdb_writer import MMDBWriter

from vigile.detect.indicators import IndicatorSet, load_indicator_files
from vigile.detect.rare_destination import AsnLookup
from vigile.errors import ConfigError


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_plain_list_with_comments(tmp_path: Path) -> None:
    f = _write(tmp_path, "l.txt", "# feed\n1.2.3.4  # c2\n\n10.0.0.0/8\nEvil.Example.\n")
    s = load_indicator_files([f], tmp_path)
    assert s.match_address("1.2.3.4").origin == "l.txt:2"  # type: ignore[union-attr]
    assert s.match_address("10.200.0.1").value == "10.0.0.0/8"  # type: ignore[union-attr]
    assert s.match_name("a.b.evil.example").value == "evil.example"  # type: ignore[union-attr]
    assert s.match_name("notevil.example") is None


def test_csv_with_header_and_description(tmp_path: Path) -> None:
    f = _write(tmp_path, "f.csv", "type,Indicator,Description\nip,5.6.7.8,scanner\n")
    hit = load_indicator_files([f], tmp_path).match_address("5.6.7.8")
    assert hit is not None and hit.label == "scanner" and hit.origin == "f.csv:2"


def test_stix_bundle_indicators(tmp_path: Path) -> None:
    bundle = {
        "type": "bundle",
        "id": "bundle--1",
        "objects": [
            {
                "type": "indicator",
                "id": "indicator--1",
                "name": "c2",
                "pattern_type": "stix",
                "pattern": "[ipv4-addr:value = '9.9.9.9'] OR [domain-name:value = 'c2.example']",
            },
            {
                "type": "indicator",
                "id": "indicator--2",
                "pattern_type": "stix",
                "pattern": "[ipv6-addr:value ISSUBSET '2001:db8::/32']",
            },
            {"type": "indicator", "id": "indicator--3", "pattern_type": "sigma", "pattern": "x"},
            {"type": "malware", "id": "malware--1", "name": "not an indicator"},
        ],
    }
    s = load_indicator_files([_write(tmp_path, "b.json", json.dumps(bundle))], tmp_path)
    assert s.match_address("9.9.9.9").label == "c2"  # type: ignore[union-attr]
    assert s.match_address("2001:db8::5") is not None
    assert s.match_name("www.c2.example") is not None
    assert s.skipped == 1


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("l.txt", "1.2.3.4\nnot an indicator!\n", r"l.txt:2: 'not' is not an IP"),
        ("f.csv", "indicator,x\n1.2.3.4,a\n@@@,b\n", r"f.csv:3: '@@@' is not"),
        (
            "b.json",
            '{"type": "bundle", "objects": [{"type": "indicator", "pattern": "[x"}]}',
            r"b.json: objects\[0\].*bad STIX pattern",
        ),
        ("b.json", '{"type": "bundle",\n "objects": [', r"b.json:2: not valid JSON"),
        ("b.json", '{"type": "report"}', "must be STIX 2.1 bundles"),
    ],
)
def test_bad_indicator_files_name_file_and_line(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_indicator_files([_write(tmp_path, name, text)], tmp_path)


@settings(max_examples=200)
@given(st.text(max_size=60))
def test_any_value_is_kept_or_refused_never_crashes(value: str) -> None:
    s = IndicatorSet()
    try:
        s.add(value, "fuzz:1")
    except ConfigError as e:
        assert str(e).startswith("fuzz:1: ")
    else:
        assert len(s) == 1


def _asn_db(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    writer.insert_network(
        netaddr.IPSet(["185.220.101.0/24"]),
        {"autonomous_system_number": 208294, "autonomous_system_organization": "Bad Host"},
    )
    writer.insert_network(netaddr.IPSet(["2a00:1450::/32"]), {"autonomous_system_number": 15169})
    writer.to_db_file(str(path))
    return path


def test_asn_lookup_reads_a_maxmind_format_database(tmp_path: Path) -> None:
    lookup = AsnLookup(_asn_db(tmp_path / "asn.mmdb"))
    assert lookup.owner("185.220.101.7") == "AS208294 Bad Host"
    assert lookup.owner("2a00:1450::1") == "AS15169"
    assert lookup.owner("8.8.8.8") is None
    assert lookup.owner("not-an-ip") is None


def test_asn_database_that_is_not_one_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read ASN database"):
        AsnLookup(_write(tmp_path, "asn.mmdb", "not a database"))
    with pytest.raises(ConfigError, match="cannot read ASN database"):
        AsnLookup(tmp_path / "missing.mmdb")
