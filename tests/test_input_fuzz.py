"""Fuzz tests of the inputs that had none: damaged EVE logs, cut gzip files, damaged
export datagrams into the live collector, bad vigile.toml and allowlist files.

Every outcome must be rows plus counted rejects, or one clear ``vigile.errors`` error;
never another exception, never a hang (:func:`tests.fuzzing.within`).
"""

from __future__ import annotations

import bz2
import gzip
import json
import re
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.fuzzing import READERS, ingest_outcome, mutated, within

from vigile.config import load_config
from vigile.detect.allowlist import Allowlist
from vigile.errors import ConfigError, InputError
from vigile.ingest import expand_paths, ingest_file
from vigile.ingest.collector import Collector
from vigile.store.duckdb import DuckDBStore

GOLDEN = Path(__file__).parent / "golden"
EVE = (GOLDEN / "eve" / "mixed.eve.json").read_bytes()
DATAGRAMS = [
    bytes.fromhex(line)
    for hexfile in sorted((GOLDEN / "netflow").glob("*.hex"))
    for line in hexfile.read_text().split()
]
ZEEK = (
    "#separator \\x09\n#path\tconn\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\t"
    "id.resp_p\tproto\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\n"
    + "1713484795.943239\tCabc\t10.0.0.1\t5353\t10.0.0.2\t53\tudp\n"
    * 50
).encode()
ZEEK_JSON = b"".join(
    json.dumps(
        {"ts": 1713484795.5 + i, "uid": f"C{i}", "id.orig_h": "10.0.0.1", "id.orig_p": 5353 + i,
         "id.resp_h": "2001:db8::2", "id.resp_p": 53, "proto": "udp", "duration": 0.25,
         "orig_bytes": 40, "resp_bytes": 90, "conn_state": "SF", "history": "Dd"}
    ).encode() + b"\n"
    for i in range(20)
)  # fmt: skip
FIXTURE_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.mark.parametrize(
    ("name", "seed", "reader"),
    [("eve.json", EVE, "suricata-eve"), ("conn.log", ZEEK, "zeek-tsv"),
     ("conn.log", ZEEK_JSON, "zeek-json")],
)  # fmt: skip
def test_the_seeds_are_read_whole(tmp_path: Path, name: str, seed: bytes, reader: str) -> None:
    """The inputs the fuzz tests damage are read as their format (else the mutations
    would only ever meet a refusal)."""
    result = ingest_outcome(tmp_path, name, seed)
    assert result.format == reader and sum(result.rows.values()) >= 15


@settings(max_examples=60, suppress_health_check=FIXTURE_OK)
@given(mutated(EVE))
def test_damaged_eve_log_gives_rows_and_rejects(tmp_path_factory, data: bytes) -> None:
    ingest_outcome(tmp_path_factory.mktemp("eve"), "eve.json", data)


@settings(max_examples=40, suppress_health_check=FIXTURE_OK)
@given(mutated(ZEEK_JSON))
def test_damaged_zeek_json_log_gives_rows_and_rejects(tmp_path_factory, data: bytes) -> None:
    ingest_outcome(tmp_path_factory.mktemp("zj"), "conn.log", data)


@settings(max_examples=30, suppress_health_check=FIXTURE_OK)
@given(
    st.integers(10, len(gzip.compress(EVE)) - 1),
    st.sampled_from([EVE, ZEEK, ZEEK_JSON]),
    st.sampled_from([gzip.compress, bz2.compress]),
    st.booleans(),
)
def test_cut_or_damaged_compressed_input_keeps_what_came_before(
    tmp_path_factory, at, seed, compress, flip
) -> None:
    whole = compress(seed * 3)
    at = min(at, len(whole) - 1)
    # cut there, or one byte changed there (the compressed stream damaged mid-way)
    data = whole[:at] + bytes([whole[at] ^ 0x55]) + whole[at + 1 :] if flip else whole[:at]
    result = ingest_outcome(tmp_path_factory.mktemp("gz"), "input.log.gz", data)
    if not flip:
        assert result.status in ("partial", "refused")


def test_cut_gzip_eve_is_partial_with_the_byte_where_it_ends(tmp_path: Path) -> None:
    """Regression: a cut .gz stopped ``vigile ingest`` with "Aborted." and no file named
    (the decompressor's EOFError reached the CLI, which takes it for a closed terminal)."""
    flow = {
        "timestamp": "2024-04-19T01:00:00.000000+0000",
        "event_type": "flow",
        "src_ip": "10.0.0.1",
        "dest_ip": "10.0.0.2",
        "dest_port": 53,
        "proto": "UDP",
        "flow": {"pkts_toserver": 1, "bytes_toserver": 60, "start": "2024-04-19T01:00:00+0000"},
    }
    events = [json.dumps({**flow, "src_port": 1024 + i}) for i in range(2000)]
    whole = gzip.compress("\n".join(events).encode())
    cut = len(whole) // 2
    path = tmp_path / "eve.json.gz"
    path.write_bytes(whole[:cut])
    store = DuckDBStore(":memory:")
    result = ingest_file(store, path, READERS)
    assert result.status == "partial" and 0 < result.rows["conn"] < 2000
    rejects = store.scan("rejects").to_pylist()
    # the line cut in the middle, and the cut itself at the end of the file
    assert [(r["position_unit"], r["position"]) for r in rejects] == [
        ("line", result.rows["conn"] + 1),
        ("byte", cut),
    ]
    assert rejects[1]["reason"].startswith("compressed data is cut or damaged: Compressed file")


