"""Who may use a vault at the same time (``vigile.vault.lock``): prune runs alone, a
backup runs beside readers, and a command refused says why in one line. The backups are
real ones, from the test Dovecot."""

from __future__ import annotations

import hashlib
import itertools
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from tests.vault.dovecot import PASSWORD
from tests.vault.mailgen import expunge_first, fill, open_client
from tests.vault.test_faults import SECRET, rows, vigile, vigile_process, write_config

from vigile.vault.backup import backup_account
from vigile.vault.errors import VaultBusyError, VaultError
from vigile.vault.imap import ImapSource
from vigile.vault.lock import Access, VaultLock
from vigile.vault.prune import forget, prune
from vigile.vault.repo import Vault
from vigile.vault.settings import ImapAccount

R, S, A, D = Access.READ, Access.STEADY, Access.APPEND, Access.DELETE
#: Second access refused while the first is held, and the reason the refusal gives.
REFUSED = {
    (D, R): "a prune is deleting",
    (A, S): "is writing",
    (D, S): "is writing",
    (S, A): "prune --dry-run",
    (A, A): "is writing",
    (D, A): "is writing",
    (R, D): "is reading this vault",
    (S, D): "prune --dry-run",
    (A, D): "is writing",
    (D, D): "is writing",
}


@pytest.mark.parametrize(("held", "wanted"), list(itertools.product(Access, Access)))
def test_which_accesses_exclude_each_other(tmp_path: Path, held: Access, wanted: Access) -> None:
    first = VaultLock(tmp_path, held)
    try:
        if (held, wanted) in REFUSED:
            with pytest.raises(VaultBusyError, match=REFUSED[held, wanted]):
                VaultLock(tmp_path, wanted)
        else:
            VaultLock(tmp_path, wanted).release()
    finally:
        first.release()
    VaultLock(tmp_path, wanted).release()  # once let go, nothing is left held


def test_a_refused_prune_holds_nothing(tmp_path: Path) -> None:
    """Refused by a reader, prune lets go of the writer lock it had already taken."""
    reader = VaultLock(tmp_path, R)
    with pytest.raises(VaultBusyError):
        VaultLock(tmp_path, D)
    VaultLock(tmp_path, A).release()
    reader.release()


