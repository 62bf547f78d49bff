"""Golden files of the server-side detectors (input and expected output side by side).

Inputs: ``tests/golden/server/scenario`` (Zeek JSON logs written by
``make_scenario.py``), ``vigile.toml``, ``allow.toml``, ``intel/`` and ``asn.json``.
Expected: ``tests/golden/server/expected/<detector>.json``; regenerate with
``python tests/golden/server/regen.py`` and review the diff.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from vigile.detect import HuntContext
from vigile.hunt import run_detectors
from vigile.store import Window

GOLDEN = Path(__file__).parent / "golden" / "server"


def _load_regen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("server_golden_regen", GOLDEN / "regen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


regen = _load_regen()


@pytest.fixture(scope="module")
def computed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = regen.compute(tmp_path_factory.mktemp("golden"))
    return json.loads(json.dumps(result, sort_keys=True, default=str))  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", [d.name for d in regen.DETECTORS] + ["hunt"])
def test_golden_findings(computed: dict[str, list[dict[str, Any]]], name: str) -> None:
    expected = json.loads((GOLDEN / "expected" / f"{name}.json").read_text())
    assert computed[name] == expected


def test_every_server_detector_is_registered_and_has_a_golden_file() -> None:
    from vigile.detect import registered_detectors

    registered = {d.name for d in registered_detectors()}
    for det in regen.DETECTORS:
        assert det.name in registered
        assert (GOLDEN / "expected" / f"{det.name}.json").is_file()


def _top_for_host(findings: list[dict[str, Any]], host: str) -> dict[str, Any]:
    mine = [
        f
        for f in findings
        if host in (f["src"], f["dst"])
        and f["detector"] not in ("roles", "host_score")
        and not f["suppressed_by"]
    ]
    return mine[0]


def test_mailbox_exfil_and_bmc_implant_rank_first_for_their_hosts(
    computed: dict[str, list[dict[str, Any]]],
) -> None:
    hunt = computed["hunt"]
    mail = _top_for_host(hunt, "10.0.0.25")
    assert (mail["detector"], mail["dst"]) == ("exfil", "89.248.165.74")
    bmc = _top_for_host(hunt, "10.9.0.5")
    assert bmc["dst"] == "185.220.101.7"
    assert bmc["severity"] == "critical"
    exfil = computed["exfil"][0]
    assert "new destination" in exfil["evidence"]["modifiers"]


def test_suppressed_findings_say_what_suppressed_them(
    computed: dict[str, list[dict[str, Any]]],
) -> None:
    suppressed = {f["dst"]: f["suppressed_by"] for f in computed["hunt"] if f["suppressed_by"]}
    assert suppressed["93.184.221.240"].startswith("priors:os_updates#")
    assert "Windows Update" in suppressed["93.184.221.240"]
    assert suppressed["91.219.236.18"].startswith("allow.toml#1 *.files-share.net")
    # the user entry is scoped to rare_destination: the feed hit on the same address stays
    intel = [f for f in computed["hunt"] if f["detector"] == "threat_intel"]
    assert any(f["dst"] == "91.219.236.18" and not f["suppressed_by"] for f in intel)


def test_first_day_without_history_raises_no_alarm_storm(tmp_path: Path) -> None:
    store, ctx = regen.prepare(tmp_path)
    try:
        oldest, _ = store.time_bounds("conn")
        assert oldest is not None
        day1 = Window(oldest, oldest + timedelta(days=1))
        ctx = HuntContext(store, ctx.config, day1)
        findings = run_detectors(ctx, regen.DETECTORS)
    finally:
        store.close()
    by_detector = {f.detector for f in findings}
    assert "exfil" not in by_detector  # no baseline: not scored, rather than guessed
    assert "rare_destination" not in by_detector  # nothing can be "new" on day one
    loud = [f for f in findings if f.severity in ("high", "critical")]
    assert loud == [], [f.explanation for f in loud]


def test_hunt_keeps_suppressions_added_in_the_console(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    store, ctx = regen.prepare(tmp_path)
    now = datetime(2024, 5, 4, tzinfo=UTC)
    entry = {
        "entry_id": "console:1",
        "kind": "cidr",
        "value": "185.220.101.7/32",
        "detector": "threat_intel",
        "reason": "sinkholed by our provider",
        "created_by": "admin",
        "created_at": now,
        "updated_at": now,
    }
    try:
        with store.state_writer() as w:
            w.insert("allowlist_entries", [entry])
        findings = run_detectors(ctx, regen.DETECTORS)
    finally:
        store.close()
    intel = [f for f in findings if f.detector == "threat_intel" and f.dst == "185.220.101.7"]
    assert intel and all(f.suppressed_by == "console:1" for f in intel)
    others = [f for f in findings if f.detector == "role_violation" and f.dst == "185.220.101.7"]
    assert others and all(f.suppressed_by is None for f in others)
    pair = next(f for f in findings if f.detector == "pair_score" and f.dst == "185.220.101.7")
    assert "threat_intel" not in pair.evidence["detectors"]
