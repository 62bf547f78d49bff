"""The benchmark runner's plumbing: sections of docs/benchmarks.md and module discovery."""

from __future__ import annotations

from pathlib import Path

from bench.__main__ import discover
from bench.common import update_section


def test_update_section_replaces_only_its_own_section(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nIntro.\n\n## Pcap\n\nfast\n\n## Detect\n\nquick\n")
    update_section("Pcap", "fastest", doc)
    update_section("Simulation", "new", doc)
    assert doc.read_text() == (
        "# Benchmarks\n\nIntro.\n\n## Pcap\n\nfastest\n\n## Detect\n\nquick\n\n"
        "## Simulation\n\nnew\n"
    )


def test_discover_lists_modules_in_run_order() -> None:
    found = discover()
    assert "simulate" in found and "common" not in found and "__main__" not in found
    assert found.index("zeek_ingest") < found.index("simulate")
