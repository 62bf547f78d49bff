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


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    hexport = f":{port:04X}"
    return any(
        hexport in line.split()[1] for line in Path("/proc/net/udp").read_text().splitlines()[1:]
    )


@pytest.mark.parametrize("version", [5, 10])
def test_nfdump_totals_equal_the_conn_rows(tmp_path: Path, version: int) -> None:
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
        args = [
            "simulate",
            "--out",
            str(out),
            "--days",
            "0.125",
            "--hosts",
            "3",
            "-f",
            "parquet",
            "--export",
            f"127.0.0.1:{port}",
            "--export-version",
            str(version),
        ]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        time.sleep(0.5)
    finally:
        collector.send_signal(signal.SIGTERM)  # nfcapd writes its last file on SIGTERM
        collector.wait(timeout=20)
    stats = subprocess.run(
        [nfdump, "-R", str(flows), "-I"], capture_output=True, text=True, check=True
    ).stdout
    got = {k: int(v) for k, v in re.findall(r"^(Flows|Packets|Bytes): (\d+)$", stats, re.M)}
    conn = pq.read_table(out / "conn.parquet")
    answered = pc.sum(pc.greater(conn["resp_pkts"], 0)).as_py()
    assert got["Flows"] == conn.num_rows + answered
    assert got["Packets"] == pc.sum(pc.add(conn["orig_pkts"], conn["resp_pkts"])).as_py()
    assert got["Bytes"] == pc.sum(pc.add(conn["orig_ip_bytes"], conn["resp_ip_bytes"])).as_py()
    first = int(re.search(r"^First: (\d+)$", stats, re.M).group(1))  # type: ignore[union-attr]
    assert first >= 1772409600  # simulated time (2026-03-02), not the time of the test