def _collect(folder: Path, datagrams: list[bytes]) -> None:
    """Hand ``datagrams`` to a collector as one exporter's, then check the store."""
    collector = Collector(lambda: DuckDBStore(folder / "c.duckdb"), port=0, pair_wait=0)
    try:
        with within(20):
            for data in datagrams:
                collector.handle(data, "127.0.0.1", 9995)
    finally:
        counters = collector.close()
    assert counters.datagrams == len(datagrams)
    store = DuckDBStore(folder / "c.duckdb")
    try:
        rejects = store.scan("rejects").to_pylist()
        assert len(rejects) == counters.malformed
        assert store.count("conn") == counters.rows_written
        bugs = [r["reason"] for r in rejects if r["reason"].startswith("decoder error")]
        assert not bugs, bugs  # a decoder exception is a decoder bug, kept only for safety
    finally:
        store.close()


@settings(max_examples=40, suppress_health_check=FIXTURE_OK)
@given(st.lists(st.sampled_from(range(len(DATAGRAMS))), min_size=1, max_size=6), st.data())
def test_damaged_datagrams_into_the_collector_give_flows_or_rejects(
    tmp_path_factory, order: list[int], data: st.DataObject
) -> None:
    datagrams = [
        data.draw(st.one_of(st.just(DATAGRAMS[i]), mutated(DATAGRAMS[i], max_edits=3)))
        for i in order
    ]
    _collect(tmp_path_factory.mktemp("collector"), datagrams)


