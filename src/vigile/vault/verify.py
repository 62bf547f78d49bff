"""Check everything the vault holds, and name exactly what is damaged.

Three passes, each independent of the others so one damage does not hide another:

1. every pack file is re-hashed and compared with its name (a flipped byte anywhere,
   even between records, changes the hash); a pack the index lists but the disk lacks is
   missing, one the disk has but the index lacks is reported as unindexed;
2. every record is read, authenticated (AES-GCM tag), decompressed and re-hashed; a
   member of a frame (pack.py) is checked with its frame, which is read once for all
   its members (in index order they come together), and a damaged frame names each of
   its members;
3. every snapshot is opened and walked: each folder tree and each message it references
   must be present and sound. Damaged records are reported as the messages they are
   (account, snapshot, folder, UID), which is what an administrator needs to know.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vigile.vault.errors import VaultDamagedError
from vigile.vault.pack import hash_file

if TYPE_CHECKING:  # imported by the CLI at start-up: keep it light
    from vigile.vault.repo import Vault


@dataclass
class VerifyReport:
    packs: int = 0
    records: int = 0
    snapshots: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, where: str, error: str, **extra: Any) -> None:
        self.problems.append({"kind": kind, "where": where, "error": error, **extra})


def verify_packs(vault: Vault, report: VerifyReport) -> None:
    indexed = vault.index.packs()
    on_disk = {p.name: p for p in vault.pack_files()}
    for name in sorted(indexed.keys() - on_disk.keys()):
        report.add("pack", name, "pack missing from disk")
    for name, path in sorted(on_disk.items()):
        report.packs += 1
        if name not in indexed:
            report.add("pack", name, "pack not in the index (run a backup to re-index it)")
        elif hash_file(path, vault.keys.pack_hash) != name:
            report.add("pack", name, "pack content does not match its hash")


def verify_records(vault: Vault, report: VerifyReport, progress: Callable[[], None]) -> set[bytes]:
    damaged = set()
    for ref in vault.index.records():
        report.records += 1
        try:
            vault.read(ref)
        except VaultDamagedError as e:
            damaged.add(ref.blob_id)
            kind = "message" if ref.kind == b"M" else "folder tree"
            report.add("record", ref.blob_id.hex()[:16], str(e), record=kind)
        progress()
    return damaged


def verify_snapshots(vault: Vault, report: VerifyReport, damaged: set[bytes]) -> None:
    try:
        snapshots = vault.snapshots()
    except VaultDamagedError as e:
        report.add("snapshot", "snapshots", str(e))
        return
    for snap in snapshots:
        report.snapshots += 1
        for ref in snap.folders:
            where = f"{snap.account} {snap.name} {ref.name}"
            if ref.tree in damaged or not vault.index.has(ref.tree):
                report.add("folder", where, "folder tree damaged or missing: messages unknown")
                continue
            for entry in vault.get_tree(ref.tree).messages.values():
                if entry.blob_id in damaged or not vault.index.has(entry.blob_id):
                    report.add(
                        "message",
                        where,
                        "message damaged or missing",
                        account=snap.account,
                        snapshot=snap.name,
                        folder=ref.name,
                        uid=entry.uid,
                    )


def verify(vault: Vault, progress: Callable[[], None] = lambda: None) -> VerifyReport:
    """Run all three passes; the report lists every problem found."""
    report = VerifyReport()
    verify_packs(vault, report)
    damaged = verify_records(vault, report, progress)
    verify_snapshots(vault, report, damaged)
    return report
