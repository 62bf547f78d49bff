"""The test Dovecot's temporary folders: those of killed runs are removed at the next start."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from tests.vault import dovecot


def _folder(tmp: Path, name: str, age: float, pid: int | None = None) -> Path:
    root = tmp / (dovecot.PREFIX + name)
    (root / "run").mkdir(parents=True)
    (root / "home").mkdir()
    if pid is not None:
        (root / "run" / "master.pid").write_text(f"{pid}\n")
    then = time.time() - age
    os.utime(root, (then, then))
    return root


def test_only_folders_of_dovecots_gone_long_ago_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dovecot.tempfile, "gettempdir", lambda: str(tmp_path))
    gone = _folder(tmp_path, "gone", age=3600)
    dead = _folder(tmp_path, "dead", age=3600, pid=2**22 + 1)  # above Linux's pid_max
    running = _folder(tmp_path, "running", age=3600, pid=os.getpid())
    starting = _folder(tmp_path, "starting", age=5)  # being set up: no pid file yet
    other = tmp_path / "unrelated-folder"
    other.mkdir()
    os.utime(other, (0, 0))
    assert sorted(dovecot.remove_stale_folders()) == sorted([gone, dead])
    assert running.exists() and starting.exists() and other.exists()
    assert not gone.exists() and not dead.exists()
