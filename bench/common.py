"""Shared benchmark plumbing: contenders in fresh processes, the machine, docs sections."""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import re
import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"
PREAMBLE = (
    "# Benchmarks\n\n"
    "Measured with `make bench` (or `python -m bench.NAME` for one section) from the "
    "repository root. Every section names the exact command, the machine and the peers "
    "run side by side in the same process; figures are measured, never asserted in tests.\n"
)


@dataclass
class Measure:
    name: str
    seconds: float
    peak_rss_mb: float
    result: Any


def _child(fn: Callable[..., Any], args: tuple[Any, ...], queue: Any) -> None:
    start = time.perf_counter()
    result = fn(*args)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((seconds, peak_kb / 1024, result))


def measure(name: str, fn: Callable[..., Any], *args: Any) -> Measure:
    """Run ``fn(*args)`` in a fresh process so its peak memory is its own."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    while proc.is_alive() or not queue.empty():
        try:
            seconds, peak, result = queue.get(timeout=1)
            break
        except Exception:  # queue.Empty: keep waiting while the child lives
            continue
    else:
        raise RuntimeError(f"{name} failed (exit code {proc.exitcode})")
    proc.join()
    return Measure(name, seconds, peak, result)


def machine() -> str:
    """One line describing the machine: CPU model, cores usable, memory, Python, OS."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.findall(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[0])
        mem = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, IndexError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu}, {cores} cores{mem}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def update_section(heading: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section ``## heading`` of docs/benchmarks.md with ``body``.

    Other sections are left byte for byte as they are, so each area owns its own.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else PREAMBLE
    section = f"## {heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


class CountingSink:
    """An ingest sink that keeps only the rows per table, so that only the reader is
    measured; a rejected record stops the benchmark (its input must be clean)."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}

    def emit(self, table: str, columns: Mapping[str, Any], num_rows: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + num_rows

    def reject(self, position: int, reason: str, raw: str | bytes | None = None) -> None:
        raise SystemExit(f"unexpected reject at {position}: {reason}")

    def notice(self, message: str) -> None:
        pass

    def set_log_type(self, log_type: str) -> None:
        pass

    def progress(self, raw_bytes: int) -> None:
        pass
