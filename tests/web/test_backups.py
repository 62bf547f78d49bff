"""The Backups pages and their JSON API over a real vault of a real Dovecot's accounts.

The vault is built by ``tests/web/backed_up.py`` (alice backed up now, bob three days
ago, carol never; the real ``vigile vault verify`` recorded). Each route is asked for
logged in and out; the cases the page must say plainly (no secret, a wrong one, no
vault, a prune holding the vault, damage found by verify) are made for real, and the
restore command a snapshot's page shows is run as shown.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.vault.conftest import dovecot  # noqa: F401  (the session's Dovecot fixture)
from tests.vault.dovecot import PASSWORD, Dovecot
from tests.vault.mailgen import expunge_first
from tests.web.backed_up import FOLDERS, BackupFacts, build_backups, write_config
from tests.web.test_api import _login
from typer.testing import CliRunner

from vigile.cli import app
from vigile.config import load_config
from vigile.vault.crypto import DEFAULT_KDF
from vigile.vault.lock import Access, VaultLock
from vigile.vault.repo import Vault
from vigile.vault.settings import PASSPHRASE_ENV
from vigile.web.access import StoreAccess
from vigile.web.app import create_app

#: Every GET route of the Backups pages and API, as a URL (``SNAP``: alice's newest snapshot).
URLS = (
    "/backups",
    "/backups/alice",
    "/backups/alice/SNAP",
    "/backups/alice/SNAP?folder=INBOX",
    "/api/backups",
    "/api/backups/alice/snapshots",
    "/api/backups/alice/snapshots/SNAP",
    "/api/backups/alice/snapshots/SNAP/messages?folder=INBOX",
    "/api/backups/alice/snapshots/SNAP/messages?match=a",
    "/backups/alice/SNAP?q=a",
)


@pytest.fixture(scope="module")
def backed_up(dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory) -> BackupFacts:  # noqa: F811
    return build_backups(dovecot, tmp_path_factory.mktemp("backups"))


def _client(access: StoreAccess, config: Path) -> TestClient:
    return TestClient(create_app(access, load_config(config)), base_url="http://127.0.0.1")


@pytest.fixture
def client(console_access: StoreAccess, backed_up: BackupFacts) -> Iterator[TestClient]:
    with _client(console_access, backed_up.config) as c:
        assert _login(c) == 303
        yield c


def _urls(facts: BackupFacts) -> list[str]:
    return [u.replace("SNAP", facts.alice_snapshots[-1]) for u in URLS]


def test_every_route_needs_a_login_and_answers(
    console_access: StoreAccess, backed_up: BackupFacts
) -> None:
    with _client(console_access, backed_up.config) as c:
        for url in _urls(backed_up):
            r = c.get(url, follow_redirects=False)
            assert r.status_code == (401 if url.startswith("/api/") else 303), url
        assert _login(c) == 303
        for url in _urls(backed_up):
            r = c.get(url)
            assert r.status_code == 200, (url, r.text[:300])
            assert "Content-Security-Policy" in r.headers


def test_status_per_account(client: TestClient, backed_up: BackupFacts) -> None:
    status = client.get("/api/backups").json()
    assert status["state"] == "ok" and status["stale_after_hours"] == 26
    accounts = {a["account"]: a for a in status["accounts"]}
    assert list(accounts) == ["alice", "bob", "carol"]
    alice, bob, carol = accounts["alice"], accounts["bob"], accounts["carol"]
    assert alice["state"] == "ok" and alice["snapshots"] == 2 and alice["age_hours"] < 1
    last = alice["last"]
    assert (last["snapshot"], last["folders"], last["messages"]) == (
        backed_up.alice_snapshots[-1],
        3,
        sum(FOLDERS.values()),
    )
    assert (last["fetched"], last["stored"]) == (0, 0)  # the second run found nothing new
    assert bob["state"] == "stale" and 71 < bob["age_hours"] < 73
    assert (bob["last"]["fetched"], bob["last"]["stored"], bob["last"]["messages"]) == (3, 3, 3)
    assert carol["state"] == "never" and carol["last"] is None and carol["snapshots"] == 0
    verification = status["verification"]
    assert verification["ok"] and verification["problems"] == 0
    assert verification["snapshots"] == 3 and verification["records"] >= 38

    page = client.get("/backups").text
    for name, shown in (("alice", "ok"), ("bob", "too old"), ("carol", "never backed up")):
        row = re.search(rf'data-account="{name}".*?</tr>', page, re.S)
        assert row and shown in row.group(0), name
    assert "nothing damaged" in page
    overview = client.get("/").text
    assert "2 of 3 account(s) not backed up recently (1 never)" in overview


def test_threshold_is_configurable(console_access: StoreAccess, backed_up: BackupFacts) -> None:
    accounts = list(backed_up.accounts.values())
    config = write_config(backed_up.folder, accounts, "-lenient", stale_after_hours="100")
    with _client(console_access, config) as c:
        assert _login(c) == 303
        states = {a["account"]: a["state"] for a in c.get("/api/backups").json()["accounts"]}
    assert states == {"alice": "ok", "bob": "ok", "carol": "never"}
    bad = write_config(backed_up.folder, accounts, "-bad", stale_after_hours="-1")
    with _client(console_access, bad) as c:
        assert _login(c) == 303
        status = c.get("/api/backups").json()
    assert status["state"] == "config_error" and "stale_after_hours" in status["detail"]


def test_snapshots_folders_and_messages(client: TestClient, backed_up: BackupFacts) -> None:
    snaps = client.get("/api/backups/alice/snapshots").json()
    assert [s["snapshot"] for s in snaps] == backed_up.alice_snapshots[::-1]
    assert [s["fetched"] for s in snaps] == [0, sum(FOLDERS.values())]
    name = snaps[0]["snapshot"]
    detail = client.get(f"/api/backups/alice/snapshots/{name}").json()
    folders = {f["folder"]: f["messages"] for f in detail["folder_list"]}
    assert folders == FOLDERS
    listed = client.get(f"/api/backups/alice/snapshots/{name}/messages?folder=Été").json()
    assert listed["total"] == 5 and [m["uid"] for m in listed["messages"]] == [1, 2, 3, 4, 5]
    assert all(m["date"].endswith("Z") and m["size"] > 0 for m in listed["messages"])
    # the same rows `vigile vault ls` prints, from the same code
    ls_args = ["vault", "ls", "-a", "alice", "--folder", "Été", "--json"]
    ls = CliRunner().invoke(app, [*ls_args, "--config", str(backed_up.config)])
    assert [json.loads(line)["id"] for line in ls.stdout.splitlines()] == [
        m["id"] for m in listed["messages"]
    ]
    paged = client.get(
        f"/api/backups/alice/snapshots/{name}/messages?folder=INBOX&offset=15&limit=10"
    ).json()
    assert paged["total"] == 20 and [m["uid"] for m in paged["messages"]] == list(range(16, 21))
    page = client.get(f"/backups/alice/{name}?folder=Archive").text
    assert "<dt>unchanged folders</dt><dd>3 of 3 (skipped)</dd>" in page  # the no-change run
    assert page.count('<tr data-id="') == 10 and "Messages in Archive" in page
    for url in (
        "/api/backups/dave/snapshots",
        "/api/backups/alice/snapshots/nope",
        "/api/backups/bob/snapshots/" + name,  # alice's snapshot under bob's name
        f"/api/backups/alice/snapshots/{name}/messages?folder=Nope",
        "/api/backups/alice/snapshots/..%2Fconfig",
        "/backups/dave",
        f"/backups/alice/{name}?folder=Nope",
    ):
        assert client.get(url).status_code == 404, url
    assert client.get("/api/backups/carol/snapshots").json() == []


def test_restore_command_shown_restores_that_snapshot(
    client: TestClient, backed_up: BackupFacts
) -> None:
    first = backed_up.alice_snapshots[0]
    detail = client.get(f"/api/backups/alice/snapshots/{first}").json()
    page = client.get(f"/backups/alice/{first}").text
    assert shlex.quote(detail["restore"]["dry_run"]).strip("'") in page.replace("&#39;", "'")
    args = shlex.split(detail["restore"]["dry_run"])
    assert args[:4] == ["vigile", "vault", "restore", "-a"] and "--dry-run" in args
    expunge_first(backed_up.accounts["alice"], PASSWORD, "Archive", 2)
    result = CliRunner().invoke(app, args[1:])
    assert result.exit_code == 0, result.output
    assert f"snapshot {first}" in result.stderr  # --at picked exactly this snapshot
    assert result.stdout.count("deleted since") == 2


def test_search_and_one_message_restore_command(
    client: TestClient, backed_up: BackupFacts, tmp_path: Path
) -> None:
    name = backed_up.alice_snapshots[-1]
    api = f"/api/backups/alice/snapshots/{name}/messages"
    everything = [
        m for f in FOLDERS for m in client.get(f"{api}?folder={f}&limit=5000").json()["messages"]
    ]
    assert all(m["from"] and m["subject"] and m["message_id"] for m in everything)
    assert all("=?" not in m["from"] + m["subject"] for m in everything)  # decoded
    word = "réunion"
    expected = [
        (m["folder"], m["uid"])
        for m in everything
        if word in m["from"].casefold() or word in m["subject"].casefold()
    ]
    assert 0 < len(expected) < len(everything)
    found = client.get(f"{api}?match=R%C3%89UNION&limit=5000").json()  # any case
    assert sorted((m["folder"], m["uid"]) for m in found["messages"]) == sorted(expected)
    assert found["total"] == len(expected) and found["folder"] is None
    in_été = client.get(f"{api}?folder=%C3%89t%C3%A9&match={word}").json()
    assert in_été["total"] == sum(f == "Été" for f, _ in expected)
    sender = everything[0]["from"].split("<")[0].strip()
    by_sender = client.get(f"{api}?from={sender}&subject=n°").json()["messages"]
    assert by_sender and all(sender in m["from"] and "n°" in m["subject"] for m in by_sender)
    assert client.get(api).status_code == 400  # neither a folder nor a search
    # the page: the same search, server side, paged as the folder listing
    page = client.get(f"/backups/alice/{name}?q={word}").text
    assert page.count('<tr data-id="') == len(expected) and "matching" in page

    one = next(m for m in everything if m["folder"] == "Été")
    url = f"/backups/alice/{name}?folder=%C3%89t%C3%A9&message={one['id']}"
    page = client.get(url).text.replace("&#39;", "'")
    commands = re.findall(r'<pre class="command" id="message-(\w+(?:-\w+)?)">([^<]*)</pre>', page)
    shown = {k: v.replace("&amp;", "&") for k, v in commands}
    assert set(shown) == {"dry-run", "imap", "eml"}
    assert f"--message {one['id']}" in shown["eml"] and "--folder" in shown["eml"]
    args = shlex.split(shown["eml"])
    out = tmp_path / "one"
    args[args.index("--out") + 1] = str(out)
    result = CliRunner().invoke(app, args[1:])
    assert result.exit_code == 0, result.output
    (written,) = out.rglob("*.eml")
    assert written.name == f"{one['uid']}.eml"
    vault = Vault.open(backed_up.folder / "vault", backed_up.key)
    try:
        snap = vault.load_snapshot(name)
        assert snap is not None
        ref = snap.folder("Été")
        assert ref is not None
        entry = vault.get_tree(ref.tree).messages[one["uid"]]
        assert written.read_bytes() == vault.get(entry.blob_id)
    finally:
        vault.close()
    assert client.get(f"/backups/alice/{name}?folder=INBOX&message=00000000").status_code == 404


def test_no_secret_wrong_secret_no_vault(
    client: TestClient,
    console_access: StoreAccess,
    backed_up: BackupFacts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    accounts = list(backed_up.accounts.values())
    cases = {
        "no_secret": write_config(backed_up.folder, accounts, "-nokey", key_file=""),
        "missing": write_config(backed_up.folder, accounts, "-missing", path='"elsewhere"'),
    }
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    for state, config in cases.items():
        with _client(console_access, config) as c:
            assert _login(c) == 303
            status = c.get("/api/backups").json()
            assert status["state"] == state, status
            assert [a["state"] for a in status["accounts"]] == ["unknown"] * 3
            r = c.get("/api/backups/alice/snapshots")
            assert r.status_code == 503 and r.json()["state"] == state
            page = c.get("/backups")
            assert page.status_code == 200 and 'id="vault-notice"' in page.text
            assert "Traceback" not in page.text
            assert c.get(f"/backups/alice/{backed_up.alice_snapshots[0]}").status_code == 503
    # $VIGILE_VAULT_PASSPHRASE comes before [vault] key_file, as in the CLI: a wrong one,
    # set after the keys were derived from the right one (they are kept for the next call)
    assert client.get("/api/backups").json()["state"] == "ok"
    monkeypatch.setenv(PASSPHRASE_ENV, "not the key")
    status = client.get("/api/backups").json()
    assert status["state"] == "wrong_key" and "not the key" not in json.dumps(status)


def test_passphrase_command_never_shown(
    console_access: StoreAccess, backed_up: BackupFacts, tmp_path: Path
) -> None:
    passphrase = "tr0ub4dor & 3 console passphrase"
    (tmp_path / "pass.txt").write_text(passphrase + "\n")
    Vault.create(tmp_path / "vault", passphrase.encode(), dict(DEFAULT_KDF, memory_kib=1024))
    config = write_config(
        tmp_path,
        [backed_up.accounts["carol"]],
        key_file="",
        passphrase_command=json.dumps(f"cat {tmp_path / 'pass.txt'}"),
    )
    with _client(console_access, config) as c:
        assert _login(c) == 303
        status = c.get("/api/backups").json()
        pages = [c.get(u).text for u in ("/backups", "/", "/api/backups/carol/snapshots")]
    assert status["state"] == "ok" and status["accounts"][0]["state"] == "never"
    assert not any(passphrase in text for text in [json.dumps(status), *pages])


def test_backup_running_prune_running_and_damage_found(
    console_access: StoreAccess, backed_up: BackupFacts, tmp_path: Path
) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(backed_up.folder, folder, ignore=shutil.ignore_patterns("vigile*.toml"))
    config = write_config(folder, list(backed_up.accounts.values()))
    with _client(console_access, config) as c:
        assert _login(c) == 303
        backup = VaultLock(folder / "vault", Access.APPEND)  # what `vault backup` holds
        try:  # the pages read beside a backup
            assert c.get("/api/backups").json()["state"] == "ok"
            assert c.get("/api/backups/alice/snapshots").status_code == 200
        finally:
            backup.release()
        prune = VaultLock(folder / "vault", Access.DELETE)  # what `vault prune` holds
        try:
            r = c.get("/api/backups/alice/snapshots")
            assert r.status_code == 503 and r.headers["Retry-After"] == "30"
            assert r.json()["state"] == "busy" and "prune" in r.json()["detail"]
            assert c.get("/api/backups").json()["state"] == "busy"
            page = c.get("/backups/alice")
            assert page.status_code == 503 and "prune is deleting" in page.text
        finally:
            prune.release()
        assert c.get("/api/backups/alice/snapshots").status_code == 200  # the lock is gone
        _flip_byte(next(p for p in (folder / "vault" / "packs").glob("*/*")))
        verified = CliRunner().invoke(app, ["vault", "verify", "--config", str(config)])
        assert verified.exit_code == 1
        status = c.get("/api/backups").json()
        assert status["verification"]["ok"] is False and status["verification"]["problems"] > 0
        assert "damaged" in c.get("/backups").text
        assert "last verify found damage" in c.get("/").text

        record = sorted((folder / "vault" / "verifications").iterdir())[-1]  # the newest
        _flip_byte(record)
        status = c.get("/api/backups").json()
        assert status["state"] == "ok" and status["verification"] is None
        assert "authentication tag" in status["verification_error"]
        assert 'id="verification-error"' in c.get("/backups").text
        # One of alice's snapshots: listing hers must find it damaged (another account's
        # damaged snapshot is not opened for her listing; snapshot names carry a tag).
        tag = Vault.unlock(folder / "vault", backed_up.key).account_tag("alice")
        _flip_byte(next((folder / "vault" / "snapshots").glob(f"*-{tag}-*")))
        status = c.get("/api/backups").json()
        assert status["state"] == "damaged" and "vigile vault verify" in status["detail"]
        assert c.get("/api/backups/alice/snapshots").status_code == 503
        overview = c.get("/")
        assert overview.status_code == 200 and "unreadable" in overview.text


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
