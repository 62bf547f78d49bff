"""``python -m bench [NAME ...]``: run every benchmark module (or the named ones) in order.

Modules are found as ``bench/*.py`` files with a ``main()``; missing or failing ones
are reported and the others still run. The exit code is non-zero if any failed.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path

from bench.common import update_section

#: Preferred order (ingest, capture, flows, detection, Exchange, console, generation); others
#: follow by name.
ORDER = (
    "zeek_ingest",
    "parquet_ingest",
    "pcap",
    "netflow",
    "netflow_collector",
    "detect",
    "server_detectors",
    "exchange",
    "console",
    "simulate",
)
NOT_BENCHMARKS = {"__init__", "__main__", "common"}


def discover() -> list[str]:
    """Benchmark module names present in this folder, in run order."""
    here = Path(__file__).parent
    found = {p.stem for p in here.glob("*.py")} - NOT_BENCHMARKS
    ordered = [n for n in ORDER if n in found]
    return ordered + sorted(found - set(ordered))


def run(name: str) -> bool:
    """Run one module's ``main()``; True if it finished."""
    began = time.perf_counter()
    print(f"== bench.{name}", flush=True)
    try:
        module = importlib.import_module(f"bench.{name}")
        main = getattr(module, "main", None)
        if main is None:
            print(f"   bench.{name} has no main(); skipped", flush=True)
            return True
        # Modules read their own options from sys.argv; run them with their defaults.
        saved, sys.argv = sys.argv, [f"bench/{name}.py"]
        try:
            body = main()
        finally:
            sys.argv = saved
        if isinstance(body, str):
            heading = getattr(module, "HEADING", name.replace("_", " ").capitalize())
            update_section(heading, body)
    except Exception:
        traceback.print_exc()
        print(f"   bench.{name} FAILED after {time.perf_counter() - began:.0f} s", flush=True)
        return False
    print(f"   bench.{name} done in {time.perf_counter() - began:.0f} s", flush=True)
    return True


def main(argv: list[str]) -> int:
    names = argv or discover()
    unknown = [n for n in names if n not in discover()]
    if unknown:
        print(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(discover())})")
        return 2
    failed = [n for n in names if not run(n)]
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