def one_error_line(done: subprocess.CompletedProcess[str], says: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def vault_files(root: Path) -> dict[str, str]:
    """Every file of the vault and a hash of its bytes (the lock files left out)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in ("lock", "readers")
    }


def indexed(root: Path) -> tuple[set[str], set[bytes]]:
    """The packs and record ids the index holds, read as ``vault ls`` would."""
    with Vault.open(root, SECRET) as reader:
        return set(reader.index.packs()), {r.blob_id for r in reader.index.records()}


def test_prune_cannot_change_the_index_while_a_backup_runs(
    account: ImapAccount, tmp_path: Path
) -> None:
    """Half-way through a first backup, its records are indexed and no snapshot names
    them yet: a prune then would delete them all. Every way of starting one is refused,
    and the backup completes whole."""
    client = open_client(account, PASSWORD)
    fill(client, {"INBOX": 150, "Archive": 60, "Été": 5}, seed=5)  # packs published mid-run
    client.logout()
    config = write_config(tmp_path, account)
    root = tmp_path / "vault"
    fetched: list[str] = []

    def meanwhile(folder: str, size: int) -> None:
        fetched.append(folder)
        if tried or len(fetched) % 10:
            return
        packs, records = indexed(root)
        if not packs:  # the worker has not published a pack yet
            return
        tried.append(len(fetched))
        for access in (Access.DELETE, Access.STEADY):
            with pytest.raises(VaultBusyError, match="another vigile process is writing"):
                Vault.open(root, SECRET, access=access)
        one_error_line(vigile_process(config, "prune", "--keep-within", "0"), "is writing")
        one_error_line(vigile(config, "prune", "--keep-within", "0", "--dry-run"), "is writing")
        with Vault.open(root, SECRET) as reader:  # open to read, as ls or restore are
            for dry_run in (False, True):
                with pytest.raises(VaultError, match="needs the vault opened for"):
                    forget(reader, timedelta(0), dry_run=dry_run)
                with pytest.raises(VaultError, match="needs the vault opened for"):
                    prune(reader, dry_run=dry_run)
        after_packs, after_records = indexed(root)  # the backup may have added meanwhile
        assert packs <= after_packs and records <= after_records
        assert all((root / "packs" / p[:2] / p).exists() for p in packs)

    tried: list[int] = []
    source = ImapSource(account)
    try:
        with Vault.open(root, SECRET, writable=True, pack_size=64 * 1024) as vault:
            backup_account(vault, source, progress=meanwhile)
    finally:
        source.close()
    assert tried and tried[0] < len(fetched)  # checked before the last message
    assert vigile(config, "verify").returncode == 0
    (snap,) = rows(vigile(config, "snapshots", "--json"))
    assert snap["messages"] == 215


def test_backup_is_refused_while_a_prune_runs(filled: ImapAccount, tmp_path: Path) -> None:
    config = write_config(tmp_path, filled)
    root = tmp_path / "vault"
    with Vault.open(root, SECRET, access=Access.DELETE) as pruning:
        one_error_line(vigile_process(config, "backup"), "another vigile process is writing")
        assert pruning.index.count() == 0  # nothing fetched, stored or indexed
    assert not list((root / "packs").rglob("*")) and not list((root / "snapshots").iterdir())
    assert vigile(config, "backup").returncode == 0


def test_prune_and_readers_exclude_each_other(filled: ImapAccount, tmp_path: Path) -> None:
    config = write_config(tmp_path, filled, pack_mb=0.05)
    root = tmp_path / "vault"
    assert vigile(config, "backup").returncode == 0
    expunge_first(filled, PASSWORD, "Archive", 4)
    assert vigile(config, "backup").returncode == 0
    before = vault_files(root)

    with Vault.open(root, SECRET) as reader:  # a restore or verify in progress
        one_error_line(
            vigile_process(config, "prune", "--keep-within", "0"), "is reading this vault"
        )
        planned = vigile(config, "prune", "--keep-within", "0", "--dry-run", "--json")
        assert planned.returncode == 0, planned.stderr  # a dry run reads beside readers
        assert len(reader.snapshots()) == 2
    assert vault_files(root) == before

    with Vault.open(root, SECRET, access=Access.DELETE) as pruning:
        one_error_line(vigile_process(config, "verify"), "a prune is deleting")
        for args in (
            ["snapshots"],
            ["ls", "-a", filled.name],
            ["restore", "-a", filled.name, "--to", "eml", "--out", str(tmp_path / "eml")],
        ):
            one_error_line(vigile(config, *args), "a prune is deleting")
        one_error_line(vigile(config, "backup"), "is writing")
        one_error_line(vigile(config, "prune", "--keep-within", "0", "--dry-run"), "is writing")
        forgotten = forget(pruning, timedelta(0))
        stats = prune(pruning, set(forgotten))
    stats.snapshots_deleted = len(forgotten)
    assert rows(planned) == [vars(stats)]
    assert stats.snapshots_deleted == 1 and stats.records_dropped >= 4
    assert vigile(config, "verify").returncode == 0
    assert not (tmp_path / "eml").exists()


def test_dry_run_changes_nothing(filled: ImapAccount, tmp_path: Path) -> None:
    """A dry run reads: the temporary pack of a run killed half-way stays for the next
    writer to remove, and every file of the vault keeps its bytes."""
    config = write_config(tmp_path, filled)
    root = tmp_path / "vault"
    assert vigile(config, "backup").returncode == 0
    (root / "packs" / ".tmp-killed-run").write_bytes(b"VGPK unfinished pack")
    before = vault_files(root)
    with Vault.open(root, SECRET, access=Access.STEADY):  # a second dry run at once
        done = vigile(config, "prune", "--keep-within", "0", "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    assert rows(done)[0]["snapshots_deleted"] == 0
    assert vault_files(root) == before
    with Vault.open(root, SECRET, access=Access.STEADY) as steady:
        with pytest.raises(VaultError, match="needs the vault opened for DELETE"):
            forget(steady, timedelta(0))
        with pytest.raises(VaultError, match="needs the vault opened for"):
            steady.delete_snapshot(steady.snapshots()[0].name)
    with (
        Vault.open(root, SECRET, writable=True) as backup,
        pytest.raises(VaultError, match="needs the vault opened for DELETE"),
    ):
        prune(backup)
    assert not (root / "packs" / ".tmp-killed-run").exists()  # removed by a writer's open
