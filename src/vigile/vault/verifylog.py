"""What each ``vigile vault verify`` found, kept in the vault, append-only.

Layout::

    verifications/<time>-<random>   one sealed JSON document per verify run, named by the
                                    UTC time it finished, to the microsecond

A run adds one file (written to a temporary name, fsynced, renamed, as a snapshot is) and
never changes or removes one; no vigile command deletes them (prune leaves them alone).
The document is sealed with the vault's keys (associated data ``b"V"`` + the file name),
because the problems it lists name accounts and folders, which the vault keeps encrypted,
and so that nobody without the keys can forge a clean result. A verify only reads the
vault (``Access.READ``, beside a backup): this folder is the one thing it writes, and no
other command touches it.

Document::

    {"started": ISO time, "finished": ISO time, "ok": bool, "packs": n, "records": n,
     "snapshots": n, "problems": n, "first_problems": [{kind, where, error, ...}, ...]}

``first_problems`` holds at most :data:`KEPT_PROBLEMS`; the command's own output has all.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vigile.vault.errors import VaultDamagedError, VaultError
from vigile.vault.snapshot import STAMP

if TYPE_CHECKING:
    from vigile.vault.repo import Vault
    from vigile.vault.verify import VerifyReport

FOLDER = "verifications"
KEPT_PROBLEMS = 20


def _aad(name: str) -> bytes:
    return b"V" + name.encode()


def record_verification(vault: Vault, report: VerifyReport, started: datetime) -> str:
    """Add the outcome of one verify run to the vault; returns the file's name.

    Raises :class:`VaultError` (one line) if the file cannot be written, e.g. on
    read-only media; the verify's own result stands either way.
    """
    finished = datetime.now(UTC)
    doc = {
        "started": started.isoformat(),
        "finished": finished.isoformat(),
        "ok": report.ok,
        "packs": report.packs,
        "records": report.records,
        "snapshots": report.snapshots,
        "problems": len(report.problems),
        "first_problems": report.problems[:KEPT_PROBLEMS],
    }
    # To the microsecond, so names sort as the runs finished even within one second.
    name = f"{finished.strftime(STAMP)}.{finished:%f}-{os.urandom(4).hex()}"
    folder = vault.root / FOLDER
    tmp = folder / f".tmp-{name}"
    sealed = vault.keys.seal(json.dumps(doc, ensure_ascii=False).encode(), _aad(name))
    try:
        folder.mkdir(exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(sealed)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / name)
    except OSError as e:
        with contextlib.suppress(OSError):  # nothing to remove where the folder is not one
            tmp.unlink(missing_ok=True)
        raise VaultError(f"{folder}: cannot record the verification: {e.strerror}") from None
    return name


def last_verification(vault: Vault) -> dict[str, Any] | None:
    """The newest recorded verify outcome (the document above plus its ``name``), or None.

    A record that fails its authentication tag raises :class:`VaultDamagedError`.
    """
    folder = vault.root / FOLDER
    try:
        names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    except FileNotFoundError:
        return None
    if not names:
        return None
    name = names[-1]  # names begin with the time the run finished
    try:
        plain = vault.keys.open((folder / name).read_bytes(), _aad(name))
    except VaultDamagedError:
        raise VaultDamagedError(f"{folder / name}: fails its authentication tag") from None
    doc: dict[str, Any] = json.loads(plain)
    for key in ("started", "finished"):
        doc[key] = datetime.fromisoformat(doc[key])
    return {"name": name, **doc}
