"""pcap ingest throughput: vigile end to end, tshark and a plain dpkt loop, side by side.

Run from the repository root: ``.venv/bin/python -m bench.pcap [--copies N]``, or
``.venv/bin/python -m bench.pcap --simulated HOURS``.

The input is built from the shared captures (``../shared/data/pcap``): their packets
are written ``--copies`` times into one pcap, each copy shifted by one hour so the
flows of different copies stay apart. With ``--simulated`` it is instead ``vigile
simulate``'s benign office traffic (20 desktops and the servers, printers and BMCs of
the office) for that many hours, written as a capture: a mix of many ordinary flows
rather than the shared captures' oddities. Each contender runs in its own child process
so its peak memory (maximum resident set size) is its own:

* vigile: ``ingest_file`` into a fresh DuckDB store (hash, read, decode, flows,
  metadata, write): pcap to stored tables;
* tshark: the same extraction, conversations (``-z conv,tcp``, ``-z conv,udp``) plus
  the DNS, SNI, JA3 and HTTP Host fields of every frame;
* dpkt: a plain Python loop decoding Ethernet/IP/TCP/UDP and summing packets and
  bytes per 5-tuple (no metadata), the usual hand-rolled baseline.

Each contender also runs on one copy (with ``--simulated``: on the first 1 % of the
packets); its CPU time there (start-up: imports, the compiled-code cache, the store;
and the first packets) is taken off to give the CPU cost per packet beyond it, the
steady rate of one core.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dpkt

from bench.common import machine

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VIGILE_SHARED_DATA", ROOT.parent / "shared" / "data"))
TSHARK_FIELDS = [
    *("ip.src", "ipv6.src", "tcp.srcport", "udp.srcport", "dns.qry.name"),
    *("tls.handshake.extensions_server_name", "tls.handshake.ja3", "http.host"),
]


def build_capture(out: Path, copies: int, exclude: tuple[str, ...] = ()) -> int:
    """Write the shared Ethernet captures ``copies`` times, time-shifted; return packets."""
    records = []
    for path in sorted((SHARED / "pcap").glob("*/*")):
        if path.name in exclude:
            continue
        with path.open("rb") as f:
            reader = dpkt.pcap.UniversalReader(f)
            if reader.datalink() == dpkt.pcap.DLT_EN10MB:
                records += [(ts, bytes(buf)) for ts, buf in reader]
    base = min(ts for ts, _ in records)
    with out.open("wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=262_144, linktype=dpkt.pcap.DLT_EN10MB)
        for k in range(copies):
            shift = 1_700_000_000 + 3600 * k - base
            for ts, buf in records:
                writer.writepkt(buf, ts=float(ts) + shift)
    return len(records) * copies


def simulate_capture(out: Path, hours: float) -> int:
    """``vigile simulate``'s benign office traffic for ``hours`` as a pcap; returns packets."""
    vigile = Path(sys.executable).with_name("vigile")
    folder = out.parent / "simulated"
    days = f"{hours / 24:.4f}"
    cmd = [str(vigile), "simulate", "-o", str(folder), "--days", days, "--hosts", "20"]
    subprocess.run([*cmd, "-f", "pcap", "-s", "none"], check=True, capture_output=True)
    (folder / "traffic.pcap").rename(out)
    shutil.rmtree(folder)
    with out.open("rb") as f:
        return sum(1 for _ in dpkt.pcap.Reader(f))


def head_capture(src: Path, out: Path, packets: int) -> int:
    """The first ``packets`` packets of ``src`` into ``out``; returns how many."""
    with src.open("rb") as f, out.open("wb") as g:
        reader = dpkt.pcap.Reader(f)
        writer = dpkt.pcap.Writer(g, snaplen=reader.snaplen, linktype=reader.datalink())
        n = 0
        for ts, buf in reader:
            if n == packets:
                break
            writer.writepkt(buf, ts=ts)
            n += 1
    return n


def run_vigile(path: Path) -> str:
    from vigile.ingest import ingest_file, registered_readers
    from vigile.store.duckdb import DuckDBStore

    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp) / "bench.duckdb")
        result = ingest_file(store, path, registered_readers())
        store.close()
    return ", ".join(f"{n:,} {t}" for t, n in result.rows.items())


