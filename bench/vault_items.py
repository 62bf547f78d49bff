"""What keeping sender and subject in the vault costs, and listing one account's snapshots.

    python -m bench.vault_items [--messages 20000] [--folders 50] [--repeat 3]
        [--accounts 20] [--snapshots 30]

1. **Header extraction alone**: ``header_fields`` over the messages of ``bench.vault``'s
   mailbox (the same generated mail, CRLF), CPU seconds, best of five; and encoding the
   50 folder trees with and without the header values.
2. **Full backup, in process**, against a throwaway Dovecot holding that mailbox (as
   ``bench.vault`` builds it), in alternating turns: the backup as shipped; with the
   extraction replaced by one returning empty values; and that with the release
   before's tree encoder too (the json module). CPU seconds of the process (every
   thread) and wall seconds, best of ``--repeat``.
3. **One account's snapshots**: a vault of ``--accounts`` (20) × ``--snapshots`` (30)
   snapshots of 50 folders each; ``Vault.snapshots(account)`` with snapshot names
   carrying the account tag, against the same snapshots named as earlier releases named
   them (no tag: every one opened); and every account's count and newest snapshot (the
   console's status) by opening all, against ``Vault.newest_snapshots``.
4. **Single-message restores**: the mailbox stored in process (folder by folder, in the
   order a backup stores it, through the vault's packer: one record to a frame in a vault
   before format version 5, several since) with one snapshot; then ``Vault.get`` of 500
   messages picked at random (each from another frame than the one before), an item
   restore (``restore_files`` with one message id: snapshot, trees, message) of 20 of
   them, and the restore of one whole folder to .eml files: CPU and wall, best of
   ``--repeat``; the peak memory of the process at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.vault.dovecot import running_dovecot
from tests.vault.mailgen import make_message

import vigile.vault.backup as backup_module
from bench.common import machine
from bench.vault import BENCH_PASSWORD, template_of, warm_up, write_maildir
from bench.vault import account as bench_account
from vigile.vault.backup import backup_account
from vigile.vault.crypto import key_file_kdf
from vigile.vault.headers import header_fields
from vigile.vault.imap import ImapSource
from vigile.vault.repo import Vault
from vigile.vault.restore import restore_files
from vigile.vault.snapshot import STAMP, FolderRef, FolderTree, MessageEntry, Snapshot


def encode_previous(tree: FolderTree) -> bytes:
    """A tree as the release before this one encoded it: the json module, no header values."""
    rows = [
        [m.uid, m.blob_id.hex(), m.size, m.internaldate.isoformat(), list(m.flags)]
        for m in sorted(tree.messages.values(), key=lambda m: m.uid)
    ]
    doc = {"name": tree.name, "uidvalidity": tree.uidvalidity, "messages": rows}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def no_headers(raw: bytes) -> tuple[str, str, str]:
    return ("", "", "")


def bench_messages(count: int) -> list[bytes]:
    """The messages of ``bench.vault``'s mailbox as IMAP hands them over (CRLF)."""
    rng = random.Random(42)
    templates = [make_message(rng, i) for i in range(400)]
    return [f"X-Bench-Id: {i}\r\n".encode() + templates[i % 400] for i in range(count)]


def folder_messages(count: int, folders: int) -> list[list[bytes]]:
    """The messages of ``bench.vault``'s mailbox by folder, as its Maildir holds them."""
    rng = random.Random(42)
    templates = [make_message(rng, i) for i in range(400)]
    boxes: list[list[bytes]] = [[] for _ in range(folders)]
    for i in range(count):
        raw = f"X-Bench-Id: {i}\r\n".encode() + templates[template_of(i, folders)]
        boxes[i % folders].append(raw)
    return boxes


