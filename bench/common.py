"""Shared benchmark plumbing: contenders in fresh processes, the machine, docs sections."""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import re
import resource
import time
from collections.abc import Callable, Mapping, Sequence
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


#: Runs per contender when a benchmark is not told (``--repeat``): the fastest is kept.
REPEAT = 3


@dataclass
class Measure:
    """A contender's best run of ``runs``: the fastest by wall-clock time.

    ``seconds``, ``cpu_seconds`` and ``result`` come from that run (its result's own
    timings match its seconds); ``peak_rss_mb`` is the largest of all the runs.
    ``cpu_seconds`` is user plus system time of the child process, every thread, and of
    the programs it ran and waited for (a peer such as grep).
    """

    name: str
    seconds: float
    peak_rss_mb: float
    result: Any
    cpu_seconds: float = 0.0
    runs: int = 1


def _cpu_seconds() -> float:
    own = time.process_time()  # every thread of this process
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + children.ru_utime + children.ru_stime


def _child(fn: Callable[..., Any], args: tuple[Any, ...], queue: Any) -> None:
    start, cpu = time.perf_counter(), _cpu_seconds()
    result = fn(*args)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((seconds, cpu, peak_kb / 1024, result))


def _run_once(name: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> Measure:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    while proc.is_alive() or not queue.empty():
        try:
            seconds, cpu, peak, result = queue.get(timeout=1)
            break
        except Exception:  # queue.Empty: keep waiting while the child lives
            continue
    else:
        raise RuntimeError(f"{name} failed (exit code {proc.exitcode})")
    proc.join()
    return Measure(name, seconds, peak, result, cpu)


@dataclass(frozen=True)
class Contender:
    """One peer of a benchmark: ``fn(*args)`` run in a fresh process. ``before`` is
    called (here) before each of its runs to undo what a run leaves behind, such as the
    store it wrote: every run must do the same work."""

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    before: Callable[[], object] | None = None


def measure_turns(contenders: Sequence[Contender], repeat: int = 1) -> list[Measure]:
    """Measure peers side by side: ``repeat`` rounds in which each runs once in turn
    (A, B, A, B, ...), so a burst of other work on a shared machine slows a round of
    every peer rather than all the runs of one; the fastest run of each is kept (see
    :class:`Measure`). One :class:`Measure` per contender, in their order."""
    runs: list[list[Measure]] = [[] for _ in contenders]
    for _ in range(max(1, repeat)):
        for c, done in zip(contenders, runs, strict=True):
            if c.before is not None:
                c.before()
            done.append(_run_once(c.name, c.fn, c.args))
    return [_best(done) for done in runs]


def _best(runs: list[Measure]) -> Measure:
    best = min(runs, key=lambda m: m.seconds)
    best.peak_rss_mb = max(m.peak_rss_mb for m in runs)
    best.runs = len(runs)
    return best


def measure(name: str, fn: Callable[..., Any], *args: Any, repeat: int = 1) -> Measure:
    """Run ``fn(*args)`` ``repeat`` times, each in a fresh process so its peak memory is
    its own; keep the fastest run (see :class:`Measure`).

    One sample on a shared machine is as slow as whatever else ran meanwhile: the best
    of several is the contender's own speed. Peers compared with each other are better
    measured together by :func:`measure_turns`.
    """
    return measure_turns([Contender(name, fn, args)], repeat)[0]


def add_repeat_option(parser: argparse.ArgumentParser) -> None:
    """``--repeat N``: runs per contender, the fastest kept (as ``bench.vault`` takes it)."""
    parser.add_argument(
        "--repeat",
        type=int,
        default=REPEAT,
        help=f"runs per contender, each in a fresh process; the fastest is kept ({REPEAT})",
    )


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

    Other sections are left byte for byte as they are, so each area owns its own. What a
    bench writes is the section's text up to its first ``###`` subsection: subsections
    (earlier rounds' figures, notes written by hand) stay as they are, after it.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else PREAMBLE
    section = f"## {heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^##[# ]|\Z)", re.S | re.M)
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
