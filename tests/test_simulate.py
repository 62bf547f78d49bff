"""The simulator: deterministic, readable by vigile's own Zeek reader, truthful ground truth."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from vigile.cli import app
from vigile.config import load_config
from vigile.errors import ConfigError
from vigile.ingest import ingest_paths
from vigile.simulate.flows import beacon_times
from vigile.simulate.scenarios import SCENARIOS, parse_scenario, render_parameters
from vigile.simulate.truth import read_truth
from vigile.store.duckdb import DuckDBStore

SMALL = ["--seed", "3", "--days", "1", "--hosts", "6"]


def _simulate(out: Path, *args: str) -> None:
    result = CliRunner().invoke(app, ["simulate", "--out", str(out), *SMALL, *args])
    assert result.exit_code == 0, result.output


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run as Zeek logs (``zeek/``) and, from the same seed, as Parquet (``parquet/``):
    two folders, as each is ingested as a whole."""
    out = tmp_path_factory.mktemp("sim")
    _simulate(out / "zeek", "--scenario", "all", "--format", "zeek")
    _simulate(out / "parquet", "--scenario", "all", "--format", "parquet")
    return out


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    _simulate(tmp_path / "a", "--rotate")
    _simulate(tmp_path / "b", "--rotate")
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert a == b
    assert "2026-03-02/conn.09:00:00-10:00:00.log.gz" in a
    _simulate(tmp_path / "c", "--rotate", "--seed", "4")
    assert _digest(tmp_path / "c") != a


def test_zeek_logs_ingest_cleanly_and_match_parquet(run: Path, tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "v.duckdb")
    try:
        report = ingest_paths(store, [run / "zeek"])
        assert not report.problems, [f.message for f in report.files]
        totals = report.totals()
        for table in ("conn", "dns", "http", "tls"):
            expected = pq.read_table(run / "parquet" / f"{table}.parquet")
            assert totals[table] == expected.num_rows > 0
            got = store.scan(table, order_by=["uid"])
            expected = expected.sort_by("uid")
            for column in ("ts", "uid", "src", "dst", "dst_port"):
                assert got.column(column).equals(expected.column(column)), (table, column)
        conn = store.scan("conn", order_by=["uid"])
        parquet = pq.read_table(run / "parquet" / "conn.parquet").sort_by("uid")
        for column in ("proto", "service", "orig_bytes", "resp_ip_bytes", "conn_state"):
            assert conn.column(column).equals(parquet.column(column)), column
    finally:
        store.close()


def test_ground_truth_names_the_scenario_traffic(run: Path) -> None:
    truths = {t.scenario: t for t in read_truth(run / "zeek" / "ground-truth.csv")}
    # A one-day run ends before the tunnel and the scans (days 1.4, 1.6, 1.7) would start.
    assert set(truths) == set(SCENARIOS) - {"dns_tunnel", "port_scan", "udp_scan"}
    conn = pq.read_table(run / "parquet" / "conn.parquet")
    bmc = truths["bmc_beacon"]
    pair = pc.and_(pc.equal(conn["src"], bmc.src), pc.equal(conn["dst"], bmc.dst))
    assert pc.sum(pair).as_py() == bmc.connections > 20
    # The BMC is on the management subnet that vigile.toml declares.
    cfg = load_config(run / "zeek" / "vigile.toml")
    assert any(str(n) == "10.20.250.0/24" for n in cfg.network.management)
    assert cfg.network.is_internal(truths["mailbox_exfil"].dst or "")
    assert not cfg.network.is_internal(truths["mailbox_exfil"].src)
    assert cfg.section("simulation")["seed"] == 3
    exfil = truths["mailbox_exfil"]
    rows = conn.filter(pc.equal(conn["src"], exfil.src))
    assert rows.num_rows == exfil.connections
    assert pc.min(rows["resp_bytes"]).as_py() > 50_000_000


def test_bad_scenario_is_one_line_error(tmp_path: Path) -> None:
    for spec, message in (
        ("nosuch", "unknown scenario 'nosuch'"),
        ("bmc_beacon:period=abc", "period='abc' is not a float"),
        ("bmc_beacon:colour=red", "unknown parameter 'colour'"),
    ):
        result = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path), "-s", spec])
        assert isinstance(result.exception, ConfigError)
        assert message in str(result.exception)
        assert "\n" not in str(result.exception)


def test_scenario_parameters_reach_the_traffic() -> None:
    s = parse_scenario("bmc_beacon:period=120,jitter=0.5,sleep=")
    assert (s.period, s.jitter, s.sleep) == (120.0, 0.5, "")  # type: ignore[attr-defined]


@settings(max_examples=50)
@given(
    period=st.floats(10, 3600),
    jitter=st.floats(0, 0.9),
    seed=st.integers(0, 2**32 - 1),
)
def test_beacon_sleeps_follow_cobalt_strike_jitter(period: float, jitter: float, seed: int) -> None:
    ts = beacon_times(np.random.default_rng(seed), 0.0, period * 50, period, jitter)
    gaps = np.diff(ts)
    assert len(ts) >= 50
    assert np.all(gaps <= period * (1 + 1e-9))
    assert np.all(gaps >= period * (1 - jitter) * (1 - 1e-9))


def test_evaluation_doc_lists_the_scenario_parameters() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "evaluation.md").read_text()
    begin, end = "<!-- scenarios:begin -->\n", "<!-- scenarios:end -->"
    assert doc.split(begin, 1)[1].split(end, 1)[0] == render_parameters()
