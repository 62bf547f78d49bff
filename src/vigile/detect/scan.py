"""scan: address (horizontal) and port (vertical) scans from failed TCP connections.

Follows Zeek's ``policy/misc/scan.zeek`` (notices ``Scan::Address_Scan`` and
``Scan::Port_Scan``): a connection attempt that failed (no answer, rejected, or reset
before any payload) is counted per scanner, and within each ``interval`` (Zeek's
``addr_scan_interval`` and ``port_scan_interval``, 5 min, tumbling like a SumStats
epoch)

* **address scan**: the scanner failed to reach ``addr_threshold`` (25) or more
  distinct hosts on one port;
* **port scan**: the scanner failed to reach ``port_threshold`` (15) or more distinct
  ports of one host.

Failed means TCP with Zeek state ``S0``, ``REJ``, ``RSTO``, ``RSTR``, ``RSTOS0``,
``RSTRH``, ``SH``, ``SHR`` or ``OTH`` and no payload in either direction (Zeek's
``connection_attempt``/``connection_rejected`` and its ``is_failed_conn`` for resets).
Zeek's reversed-direction case (the responder is the scanner) is not counted: logs
give the originator, and flows from NetFlow have no handshake to reverse.

One finding per scanner. An internal scanner (a compromised desktop mapping the
network) is a host-level finding (``dst`` empty)::

    score = 0.6 + 0.3 · min(1, log10(peak / threshold))      10× a threshold → 0.9

where ``peak / threshold`` is the largest ratio over every epoch and both kinds;
−0.3 when the scanner is in ``[network] admin_hosts`` (a sanctioned vulnerability
scanner). An outside scanner is internet background: its finding names the internal
host it probed most as ``dst`` (so it joins that host's pair and host scores next to
``role_violation``'s management-port findings) and scores 0.35, 0.45 when it crossed
both thresholds. Options: ``[detectors.scan] interval_minutes, addr_threshold,
port_threshold``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from vigile.detect import Finding, HuntContext
from vigile.detect.traffic import bounds, format_ports, in_networks, internal_lookup
from vigile.store import Pred, Window

FAILED_STATES = ("S0", "REJ", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH")


@dataclass
class Scanner:
    """What one source's failed connections add up to in the window."""

    address_scans: list[dict[str, Any]] = field(default_factory=list)
    port_scans: list[dict[str, Any]] = field(default_factory=list)
    failed: int = 0
    victims: int = 0
    ports: int = 0
    first: datetime | None = None
    last: datetime | None = None
    top_victim: str | None = None


