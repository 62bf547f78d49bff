"""A real ``vigile serve`` for end-to-end tests: on a free loopback port, stopped after."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def vigile(
    *args: str, stdin: str | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run the ``vigile`` command (waiting up to 30 s for a store another process holds)."""
    return subprocess.run(
        [sys.executable, "-m", "vigile", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "VIGILE_STORE_WAIT": "30"},
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(db: Path, *options: str) -> Iterator[str]:
    """``vigile serve`` over ``db`` on 127.0.0.1 (with more ``options``, such as
    ``--config``); yields its base URL once it listens."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "vigile", "serve", "--db", str(db), "--port", str(port), *options],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("vigile serve did not start listening within 60 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextmanager
def holding(db: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``db`` for writing, as a long ingest does, until the block
    ends or the caller lets go (``holder.communicate("")``)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, duckdb; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
            "sys.stdin.read(); con.close()",
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held", (
            holder.stderr.read() if holder.stderr else ""
        )
        yield holder
    finally:
        if holder.returncode is None:
            holder.communicate("", timeout=30)
