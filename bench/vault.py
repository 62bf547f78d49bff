"""Mail vault benchmark: vigile against mbsync (isync) on the same Dovecot mailbox.

    python -m bench.vault [--messages 20000] [--folders 50] [--repeat 1] [--no-fsync-yes]

Starts a throwaway Dovecot (as the vault tests do), writes generated mail straight into
the account's Maildir, has Dovecot index and cache all of it once (so no peer pays for that), then
times each peer in its own child process (wall time, CPU seconds of the child, peak RSS):

* full backup: ``vigile vault backup`` into a new vault; ``mbsync -a`` into a new Maildir;
* no-change incremental: the same commands again.

With ``--repeat N`` the peers take turns N times and the fastest run of each is kept (the
machine is shared: turns spread the other load evenly). Messages/s and MB/s are over the
raw message bytes in the mailbox. The load average is printed before and after. Every
full-backup turn is printed too (wall, user and system CPU, load, I/O waits), with each
peer's medians, and the ratio is given again over the turns that no peer had disturbed
(:func:`disturbed` states the rule).

vigile's own modules are compiled to bytecode first, as installing the package does: run
from an editable install with ``PYTHONDONTWRITEBYTECODE`` set (as on the development
machines), every start would otherwise compile them again (about 0.03 s).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from tests.vault.dovecot import Dovecot, account_toml, running_dovecot
from tests.vault.mailgen import make_message

import vigile as vigile_package
from bench.common import machine
from vigile.vault.backup import backup_account
from vigile.vault.crypto import key_file_kdf
from vigile.vault.imap import ImapSource
from vigile.vault.repo import Vault
from vigile.vault.settings import ImapAccount

BENCH_PASSWORD = "bench-password"


def template_of(i: int, folders: int, templates: int = 400) -> int:
    """Which template message ``i`` of the mailbox is a copy of (see :func:`write_maildir`):
    folder ``i % folders`` gets templates ``i // folders + 8 (i % folders)``, all different."""
    return (i // folders + 8 * (i % folders)) % templates


def write_maildir(home: Path, messages: int, folders: int, uid: int, gid: int) -> int:
    """Generated mail directly into Maildir++ folders; returns total bytes (CRLF counted).

    Building 20,000 messages with the ``email`` package takes minutes on a busy machine,
    so 400 are built and the rest are copies made unique by their Message-ID line. The
    copies are spread so that no folder holds one template twice (with 400 or fewer
    messages a folder): a vault that compresses a folder's messages several to a zstd
    frame (format version 5) would otherwise find whole messages repeated a few messages
    apart, and compress them to almost nothing, which real mail does not allow.
    """
    rng = random.Random(42)
    templates = [make_message(rng, i).replace(b"\r\n", b"\n") for i in range(400)]
    names = ["INBOX"] + [f"Folder{i:02d}" for i in range(1, folders)]
    total = 0
    for i in range(messages):
        name = names[i % folders]
        box = home / "Maildir" / ("" if name == "INBOX" else f".{name}")
        cur = box / "cur"
        if not cur.exists():
            for sub in ("cur", "new", "tmp"):
                (box / sub).mkdir(parents=True, exist_ok=True)
        raw = f"X-Bench-Id: {i}\n".encode() + templates[template_of(i, folders)]  # Maildir: LF
        total += len(raw) + raw.count(b"\n")  # IMAP sizes count CRLF
        (cur / f"{1700000000 + i}.M{i}P1.bench:2,{'S' if i % 3 else ''}").write_bytes(raw)
    for path in (home, *home.rglob("*")):
        os.chown(path, uid, gid)
    return total


def warm_up(server: Dovecot, user: str) -> None:
    """Have Dovecot index and cache every message, and the OS cache every file, once.

    Without it the first peer to run pays for Dovecot's index and cache build and for
    cold disk reads, and the peers after it do not.
    """
    subprocess.run(
        [
            "doveadm",
            "-c",
            str(server.root / "dovecot.conf"),
            "fetch",
            "-u",
            user,
            "uid flags size.virtual date.received text",
            "mailbox",
            "*",
            "all",
        ],
        stdout=subprocess.DEVNULL,
        check=True,
        **server.run_as(),  # type: ignore[call-overload]
    )


class Run(NamedTuple):
    """One child process: wall seconds, its CPU split by mode, peak RSS, the machine around it.

    ``peak_mib`` adds up each process's own peak RSS (the child and what it forks),
    ``peak_pss_mib`` is the highest sum of their proportional set sizes seen at one poll
    (a page two processes share counts half in each; see :func:`timed_run`).
    ``load`` is the one-minute load average as the run starts; ``io_wait`` the share of the
    run's wall time in which some task on the machine waited for I/O (``/proc/pressure/io``,
    "some"; ``nan`` where the kernel has no pressure stall information).
    """

    wall: float
    user: float
    system: float
    peak_mib: int
    load: float
    io_wait: float
    peak_pss_mib: int = 0

    @property
    def cpu(self) -> float:
        """User plus system seconds."""
        return self.user + self.system


def io_stall_us() -> float:
    """Microseconds some task has waited for I/O since boot (``nan`` without PSI)."""
    try:
        some = Path("/proc/pressure/io").read_text().splitlines()[0]
        return float(some.rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return float("nan")


def timed_run(cmd: list[str], env: dict[str, str]) -> Run:
    """Run one child process and measure it (see :class:`Run`).

    Peak RSS is the child's own ``VmHWM``, polled from /proc: ``ru_maxrss`` from ``wait4``
    would include the benchmark's own memory, which Linux carries across fork and exec.
    Processes the child forks are polled too (a backup that packed in a child process
    was measured this way, docs/benchmarks.md; mbsync and vigile fork none today), and
    their peaks added: pages they share with the child (what it had loaded before the
    fork, shared memory) are counted in each, so the sum is an upper bound. The sum of
    their proportional set sizes (``Pss`` in ``smaps_rollup``: a shared page counts half
    in each of two processes) at the same poll is what they hold together; its peak is
    sampled, so it may miss a short peak (reading ``smaps_rollup`` costs the bench about
    0.35 ms a poll). Their CPU is in the child's ``rusage``, as the child waits for them.
    """
    load = os.getloadavg()[0]
    stall = io_stall_us()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks: dict[int, int] = {}
    pss_kib = 0
    while proc.poll() is None:
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            children = []
        pss = 0
        for pid in [proc.pid, *map(int, children)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                peaks[pid] = max(peaks.get(pid, 0), int(status.split("VmHWM:")[1].split()[0]))
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
                pss += int(rollup.split("\nPss:")[1].split()[0])
            except (OSError, IndexError, ValueError):
                pass  # exiting between poll() and the read
        pss_kib = max(pss_kib, pss)
        time.sleep(0.02)
    peak_kib = sum(peaks.values())
    elapsed = time.perf_counter() - start
    io_wait = (io_stall_us() - stall) / 1e6 / elapsed
    if proc.returncode != 0:
        assert proc.stderr is not None
        raise SystemExit(f"{cmd[0]} failed: {proc.stderr.read().decode(errors='replace')}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    return Run(elapsed, user, system, peak_kib // 1024, load, io_wait, pss_kib // 1024)


#: A peer's turn is disturbed when its CPU exceeds its own lowest CPU in the run this much,
DISTURBED_CPU = 1.5
#: or when its system time exceeds its user time this much.
DISTURBED_SYSTEM = 3.0


def disturbed(runs: list[Run]) -> list[bool]:
    """Which of a peer's turns are disturbed (the rule the output states).

    A peer's own work is the same in every turn (the same mailbox into a new, empty
    target), so CPU well above its own best is not the peer's doing: wall time under
    load is expected and not flagged, extra CPU is. What was measured behind it: ext4's
    inode allocator, after many files were deleted on the file system in the last
    minutes (by another job, or an earlier run), costs mbsync's 20,000 file creations
    seconds of system time (``recently_deleted`` in ``perf``), while its user time stays
    at 0.3 s; undisturbed, its system time is about twice its user time, disturbed 6 to 15
    times. The second rule catches a run in which every turn was disturbed.
    """
    least = min(r.cpu for r in runs)
    return [r.cpu > DISTURBED_CPU * least or r.system > DISTURBED_SYSTEM * r.user for r in runs]


def mbsync_config(work: Path, server: Dovecot, user: str, fsync: bool) -> Path:
    name = "mbsync" if fsync else "mbsync-nofsync"
    if (work / name).exists():  # a new, empty Maildir; the last one set aside, not deleted:
        # ext4 skips inodes freed in the last minutes when it allocates new ones
        # (`recently_deleted`), which reads inode tables and costs a file-creating peer
        # seconds of system time per turn after 20,000 deletions (see docs/benchmarks.md)
        (work / name).rename(work / f"{name}.{time.monotonic_ns()}")
    (work / name).mkdir()
    rc = work / f"{name}rc"
    rc.write_text(
        f"""FSync {"yes" if fsync else "no"}

IMAPAccount bench
Host 127.0.0.1
Port {server.port}
User {user}
Pass {BENCH_PASSWORD}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account bench

MaildirStore local
Path {work}/{name}/
Inbox {work}/{name}/INBOX
SubFolders Verbatim

Channel bench
Far :remote:
Near :local:
Patterns *
Create Near
Sync Pull
SyncState *
"""
    )
    return rc


def vigile_config(work: Path, server: Dovecot, user: str) -> Path:
    shutil.rmtree(work / "vault", ignore_errors=True)  # a new, empty vault
    (work / "key").write_bytes(os.urandom(32))
    key = (work / "key").read_bytes()
    Vault.create(work / "vault", key, key_file_kdf(key))  # as `vigile vault init` does
    config = work / "vigile.toml"
    config.write_text(
        '[vault]\npath = "vault"\nkey_file = "key"\n' + account_toml(account(server, user))
    )
    return config


def account(server: Dovecot, user: str) -> ImapAccount:
    """The benchmark's account on ``server``, as vigile_config writes it."""
    return ImapAccount(
        "bench", "127.0.0.1", server.port, "plain", user, password_env="BENCH_IMAP_PASSWORD"
    )


def no_change_in_process(work: Path, server: Dovecot, user: str) -> float:
    """The engine alone: one more no-change run, timed from connect to saved snapshot."""
    os.environ["BENCH_IMAP_PASSWORD"] = BENCH_PASSWORD
    vault = Vault.open(work / "vault", (work / "key").read_bytes(), writable=True)
    try:
        start = time.perf_counter()
        source = ImapSource(account(server, user))
        _, stats = backup_account(vault, source)
        source.close()
        elapsed = time.perf_counter() - start
    finally:
        vault.close()
    assert stats.fetched == 0 and stats.folders_unchanged == stats.folders
    return elapsed


def fetch_only_in_process(server: Dovecot, user: str) -> float:
    """vigile's IMAP reading alone (every folder's messages, nothing stored), in process.

    The floor under a full backup's engine: how fast Dovecot serves the mailbox to one
    connection, plus vigile's response framing.
    """
    start = time.perf_counter()
    source = ImapSource(account(server, user))
    for folder in source.folders():
        for _ in source.fetch_folder(folder):
            pass
    source.close()
    return time.perf_counter() - start


def heavy_imports(cmd: list[str], env: dict[str, str]) -> list[str]:
    """Which of DuckDB, PyArrow, NumPy and FastAPI a command imports (``-X importtime``)."""
    done = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]], env=env, capture_output=True, text=True
    )
    names = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    return sorted(names & {"duckdb", "pyarrow", "numpy", "fastapi"})


def kdf_seconds(work: Path) -> tuple[str, float]:
    """The vault's KDF and the time opening the vault with it costs."""
    secret = (work / "key").read_bytes()
    start = time.perf_counter()
    Vault.open(work / "vault", secret).close()
    alg = json.loads((work / "vault" / "config").read_bytes())["kdf"]["alg"]
    return alg, time.perf_counter() - start


def report_turns(turns: dict[tuple[str, str], list[Run]], peers: list[str], repeat: int) -> None:
    """Every full-backup turn, each peer's medians, and the ratio over undisturbed turns.

    A turn is disturbed when a peer's CPU exceeds :data:`DISTURBED_CPU` times its own
    lowest in the run (:func:`disturbed`); the ratio of a turn is mbsync's wall time over
    vigile's in that same turn, and only turns where neither peer is disturbed count.
    """
    flags = {peer: disturbed(turns[("full", peer)]) for peer in peers}
    print(
        "full backup, every turn: wall s (CPU s = user + system), load average at its start, "
        "share of its wall time in which some task waited for I/O; * = disturbed "
        f"(CPU over {DISTURBED_CPU}x the peer's lowest in this run, or system time over "
        f"{DISTURBED_SYSTEM}x user time)"
    )
    for turn in range(repeat):
        cells = []
        for peer in peers:
            r = turns[("full", peer)][turn]
            mark = "*" if flags[peer][turn] else " "
            cells.append(
                f"{peer} {r.wall:.2f} ({r.cpu:.2f} = {r.user:.2f} + {r.system:.2f}) "
                f"peak {r.peak_mib} MiB (PSS {r.peak_pss_mib}) "
                f"load {r.load:.1f} I/O wait {r.io_wait:.0%}{mark}"
            )
        print(f"  turn {turn + 1}: " + "; ".join(cells))
    for peer in peers:
        runs = turns[("full", peer)]
        med = {f: statistics.median(getattr(r, f) for r in runs) for f in Run._fields[:3]}
        low = {f: min(getattr(r, f) for r in runs) for f in Run._fields[:3]}
        print(
            f"full backup, {peer}: wall median {med['wall']:.2f} best {low['wall']:.2f} s; "
            f"user CPU median {med['user']:.2f} best {low['user']:.2f}; system median "
            f"{med['system']:.2f} best {low['system']:.2f}; disturbed turns "
            f"{sum(flags[peer])} of {repeat}"
        )
    for peer in [p for p in peers if p != "vigile"]:
        clean = [
            turns[("full", peer)][t].wall / turns[("full", "vigile")][t].wall
            for t in range(repeat)
            if not flags[peer][t] and not flags["vigile"][t]
        ]
        if clean:
            print(
                f"full: vigile is {statistics.median(clean):.2f}x (median; best "
                f"{max(clean):.2f}x) the speed of {peer}, over the {len(clean)} of {repeat} "
                "turns that neither peer had disturbed"
            )
        else:
            print(f"full: no turn undisturbed for both vigile and {peer}: no ratio to count")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--folders", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=1, help="turns per peer; best kept")
    parser.add_argument(
        "--no-fsync-yes", action="store_true", help="leave out mbsync's default FSync yes"
    )
    args = parser.parse_args()
    compileall.compile_dir(Path(vigile_package.__file__).parent, quiet=1)
    with running_dovecot() as server, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        user = "bench"
        line = (
            f"{user}:{{PLAIN}}{BENCH_PASSWORD}:{server.uid}:{server.gid}::{server.root}/home/{user}"
        )
        (server.root / "users" / user).write_text(line + "\n")
        total = write_maildir(
            server.root / "home" / user, args.messages, args.folders, server.uid, server.gid
        )
        warm_up(server, user)
        env = {**os.environ, "BENCH_IMAP_PASSWORD": BENCH_PASSWORD}
        vigile = [sys.executable, "-m", "vigile", "vault", "backup", "--config"]
        peers = {
            "vigile": lambda: [*vigile, str(vigile_config(work, server, user))],
            "mbsync": lambda: [
                "mbsync",
                "-q",
                "-c",
                str(mbsync_config(work, server, user, True)),
                "-a",
            ],
            "mbsync FSync no": lambda: [
                "mbsync",
                "-q",
                "-c",
                str(mbsync_config(work, server, user, False)),
                "-a",
            ],
        }
        if args.no_fsync_yes:
            del peers["mbsync"]
        print(
            f"mailbox: {args.messages:,} messages, {args.folders} folders, "
            f"{total / 1e6:.1f} MB; {machine()}; load average {os.getloadavg()[0]:.1f} at start"
        )
        turns: dict[tuple[str, str], list[Run]] = {}
        commands: dict[str, list[str]] = {}
        for _turn in range(args.repeat):
            for peer, make in peers.items():
                commands[peer] = make()  # a new, empty target for each full backup
                for run in ("full", "no-change"):
                    turns.setdefault((run, peer), []).append(timed_run(commands[peer], env))
        best = {key: min(runs, key=lambda r: r.wall) for key, runs in turns.items()}
        head = f"{'run':<20}{'peer':<17}{'seconds':>9}{'CPU s':>8}{'msgs/s':>9}{'MB/s':>7}"
        print(head + f"{'peak MiB':>10}")
        for run in ("full", "no-change"):
            for peer in peers:
                b = best[(run, peer)]
                rate = f"{args.messages / b.wall:>9.0f}{total / 1e6 / b.wall:>7.1f}"
                rate = rate if run == "full" else " " * 16
                cells = f"{b.wall:>9.2f}{b.cpu:>8.2f}{rate}{b.peak_mib:>10}"
                print(f"{run + ' backup':<20}{peer:<17}{cells}")
        for run in ("full", "no-change"):
            for peer in [p for p in peers if p != "vigile"]:
                ratio = best[(run, peer)].wall / best[(run, "vigile")].wall
                print(f"{run}: vigile is {ratio:.2f}x the speed of {peer}")
        report_turns(turns, list(peers), args.repeat)
        engine = no_change_in_process(work, server, user)
        alg, kdf_s = kdf_seconds(work)
        print(
            f"no-change backup, in process (no interpreter start, no KDF): {engine:.2f} s "
            f"for {args.folders} folders; opening the vault ({alg} key derivation) {kdf_s:.2f} s"
        )
        print(
            "full backup's IMAP reading alone, in process (nothing stored): "
            f"{fetch_only_in_process(server, user):.2f} s"
        )
        heavy = heavy_imports(commands["vigile"], env)
        print(f"heavy modules imported by `vigile vault backup`: {', '.join(heavy) or 'none'}")
        vault_bytes = sum(p.stat().st_size for p in (work / "vault").rglob("*") if p.is_file())
        print(f"vault size {vault_bytes / 1e6:.1f} MB for {total / 1e6:.1f} MB of mail")
        print(f"load average {os.getloadavg()[0]:.1f} at the end ({args.repeat} turn(s) each)")


if __name__ == "__main__":
    main()
