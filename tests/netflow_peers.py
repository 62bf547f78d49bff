"""Drive the real NetFlow peers (softflowd, nfcapd, nfdump, nfpcapd, nfreplay) for tests."""

from __future__ import annotations

import csv
import io
import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from vigile.ingest.collector import Collector
from vigile.store.duckdb import DuckDBStore

FlowKey = tuple[str, int | None, str, int | None, int, int, int, int]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_softflowd(pcap: Path, port: int, version: str, bidir: bool, work: Path) -> int:
    """Export ``pcap`` to 127.0.0.1:port; returns the number of datagrams it sent.

    softflowd 1.1 reading a file waits on its control socket before it reads and
    again at the end of the file, so it is prodded with ``softflowctl`` until it exits.
    """
    ctl, pid = work / "sf.ctl", work / "sf.pid"
    ctl.unlink(missing_ok=True)
    cmd = ["softflowd", "-d", "-r", str(pcap), "-v", version, "-n", f"127.0.0.1:{port}"]
    cmd += ["-c", str(ctl), "-p", str(pid)] + (["-b"] if bidir else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        if ctl.exists():
            subprocess.run(["softflowctl", "-c", str(ctl), "statistics"], capture_output=True)
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        raise AssertionError("softflowd did not finish")
    out = proc.stdout.read() if proc.stdout else ""
    m = re.search(r"Flows exported: \d+ \(\d+ records\) in (\d+) packets", out)
    assert m is not None, out
    return int(m.group(1))


class RunningCollector:
    """vigile's collector on a free loopback port, in a thread, for the ``with`` block."""

    def __init__(self, db: Path, **kwargs: object) -> None:
        self.db = db
        self.collector = Collector(lambda: DuckDBStore(db, wait=10), "127.0.0.1", 0, **kwargs)  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self.collector.serve)

    def __enter__(self) -> RunningCollector:
        self.thread.start()
        return self

    def wait_for(self, datagrams: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self.collector.counters.datagrams < datagrams and time.monotonic() < deadline:
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        self.collector.stop()
        self.thread.join()
        self.counters = self.collector.close()

    def open(self) -> DuckDBStore:
        """The store, opened as another command would open it (close it after use)."""
        return DuckDBStore(self.db, wait=10)

    def count(self, table: str) -> int:
        store = self.open()
        try:
            return store.count(table)
        finally:
            store.close()

    def flows(self, merged: bool = True) -> Counter[FlowKey]:
        """The stored flow records. With ``merged`` (a one-direction export), a row with
        a responder side is a pair the collector merged: it gives back both records (a
        lone reply turned around, its originator's side null, gives back its one)."""
        store = self.open()
        rows = store.scan("conn").to_pylist()
        store.close()
        out: Counter[FlowKey] = Counter()
        for r in rows:
            own = (r["orig_pkts"], r["orig_ip_bytes"])
            if merged and r["resp_pkts"] is not None:
                back = (r["dst"], r["dst_port"], r["src"], r["src_port"], r["proto"])
                out[_key(*back, r["resp_pkts"], r["resp_ip_bytes"], None, None)] += 1
                if r["orig_pkts"] is None:  # a lone reply, turned: one record
                    continue
                out[
                    _key(
                        r["src"],
                        r["src_port"],
                        r["dst"],
                        r["dst_port"],
                        r["proto"],
                        *own,
                        None,
                        None,
                    )
                ] += 1
            else:
                side = (r["src"], r["src_port"], r["dst"], r["dst_port"], r["proto"])
                out[_key(*side, *own, r["resp_pkts"], r["resp_ip_bytes"])] += 1
        return out


def _key(src, sport, dst, dport, proto, pkts, octets, rpkts, roctets) -> FlowKey:  # type: ignore[no-untyped-def]
    ports = str(proto).lower() in ("tcp", "udp")
    return (
        src,
        sport if ports else None,
        dst,
        dport if ports else None,
        int(pkts),
        int(octets),
        int(rpkts or 0),
        int(roctets or 0),
    )


def nfdump_flows(flow_dir: Path) -> Counter[FlowKey]:
    """Per-flow packets and bytes as nfdump reports them for the files in ``flow_dir``."""
    out = subprocess.run(
        ["nfdump", "-R", str(flow_dir), "-o", "csv"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = csv.DictReader(io.StringIO(out))
    flows: Counter[FlowKey] = Counter()
    for r in rows:
        if r["ts"] == "Summary":
            break
        if not r.get("sa"):  # "No matching flows"
            continue
        flows[
            _key(
                r["sa"],
                int(r["sp"]),
                r["da"],
                int(r["dp"]),
                r["pr"],
                r["ipkt"],
                r["ibyt"],
                r["opkt"],
                r["obyt"],
            )
        ] += 1
    return flows


def nfcapd_capture(work: Path, export: Callable[[int], object]) -> Counter[FlowKey]:
    """Run nfcapd on a free loopback port while ``export(port)`` sends to it."""
    flow_dir = work / "nfcapd"
    flow_dir.mkdir()
    port = free_udp_port()
    proc = subprocess.Popen(
        ["nfcapd", "-w", str(flow_dir), "-b", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(0.5)  # nfcapd binds right away; give it the moment to do so
        export(port)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    return nfdump_flows(flow_dir)
