"""Suricata EVE and nfcapd ingest against real files and the real nfdump."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.conftest import require_tool
from tests.helpers import ingest

from vigile.store.duckdb import DuckDBStore

EVE = "suricata/slips-test6-malicious.eve.json"
TABLE_OF = {
    "flow": "conn",
    "netflow": "conn",
    "dns": "dns",
    "http": "http",
    "tls": "tls",
    "alert": "alerts",
}


def _count_event_types(path: Path) -> Counter[str]:
    """Independent count: a regular expression over the raw lines, no JSON parser."""
    import re

    pattern = re.compile(r'"event_type"\s*:\s*"([^"]+)"')
    counts: Counter[str] = Counter()
    with path.open(encoding="utf-8") as f:
        for line in f:
            m = pattern.search(line)
            if m:
                counts[m.group(1)] += 1
    return counts


def test_eve_event_counts_equal_independent_count(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / EVE
    expected: Counter[str] = Counter()
    for kind, n in _count_event_types(path).items():
        if kind in TABLE_OF:
            expected[TABLE_OF[kind]] += n
    store = DuckDBStore(tmp_path / "v.duckdb")
    report = ingest(store, path)
    (result,) = report.files
    assert result.status == "ingested" and result.format == "suricata-eve"
    got = {t: store.count(t) for t in ("conn", "dns", "http", "tls", "alerts")}
    assert got == {t: expected.get(t, 0) for t in got}
    assert got["alerts"] == 745 and got["conn"] == 3512  # the data README's own figures
    assert "event types not stored: 3 anomaly, 3 fileinfo" in (result.message or "")
    again = ingest(store, path)
    assert again.files[0].status == "duplicate"
    assert store.count("alerts") == 745
    store.close()


def test_eve_alert_and_flow_values(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / EVE
    with path.open() as f:
        events = [json.loads(line) for line in f]
    first_alert = next(e for e in events if e["event_type"] == "alert")
    first_flow = next(e for e in events if e["event_type"] == "flow")
    store = DuckDBStore(tmp_path / "v.duckdb")
    ingest(store, path)
    alerts = store.scan("alerts", order_by=["source_pos"], limit=1).to_pylist()[0]
    assert alerts["signature_id"] == first_alert["alert"]["signature_id"]
    assert alerts["signature"] == first_alert["alert"]["signature"]
    assert (alerts["src"], alerts["dst_port"]) == (first_alert["src_ip"], first_alert["dest_port"])
    conn = store.scan("conn", order_by=["source_pos"], limit=1).to_pylist()[0]
    f = first_flow["flow"]
    assert (conn["orig_pkts"], conn["resp_pkts"]) == (f["pkts_toserver"], f["pkts_toclient"])
    assert (conn["orig_ip_bytes"], conn["resp_ip_bytes"]) == (
        f["bytes_toserver"],
        f["bytes_toclient"],
    )
    store.close()


def test_eve_bad_lines_are_rejected_with_line_numbers(tmp_path: Path) -> None:
    good = (
        '{"timestamp":"2021-06-06T15:59:46.457984+0200","event_type":"flow","src_ip":'
        '"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":80,"proto":"TCP",'
        '"flow":{"pkts_toserver":1,"pkts_toclient":0,"bytes_toserver":60,"bytes_toclient":0,'
        '"start":"2021-06-06T15:59:46.457984+0200","end":"2021-06-06T15:59:47.0+0200"}}'
    )
    lines = [
        good,
        "{not json",
        good.replace('"src_ip":"10.0.0.1",', ""),
        good.replace('"src_port":1', '"src_port":99999999999'),
        "[1]",
        good,
    ]
    path = tmp_path / "eve.json"
    path.write_text("\n".join(lines) + "\n")
    store = DuckDBStore(tmp_path / "v.duckdb")
    (result,) = ingest(store, path).files
    assert (result.status, result.bad_rows, store.count("conn")) == ("partial", 4, 2)
    positions = sorted(r["position"] for r in store.scan("rejects").to_pylist())
    assert positions == [2, 3, 4, 5]
    assert result.message is not None and result.message.startswith(f"{path}:2: ")
    store.close()


def _nfpcapd(shared_data: Path, tmp_path: Path) -> Path:
    require_tool("nfpcapd")
    flow_dir = tmp_path / "flows"
    flow_dir.mkdir()
    pcap = shared_data / "pcap/ndpi/http_ipv6.pcap"
    subprocess.run(
        ["nfpcapd", "-r", str(pcap), "-w", str(flow_dir)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (file,) = [p for p in flow_dir.rglob("nfcapd.*") if p.is_file()]
    return file


def test_nfcapd_file_matches_nfdump_csv(shared_data: Path, tmp_path: Path) -> None:
    require_tool("nfdump")
    file = _nfpcapd(shared_data, tmp_path)
    out = subprocess.run(
        ["nfdump", "-r", str(file), "-o", "csv"], check=True, capture_output=True, text=True
    ).stdout
    expected = Counter()
    for r in csv.DictReader(io.StringIO(out)):
        if r["ts"] == "Summary":
            break
        if r.get("sa"):
            expected[(r["sa"], r["da"], int(r["ipkt"]), int(r["ibyt"]))] += 1
    store = DuckDBStore(tmp_path / "v.duckdb")
    (result,) = ingest(store, tmp_path / "flows").files
    assert (result.status, result.format) == ("ingested", "nfcapd")
    rows = store.scan("conn").to_pylist()
    got = Counter((r["src"], r["dst"], r["orig_pkts"], r["orig_ip_bytes"]) for r in rows)
    # A pair is one row: the responder's record is its responder side.
    merged = [r for r in rows if r["resp_pkts"] is not None]
    got += Counter((r["dst"], r["src"], r["resp_pkts"], r["resp_ip_bytes"]) for r in merged)
    assert sum(expected.values()) > 0 and got == expected
    assert len(rows) + len(merged) == sum(expected.values()) and merged
    notice = f"{len(merged)} responder records merged into their originator's row"
    assert result.message is not None and notice in result.message
    store.close()


def test_nfcapd_without_nfdump_says_how_to_install(shared_data: Path, tmp_path: Path) -> None:
    file = _nfpcapd(shared_data, tmp_path)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": str(bin_dir)}  # the venv only: no nfdump on it
    proc = subprocess.run(
        [str(bin_dir / "vigile"), "ingest", str(file), "--db", str(tmp_path / "v.duckdb")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 3
    assert "needs the nfdump program" in proc.stdout + proc.stderr
    assert "apt-get install nfdump" in proc.stdout + proc.stderr
