"""The benchmark runner's plumbing: sections of docs/benchmarks.md and module discovery."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.__main__ import discover
from bench.common import Contender, measure, measure_turns, update_section

#: A program that spends 0.3 s of CPU.
BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"


def busy() -> None:
    exec(BUSY)


def sleep() -> None:
    time.sleep(0.3)


def busy_program() -> None:
    subprocess.run([sys.executable, "-c", BUSY], check=True)


def slow_first(counter: str) -> int:
    """The first run (of a process each) waits a second, the others 0.05 s."""
    path = Path(counter)
    run = len(path.read_text()) + 1 if path.exists() else 1
    path.write_text("x" * run)
    time.sleep(1.0 if run == 1 else 0.05)
    return run


def test_update_section_replaces_only_its_own_section(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nIntro.\n\n## Pcap\n\nfast\n\n## Detect\n\nquick\n")
    update_section("Pcap", "fastest", doc)
    update_section("Simulation", "new", doc)
    assert doc.read_text() == (
        "# Benchmarks\n\nIntro.\n\n## Pcap\n\nfastest\n\n## Detect\n\nquick\n\n"
        "## Simulation\n\nnew\n"
    )


def test_update_section_keeps_the_subsections_written_by_hand(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("## Pcap\n\nfast\n\n### Earlier\n\nslow\n\n## Detect\n\nquick\n")
    update_section("Pcap", "fastest", doc)
    assert doc.read_text() == ("## Pcap\n\nfastest\n\n### Earlier\n\nslow\n\n## Detect\n\nquick\n")


def test_discover_lists_modules_in_run_order() -> None:
    found = discover()
    assert "simulate" in found and "common" not in found and "__main__" not in found
    assert found.index("zeek_ingest") < found.index("simulate")


def note(path: str, name: str) -> str:
    with open(path, "a") as f:
        f.write(f"{name} ")
    return name


def test_peers_take_turns_and_each_run_starts_afresh(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    undone = []
    peers = [
        Contender(name, note, (log, name), before=lambda name=name: undone.append(name))
        for name in ("a", "b")
    ]
    a, b = measure_turns(peers, repeat=2)
    assert Path(log).read_text() == "a b a b " and undone == ["a", "b", "a", "b"]
    assert (a.name, a.result, a.runs, b.name, b.result, b.runs) == ("a", "a", 2, "b", "b", 2)


def test_measure_reports_cpu_of_the_child_and_of_the_programs_it_ran() -> None:
    spinning, sleeping, program = (measure(f.__name__, f) for f in (busy, sleep, busy_program))
    assert spinning.cpu_seconds >= 0.3 and sleeping.seconds >= 0.3
    assert sleeping.cpu_seconds < 0.15  # asleep, not running
    assert program.cpu_seconds >= 0.3  # grep-like peers run as programs


def test_measure_keeps_the_fastest_of_the_runs(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    m = measure("slow first", slow_first, str(counter), repeat=3)
    assert counter.read_text() == "xxx" and m.runs == 3  # three fresh processes
    assert m.seconds < 0.5 and m.result in (2, 3)  # not the first, slow one
    assert m.peak_rss_mb > 0
