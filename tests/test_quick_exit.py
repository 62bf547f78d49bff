"""The console-script entry point's quick exit (``vigile.cli.allow_quick_exit``).

Each case runs ``vigile.cli.main`` in a new interpreter that registers an ``atexit``
handler: the handler runs on the interpreter's usual exit and not on the quick one, so
its line on stdout tells which exit was taken; the exit status and the command's own
output must be the same either way.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import atexit, sys, threading, time
import vigile.cli as cli
atexit.register(lambda: print("finalised", flush=True))
if "allow" in sys.argv[1]:
    cli.allow_quick_exit()
if "thread" in sys.argv[1]:
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
sys.argv = ["vigile", *sys.argv[2:]]
cli.main()
"""


def run(case: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, case, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("case", "finalised"),
    [("plain", True), ("allow", False), ("allow+thread", True)],
)
def test_quick_exit_only_when_allowed_and_alone(case: str, finalised: bool) -> None:
    done = run(case, "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout and "vault" in done.stdout  # the output was flushed
    assert ("finalised" in done.stdout) is finalised


def test_quick_exit_keeps_a_user_error_status_and_message(tmp_path) -> None:
    missing = str(tmp_path / "none.toml")
    usual = run("plain", "vault", "snapshots", "--config", missing)
    quick = run("allow", "vault", "snapshots", "--config", missing)
    assert usual.returncode == quick.returncode != 0
    assert "error:" in usual.stderr and quick.stderr == usual.stderr
    assert "finalised" in usual.stdout and "finalised" not in quick.stdout
