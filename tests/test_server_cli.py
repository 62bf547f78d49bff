"""``vigile hunt`` with allowlists: suppressed findings hidden by default, shown on request."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden" / "server"


def _setup(tmp_path: Path) -> Path:
    spec = importlib.util.spec_from_file_location("server_golden_regen_cli", GOLDEN / "regen.py")
    assert spec is not None and spec.loader is not None
    regen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regen)
    store, _ = regen.prepare(tmp_path)
    store.close()
    return tmp_path / "vigile.toml"


def _vigile(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigile", *args], capture_output=True, text=True, timeout=300
    )


def test_show_suppressed_lists_what_suppressed_each(tmp_path: Path) -> None:
    config = _setup(tmp_path)
    db = str(tmp_path / "v.duckdb")
    base = ["hunt", str(GOLDEN / "scenario"), "--db", db, "--config", str(config), "-n", "100"]
    quiet = _vigile(*base, "--json")
    assert quiet.returncode == 0, quiet.stderr
    rows = [json.loads(line) for line in quiet.stdout.splitlines()]
    assert rows and all(r["suppressed_by"] is None for r in rows)
    loud = _vigile(*base, "--json", "--show-suppressed")
    shown = [json.loads(line) for line in loud.stdout.splitlines()]
    suppressed = [r for r in shown if r["suppressed_by"]]
    assert {r["dst"] for r in suppressed} == {"93.184.221.240", "91.219.236.18"}
    assert len(shown) == len(rows) + len(suppressed)
    table = _vigile(*base)
    assert "2 finding(s) suppressed" in table.stderr


def test_bad_allowlist_is_one_line_error(tmp_path: Path) -> None:
    config = _setup(tmp_path)
    (tmp_path / "allow.toml").write_text('[[allow]]\ndomain = "a*.example.com"\nreason = "x"\n')
    result = _vigile("hunt", "--db", str(tmp_path / "v.duckdb"), "--config", str(config))
    assert result.returncode == 2
    assert "allow.toml: entry 1:" in result.stderr
    assert "Traceback" not in result.stderr
