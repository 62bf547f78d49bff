"""Golden files of the server-side detectors: run them on the scenario, write the findings.

``python tests/golden/server/regen.py`` (from the repository root, with the venv
python) rewrites ``expected/<detector>.json`` and ``expected/hunt.json``; review the
diff before committing. ``tests/test_server_golden.py`` runs the same code and
compares. The scenario logs are written by ``make_scenario.py``; the ASN database
is built here from ``asn.json`` with ``mmdb-writer`` (no database is shipped).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import netaddr
from mmdb_writer import MMDBWriter

from vigile.config import load_config
from vigile.detect import Detector, HuntContext, default_window
from vigile.detect.exfil import ExfilDetector
from vigile.detect.rare_destination import RareDestinationDetector
from vigile.detect.role_violation import RoleViolationDetector
from vigile.detect.roles import RolesDetector
from vigile.detect.threat_intel import ThreatIntelDetector
from vigile.hunt import run_detectors
from vigile.ingest import ingest_paths
from vigile.store.duckdb import DuckDBStore

HERE = Path(__file__).parent
DETECTORS: tuple[type[Detector], ...] = (
    ExfilDetector,
    RareDestinationDetector,
    RoleViolationDetector,
    RolesDetector,
    ThreatIntelDetector,
)
INPUTS = ("vigile.toml", "allow.toml", "intel")


def write_asn_database(spec: Path, out: Path) -> None:
    """A tiny GeoLite2-ASN-shaped database from ``{cidr: [asn, organisation]}``."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    for cidr, (asn, org) in json.loads(spec.read_text()).items():
        writer.insert_network(
            netaddr.IPSet([cidr]),
            {"autonomous_system_number": asn, "autonomous_system_organization": org},
        )
    writer.to_db_file(str(out))


def prepare(workdir: Path) -> tuple[DuckDBStore, HuntContext]:
    """Copy the inputs to ``workdir``, build the ASN database, ingest the scenario."""
    for name in INPUTS:
        src = HERE / name
        if src.is_dir():
            shutil.copytree(src, workdir / name, dirs_exist_ok=True)
        else:
            shutil.copy(src, workdir / name)
    write_asn_database(HERE / "asn.json", workdir / "asn.mmdb")
    store = DuckDBStore(":memory:")
    ingest_paths(store, [HERE / "scenario"])
    config = load_config(workdir / "vigile.toml")
    return store, HuntContext(store, config, default_window(store, config.window_hours))


def normalise(findings: list[Any]) -> list[dict[str, Any]]:
    """Findings as JSON, ranked, without the run-dependent fields."""
    return [f.to_json() for f in findings]


def compute(workdir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every detector alone, then the whole hunt with its passes."""
    store, ctx = prepare(workdir)
    out = {}
    try:
        for det in DETECTORS:
            found = sorted(det().run(ctx), key=lambda f: (-f.score, f.id))
            out[det.name] = normalise(found)
        out["hunt"] = normalise(run_detectors(ctx, DETECTORS))
    finally:
        store.close()
    return out


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        results = compute(Path(tmp))
    expected = HERE / "expected"
    expected.mkdir(exist_ok=True)
    for name, rows in results.items():
        text = json.dumps(rows, indent=1, sort_keys=True, default=str) + "\n"
        (expected / f"{name}.json").write_text(text, encoding="utf-8")
        print(f"{name}: {len(rows)} finding(s)", file=sys.stderr)


if __name__ == "__main__":
    main()
