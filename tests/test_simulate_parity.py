"""The same simulated traffic through both ingest paths: Zeek logs and a packet capture.

``vigile simulate`` writes one run as Zeek TSV logs and, with the same seed, as a
capture; ``vigile ingest`` reads each into its own store. Every conn, dns, http and
tls row must agree, except for the differences named here and in docs/simulate.md.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from typer.testing import CliRunner

from vigile.cli import app
from vigile.store.duckdb import DuckDBStore

ARGS = ["--days", "0.125", "--hosts", "4", "--seed", "5", "--activity", "8"]
SCENARIOS = (
    "bmc_beacon:start_day=0,sleep=",
    "http_beacon:start_day=0",
    "dns_tunnel:start_day=0.02,minutes=2",
    "port_scan:start_day=0.05,targets=4",
    "long_connection:start_day=0,hours=2",
)
#: Services the Zeek logs name and vigile's packet reader does not identify (it leaves null).
NAMED_ONLY_BY_ZEEK = {"snmp", "ntp", "ipmi", "krb", "smb", "ldap", "smtp"}
COMPARED = {
    "conn": (
        "service",
        "duration",
        "orig_bytes",
        "resp_bytes",
        "orig_ip_bytes",
        "resp_ip_bytes",
        "orig_pkts",
        "resp_pkts",
        "conn_state",
        "history",
    ),
    "dns": (
        "proto",
        "trans_id",
        "query",
        "qtype",
        "qtype_name",
        "rcode",
        "rcode_name",
        "answers",
        "ttls",
    ),
    "http": ("trans_depth", "method", "host", "uri", "user_agent", "status"),
    "tls": ("version", "cipher", "sni", "ja3", "ja3s", "established"),
}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DuckDBStore]:
    root = tmp_path_factory.mktemp("parity")
    out = {}
    for fmt in ("zeek", "pcap"):
        args = ["simulate", "--out", str(root / fmt), "-f", fmt, *ARGS]
        for s in SCENARIOS:
            args += ["-s", s]
        done = CliRunner().invoke(app, args)
        assert done.exit_code == 0, done.output
        db = root / f"{fmt}.duckdb"
        done = CliRunner().invoke(app, ["ingest", str(root / fmt), "--db", str(db)])
        assert done.exit_code == 0, done.output
        out[fmt] = DuckDBStore(db)
    return out


def _rows(store: DuckDBStore, table: str) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Rows by 4-tuple, each list in time order."""
    out: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in store.scan(table, order_by=["ts"]).to_pylist():
        out[(row["src"], row["src_port"], row["dst"], row["dst_port"])].append(row)
    return out


def _pairs(stores: dict[str, DuckDBStore], table: str) -> list[tuple[dict, dict]]:
    zeek, pcap = _rows(stores["zeek"], table), _rows(stores["pcap"], table)
    assert zeek.keys() == pcap.keys()
    pairs = []
    for key, rows in zeek.items():
        assert len(rows) == len(pcap[key]), key
        for z, p in zip(rows, pcap[key], strict=True):
            # Both stamp the same packet; each path rounds to microseconds on its own.
            assert abs((z["ts"] - p["ts"]).total_seconds()) <= 2e-6, (key, z["ts"], p["ts"])
            pairs.append((z, p))
    assert pairs
    return pairs


def _close(a: Any, b: Any) -> bool:
    """Durations: each path rounds its two timestamps to microseconds on its own."""
    return isinstance(a, float) and isinstance(b, float) and abs(a - b) <= 2e-6


def _documented(table: str, column: str, z: dict, p: dict) -> bool:
    """True where a difference is one docs/simulate.md names (see there for why)."""
    zv, pv = z[column], p[column]
    if table == "conn" and column == "service":
        return pv is None and zv in NAMED_ONLY_BY_ZEEK
    if table == "conn" and column in ("duration", "orig_bytes", "resp_bytes"):
        return z["conn_state"] == "S0" and zv is None and pv == 0
    if table == "dns" and column == "answers":
        return zv == ["<unknown type=10>"] and pv == ["<NULL>"]  # how each names a NULL answer
    return False


@pytest.mark.parametrize("table", sorted(COMPARED))
def test_zeek_and_pcap_paths_give_the_same_rows(stores: dict[str, DuckDBStore], table: str) -> None:
    pairs = _pairs(stores, table)
    unexplained = []
    documented: dict[str, int] = defaultdict(int)
    for z, p in pairs:
        for column in COMPARED[table]:
            if z[column] == p[column] or _close(z[column], p[column]):
                continue
            if _documented(table, column, z, p):
                documented[column] += 1
            else:
                unexplained.append((column, z[column], p[column], z["src"], z["dst_port"]))
    assert unexplained == [], unexplained[:10]
    if table == "conn":
        # The documented differences do occur in this run, so the rules above are exercised.
        assert {"service", "duration"} <= documented.keys(), documented
        assert len(pairs) > 2000
    if table == "dns":
        assert documented["answers"] > 0
