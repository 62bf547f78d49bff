"""Faults, through the command line: wrong key, damaged packs, a killed run, a full disk,
server disconnects. The peer is the real test Dovecot throughout."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import pty
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from tests.vault.dovecot import PASSWORD, PASSWORD_ENV, Dovecot, account_toml
from tests.vault.mailgen import expunge_first, fill, open_client, snapshot_state
from typer.testing import CliRunner

from vigile.cli import app
from vigile.errors import VigileError
from vigile.vault.crypto import DEFAULT_KDF
from vigile.vault.errors import SourceError
from vigile.vault.imap import ImapSource
from vigile.vault.lock import Access
from vigile.vault.pack import RECORD_HEAD, PackWriter, pack_path, read_record, scan_pack
from vigile.vault.prune import reframe
from vigile.vault.repo import Vault
from vigile.vault.settings import ImapAccount
from vigile.vault.source import RetryingSource
from vigile.vault.verify import verify

SECRET = b"vault key bytes for the tests"
FAST_KDF = dict(DEFAULT_KDF, memory_kib=1024, time_cost=1)


def write_config(
    tmp: Path, account: ImapAccount, pack_mb: float = 0.25, *, frames: bool = True
) -> Path:
    """A config for ``account`` and a new vault (``frames=False``: one record to a frame,
    as vaults before format version 5 are written)."""
    tmp.mkdir(exist_ok=True)
    (tmp / "key").write_bytes(SECRET)
    config = tmp / "vigile.toml"
    config.write_text(
        f"""
