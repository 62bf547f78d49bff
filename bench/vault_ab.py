"""Full backups of two versions of vigile in alternating turns, on ``bench.vault``'s mailbox.

    git archive main src | tar -x -C /tmp/main
    python -m bench.vault_ab --other /tmp/main/src [--pairs 10]

Each turn runs ``vigile vault backup`` in a child process into a new key-file vault, made
by that version's own ``Vault.create`` (so each writes its own default format), once with
this tree's code and once with the code under ``--other`` (through ``PYTHONPATH``), the
order swapped every pair so that neither always runs first. Both trees are compiled to
bytecode first. Per run: CPU seconds of the
child (user + system), wall seconds, peak memory, the packs' size; then medians and
bests. On a shared machine single runs say little; pairs run a second apart see the
same load.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.vault.dovecot import running_dovecot

import vigile as vigile_package
from bench.common import machine
from bench.vault import BENCH_PASSWORD, Run, timed_run, warm_up, write_maildir

CREATE = (
    "import sys; from pathlib import Path; from vigile.vault.repo import Vault; "
    "from vigile.vault.crypto import key_file_kdf; key = Path(sys.argv[2]).read_bytes(); "
    "Vault.create(Path(sys.argv[1]), key, key_file_kdf(key))"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, help="src folder of the other version")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--folders", type=int, default=50)
    args = parser.parse_args()
    if args.other is None:  # as `python -m bench` runs every module: nothing to compare
        print("bench.vault_ab compares two versions: give --other SRC_FOLDER")
        return
    # Both versions compiled to bytecode first, as bench.vault does: with
    # PYTHONDONTWRITEBYTECODE set (as on the development machines) an exported tree would
    # otherwise be compiled again at every start, and weigh on that version alone.
    for src in (Path(vigile_package.__file__).parent, args.other / "vigile"):
        compileall.compile_dir(src, quiet=1)
    with running_dovecot() as server, tempfile.TemporaryDirectory() as tmp:
        work, user = Path(tmp), "bench"
        home = f"{server.root}/home/{user}"
        line = f"{user}:{{PLAIN}}{BENCH_PASSWORD}:{server.uid}:{server.gid}::{home}"
        (server.root / "users" / user).write_text(line + "\n")
        write_maildir(
            server.root / "home" / user, args.messages, args.folders, server.uid, server.gid
        )
        warm_up(server, user)
        (work / "key").write_bytes(os.urandom(32))
        config = work / "vigile.toml"
        config.write_text(
            f'[vault]\npath = "vault"\nkey_file = "key"\n\n[[vault.accounts]]\nname = "bench"\n'
            f'host = "127.0.0.1"\nport = {server.port}\nsecurity = "plain"\n'
            f'username = "{user}"\npassword_env = "BENCH_IMAP_PASSWORD"\n'
        )
        envs = {
            "this": {**os.environ, "BENCH_IMAP_PASSWORD": BENCH_PASSWORD},
            "other": {
                **os.environ,
                "BENCH_IMAP_PASSWORD": BENCH_PASSWORD,
                "PYTHONPATH": str(args.other.resolve()),
            },
        }
        print(f"{machine()}; load average {os.getloadavg()[0]:.1f} at start")
        results: dict[str, list[tuple[Run, int]]] = {"this": [], "other": []}
        for pair in range(args.pairs):
            for label in ("other", "this") if pair % 2 == 0 else ("this", "other"):
                shutil.rmtree(work / "vault", ignore_errors=True)
                create = [sys.executable, "-c", CREATE, str(work / "vault"), str(work / "key")]
                subprocess.run(create, env=envs[label], check=True)
                backup = [
                    sys.executable,
                    "-m",
                    "vigile",
                    "vault",
                    "backup",
                    "--config",
                    str(config),
                ]
                run = timed_run(backup, envs[label])
                packs = work / "vault" / "packs"
                size = sum(p.stat().st_size for p in packs.rglob("*") if p.is_file())
                results[label].append((run, size))
                print(
                    f"{label:<6} CPU {run.cpu:.3f} s ({run.user:.3f} user + {run.system:.3f} "
                    f"system), wall {run.wall:.2f} s, peak {run.peak_mib} MiB "
                    f"(PSS {run.peak_pss_mib}), "
                    f"packs {size / 1e6:.1f} MB, load {run.load:.1f}"
                )
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        for label, rows in results.items():
            runs = [r for r, _ in rows]
            cpus, walls = [r.cpu for r in runs], [r.wall for r in runs]
            print(
                f"{label:<6} CPU median {statistics.median(cpus):.3f} best {min(cpus):.3f} s "
                f"(user median {statistics.median(r.user for r in runs):.3f}, system median "
                f"{statistics.median(r.system for r in runs):.3f}); "
                f"wall median {statistics.median(walls):.2f} best {min(walls):.2f} s; "
                f"peak {max(r.peak_mib for r in runs)} MiB (PSS "
                f"{max(r.peak_pss_mib for r in runs)}); packs {rows[0][1] / 1e6:.1f} MB"
            )
        pairs = zip(results["this"], results["other"], strict=True)
        lower = [(a.cpu < b.cpu, a.wall < b.wall) for (a, _), (b, _) in pairs]
        print(
            f"this version used less CPU in {sum(c for c, _ in lower)} of {args.pairs} pairs, "
            f"less wall time in {sum(w for _, w in lower)}"
        )


if __name__ == "__main__":
    main()
