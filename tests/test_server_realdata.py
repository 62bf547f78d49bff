"""Server-side detections on real captures from ../shared/data (labels from their authors).

* Stratosphere CTU-Normal-40 day 1 (``008-zeek-mixed``): a benign Windows host
  attacked from the internet; every flow is labelled. Precision of the top 20
  findings is measured against the labels and recorded in docs/evaluation.md.
* RITA's ``missing_host``: an internet-facing server with one HTTP beacon client.
"""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from vigile.config import load_config
from vigile.detect import Finding, HuntContext, default_window, registered_detectors
from vigile.hunt import run_detectors
from vigile.ingest import ingest_paths
from vigile.store.duckdb import DuckDBStore

HOST_008 = "147.32.81.167"
TOP = 20
#: Measured on this data (docs/evaluation.md): 1.00 with the server-side detectors
#: alone, 0.95 with the C2 detectors too (an unnamed Microsoft address keeps one TCP
#: session alive every 28 min, a medium finding); the test fails if a change lowers it.
MIN_PRECISION_008 = 0.95


def _hunt(data: Path, config_text: str, tmp_path: Path) -> list[Finding]:
    cfg_path = tmp_path / "vigile.toml"
    cfg_path.write_text(config_text)
    config = load_config(cfg_path)
    store = DuckDBStore(":memory:")
    try:
        ingest_paths(store, [data])
        ctx = HuntContext(store, config, default_window(store, config.window_hours))
        return run_detectors(ctx, registered_detectors())
    finally:
        store.close()


def _labels(conn_log: Path) -> dict[frozenset[str], Counter[str]]:
    """Per unordered address pair, how many flows carry each generic label."""
    labels: dict[frozenset[str], Counter[str]] = {}
    fields: list[str] = []
    opener: Any = gzip.open if conn_log.suffix == ".gz" else open
    with opener(conn_log, "rt") as f:
        for row in csv.reader(f, delimiter="\t"):
            if row and row[0] == "#fields":
                fields = row[1:]
            if not row or row[0].startswith("#"):
                continue
            rec = dict(zip(fields, row, strict=False))
            pair = frozenset((rec["id.orig_h"], rec["id.resp_h"]))
            labels.setdefault(pair, Counter())[rec["label"]] += 1
    return labels


def _ranked(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if not f.suppressed_by and f.detector != "roles"]


def _peer(f: Finding) -> str | None:
    """The outside address a finding is about; host-level summaries name their top one."""
    if f.dst is None:
        peer = f.evidence.get("top_peer")
        return str(peer) if peer else None
    return f.dst if f.src == HOST_008 else f.src


def test_008_inbound_attacks_surface_and_benign_egress_stays_quiet(
    shared_data: Path, tmp_path: Path
) -> None:
    data = shared_data / "zeek" / "stratosphere" / "008-zeek-mixed" / "data"
    findings = _hunt(data, f'[network]\ninternal = ["{HOST_008}/32"]\n', tmp_path)
    labels = _labels(data / "conn.log.labeled")
    ranked = _ranked(findings)
    # precision over findings that name an outside address (a labelled pair)
    with_peer = [(f, p) for f in ranked if (p := _peer(f)) is not None]
    assert len(with_peer) >= TOP
    verdicts = []
    for _, peer in with_peer[:TOP]:
        counts = labels.get(frozenset((HOST_008, peer)), Counter())
        verdicts.append(counts.most_common(1)[0][0] if counts else "unlabelled")
    precision = verdicts.count("Malicious") / TOP
    print(f"008-zeek-mixed precision@{TOP} = {precision:.2f} ({Counter(verdicts)})")
    assert precision >= MIN_PRECISION_008
    # The host's own (benign) egress: findings where it opened the connection, from every
    # detector and the pair and host scores. Its beacon-like keep-alive to an unnamed
    # Microsoft address is one TCP session, capped at medium (detect/keepalive.py).
    egress = [f for f in ranked if f.src == HOST_008]
    loud = [f for f in egress if f.severity in ("high", "critical")]
    assert loud == [], [f.explanation for f in loud]


def test_missing_host_beacon_pair_tops_the_host_score(shared_data: Path, tmp_path: Path) -> None:
    if "beacon" not in {d.name for d in registered_detectors()}:
        pytest.skip("the beacon detector is not installed in this tree")
    data = shared_data / "zeek" / "rita" / "missing_host"
    findings = _hunt(data, '[network]\ninternal = ["64.225.56.201/32"]\n', tmp_path)
    hosts = [f for f in findings if f.detector == "host_score" and not f.suppressed_by]
    top = hosts[0]
    assert top.src == "64.225.56.201"
    assert top.evidence["top_peer"] == "73.54.23.243"
    assert "missing HTTP Host header" in top.explanation
    assert "rare user agent 'Modzilla/0.0001 (Atari 7800)'" in top.explanation
