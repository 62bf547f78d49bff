"""The simulator's UDP sweep, written as Zeek logs and as a capture, found the same way.

The capture goes through vigile's own pcap reader, which works out conn_state and
history from the packets (a probe without a reply is ``S0``); the Zeek logs carry the
states the simulator writes. Both must give the same UDP address scan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vigile.cli import app
from vigile.config import load_config
from vigile.detect import HuntContext, Window, registered_detectors
from vigile.ingest import ingest_paths
from vigile.simulate.truth import read_truth
from vigile.store.duckdb import DuckDBStore


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``logs/`` and ``capture/``: the same traffic (same seed) in two formats."""
    out = tmp_path_factory.mktemp("udpscan")
    for folder, fmt in (("logs", "zeek"), ("capture", "pcap")):
        args = ["simulate", "--out", str(out / folder), "--days", "0.01", "--hosts", "4"]
        args += ["--seed", "3", "-s", "udp_scan:start_day=0.002,targets=40", "-f", fmt]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    return out


def _scan_findings(folder: Path) -> list[dict[str, Any]]:
    (detector,) = [d for d in registered_detectors() if d.name == "scan"]
    store = DuckDBStore(":memory:")
    try:
        ingest_paths(store, [folder])
        lo, hi = store.time_bounds("conn")
        ctx = HuntContext(store, load_config(folder / "vigile.toml"), Window(lo, hi))
        return [f.to_json() for f in detector().run(ctx)]
    finally:
        store.close()


def test_the_udp_sweep_is_found_in_logs_and_in_the_capture(sweep: Path) -> None:
    (truth,) = read_truth(sweep / "logs" / "ground-truth.csv")
    logs = _scan_findings(sweep / "logs")
    capture = _scan_findings(sweep / "capture")
    for found in (logs, capture):
        assert [f["src"] for f in found] == [truth.src]
        evidence = found[0]["evidence"]
        assert evidence["protocols"] == ["udp"] and evidence["kinds"] == ["address"]
        assert evidence["internal_scanner"] and found[0]["severity"] == "medium"
        # 40 hosts of the server subnet; the few live servers answer some probes.
        assert 25 <= evidence["max_hosts_on_one_port"] <= 40
    assert logs[0]["evidence"] == capture[0]["evidence"]
