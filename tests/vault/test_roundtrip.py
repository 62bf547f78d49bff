"""Back up a real Dovecot account, change it, back up again, restore each point in time."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from tests.vault.dovecot import PASSWORD, Dovecot
from tests.vault.mailgen import fill, open_client, snapshot_state

from vigile.vault.backup import backup_account
from vigile.vault.crypto import DEFAULT_KDF
from vigile.vault.imap import ImapSource, ImapTarget
from vigile.vault.repo import Vault
from vigile.vault.restore import diff_imap, restore_files, restore_imap
from vigile.vault.settings import ImapAccount
from vigile.vault.verify import verify

SECRET = b"correct horse battery staple"
FAST_KDF = dict(DEFAULT_KDF, memory_kib=1024, time_cost=1)
FOLDERS = {
    "INBOX": 25,
    "Sent": 8,
    "Archive": 3,
    "Archive.2023": 6,
    "Archive.2024": 5,
    "Reçus": 4,
    "Projets.Été": 3,
    "Empty": 0,
    "Drafts": 2,
    "Trash": 2,
    "Lists.dev": 4,
    "Lists.ops": 3,
}


def open_vault(root: Path) -> Vault:
    return Vault.open(root, SECRET, writable=True, pack_size=256 * 1024)


@pytest.fixture
def vault_root(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    Vault.create(root, SECRET, FAST_KDF)
    return root


def run_backup(root: Path, account: ImapAccount):  # type: ignore[no-untyped-def]
    vault, source = open_vault(root), ImapSource(account)
    try:
        return backup_account(vault, source)
    finally:
        source.close()
        vault.close()


def change_mailbox(dovecot: Dovecot, account: ImapAccount) -> int:
    """New mail, flag changes, expunges, a UIDVALIDITY change; returns flag changes made."""
    client = open_client(account, PASSWORD)
    client.select_folder("INBOX")
    uids = sorted(client.search("ALL"))
    old = client.get_flags(uids[:5])
    client.add_flags(uids[:3], ["\\Seen", "\\Flagged"])
    client.remove_flags(uids[3:5], ["\\Seen"])
    changed = sum(client.get_flags(uids[:5])[u] != old[u] for u in uids[:5])
    client.delete_messages(uids[5:8])
    client.expunge()
    fill(client, {"INBOX": 4, "Nouveau dossier": 2}, seed=2, start=1000)
    client.logout()
    dovecot.doveadm("mailbox", "update", "--uid-validity", "777", "-u", account.username, "Sent")
    return changed


def test_backup_change_backup_restore_each_point(
    dovecot: Dovecot, account: ImapAccount, vault_root: Path, tmp_path: Path
) -> None:
    client = open_client(account, PASSWORD)
    fill(client, FOLDERS, seed=1, large=2)
    before = snapshot_state(client)
    client.logout()
    first, stats1 = run_backup(vault_root, account)
    total = sum(FOLDERS.values())
    assert stats1.fetched == total and stats1.messages == total

    flag_changes = change_mailbox(dovecot, account)
    assert flag_changes >= 3
    client = open_client(account, PASSWORD)
    after = snapshot_state(client)
    client.logout()
    second, stats2 = run_backup(vault_root, account)
    assert stats2.resynced_folders == ["Sent"]
    assert stats2.expunged == 3 and stats2.flag_changes == flag_changes
    # Sent is fetched again after its UIDVALIDITY change, but nothing of it is stored again.
    assert stats2.fetched == 4 + 2 + FOLDERS["Sent"]
    assert stats2.stored == 4 + 2

    vault = open_vault(vault_root)
    try:
        assert verify(vault).ok
        for snap, expected in ((first, before), (second, after)):
            at = vault.snapshot_at(account.name, snap.time + timedelta(microseconds=1))
            assert at.name == snap.name
            fresh = dovecot.add_user(f"{account.name}r{snap.name[-4:]}")
            target = ImapTarget(fresh)
            report = restore_imap(vault, at, target)
            target.close()
            assert report.restored == sum(len(v) for v in expected.values()) and not report.damaged
            client = open_client(fresh, PASSWORD)
            restored = snapshot_state(client)
            client.logout()
            assert restored == expected  # every byte, every flag, every internal date

        out = tmp_path / "eml"
        report = restore_files(vault, first, "eml", out, pattern="Archive*")
        on_disk = sorted(p.read_bytes() for p in out.rglob("*.eml"))
        expected_raw = sorted(
            s.raw for name, msgs in before.items() if name.startswith("Archive") for s in msgs
        )
        assert on_disk == expected_raw and report.restored == len(expected_raw)
    finally:
        vault.close()


def test_no_change_run_fetches_nothing(account: ImapAccount, vault_root: Path) -> None:
    client = open_client(account, PASSWORD)
    fill(client, {"INBOX": 5, "A": 2, "B": 1}, seed=3)
    client.logout()
    run_backup(vault_root, account)
    _, stats = run_backup(vault_root, account)
    assert stats.folders == stats.folders_unchanged == 3
    assert stats.fetched == 0 and stats.messages == 8


def test_restore_into_live_mailbox_adds_only_missing(
    account: ImapAccount, vault_root: Path
) -> None:
    client = open_client(account, PASSWORD)
    fill(client, {"INBOX": 6, "Work": 3}, seed=4)
    snap, _ = run_backup(vault_root, account)
    client.select_folder("INBOX")
    uids = sorted(client.search("ALL"))
    client.delete_messages(uids[:2])
    client.expunge()
    client.set_flags(uids[2:3], ["\\Deleted"])  # flagged, not expunged
    fill(client, {"INBOX": 1}, seed=5, start=500)
    client.logout()

    vault = open_vault(vault_root)
    try:
        target = ImapTarget(account)
        changes = sorted((r["folder"], r["change"]) for r in diff_imap(vault, snap, target))
        assert changes == [
            ("INBOX", "added since"),
            ("INBOX", "deleted since"),
            ("INBOX", "deleted since"),
            ("INBOX", "flags changed"),
        ]
        report = restore_imap(vault, snap, target)
        assert (report.restored, report.present) == (2, 7)
        again = restore_imap(vault, snap, target)
        assert (again.restored, again.present) == (0, 9)
        left = sorted((r["folder"], r["change"]) for r in diff_imap(vault, snap, target))
        assert left == [("INBOX", "added since"), ("INBOX", "flags changed")]
        reset = restore_imap(vault, snap, target, reset_flags=True)
        assert (reset.restored, reset.present, reset.reflagged) == (0, 9, 1)
        left = sorted((r["folder"], r["change"]) for r in diff_imap(vault, snap, target))
        assert left == [("INBOX", "added since")]
        target.close()
    finally:
        vault.close()


def test_without_condstore_a_scan_finds_flag_changes_and_expunges(
    account: ImapAccount, vault_root: Path
) -> None:
    account = replace(account, condstore=False)
    client = open_client(account, PASSWORD)
    fill(client, {"INBOX": 6}, seed=6)
    run_backup(vault_root, account)
    client.select_folder("INBOX")
    uids = sorted(client.search("ALL"))
    client.set_flags(uids[:2], ["\\Answered"])
    client.delete_messages(uids[-1:])
    client.expunge()
    client.logout()
    snap, stats = run_backup(vault_root, account)
    assert snap.folders[0].highestmodseq is None
    assert (stats.flag_changes, stats.expunged, stats.fetched) == (2, 1, 0)
    assert stats.folders_unchanged == 0  # without HIGHESTMODSEQ a folder is always scanned