def single_restores(count: int, folders: int, repeat: int) -> None:
    boxes = folder_messages(count, folders)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        root, key = Path(tmp) / "vault", os.urandom(32)
        Vault.create(root, key, key_file_kdf(key))
        with Vault.open(root, key, writable=True) as vault:
            refs = []
            for f, box in enumerate(boxes):
                entries = {}
                for start in range(0, len(box), 128):  # as a backup hands them over
                    chunk = box[start : start + 128]
                    stored = vault.put_many(b"M", chunk)
                    for u, ((blob_id, _), raw) in enumerate(
                        zip(stored, chunk, strict=True), start + 1
                    ):
                        entries[u] = MessageEntry(u, blob_id, len(raw), when, ("\\Seen",))
                tree = FolderTree(f"Folder{f:02d}", 1, entries)
                tree_id = vault.put_tree(tree)
                refs.append(FolderRef(tree.name, 1, len(box) + 1, 1, len(box), tree_id))
            vault.save_snapshot(
                Snapshot(vault.snapshot_name("bench", when), "bench", when, tuple(refs), {})
            )
        size = sum(p.stat().st_size for p in (root / "packs").rglob("*") if p.is_file())
        with Vault.open(root, key) as vault:
            (snap,) = vault.snapshots("bench")
            trees = [vault.get_tree(r.tree) for r in snap.folders]
            ids = [m.blob_id for t in trees for m in t.messages.values()]
            picked = random.Random(5).sample(ids, min(500, len(ids)))
            shown = min(7, len(boxes) - 1)  # the eighth folder, or the last of fewer
            gets = _best(lambda: [vault.get(i) for i in picked], repeat)
            items = _best(
                lambda: [
                    restore_files(vault, snap, "eml", Path(tmp) / "one", messages=[i.hex()[:16]])
                    for i in picked[:ITEMS]
                ],
                repeat,
            )
            folder = _best(
                lambda: restore_files(vault, snap, "eml", Path(tmp) / "f", f"Folder{shown:02d}"),
                repeat,
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(f"vault of {count:,} messages stored in process: packs {size / 1e6:.1f} MB")
        print(
            f"Vault.get of a random message: {gets[0] / len(picked) * 1e6:.0f} µs CPU, "
            f"{gets[1] / len(picked) * 1e6:.0f} µs wall ({len(picked)} messages)"
        )
        print(
            f"item restore of one message (restore_files, one id): "
            f"{items[0] / len(picked[:ITEMS]) * 1e3:.1f} ms CPU, "
            f"{items[1] / len(picked[:ITEMS]) * 1e3:.1f} ms wall ({len(picked[:ITEMS])} messages)"
        )
        print(
            f"restore of one folder ({len(boxes[shown])} messages) to .eml: {folder[0]:.3f} CPU-s, "
            f"{folder[1]:.3f} s wall; peak memory of the process {peak} MiB"
        )


#: Messages restored one at a time (item restores) of those picked.
ITEMS = 20


def _best(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best CPU and best wall seconds of ``repeat`` runs of ``fn``."""
    cpu, wall = float("inf"), float("inf")
    for _ in range(repeat):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu, wall = min(cpu, time.process_time() - c), min(wall, time.perf_counter() - w)
    return cpu, wall


def best_cpu(fn: Callable[[], object], turns: int = 5) -> float:
    best = float("inf")
    for _ in range(turns):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def extraction(messages: list[bytes], folders: int) -> None:
    alone = best_cpu(lambda: [header_fields(m) for m in messages])
    per = len(messages) // folders
    when = datetime(2026, 1, 1, tzinfo=UTC)
    full = [
        FolderTree(
            f"F{f}",
            1,
            {
                u: MessageEntry(u, os.urandom(32), len(m), when, ("\\Seen",), *header_fields(m))
                for u, m in enumerate(messages[f * per : (f + 1) * per], 1)
            },
        )
        for f in range(folders)
    ]
    bare = [
        FolderTree(
            t.name,
            1,
            {u: m._replace(sender="", subject="", message_id="") for u, m in t.messages.items()},
        )
        for t in full
    ]
    with_h = best_cpu(lambda: [t.encode() for t in full])
    without = best_cpu(lambda: [t.encode() for t in bare])
    previous = best_cpu(lambda: [encode_previous(t) for t in bare])
    size_with = sum(len(t.encode()) for t in full)
    size_without = sum(len(t.encode()) for t in bare)
    print(
        f"header_fields over {len(messages):,} messages: {alone:.3f} CPU-s "
        f"({alone / len(messages) * 1e6:.2f} µs a message)"
    )
    print(
        f"encoding {folders} trees: {with_h:.3f} CPU-s with the header values, "
        f"{without:.3f} without ({size_with / 1e6:.2f} MB of JSON against "
        f"{size_without / 1e6:.2f}); "
        f"{previous:.3f} as the release before (json module, no header values)"
    )


def full_backups(messages: int, folders: int, repeat: int) -> None:
    with running_dovecot() as server, tempfile.TemporaryDirectory() as tmp:
        work, user = Path(tmp), "bench"
        home = f"{server.root}/home/{user}"
        line = f"{user}:{{PLAIN}}{BENCH_PASSWORD}:{server.uid}:{server.gid}::{home}"
        (server.root / "users" / user).write_text(line + "\n")
        write_maildir(server.root / "home" / user, messages, folders, server.uid, server.gid)
        warm_up(server, user)
        os.environ["BENCH_IMAP_PASSWORD"] = BENCH_PASSWORD
        account = bench_account(server, user)
        key = os.urandom(32)

        def run(n: int) -> tuple[float, float]:
            root = work / f"vault{n}"
            Vault.create(root, key, key_file_kdf(key))
            vault = Vault.open(root, key, writable=True)
            cpu, wall = time.process_time(), time.perf_counter()
            source = ImapSource(account)
            try:
                backup_account(vault, source)
            finally:
                source.close()
                vault.close()
            return time.process_time() - cpu, time.perf_counter() - wall

        # The backup as shipped; without the header values (extraction swapped for one
        # returning nothing); and as the release before (that, and its json tree encoder).
        variants = {
            "as shipped": (header_fields, FolderTree.encode),
            "without header values": (no_headers, FolderTree.encode),
            "as the release before": (no_headers, encode_previous),
        }
        results: dict[str, list[tuple[float, float]]] = {label: [] for label in variants}
        runs = iter(range(len(variants) * repeat))
        for _turn in range(repeat):
            for label, (extract, encode) in variants.items():
                backup_module.header_fields = extract
                FolderTree.encode = encode  # type: ignore[assignment,method-assign]
                try:
                    results[label].append(run(next(runs)))
                finally:
                    backup_module.header_fields = header_fields
                    FolderTree.encode = variants["as shipped"][1]  # type: ignore[assignment,method-assign]
        for label, found in results.items():
            cpus = sorted(c for c, _ in found)
            walls = sorted(w for _, w in found)
            print(
                f"full backup in process, {label}: CPU-s {' '.join(f'{c:.2f}' for c in cpus)}; "
                f"wall s {' '.join(f'{w:.2f}' for w in walls)}"
            )
        best = {label: min(c for c, _ in found) for label, found in results.items()}
        for label in ("without header values", "as the release before"):
            print(
                f"best CPU as shipped against {label}: {best['as shipped'] / best[label] - 1:+.1%}"
            )


def listing(accounts: int, per_account: int, folders: int = 50) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    refs = tuple(
        FolderRef(f"Folder{i:02d}", 1, 400, 900, 400, os.urandom(32)) for i in range(folders)
    )
    with tempfile.TemporaryDirectory() as tmp:
        timings = {}
        for tagged in (False, True):
            root = Path(tmp) / f"v{tagged}"
            key = os.urandom(32)
            Vault.create(root, key, key_file_kdf(key))
            with Vault.open(root, key, writable=True) as vault:
                for n in range(per_account):
                    when = t0 + timedelta(days=n)
                    for a in range(accounts):
                        name = (
                            vault.snapshot_name(f"user{a:02d}", when)
                            if tagged
                            else f"{when.strftime(STAMP)}-{os.urandom(4).hex()}"
                        )
                        vault.save_snapshot(Snapshot(name, f"user{a:02d}", when, refs, {}))
            with Vault.open(root, key) as vault:
                seconds = min(_timed(lambda: vault.snapshots("user07")) for _ in range(5))
                found = len(vault.snapshots("user07"))
                if tagged:
                    every = min(_timed(vault.snapshots) for _ in range(3))
                    newest = min(_timed(vault.newest_snapshots) for _ in range(3))
                    print(
                        f"every account's count and newest snapshot: {every * 1e3:.1f} ms "
                        f"opening all {accounts * per_account:,}, {newest * 1e3:.1f} ms "
                        "with newest_snapshots (the console's status)"
                    )
            timings[tagged] = seconds
            label = "tagged names" if tagged else "names of earlier releases"
            print(f"snapshots(one account), {label}: {seconds * 1e3:.1f} ms ({found} found)")
        print(
            f"{accounts} accounts × {per_account} snapshots of {folders} folders: "
            f"{timings[False] / timings[True]:.1f}× faster with tagged names"
        )


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--folders", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="turns of each full backup")
    parser.add_argument("--no-backup", action="store_true", help="skip the Dovecot backups")
    parser.add_argument(
        "--restores-only", action="store_true", help="only the single-message restores"
    )
    parser.add_argument("--accounts", type=int, default=20, help="accounts in the listing vault")
    parser.add_argument(
        "--snapshots", type=int, default=30, help="snapshots of each account in the listing vault"
    )
    args = parser.parse_args()
    print(f"{machine()}; load average {os.getloadavg()[0]:.1f} at start")
    single_restores(args.messages, args.folders, args.repeat)
    if args.restores_only:
        return
    extraction(bench_messages(args.messages), args.folders)
    listing(args.accounts, args.snapshots)
    if not args.no_backup:
        full_backups(args.messages, args.folders, args.repeat)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
