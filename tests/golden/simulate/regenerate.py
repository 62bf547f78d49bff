"""Regenerate the simulator's golden output: ``python tests/golden/simulate/regenerate.py``.

The folder holds what ``vigile simulate`` writes for the arguments in ``ARGS`` (Zeek
logs, vigile.toml, ground-truth.csv). Review the diff before committing: a change here
is a change in what every user of the simulator gets.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from typer.testing import CliRunner

HERE = Path(__file__).resolve().parent
ARGS = [
    "--seed",
    "1",
    "--days",
    "0.02",
    "--hosts",
    "2",
    "--start",
    "2026-03-03",
    "-s",
    "bmc_beacon:start_day=0,sleep=,period=300",
    "-s",
    "dns_beacon:start_day=0",
]
OUTPUTS = ("conn.log", "dns.log", "http.log", "ssl.log", "vigile.toml", "ground-truth.csv")


def generate(out: Path) -> None:
    from vigile.cli import app

    result = CliRunner().invoke(app, ["simulate", "--out", str(out), *ARGS])
    if result.exit_code != 0:
        raise SystemExit(result.output)


if __name__ == "__main__":
    tmp = HERE / "_new"
    shutil.rmtree(tmp, ignore_errors=True)
    generate(tmp)
    for name in OUTPUTS:
        shutil.copy(tmp / name, HERE / name)
    shutil.rmtree(tmp)
    print(f"wrote {len(OUTPUTS)} files to {HERE}", file=sys.stderr)
