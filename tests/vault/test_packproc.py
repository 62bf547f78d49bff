"""The packing process of a backup (``packproc.py``): what it stores, and how it fails.

In process, on a vault opened with ``pack_in_child`` (the tests run on pytest's main
thread, alone, so the vault forks); through the command line against the test Dovecot
for the kills.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.vault.dovecot import PASSWORD
from tests.vault.mailgen import fill, open_client
from tests.vault.test_faults import FAST_KDF, SECRET, message_records, vigile, write_config

from vigile.vault.errors import VaultBusyError, VaultError
from vigile.vault.lock import Access, VaultLock
from vigile.vault.pack import scan_pack
from vigile.vault.packproc import can_fork
from vigile.vault.repo import Vault
from vigile.vault.settings import ImapAccount

pytestmark = pytest.mark.skipif(not can_fork(), reason="packs in a child on Linux, one thread")


def _contents(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randrange(50, 4000)) * 3 for _ in range(n)]


def _open(root: Path, pack_size: int = 40_000) -> Vault:
    return Vault(
        root, Vault.unlock(root, SECRET), writable=True, pack_size=pack_size, pack_in_child=True
    )


def _gone(pid: int, within: float = 10.0) -> bool:
    """Whether process ``pid`` has ended (or is a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.01)
    return False


def test_records_go_through_the_child_once_each(tmp_path: Path) -> None:
    """Small records through the ring (round it more than once), one larger than a
    batch through the pipe, repeats within and across batches stored once: every record
    reads back, and the index lists each once."""
    Vault.create(tmp_path, SECRET, FAST_KDF)
    contents = [*_contents(600, seed=1), random.Random(2).randbytes(5 << 20)]
    vault = _open(tmp_path)
    try:
        assert vault._child is not None, "the vault did not fork"
        stored = 0
        for start in range(0, len(contents), 50):
            group = contents[start : start + 50]
            stored += sum(new for _, new in vault.put_many(b"M", group + group[:3]))
            stored += sum(new for _, new in vault.put_many(b"M", contents[:2]))
        vault.flush()
        assert stored == len(contents)
        for content in contents:
            assert vault.get(vault.keys.blob_id(content)) == content
    finally:
        vault.close()
    assert len(message_records(tmp_path)) == len(contents)
    assert not list((tmp_path / "packs").glob(".tmp-*"))


def test_a_child_that_dies_is_one_clear_error_and_leaves_nothing_unrecoverable(
    tmp_path: Path,
) -> None:
    Vault.create(tmp_path, SECRET, FAST_KDF)
    contents = _contents(400, seed=3)
    vault = _open(tmp_path)
    try:
        assert vault._child is not None
        vault.put_many(b"M", contents[:100])
        os.kill(vault._child.pid, signal.SIGKILL)
        with pytest.raises(VaultError, match="killed by signal 9") as failed:
            for start in range(100, len(contents), 20):
                vault.put_many(b"M", contents[start : start + 20])
            vault.flush()
        assert "\n" not in str(failed.value)
        assert "Traceback" not in str(failed.value)
    finally:
        vault.close()
    reopened = Vault.open(tmp_path, SECRET, writable=True)
    try:
        assert not list((tmp_path / "packs").glob(".tmp-*"))  # removed at open
        indexed = {r.blob_id for r in reopened.index.records()}
        on_disk = {r.blob_id for p in reopened.pack_files() for r in scan_pack(p)}
        assert indexed == on_disk  # a pack published before the kill is indexed at open
        for blob_id in indexed:
            reopened.get(blob_id)
    finally:
        reopened.close()


def test_an_error_in_the_child_is_the_one_line_disk_error(tmp_path: Path) -> None:
    """The packs folder replaced by a file: the child's next pack cannot be created,
    and the parent raises the line the threads would give (``_disk_error``)."""
    Vault.create(tmp_path, SECRET, FAST_KDF)
    contents = _contents(400, seed=4)
    vault = _open(tmp_path)
    try:
        vault.put_many(b"M", contents[:50])
        vault.flush()
        (tmp_path / "packs").rename(tmp_path / "packs-aside")
        (tmp_path / "packs").write_bytes(b"")
        with pytest.raises(VaultError) as failed:
            for start in range(50, len(contents), 20):
                vault.put_many(b"M", contents[start : start + 20])
            vault.flush()
        assert str(failed.value) in (f"{tmp_path}: Not a directory", f"{tmp_path}: File exists")
        assert vault._child is None  # ended; records put from now on go to threads
    finally:
        vault.close()
        (tmp_path / "packs").unlink()
        (tmp_path / "packs-aside").rename(tmp_path / "packs")
    assert len(message_records(tmp_path)) >= 50


def test_the_child_keeps_the_writer_lock_while_it_lives(tmp_path: Path) -> None:
    """The child inherits the lock's descriptor: with the parent's own closed, no other
    writer can start while the child may still write."""
    Vault.create(tmp_path, SECRET, FAST_KDF)
    vault = _open(tmp_path)
    child = vault._child
    assert child is not None
    try:
        os.kill(child.pid, signal.SIGSTOP)
        vault._lock.release()
        with pytest.raises(VaultBusyError):
            VaultLock(tmp_path, Access.APPEND)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        vault.close()  # reaps the child
    VaultLock(tmp_path, Access.APPEND).release()


def test_no_child_while_another_thread_runs(tmp_path: Path) -> None:
    Vault.create(tmp_path, SECRET, FAST_KDF)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        vault = _open(tmp_path)
        try:
            assert vault._child is None
            vault.put_many(b"M", _contents(30, seed=5))
            vault.flush()
        finally:
            vault.close()
    finally:
        stop.set()
        other.join()
    assert len(message_records(tmp_path)) == 30


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _start_backup(account: ImapAccount, tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """A backup in a new process, once its packing child runs and a pack is published."""
    client = open_client(account, PASSWORD)
    fill(client, {"INBOX": 30, "Big": 12}, seed=12, large=12)
    client.logout()
    config = write_config(tmp_path, account, pack_mb=1)
    packs = tmp_path / "vault" / "packs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vigile", "vault", "backup", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    children: list[int] = []
    while time.monotonic() < deadline and not (children and list(packs.glob("*/*"))):
        children = _children(proc.pid)
        time.sleep(0.005)
    assert proc.poll() is None, "the backup finished before it could be interrupted"
    (child,) = children
    return proc, child


def _rerun_stores_each_message_once(tmp_path: Path) -> None:
    done = vigile(tmp_path / "vigile.toml", "backup")
    assert done.returncode == 0, done.stderr
    assert len(message_records(tmp_path / "vault")) == 42
    assert vigile(tmp_path / "vigile.toml", "verify").returncode == 0


def test_backup_whose_packing_child_is_killed(account: ImapAccount, tmp_path: Path) -> None:
    proc, child = _start_backup(account, tmp_path)
    os.kill(child, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in stderr
    (line,) = stderr.strip().splitlines()
    assert line.startswith("error: ") and "ended unexpectedly (killed by signal 9)" in line
    assert not list((tmp_path / "vault" / "snapshots").iterdir())
    _rerun_stores_each_message_once(tmp_path)


def test_a_killed_backup_takes_its_packing_child_with_it(
    account: ImapAccount, tmp_path: Path
) -> None:
    proc, child = _start_backup(account, tmp_path)
    proc.kill()
    proc.wait()
    assert _gone(child), "the packing child outlived its parent"
    assert not list((tmp_path / "vault" / "snapshots").iterdir())
    _rerun_stores_each_message_once(tmp_path)
