"""Shared benchmark plumbing: run a contender in a fresh process, report time and peak RSS."""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"


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
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"
    )