[vault]
path = "vault"
key_file = "key"
pack_size_mb = {pack_mb}
{account_toml(account, timeout=10)}""",
        encoding="utf-8",
    )
    Vault.create(tmp / "vault", SECRET, FAST_KDF, frames=frames)
    return config


def vigile_process(config: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run the real command in a new process (exit status, stderr, kills, limits)."""
    return subprocess.run(
        [sys.executable, "-m", "vigile", "vault", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def vigile(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The same command in this process (no interpreter start-up), with main()'s handling
    of user errors: exit status from the error, one ``error:`` line on stderr."""
    result = CliRunner().invoke(app, ["vault", *args, "--config", str(config)])
    error = result.exception
    if isinstance(error, VigileError):
        stderr = f"{result.stderr}error: {error}"
        return subprocess.CompletedProcess([], error.exit_code, result.stdout, stderr)
    if error is not None and not isinstance(error, SystemExit):
        raise error
    return subprocess.CompletedProcess([], result.exit_code, result.stdout, result.stderr)


def rows(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def message_records(vault_root: Path) -> list[tuple[str, int, int]]:
    vault = Vault.open(vault_root, SECRET)
    try:
        return [(r.pack, r.offset, r.length) for r in vault.index.records() if r.kind == b"M"]
    finally:
        vault.close()


def test_cli_backup_list_verify_restore(filled: ImapAccount, tmp_path: Path) -> None:
    config = write_config(tmp_path, filled)
    collector = gc.get_threshold()
    done = vigile(config, "backup", "--json")
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    # The backup's collector settings end with it: this process goes on as before.
    assert (gc.get_threshold(), gc.get_freeze_count()) == (collector, 0)
    (summary,) = rows(done)
    assert (summary["messages"], summary["fetched"], summary["stored"]) == (35, 35, 35)
    again = rows(vigile(config, "backup", "--json"))[0]
    assert (again["fetched"], again["folders_unchanged"]) == (0, 3)
    # Without --json each account's run is a sentence, its snapshot name whole (a table
    # of twelve columns squeezed some to nothing at 80 columns).
    said = vigile(config, "backup").stdout
    assert re.search(rf"^{filled.name}: snapshot \d{{8}}T\d{{6}}-[0-9a-f-]+$", said, re.M)
    assert "3 folder(s), 0 changed; 35 message(s); 0 fetched (0 B), 0 new" in " ".join(said.split())
    snaps = rows(vigile(config, "snapshots", "--json"))
    assert [s["messages"] for s in snaps] == [35, 35, 35]

    # The first snapshot's time as the table prints it (to the second) finds it, or one
    # taken later in that second, although it was taken at a fraction of that second.
    def second(snap: dict[str, Any]) -> str:
        return datetime.fromisoformat(snap["time"]).strftime("%Y-%m-%d %H:%M:%S")

    first = rows(vigile(config, "ls", "-a", filled.name, "--at", second(snaps[0]), "--json"))
    that_second = {s["snapshot"] for s in snaps if second(s) == second(snaps[0])}
    assert first and {f["snapshot"] for f in first} <= that_second
    # A mailbox as it was backed up: the dry run says so instead of an empty table.
    same = vigile(config, "restore", "-a", filled.name, "--to", "imap", "--dry-run")
    assert same.returncode == 0, same.stderr
    assert "no difference: the mailbox holds every message" in " ".join(same.stderr.split())
    folders = rows(vigile(config, "ls", "-a", filled.name, "--json"))
    assert {f["folder"]: f["messages"] for f in folders} == {"INBOX": 20, "Archive": 10, "Été": 5}
    listed = rows(vigile(config, "ls", "-a", filled.name, "--folder", "Été", "--json"))
    assert len(listed) == 5 and all(r["folder"] == "Été" for r in listed)
    assert vigile(config, "verify").returncode == 0

    out = tmp_path / "maildir"
    done = vigile(config, "restore", "-a", filled.name, "--to", "maildir", "--out", str(out))
    assert done.returncode == 0, done.stderr
    client = open_client(filled, PASSWORD)
    live = snapshot_state(client)
    client.logout()
    for folder, messages in live.items():
        files = sorted((out / folder / "cur").iterdir())
        assert sorted(p.read_bytes() for p in files) == sorted(m.raw for m in messages)
        seen = sum("S" in p.name.rsplit(":2,", 1)[1] for p in files)
        assert seen == sum("\\Seen" in m.flags for m in messages)
    done = vigile(
        config, "restore", "-a", filled.name, "--to", "mbox", "--out", str(tmp_path / "mb")
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mb" / "INBOX.mbox").read_bytes().count(b"\nFrom ") + 1 == 20


def test_progress_bar_on_a_terminal(filled: ImapAccount, tmp_path: Path) -> None:
    """On a terminal the backup draws its progress bar (elsewhere it draws none)."""
    config = write_config(tmp_path, filled)
    leader, follower = pty.openpty()
    drawn: list[bytes] = []

    def read_terminal() -> None:
        with contextlib.suppress(OSError):  # EIO once the command has exited
            while chunk := os.read(leader, 65536):
                drawn.append(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    try:
        command = [sys.executable, "-m", "vigile", "vault", "backup", "--json"]
        proc = subprocess.Popen(
            [*command, "--config", str(config)], stdout=subprocess.PIPE, stderr=follower
        )
        os.close(follower)
        stdout, _ = proc.communicate(timeout=300)
        reader.join(timeout=60)
    finally:
        os.close(leader)
    terminal = b"".join(drawn)
    assert proc.returncode == 0, terminal.decode(errors="replace")
    assert json.loads(stdout)["stored"] == 35
    assert b"msgs" in terminal and filled.name.encode() in terminal


def test_wrong_key_is_one_clear_line(filled: ImapAccount, tmp_path: Path) -> None:
    config = write_config(tmp_path, filled)
    (tmp_path / "key").write_bytes(b"not the key")
    done = vigile_process(config, "snapshots")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: wrong passphrase or key file for this vault"
    refused = ImapAccount(**{**filled.__dict__, "password_env": "VIGILE_TEST_WRONG"})
    config = write_config(tmp_path / "again", refused)
    os.environ["VIGILE_TEST_WRONG"] = "wrong-password-value"
    good = config.read_text().split("[[vault.accounts]]")[1].replace(refused.name, "good", 1)
    config.write_text(
        config.read_text()
        + "\n[[vault.accounts]]"
        + good.replace("VIGILE_TEST_WRONG", PASSWORD_ENV)
    )
    done = vigile_process(config, "backup", "--json")
    assert done.returncode == 1 and "login refused" in done.stderr
    assert "backup failed for 1 account(s)" in done.stderr
    assert "wrong-password-value" not in done.stdout + done.stderr
    assert [r.get("messages") for r in rows(done)] == [None, 35]  # the other account ran


def test_flipped_byte_names_the_message_and_the_rest_restores(
    filled: ImapAccount, tmp_path: Path
) -> None:
    """In a vault of records each alone (before format version 5), a flipped byte costs
    exactly one message (frames: the next test)."""
    config = write_config(tmp_path, filled, frames=False)
    assert vigile(config, "backup").returncode == 0
    pack, offset, length = message_records(tmp_path / "vault")[7]
    path = tmp_path / "vault" / "packs" / pack[:2] / pack
    data = bytearray(path.read_bytes())
    data[offset + RECORD_HEAD + length // 2] ^= 0x01
    path.write_bytes(bytes(data))

    done = vigile(config, "verify", "--json")
    assert done.returncode == 1
    problems = rows(done)
    messages = [p for p in problems if p["kind"] == "message"]
    assert len(messages) == 1 and messages[0]["uid"] is not None
    assert {p["kind"] for p in problems} == {"pack", "record", "message"}
    assert "1 message(s)" not in done.stderr and "problem(s)" in done.stderr

    out = tmp_path / "eml"
    done = vigile(config, "restore", "-a", filled.name, "--to", "eml", "--out", str(out))
    assert done.returncode == 1
    assert f"uid {messages[0]['uid']}" in done.stderr
    assert len(list(out.rglob("*.eml"))) == 34


def test_a_flipped_byte_in_a_frame_names_exactly_its_members(
    filled: ImapAccount, tmp_path: Path
) -> None:
    """A flipped byte inside a frame damages that frame: verify names each of its members
    (by record id; each message by folder and UID, a folder tree by its folder) and
    nothing else, and a restore brings back every other message byte for byte."""
    config = write_config(tmp_path, filled)
    root = tmp_path / "vault"
    assert vigile(config, "backup").returncode == 0
    before = tmp_path / "before"
    done = vigile(config, "restore", "-a", filled.name, "--to", "eml", "--out", str(before))
    assert done.returncode == 0, done.stderr
    with Vault.open(root, SECRET) as vault:
        frames: dict[tuple[str, int, int], list[Any]] = {}
        for ref in vault.index.records():
            frames.setdefault(ref.whole, []).append(ref)
        (snap,) = vault.snapshots(filled.name)
        places = {  # (folder, uid) -> message id, for every message of the snapshot
            (ref.name, m.uid): m.blob_id
            for ref in snap.folders
            for m in vault.get_tree(ref.tree).messages.values()
        }
        trees = {ref.tree: ref.name for ref in snap.folders}
    shared = [f for f in frames.values() if sum(r.kind == b"M" for r in f) > 1]
    assert shared, "no frame of several messages"
    members = shared[0]
    assert all(r.part_offset is not None for r in members)
    pack, offset, length = members[0].whole
    path = pack_path(root, pack)
    data = bytearray(path.read_bytes())
    data[offset + RECORD_HEAD + length - 20] ^= 0x01  # in the ciphertext
    path.write_bytes(bytes(data))

    done = vigile(config, "verify", "--json")
    assert done.returncode == 1
    problems = rows(done)
    ids = {r.blob_id for r in members}
    records = [p["where"] for p in problems if p["kind"] == "record"]
    assert sorted(records) == sorted(i.hex()[:16] for i in ids)
    unlisted = {trees[i] for i in ids if i in trees}  # folders whose tree is in the frame
    folders = {p["where"].split(" ", 2)[2] for p in problems if p["kind"] == "folder"}
    assert folders == unlisted
    lost = {place for place, i in places.items() if i in ids and place[0] not in unlisted}
    named = {(p["folder"], p["uid"]) for p in problems if p["kind"] == "message"}
    assert named == lost and len(lost) + len(unlisted) > 1

    after = tmp_path / "after"
    done = vigile(config, "restore", "-a", filled.name, "--to", "eml", "--out", str(after))
    assert done.returncode == 1
    got = {p.relative_to(after): p.read_bytes() for p in after.rglob("*.eml")}
    want = {p.relative_to(before): p.read_bytes() for p in before.rglob("*.eml")}
    gone = {place for place in places if place in lost or place[0] in unlisted}
    assert len(want) == 35 and len(got) == 35 - len(gone)
    assert all(want[k] == v for k, v in got.items())


def test_any_flipped_byte_in_a_pack_is_detected(filled: ImapAccount, tmp_path: Path) -> None:
    config = write_config(tmp_path, filled, pack_mb=0.05)
    assert vigile(config, "backup").returncode == 0
    root = tmp_path / "vault"
    pack = min((root / "packs").glob("*/*"), key=lambda p: p.stat().st_size)
    original = pack.read_bytes()
    positions = sorted({0, 7, 8, 9, 40, 44, 45, len(original) - 1, len(original) // 3})
    vault = Vault.open(root, SECRET)
    try:
        for pos in positions:
            damaged = bytearray(original)
            damaged[pos] ^= 0x80
            pack.write_bytes(bytes(damaged))
            report = verify(vault)
            assert not report.ok, f"flip at byte {pos} went unnoticed"
            assert any(p["kind"] in ("message", "folder") for p in report.problems) or pos < 8
        pack.write_bytes(original)
        assert verify(vault).ok
    finally:
        vault.close()


def test_truncated_pack(filled: ImapAccount, tmp_path: Path) -> None:
    config = write_config(tmp_path, filled, pack_mb=1)
    assert vigile(config, "backup").returncode == 0
    vault = Vault.open(tmp_path / "vault", SECRET)
    records = list(vault.index.records())
    vault.close()
    pack = max({r.pack for r in records}, key=lambda p: sum(r.pack == p for r in records))
    in_pack = [r for r in records if r.pack == pack]
    cut = in_pack[len(in_pack) // 2].offset + 10  # inside a record header
    lost = [r for r in in_pack if r.offset + RECORD_HEAD + r.length > cut]
    path = tmp_path / "vault" / "packs" / pack[:2] / pack
    with open(path, "r+b") as f:
        f.truncate(cut)
    problems = rows(vigile(config, "verify", "--json"))
    assert len([p for p in problems if p["kind"] == "record"]) == len(lost)
    lost_messages = sum(r.kind == b"M" for r in lost)
    lost_trees = sum(r.kind == b"T" for r in lost)
    assert len([p for p in problems if p["kind"] == "folder"]) == lost_trees
    named = [p for p in problems if p["kind"] == "message"]
    assert lost_trees or len(named) == lost_messages
    out = tmp_path / "eml"
    done = vigile(config, "restore", "-a", filled.name, "--to", "eml", "--out", str(out))
    assert done.returncode == 1
    assert 0 < len(list(out.rglob("*.eml"))) <= 35 - lost_messages


def test_killed_backup_then_rerun_leaves_no_duplicate_or_orphan(
    account: ImapAccount, tmp_path: Path
) -> None:
    client = open_client(account, PASSWORD)
    fill(client, {"INBOX": 30, "Big": 12}, seed=12, large=12)
    client.logout()
    config = write_config(tmp_path, account, pack_mb=1)
    packs = tmp_path / "vault" / "packs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vigile", "vault", "backup", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(list(packs.glob("*/*"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the backup finished before it could be killed"
    assert not list((tmp_path / "vault" / "snapshots").iterdir())
    # Published packs, indexed or not (a kill between rename and index commit leaves one
    # the next run re-indexes from its headers).
    survived = sum(r.kind == b"M" for p in packs.glob("*/*") for r in scan_pack(p))

    done = vigile(config, "backup", "--json")
    assert done.returncode == 0, done.stderr
    (summary,) = rows(done)
    assert summary["fetched"] == 42 and summary["stored"] < 42
    assert not list(packs.glob(".tmp-*"))
    assert len(message_records(tmp_path / "vault")) == 42  # each message once
    assert survived + summary["stored"] == 42
    assert vigile(config, "verify").returncode == 0


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (600_000, 600_000))


def test_write_failure_leaves_the_vault_consistent(filled: ImapAccount, tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes writes fail midway (EFBIG) the way a full disk does (ENOSPC).
    config = write_config(tmp_path, filled, pack_mb=4)
    done = vigile_process(config, "backup", preexec_fn=_limit_file_size)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: ") and "Traceback" not in done.stderr
    assert not list((tmp_path / "vault" / "packs").glob(".tmp-*"))
    assert vigile(config, "verify").returncode == 0
    assert vigile(config, "backup").returncode == 0
    assert vigile(config, "verify").returncode == 0


def test_disconnect_is_retried(dovecot: Dovecot, filled: ImapAccount) -> None:
    sleeps: list[float] = []
    source = RetryingSource(lambda: ImapSource(filled), sleep=sleeps.append)
    try:
        assert "Archive" in source.folders()
        dovecot.doveadm("kick", filled.username)
        assert source.status("INBOX").messages == 20
        fetched = list(source.fetch("INBOX", source.metadata("INBOX")))
        assert len(fetched) == 20
        assert source.retries >= 1 and sleeps[0] == 0.5
    finally:
        source.close()


def test_unreachable_server_gives_up_with_backoff(filled: ImapAccount) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gone = ImapAccount(**{**filled.__dict__, "port": port})
    sleeps: list[float] = []
    with pytest.raises(SourceError, match=r"cannot connect.*gave up after 5 attempts"):
        RetryingSource(lambda: ImapSource(gone), sleep=sleeps.append)
    assert sleeps == [0.5, 1.0, 2.0, 4.0]


def test_refused_login_is_not_retried(filled: ImapAccount) -> None:
    os.environ["VIGILE_TEST_WRONG"] = "wrong"
    bad = ImapAccount(**{**filled.__dict__, "password_env": "VIGILE_TEST_WRONG"})
    sleeps: list[float] = []
    with pytest.raises(SourceError, match="login refused"):
        RetryingSource(lambda: ImapSource(bad), sleep=sleeps.append)
    assert sleeps == []


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_and_starttls_with_a_pinned_ca(
    dovecot: Dovecot, filled: ImapAccount, security: str
) -> None:
    port = dovecot.tls_port if security == "tls" else dovecot.port
    secured = ImapAccount(
        **{
            **filled.__dict__,
            "security": security,
            "port": port,
            "ca_file": dovecot.root / "tls" / "ca.pem",
        }
    )
    source = ImapSource(secured)
    try:
        assert source.status("INBOX").messages == 20
    finally:
        source.close()
    untrusted = ImapAccount(**{**secured.__dict__, "ca_file": None})
    with pytest.raises(SourceError, match="CERTIFICATE_VERIFY_FAILED"):
        ImapSource(untrusted)


def test_dry_run_then_prune_keeps_the_newest_state(filled: ImapAccount, tmp_path: Path) -> None:
    config = write_config(tmp_path, filled, pack_mb=0.05)
    assert vigile(config, "backup").returncode == 0
    expunge_first(filled, PASSWORD, "Archive", 4)
    done = vigile(config, "restore", "-a", filled.name, "--to", "imap", "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    assert [r["change"] for r in rows(done)] == ["deleted since"] * 4
    assert vigile(config, "backup").returncode == 0

    planned = rows(vigile(config, "prune", "--keep-within", "0", "--dry-run", "--json"))
    assert len(rows(vigile(config, "snapshots", "--json"))) == 2  # nothing deleted yet
    done = vigile(config, "prune", "--keep-within", "0", "--json")
    assert done.returncode == 0, done.stderr
    (stats,) = rows(done)
    assert planned == [stats]
    assert stats["snapshots_deleted"] == 1 and stats["records_dropped"] >= 4
    assert stats["bytes_freed"] > 0
    assert vigile(config, "verify").returncode == 0
    out = tmp_path / "eml"
    done = vigile(config, "restore", "-a", filled.name, "--to", "eml", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert len(list(out.rglob("*.eml"))) == 35 - 4


@pytest.mark.parametrize("frames", [False, True])
def test_a_prune_killed_before_indexing_its_new_pack_leaves_nothing_behind(
    filled: ImapAccount, tmp_path: Path, frames: bool
) -> None:
    """A prune publishes a rewritten pack, then dies before indexing it: the next opening
    indexes it with no record (each still points to the old pack), and the next prune,
    which may keep another set and so write another pack, must delete it. With frames,
    the rewritten pack holds a frame re-sealed from part of a frame's members."""
    config = write_config(tmp_path, filled, pack_mb=0.05, frames=frames)
    root = tmp_path / "vault"
    assert vigile(config, "backup").returncode == 0
    expunge_first(filled, PASSWORD, "Archive", 4)
    assert vigile(config, "backup").returncode == 0
    with Vault.open(root, SECRET, access=Access.DELETE) as vault:
        old = next(iter(vault.index.packs()))
        writer = PackWriter(root, vault.keys.pack_hash)  # as prune copies a kept record
        ref = next(iter(vault.index.records(old)))
        if frames:  # as prune re-frames the kept members of a frame it cannot copy whole
            (part,) = reframe(vault, [(ref.kind, ref.blob_id, vault.read(ref))])
            writer.add(*part)
        else:
            writer.add(*read_record(pack_path(root, old), ref.offset, ref.length))
        orphan, _ = writer.finish()  # published; the kill comes before add_pack
    with Vault.open(root, SECRET, access=Access.DELETE) as vault:  # recovery indexes it
        assert vault.index.pack_number(orphan) is not None
        assert not list(vault.index.records(orphan))

    done = vigile(config, "prune", "--keep-within", "0", "--json")
    assert done.returncode == 0, done.stderr
    (stats,) = rows(done)
    assert stats["snapshots_deleted"] == 1 and stats["records_dropped"] >= 4
    with Vault.open(root, SECRET, access=Access.READ) as vault:
        indexed = set(vault.index.packs())
        empty = vault.index.db.execute(
            "SELECT name FROM packs WHERE n NOT IN (SELECT pack FROM blobs)"
        ).fetchall()
    files = {p.name for p in (root / "packs").glob("*/*")}
    assert orphan not in files and files == indexed and not empty
    assert vigile(config, "verify").returncode == 0
    out = tmp_path / "eml"
    done = vigile(config, "restore", "-a", filled.name, "--to", "eml", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert len(list(out.rglob("*.eml"))) == 35 - 4