def run_dpkt(path: Path) -> str:
    flows: dict[tuple, list[int]] = {}
    with path.open("rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                continue
            l4 = ip.data
            ports = (l4.sport, l4.dport) if isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP) else (0, 0)
            a, b = (ip.src, ports[0]), (ip.dst, ports[1])
            key = (min(a, b), max(a, b), ip.p if isinstance(ip, dpkt.ip.IP) else ip.nxt)
            entry = flows.setdefault(key, [0, 0])
            entry[0] += 1
            entry[1] += len(ip)
    return f"{len(flows):,} 5-tuples"


def run_tshark(path: Path) -> str:
    cmd = ["tshark", "-r", str(path), "-n", "-T", "fields", "-z", "conv,tcp", "-z", "conv,udp"]
    for field in TSHARK_FIELDS:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    return f"{out.count(b'<->'):,} conversation lines"


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _child(
    fn: Callable[[Path], str], path: Path, conn: multiprocessing.connection.Connection
) -> None:
    start, cpu = time.perf_counter(), _cpu()
    what = fn(path)
    elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
    peak_kib = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    conn.send((elapsed, cpu, peak_kib, what))


def measure(fn: Callable[[Path], str], path: Path) -> tuple[float, float, int, str]:
    """Wall and CPU seconds, peak memory (KiB) and a summary of ``fn(path)``, in a child."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(fn, path, child))
    proc.start()
    result = parent.recv()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=100, help="copies of the shared captures")
    parser.add_argument(
        "--skip",
        nargs="*",
        action="extend",
        default=[],
        help="contenders to leave out (--skip dpkt tshark, or --skip repeated)",
    )
    parser.add_argument("--exclude", nargs="*", default=[], help="shared captures to leave out")
    parser.add_argument(
        "--simulated", type=float, metavar="HOURS", help="simulated office traffic instead"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, one = Path(tmp) / "bench.pcap", Path(tmp) / "one.pcap"
        if args.simulated:
            packets = simulate_capture(path, args.simulated)
            small = head_capture(path, one, packets // 100)
            what = f"simulated office, {args.simulated:g} hours"
        else:
            packets = build_capture(path, args.copies, tuple(args.exclude))
            small = build_capture(one, 1, tuple(args.exclude))
            what = f"{args.copies} copies"
        size = path.stat().st_size
        print(f"input: {packets:,} packets, {size / 1e6:,.1f} MB ({what})")
        print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f} at the start")
        contenders = {"vigile": run_vigile, "tshark": run_tshark, "dpkt": run_dpkt}
        if shutil.which("tshark") is None:
            args.skip.append("tshark")
        results = {}
        for name, fn in contenders.items():
            if name in args.skip:
                continue
            elapsed, cpu, peak, what = measure(fn, path)
            # The same on one copy: start-up (imports, compiled-code cache, store) and
            # the cost of the first packets, taken off to give the rate per packet.
            start_cpu = measure(fn, one)[1]
            rate = (packets - small) / max(cpu - start_cpu, 1e-9)
            results[name] = (elapsed, cpu, cpu - start_cpu)
            print(
                f"{name:7s} wall {elapsed:7.2f} s ({packets / elapsed / 1e6:5.3f} M packets/s)  "
                f"cpu {cpu:7.2f} s ({packets / cpu / 1e6:5.3f} M packets/cpu-s, "
                f"{size / cpu / 1e6:6.1f} MB/cpu-s)  peak {peak / 1024:6.1f} MiB  ({what})"
            )
            print(
                f"{'':7s} one copy: cpu {start_cpu:5.2f} s; beyond it "
                f"{rate / 1e6:5.3f} M packets/cpu-s"
            )
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        if "vigile" in results:
            (wall, cpu, extra) = results["vigile"]
            for name in ("tshark", "dpkt"):
                if name in results:
                    other_wall, other_cpu, other_extra = results[name]
                    print(
                        f"vigile vs {name}: {other_wall / wall:.1f}x faster (wall), "
                        f"{other_cpu / cpu:.1f}x less CPU, "
                        f"{other_extra / extra:.1f}x less CPU beyond one copy"
                    )


if __name__ == "__main__":
    main()
