"""Fixtures for the console tests: a store with two days of realistic traffic.

The traffic is built here (seeded, so every run is identical): ten workstations
browsing, a DNS server, a mail server answering SMTP/IMAP from the internet, a BMC
answering IPMI to an admin host, one workstation beaconing every ~300 s (±20 %) to
203.0.113.50 and the mail server pushing ~1.2 GB to 198.51.100.77 in the last three
hours. Findings for the beacon and the transfer are written as detectors would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from vigile.config import Config
from vigile.detect import Finding, findings_table
from vigile.schema import CONN, TS, conform
from vigile.store import FindingScope, SourceRecord, SourceSummary
from vigile.store.duckdb import DuckDBStore
from vigile.web.auth import add_user

START = datetime(2026, 3, 2, tzinfo=UTC)
END = START + timedelta(days=2)
BEACON_SRC, BEACON_DST = "10.0.1.14", "203.0.113.50"
MAIL, EXFIL_DST = "10.0.0.25", "198.51.100.77"
USER, PASSWORD = "admin", "correct horse battery"


@dataclass(frozen=True)
class StoreFacts:
    """What the built store holds, for assertions."""

    path: Path
    beacon_id: str
    exfil_id: str
    conn_rows: int


def _conn_rows(rng: np.random.Generator) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []

    def add(ts: datetime, src: str, dst: str, port: int, proto: str, out: int, back: int) -> None:
        rows.append(
            {
                "ts": ts,
                "src": src,
                "src_port": int(rng.integers(32768, 61000)),
                "dst": dst,
                "dst_port": port,
                "proto": proto,
                "duration": float(rng.uniform(0.05, 3.0)),
                "orig_bytes": out,
                "resp_bytes": back,
                "orig_ip_bytes": out + 52,
                "resp_ip_bytes": back + 52,
                "orig_pkts": 1 + out // 1400,
                "resp_pkts": 1 + back // 1400,
                "conn_state": "SF",
                "open": False,
            }
        )

    def at(seconds: float) -> datetime:
        return START + timedelta(seconds=float(seconds))

    span = (END - START).total_seconds()
    workstations = [f"10.0.1.{i}" for i in range(10, 20)]
    sites = [f"93.184.{i}.{j}" for i in range(216, 220) for j in (10, 34, 80)]
    for ws in workstations:
        for t in np.sort(rng.uniform(0, span, 250)):
            add(
                at(t),
                ws,
                str(rng.choice(sites)),
                443,
                "tcp",
                int(rng.integers(400, 4000)),
                int(rng.integers(2000, 400_000)),
            )
            add(at(t - 0.05), ws, "10.0.0.53", 53, "udp", 60, 120)
    for t in np.sort(rng.uniform(0, span, 400)):
        client = f"198.18.{rng.integers(0, 255)}.{rng.integers(1, 255)}"
        add(
            at(t),
            client,
            MAIL,
            int(rng.choice([25, 993])),
            "tcp",
            int(rng.integers(2000, 60_000)),
            int(rng.integers(500, 9000)),
        )
    for t in np.arange(0, span, 900):
        add(at(t), "10.0.1.10", "10.0.9.5", 623, "udp", 80, 120)
    t = float(rng.uniform(0, 300))
    while t < span:
        add(at(t), BEACON_SRC, BEACON_DST, 443, "tcp", int(rng.normal(620, 25)), 1800)
        t += 300 * float(rng.uniform(0.8, 1.2))
    for t in np.arange(span - 3 * 3600, span, 60):
        add(at(t), MAIL, EXFIL_DST, 443, "tcp", int(rng.normal(6.5e6, 4e5)), 3000)
    rows.sort(key=lambda r: r["ts"])  # type: ignore[arg-type, return-value]
    return rows


def _write_conn(store: DuckDBStore, rows: list[dict[str, object]]) -> None:
    columns = {
        c.name: pa.array([r.get(c.name) for r in rows], c.type)
        for c in CONN.columns
        if c.name not in ("source_id", "source_pos", "sensor")
    }
    columns["ts"] = pa.array([r["ts"] for r in rows], TS)
    columns["source_id"] = pa.array([7] * len(rows), pa.int64())
    columns["source_pos"] = pa.array(range(9, 9 + len(rows)), pa.int64())
    columns["sensor"] = pa.array(["zeek-lab"] * len(rows))
    record = SourceRecord(7, "logs/2026-03-02/conn.log.gz", "ab" * 32, 1_234_567, "zeek-tsv")
    with store.source_writer(record) as w:
        w.append("conn", conform(CONN, columns, len(rows)))
        w.reject(57, "line", "field ts: 'x17' is not a number", "x17\tCabc\t10.0.1.3")
        w.reject(1204, "line", "expected 21 fields, found 9", "1709337600.1\tCdef")
        w.finish(
            SourceSummary(
                "conn",
                {"conn": len(rows)},
                2,
                START,
                END,
                "conn.log.gz:57: field ts: 'x17' is not a number",
            )
        )


def _findings() -> list[Finding]:
    window = (END - timedelta(hours=24), END)
    beacon = Finding(
        "beacon",
        BEACON_SRC,
        BEACON_DST,
        "cdn-check.example.net",
        0.962,
        *window,
        "10.0.1.14 connected to 203.0.113.50 (cdn-check.example.net) 288 times in 24 h, every "
        "300 s with 11 % jitter and near-constant 620-byte requests.",
        {
            "connections": 288,
            "median_interval_s": 300.0,
            "jitter": 0.11,
            "ts_score": 0.93,
            "ds_score": 0.98,
            "dur_score": 1.0,
            "hist_score": 0.94,
            "prevalence": 0.1,
        },
    )
    exfil = Finding(
        "exfil",
        MAIL,
        EXFIL_DST,
        None,
        0.91,
        *window,
        "Mail server 10.0.0.25 sent 1.17 GB to 198.51.100.77 in 3 h, 390x its hourly baseline.",
        {
            "bytes": 1_170_000_000,
            "baseline": 1_000_000,
            "factor": 390.0,
            "hours": 3,
            "role": "mail",
        },
    )
    rare = Finding(
        "rare_destination",
        "10.0.1.11",
        "93.184.216.34",
        None,
        0.41,
        *window,
        "10.0.1.11 is one of 10 internal hosts that reach 93.184.216.34.",
        {"prevalence": 0.1},
    )
    return [beacon, exfil, rare]


def build_store(path: Path, with_user: bool = True) -> StoreFacts:
    """Write the test store at ``path``; see the module docstring."""
    rows = _conn_rows(np.random.default_rng(20260302))
    store = DuckDBStore(path)
    try:
        _write_conn(store, rows)
        findings = _findings()
        store.replace_findings(
            [f.detector for f in findings], findings_table(findings), FindingScope()
        )
        if with_user:
            add_user(store, USER, PASSWORD)
    finally:
        store.close()
    return StoreFacts(path, findings[0].id, findings[1].id, len(rows))


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> StoreFacts:
    return build_store(tmp_path_factory.mktemp("web") / "template.duckdb")


@pytest.fixture
def store_facts(store_template: StoreFacts, tmp_path: Path) -> StoreFacts:
    """A fresh copy of the test store for one test."""
    path = tmp_path / "vigile.duckdb"
    path.write_bytes(store_template.path.read_bytes())
    return StoreFacts(
        path, store_template.beacon_id, store_template.exfil_id, store_template.conn_rows
    )


@pytest.fixture
def console_store(store_facts: StoreFacts) -> Iterator[DuckDBStore]:
    store = DuckDBStore(store_facts.path)
    yield store
    store.close()


@pytest.fixture
def config() -> Config:
    return Config()
