"""Flow export of simulated traffic, received by nfcapd and read by nfdump (real peers)."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from tests.conftest import require_tool
from typer.testing import CliRunner

from vigile.cli import app
from vigile.config import load_config
from vigile.errors import ConfigError


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    hexport = f":{port:04X}"
    return any(
        hexport in line.split()[1] for line in Path("/proc/net/udp").read_text().splitlines()[1:]
    )


def _nfdump_totals(tmp_path: Path, version: int, *extra: str) -> tuple[dict[str, int], Path]:
    """Simulate 3 hours of 3 desktops, exported into nfcapd; nfdump's totals, the run."""
    nfcapd, nfdump = require_tool("nfcapd"), require_tool("nfdump")
    port = _free_udp_port()
    flows = tmp_path / "flows"
    flows.mkdir()
    collector = subprocess.Popen(
        [nfcapd, "-b", "127.0.0.1", "-p", str(port), "-w", str(flows)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not _listening(port):
            assert time.monotonic() < deadline, "nfcapd did not start listening"
            time.sleep(0.05)
        out = tmp_path / "sim"
        args = ["simulate", "--out", str(out), "--days", "0.125", "--hosts", "3", "-f"]
        args += ["parquet", "--export", f"127.0.0.1:{port}", "--export-version", str(version)]
        result = CliRunner().invoke(app, [*args, *extra])
        assert result.exit_code == 0, result.output
        time.sleep(0.5)
    finally:
        collector.send_signal(signal.SIGTERM)  # nfcapd writes its last file on SIGTERM
        collector.wait(timeout=20)
    stats = subprocess.run(
        [nfdump, "-R", str(flows), "-I"], capture_output=True, text=True, check=True
    ).stdout
    return {k: int(v) for k, v in re.findall(r"^(Flows|Packets|Bytes): (\d+)$", stats, re.M)}, out


@pytest.mark.parametrize("version", [5, 10])
def test_nfdump_totals_equal_the_conn_rows(tmp_path: Path, version: int) -> None:
    got, out = _nfdump_totals(tmp_path, version)
    conn = pq.read_table(out / "conn.parquet")
    answered = pc.sum(pc.greater(conn["resp_pkts"], 0)).as_py()
    assert got["Flows"] == conn.num_rows + answered
    assert got["Packets"] == pc.sum(pc.add(conn["orig_pkts"], conn["resp_pkts"])).as_py()
    assert got["Bytes"] == pc.sum(pc.add(conn["orig_ip_bytes"], conn["resp_ip_bytes"])).as_py()


def test_one_way_export_sends_only_what_internal_hosts_send(tmp_path: Path) -> None:
    """``--export-one-way``: nfdump counts exactly the directions an internal host sent."""
    got, out = _nfdump_totals(tmp_path, 10, "--export-one-way")
    conn = pq.read_table(out / "conn.parquet")
    network = load_config(out / "vigile.toml").network
    orig, answered = network.internal_mask(conn["src"]), conn["resp_pkts"].to_numpy() > 0
    resp = network.internal_mask(conn["dst"]) & answered
    assert orig.sum() < conn.num_rows and resp.sum() < answered.sum()  # both sides left out
    assert got["Flows"] == orig.sum() + resp.sum()
    pkts = conn["orig_pkts"].to_numpy()[orig].sum() + conn["resp_pkts"].to_numpy()[resp].sum()
    octets = conn["orig_ip_bytes"].to_numpy()[orig].sum()
    octets += conn["resp_ip_bytes"].to_numpy()[resp].sum()
    assert (got["Packets"], got["Bytes"]) == (pkts, octets)


def test_one_way_export_needs_an_export(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path), "--export-one-way"])
    assert isinstance(result.exception, ConfigError)
    assert "--export-one-way needs --export" in str(result.exception)
