"""Mailbox exfiltration and a BMC implant in simulated traffic (``vigile simulate``).

The simulator writes Zeek logs, a ``vigile.toml`` and ``ground-truth.csv``; the hunt
runs every registered detector. Each attack must be the top pair of its host's
``host_score``; a hunt over the first day alone (no history) must raise nothing
high or critical from the server-side detectors except the attack already running.
"""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from vigile.config import load_config
from vigile.detect import Finding, HuntContext, default_window, registered_detectors
from vigile.hunt import run_detectors
from vigile.ingest import ingest_paths
from vigile.store import Window
from vigile.store.duckdb import DuckDBStore

SERVER_SIDE = {"exfil", "rare_destination", "role_violation", "threat_intel"}

if importlib.util.find_spec("vigile.cli.simulate") is None:
    pytest.skip("`vigile simulate` is not in this tree", allow_module_level=True)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "run"
    args = ["simulate", "--out", str(out), "--seed", "7", "--days", "3", "--hosts", "16"]
    subprocess.run([sys.executable, "-m", "vigile", *args], check=True, capture_output=True)
    return out


def _truth(run: Path) -> dict[str, dict[str, str]]:
    with open(run / "ground-truth.csv", newline="") as f:
        return {row["scenario"]: row for row in csv.DictReader(f)}


def _hunt(run: Path, first_day: bool = False, whole: bool = False) -> list[Finding]:
    config = load_config(run / "vigile.toml")
    store = DuckDBStore(":memory:")
    try:
        ingest_paths(store, [run])
        window = default_window(store, config.window_hours)
        if first_day:
            oldest, _ = store.time_bounds("conn")
            assert oldest is not None
            window = Window(oldest, oldest + timedelta(days=1))
        if whole:  # one window over the whole store, as `vigile eval` hunts
            oldest, newest = store.time_bounds("conn")
            assert oldest is not None and newest is not None
            window = Window(oldest, newest + timedelta(microseconds=1))
        return run_detectors(HuntContext(store, config, window), registered_detectors())
    finally:
        store.close()


def _host_top_peer(findings: list[Finding], host: str) -> str | None:
    hosts = [f for f in findings if f.detector == "host_score" and f.src == host]
    assert hosts, f"no host score for {host}"
    peer = hosts[0].evidence["top_peer"]
    return str(peer) if peer else None


def test_mailbox_exfil_and_bmc_implant_rank_first_for_their_hosts(simulated: Path) -> None:
    truth = _truth(simulated)
    findings = _hunt(simulated)
    exfil, bmc = truth["mailbox_exfil"], truth["bmc_beacon"]
    # the mailbox is downloaded *from* the mail server by an outside client
    assert _host_top_peer(findings, exfil["dst"]) == exfil["src"]
    assert _host_top_peer(findings, bmc["src"]) == bmc["dst"]
    mail = next(f for f in findings if f.detector == "exfil" and f.src == exfil["dst"])
    assert mail.dst == exfil["src"] and mail.severity == "critical"


def test_first_day_without_history_raises_no_false_alarm(simulated: Path) -> None:
    truth = _truth(simulated)
    attack_pairs = {frozenset((t["src"], t["dst"])) for t in truth.values()}
    findings = _hunt(simulated, first_day=True)
    assert not [f for f in findings if f.detector in ("exfil", "rare_destination")]
    loud = [
        f
        for f in findings
        if f.detector in SERVER_SIDE
        and f.severity in ("high", "critical")
        and frozenset((f.src, f.dst)) not in attack_pairs
    ]
    assert loud == [], [f.explanation for f in loud]


def test_whole_store_as_one_window_judges_the_peak_against_earlier_slices(
    simulated: Path,
) -> None:
    exfil = _truth(simulated)["mailbox_exfil"]
    found = [f for f in _hunt(simulated, whole=True) if f.detector == "exfil"]
    assert [(f.src, f.dst) for f in found] == [(exfil["dst"], exfil["src"])]
    (test,) = [t for t in found[0].evidence["tests"] if t["kind"] == "host peak"]
    assert test["baseline"] == "own earlier slices" and test["samples"] >= 24
    assert found[0].severity == "critical"