@pytest.fixture(scope="module")
def nfcapd_seed(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """An nfcapd file written by nfpcapd from a shared capture."""
    from tests.test_eve_nfcapd import _nfpcapd

    return _nfpcapd(shared_data, tmp_path_factory.mktemp("nfcapd")).read_bytes()


@settings(max_examples=12, suppress_health_check=FIXTURE_OK)
@given(data=st.data())
def test_nfcapd_damaged_file_gives_rows_rejects_or_a_refusal(
    nfcapd_seed: bytes, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """nfdump reads the file; a damaged one must still end as rows or one clear line."""
    damaged = data.draw(mutated(nfcapd_seed, max_edits=3))
    ingest_outcome(tmp_path_factory.mktemp("nf"), "nfcapd.202404190100", damaged)


# vigile.toml and allowlist files: TOML of any shape, wrong types included.
_scalar = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(string.printable.replace("\\", "").replace('"', ""), max_size=20),
    st.sampled_from(["10.0.0.0/8", "::1", "fe80::/10", "300.1.1.1/8", "x.toml", "*.example"]),
)
_value = st.one_of(_scalar, st.lists(_scalar, max_size=4))


def _toml(tables: dict[str, dict[str, object]]) -> str:
    # json.dumps writes strings, numbers, booleans and arrays as TOML reads them
    out = []
    for name, body in tables.items():
        out.append(f"[{name}]")
        out += [f"{key} = {json.dumps(value)}" for key, value in body.items()]
    return "\n".join(out) + "\n"


_KEYS = {
    "network": ["internal", "management", "admin_hosts"],
    "hunt": ["window_hours"],
    "allowlist": ["files", "priors", "disable_priors"],
    '"hosts"."10.0.0.5"': ["name", "role"],
    "ingest.pcap": ["idle_timeout", "tcp_timeout", "nope"],
}
CONFIGS = st.fixed_dictionaries(
    {},
    optional={
        section: st.dictionaries(st.sampled_from(keys), _value, max_size=3)
        for section, keys in _KEYS.items()
    },
).map(_toml)
TOP_LEVEL = st.sampled_from(["network", "hosts", "allowlist", "hunt"]).map(
    lambda name: f"{name} = 5\n"
)


@settings(max_examples=150, suppress_health_check=FIXTURE_OK)
@given(
    st.one_of(
        CONFIGS,
        TOP_LEVEL,
        mutated(b'[network]\ninternal = ["10.0.0.0/8"]\n').map(
            lambda b: b.decode("utf-8", "replace")
        ),
    )
)
@example('[hunt]\nwindow_hours = "x"\n')
@example("network = 5\n")
@example("[allowlist]\nfiles = 5\n")
@example('hosts = ["10.0.0.1"]\n')
def test_any_vigile_toml_loads_or_is_one_config_error(tmp_path_factory, text: str) -> None:
    path = tmp_path_factory.mktemp("cfg") / "vigile.toml"
    path.write_text(text, encoding="utf-8")
    try:
        config = load_config(path)
        Allowlist.from_config(config.allowlist_files, config.section("allowlist"), path.parent)
    except ConfigError as e:
        assert "\n" not in str(e)
        assert "vigile.toml" in str(e) or "allowlist" in str(e) or "x.toml" in str(e)


ALLOW_SEED = b"""[[allow]]
domain = "*.example.com"
reason = "mirror"

[[allow]]
cidr = "10.1.0.0/16"
detectors = ["beacon"]
reason = "backup"
"""


@settings(max_examples=150, suppress_health_check=FIXTURE_OK)
@given(st.one_of(mutated(ALLOW_SEED), st.binary(max_size=200)))
def test_any_allowlist_file_loads_or_is_one_config_error(tmp_path_factory, data: bytes) -> None:
    folder = tmp_path_factory.mktemp("allow")
    (folder / "allow.toml").write_bytes(data)
    try:
        Allowlist.from_config([folder / "allow.toml"], {})
    except ConfigError as e:
        assert "\n" not in str(e) and "allow.toml" in str(e)


@pytest.mark.parametrize("name", ["vigile.toml"])
def test_a_folder_given_as_config_is_one_config_error(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    with pytest.raises(ConfigError, match=name):
        load_config(tmp_path / name)


def test_nfdump_that_prints_errors_without_end_is_stopped(
    shared_data: Path, tmp_path: Path
) -> None:
    """Regression: nfdump 1.7.1 prints "Error process appendix record type: N" without end
    for this one-byte change of nfpcapd's file (found by the fuzz test above); reading only
    its stdout, ingest waited for ever (and its stderr pipe filled)."""
    from tests.test_eve_nfcapd import _nfpcapd

    data = bytearray(_nfpcapd(shared_data, tmp_path).read_bytes())
    assert len(data) == 3221, "nfpcapd wrote another layout: find the byte again"
    data[3055] = 3
    folder = tmp_path / "bad"
    folder.mkdir()
    result = ingest_outcome(folder, "nfcapd.201511230855", bytes(data), seconds=30)
    assert result.status == "refused"
    assert re.fullmatch(
        re.escape(f"{folder / 'nfcapd.201511230855'}: nfdump failed: ")
        + r"Error process appendix record type: \d+ \(printed without end; stopped\)",
        result.message or "",
    )


@pytest.mark.parametrize("data", [b"\x1f\x8b", b"\x1f\x8b\x08\x00", b"BZh9"])
def test_compressed_file_cut_before_any_content_says_so(tmp_path: Path, data: bytes) -> None:
    """Such a file was refused as an "empty file", which it is not."""
    result = ingest_outcome(tmp_path, "conn.log.gz", data)
    assert result.status == "refused"
    assert result.message is not None and "data cut or damaged before any content" in (
        result.message
    )


def test_zeek_line_longer_than_a_quarter_of_its_block_is_read(tmp_path: Path) -> None:
    """Regression: a line longer than a thread's share of the block made Arrow's CSV
    parser fail ("straddling object straddles two block boundaries"), a traceback."""
    header, row = ZEEK.split(b"\n1713484795", 1)
    long_uid = b"1713484795.5\t" + b"C" * (4 << 20) + b"\t10.0.0.1\t1\t10.0.0.2\t2\tudp\n"
    data = header + b"\n1713484795" + row.split(b"\n", 1)[0] + b"\n" + long_uid
    result = ingest_outcome(tmp_path, "conn.log", data)
    assert (result.status, result.rows) == ("ingested", {"conn": 2})


def test_a_device_named_as_input_is_refused_not_read_for_ever() -> None:
    """Regression: ``vigile ingest /dev/zero`` hashed the device without end."""
    with pytest.raises(InputError, match="/dev/zero: not a regular file"):
        expand_paths([Path("/dev/zero")])


def test_pair_spanning_more_than_2_to_53_microseconds_is_merged() -> None:
    """Regression (a damaged nfcapd file, found by the deep run): Arrow's safe cast of
    such a span to a double raised ArrowInvalid out of the reader."""
    import numpy as np
    import pyarrow as pa

    from vigile.ingest.flowstate import Pairing
    from vigile.ingest.pairhold import merge_pairs

    end = 9_547_712_299_032_000
    t = pa.table({"ts": pa.array([10, 4], pa.timestamp("us", "UTC")), "duration": [0.0, 0.0],
                  "_start_us": [10, 4], "_end_us": [10, end]})  # fmt: skip
    pairing = Pairing(np.array([1, 0]), np.array([False, True]), np.zeros(2, bool))
    merged, n = merge_pairs(t, pairing)
    assert n == 1 and merged["duration"][0].as_py() == pytest.approx((end - 4) / 1e6)


def test_nfdump_record_with_a_count_beyond_64_bits_is_rejected() -> None:
    """Regression (found by the deep run): such a record failed the whole batch with an
    OverflowError; now it is one rejected record."""
    from vigile.ingest.nfcapd import _checked

    row = {"src_port": 1, "dst_port": 2, "orig_pkts": 2**64, "orig_ip_bytes": 1,
           "resp_pkts": None, "resp_ip_bytes": None}  # fmt: skip
    with pytest.raises(ValueError, match="orig_pkts 18446744073709551616 is not an integer"):
        _checked(row)
    assert _checked({**row, "orig_pkts": 5}) == {**row, "orig_pkts": 5}