class ScanDetector:
    """Zeek-style address and port scans: many failed connections from one source."""

    name: ClassVar[str] = "scan"
    tables: ClassVar[tuple[str, ...]] = ("conn",)
    summary: ClassVar[str] = "Address and port scans (Zeek scan.zeek thresholds)."

    def run(self, ctx: HuntContext) -> list[Finding]:
        opts = ctx.config.section("detectors.scan")
        self.interval = timedelta(minutes=float(opts.get("interval_minutes", 5)))
        self.addr_threshold = int(opts.get("addr_threshold", 25))
        self.port_threshold = int(opts.get("port_threshold", 15))
        start, end = bounds(ctx)
        failed = failed_connections(ctx, Window(start, end), self.interval)
        if not failed.num_rows:
            return []
        scanners = self._scanners(failed)
        internal = internal_lookup(ctx)
        return [
            self._finding(ctx, src, s, internal(src), start, end)
            for src, s in sorted(scanners.items())
        ]

    def _scanners(self, failed: pa.Table) -> dict[str, Scanner]:
        """Epochs over either threshold, then the totals of each scanner found."""
        by_port = failed.group_by(["src", "dst_port", "epoch"]).aggregate(
            [("dst", "count_distinct")]
        )
        by_host = failed.group_by(["src", "dst", "epoch"]).aggregate(
            [("dst_port", "count_distinct")]
        )
        scanners: dict[str, Scanner] = {}
        for r in by_port.filter(
            pc.greater_equal(by_port["dst_count_distinct"], self.addr_threshold)
        ).to_pylist():
            scanners.setdefault(r["src"], Scanner()).address_scans.append(
                {"port": r["dst_port"], "hosts": r["dst_count_distinct"], "epoch": r["epoch"]}
            )
        for r in by_host.filter(
            pc.greater_equal(by_host["dst_port_count_distinct"], self.port_threshold)
        ).to_pylist():
            scanners.setdefault(r["src"], Scanner()).port_scans.append(
                {"host": r["dst"], "ports": r["dst_port_count_distinct"], "epoch": r["epoch"]}
            )
        if not scanners:
            return scanners
        mine = failed.filter(pc.is_in(failed["src"], value_set=pa.array(list(scanners))))
        totals = mine.group_by(["src"]).aggregate(
            [
                ("dst", "count_distinct"),
                ("dst_port", "count_distinct"),
                ("ts", "count"),
                ("ts", "min"),
                ("ts", "max"),
            ]
        )
        for r in totals.to_pylist():
            s = scanners[r["src"]]
            s.victims, s.ports, s.failed = (
                r["dst_count_distinct"],
                r["dst_port_count_distinct"],
                r["ts_count"],
            )
            s.first, s.last = r["ts_min"], r["ts_max"]
        per_victim = mine.group_by(["src", "dst"]).aggregate([("ts", "count")]).to_pylist()
        for r in sorted(per_victim, key=lambda r: (-r["ts_count"], r["dst"])):
            if scanners[r["src"]].top_victim is None:
                scanners[r["src"]].top_victim = r["dst"]
        return scanners

    def _peak_ratio(self, s: Scanner) -> float:
        ratios = [a["hosts"] / self.addr_threshold for a in s.address_scans]
        ratios += [p["ports"] / self.port_threshold for p in s.port_scans]
        return max(ratios)

    def _finding(
        self,
        ctx: HuntContext,
        src: str,
        s: Scanner,
        internal: bool,
        start: datetime,
        end: datetime,
    ) -> Finding:
        kinds = [k for k, hit in (("address", s.address_scans), ("port", s.port_scans)) if hit]
        peak = self._peak_ratio(s)
        admin = in_networks(src, ctx.config.network.admin_hosts)
        if internal:
            score = 0.6 + 0.3 * min(1.0, math.log10(max(peak, 1.0))) - (0.3 if admin else 0.0)
            dst = None
            who = f"internal host {src}" + (" (an admin host: −0.3)" if admin else "")
        else:
            score = 0.45 if len(kinds) == 2 else 0.35
            dst = s.top_victim
            who = f"outside address {src}"
        what = []
        if s.address_scans:
            top = max(s.address_scans, key=lambda a: (a["hosts"], -a["port"]))
            ports = {a["port"] for a in s.address_scans}
            what.append(
                f"address scan of port(s) {format_ports(ports)} (up to {top['hosts']} hosts "
                f"on {top['port']}/tcp in {self._minutes()}; threshold {self.addr_threshold})"
            )
        if s.port_scans:
            top = max(s.port_scans, key=lambda p: (p["ports"], p["host"]))
            hosts = {p["host"] for p in s.port_scans}
            what.append(
                f"port scan of {len(hosts)} host(s) (up to {top['ports']} ports of "
                f"{top['host']} in {self._minutes()}; threshold {self.port_threshold})"
            )
        text = (
            f"{who}: {' and '.join(what)}; {s.failed:,} failed connection(s) to "
            f"{s.victims} host(s) on {s.ports} port(s) in the window"
        )
        if dst is not None:
            text += f"; probed {dst} most"
        evidence = {
            "kinds": kinds,
            "internal_scanner": internal,
            "admin_host": admin,
            "failed_connections": s.failed,
            "distinct_hosts": s.victims,
            "distinct_ports": s.ports,
            "first_failed": s.first.isoformat() if s.first else None,
            "last_failed": s.last.isoformat() if s.last else None,
            "peak_over_threshold": round(peak, 3),
            "address_scan_epochs": len(s.address_scans),
            "port_scan_epochs": len(s.port_scans),
            "max_hosts_on_one_port": max((a["hosts"] for a in s.address_scans), default=0),
            "max_ports_on_one_host": max((p["ports"] for p in s.port_scans), default=0),
            "thresholds": {
                "interval_s": self.interval.total_seconds(),
                "addr_scan": self.addr_threshold,
                "port_scan": self.port_threshold,
            },
        }
        return Finding(self.name, src, dst, None, score, start, end, text + ".", evidence)

    def _minutes(self) -> str:
        return f"{self.interval.total_seconds() / 60:g} min"


def failed_connections(ctx: HuntContext, window: Window, interval: timedelta) -> pa.Table:
    """Failed TCP connection attempts in ``window`` with their epoch (``interval`` slice).

    No payload in either direction, as Zeek's ``is_failed_conn`` requires of resets.
    """
    t = ctx.store.scan(
        "conn",
        ["ts", "src", "dst", "dst_port", "orig_bytes", "resp_bytes"],
        window=window,
        where=[
            Pred("proto", "=", "tcp"),
            Pred("conn_state", "in", list(FAILED_STATES)),
            Pred("dst_port", "is not null"),
        ],
    )
    silent = pc.and_(
        pc.equal(pc.fill_null(t["orig_bytes"], 0), 0),
        pc.equal(pc.fill_null(t["resp_bytes"], 0), 0),
    )
    t = t.filter(silent)
    seconds = int(interval.total_seconds())
    epoch = pc.floor_temporal(t["ts"], multiple=seconds, unit="second")
    return pa.table(
        {
            "ts": t["ts"],
            "src": t["src"],
            "dst": t["dst"],
            "dst_port": t["dst_port"],
            "epoch": epoch,
        }
    )
