"""What the frame bound costs and saves: messages one to a frame against frames of 64, 128
and 256 KiB of messages (vault format 5).

    python -m bench.vault_frames [--messages 20000] [--folders 50] [--repeat 3]

The messages of ``bench.vault``'s mailbox (the same generated mail, CRLF, folder by
folder) are stored in process into a new key-file vault through ``Vault.put_many``, 128
at a time as a backup hands them over, then flushed: the CPU seconds of the process
(content ids, dedup look-ups, zstd, AES-GCM, pack writes and names, index inserts; every
thread), best of ``--repeat``, and the size of the packs. Then ``Vault.get`` of 300
messages picked at random (each from another frame than the one before): what reading
one message costs. A bound is tried by setting ``vigile.vault.pack.FRAME_BYTES``, which
the packer reads for each batch; "records" is a vault made as before format version 5.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import vigile.vault.pack as pack
from bench.common import machine
from bench.vault_items import folder_messages
from vigile.vault.crypto import KEY_FILE_KDF
from vigile.vault.repo import Vault


def store(messages: list[bytes], frames: bool) -> tuple[float, int, float]:
    """CPU seconds to store ``messages``, the packs' bytes, CPU seconds of one random get."""
    with tempfile.TemporaryDirectory() as tmp:
        root, key = Path(tmp) / "vault", os.urandom(32)
        Vault.create(root, key, KEY_FILE_KDF, frames=frames)
        with Vault.open(root, key, writable=True) as vault:
            start = time.process_time()
            for n in range(0, len(messages), 128):
                vault.put_many(b"M", messages[n : n + 128])
            vault.flush()
            cpu = time.process_time() - start
            picked = random.Random(1).sample(vault.keys.blob_ids(messages), 300)
            start = time.process_time()
            for blob_id in picked:
                vault.get(blob_id)
            get = (time.process_time() - start) / len(picked)
        size = sum(p.stat().st_size for p in (root / "packs").rglob("*") if p.is_file())
    return cpu, size, get


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--folders", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    messages = [m for box in folder_messages(args.messages, args.folders) for m in box]
    raw = sum(len(m) for m in messages)
    print(f"{machine()}; load average {os.getloadavg()[0]:.1f} at start")
    print(f"{len(messages):,} messages, {raw / 1e6:.1f} MB")
    shipped = pack.FRAME_BYTES
    try:
        for bound in (None, 64 << 10, 128 << 10, 256 << 10):
            pack.FRAME_BYTES = bound or shipped
            runs = [store(messages, bound is not None) for _ in range(args.repeat)]
            cpu = min(r[0] for r in runs)
            get = min(r[2] for r in runs)
            label = "records" if bound is None else f"{bound >> 10} KiB"
            print(
                f"{label:>8}: store {cpu:.3f} CPU-s (best of {args.repeat}), packs "
                f"{runs[0][1] / 1e6:.1f} MB ({runs[0][1] / raw:.3f} of the mail), "
                f"one random get {get * 1e6:.0f} µs CPU"
            )
    finally:
        pack.FRAME_BYTES = shipped
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
