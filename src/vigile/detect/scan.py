"""scan: address (horizontal) and port (vertical) scans, TCP and UDP.

Follows Zeek's ``policy/misc/scan.zeek`` (notices ``Scan::Address_Scan`` and
``Scan::Port_Scan``): a failed probe (see :mod:`vigile.detect.probes`: a TCP attempt
that got no answer, was rejected or reset before any payload, or a UDP datagram that
got nothing back) is counted per prober, and within each ``interval`` (Zeek's
``addr_scan_interval`` and ``port_scan_interval``, 5 min, tumbling like a SumStats
epoch)

* **address scan**: the prober failed to reach ``addr_threshold`` (25) or more
  distinct hosts on one port;
* **port scan**: the prober failed to reach ``port_threshold`` (15) or more distinct
  ports of one host.

Zeek's script counts TCP only. UDP is counted the same way, per protocol, with
``udp_addr_threshold`` and ``udp_port_threshold`` (default: the TCP ones), and two
guards against ordinary clients: a target that answered on that port in the epoch is
not counted, and at least ``udp_min_unanswered_share`` (0.5) of the distinct hosts
(ports) the prober tried in the epoch must be unanswered. A resolver querying hundreds
of name servers, a few of them dead, gets most answers; a sweep gets almost none.

One finding per scanner. An internal scanner (a compromised desktop mapping the
network) is a host-level finding (``dst`` empty)::

    score = 0.6 + 0.3 · min(1, log10(peak / threshold))      10× a threshold → 0.9

where ``peak / threshold`` is the largest ratio over every epoch, both kinds and both
protocols; −0.3 when the scanner is in ``[network] admin_hosts`` (a sanctioned
vulnerability scanner). An outside scanner is internet background: its finding names
the internal host it probed most as ``dst`` (so it joins that host's pair and host
scores next to ``role_violation``'s management-port findings) and scores 0.35, 0.45
when it crossed both thresholds. Options: ``[detectors.scan] interval_minutes,
addr_threshold, port_threshold, udp_addr_threshold, udp_port_threshold,
udp_min_unanswered_share``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from vigile.detect import Finding, HuntContext
from vigile.detect.probes import answered_udp, failed_probes
from vigile.detect.traffic import bounds, format_ports, in_networks, internal_lookup
from vigile.store import Window


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
    summary: ClassVar[str] = "Address and port scans, TCP and UDP (Zeek scan.zeek thresholds)."

    def run(self, ctx: HuntContext) -> list[Finding]:
        opts = ctx.config.section("detectors.scan")
        self.interval = timedelta(minutes=float(opts.get("interval_minutes", 5)))
        self.addr_threshold = int(opts.get("addr_threshold", 25))
        self.port_threshold = int(opts.get("port_threshold", 15))
        self.udp_addr_threshold = int(opts.get("udp_addr_threshold", self.addr_threshold))
        self.udp_port_threshold = int(opts.get("udp_port_threshold", self.port_threshold))
        self.udp_share = float(opts.get("udp_min_unanswered_share", 0.5))
        start, end = bounds(ctx)
        window = Window(start, end)
        failed = failed_probes(ctx, window, self.interval)
        if not failed.num_rows:
            return []
        failed, answered = self._udp_answers(ctx, window, failed)
        scanners = self._scanners(failed, answered)
        internal = internal_lookup(ctx)
        return [
            self._finding(ctx, src, s, internal(src), start, end)
            for src, s in sorted(scanners.items())
        ]

    def _udp_answers(
        self, ctx: HuntContext, window: Window, failed: pa.Table
    ) -> tuple[pa.Table, pa.Table]:
        """Drop UDP probes of targets that answered on that port in that epoch.

        Returns the probes left and the answered UDP flows of the sources that could
        still cross a UDP threshold (a resolver that mostly gets answers is no sweep).
        """
        udp = failed.filter(pc.equal(failed["proto"], "udp"))
        wide = _over(udp, ["src", "dst_port", "epoch"], "dst", self.udp_addr_threshold)
        deep = _over(udp, ["src", "dst", "epoch"], "dst_port", self.udp_port_threshold)
        answered = answered_udp(ctx, window, self.interval, sorted(wide | deep))
        if not answered.num_rows:
            return failed, answered
        keys = ["src", "dst", "dst_port", "proto", "epoch"]
        heard = answered.select(keys).group_by(keys).aggregate([])
        return failed.join(heard, keys, join_type="left anti"), answered

    def _scanners(self, failed: pa.Table, answered: pa.Table) -> dict[str, Scanner]:
        """Epochs over either threshold, then the totals of each scanner found."""
        scanners: dict[str, Scanner] = {}
        udp = pc.equal(failed["proto"], "udp")
        for kind, keys, counted, i in (
            ("address", ["src", "proto", "dst_port", "epoch"], "dst", 0),
            ("port", ["src", "proto", "dst", "epoch"], "dst_port", 1),
        ):
            limit = pc.if_else(udp, self._limits("udp")[i], self._limits("tcp")[i])
            for r in self._epochs(failed, answered, keys, counted, limit):
                s = scanners.setdefault(r["src"], Scanner())
                if kind == "address":
                    s.address_scans.append({"port": r["dst_port"], "proto": r["proto"],
                                            "hosts": r["n"], "epoch": r["epoch"]})  # fmt: skip
                else:
                    s.port_scans.append({"host": r["dst"], "proto": r["proto"],
                                         "ports": r["n"], "epoch": r["epoch"]})  # fmt: skip
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

    def _limits(self, proto: str) -> tuple[int, int]:
        """The address and port scan thresholds of ``proto``."""
        if proto == "udp":
            return self.udp_addr_threshold, self.udp_port_threshold
        return self.addr_threshold, self.port_threshold

    def _epochs(
        self,
        failed: pa.Table,
        answered: pa.Table,
        keys: list[str],
        counted: str,
        thresholds: pa.ChunkedArray,
    ) -> list[dict[str, Any]]:
        """Groups of ``keys`` with at least their protocol's threshold of ``counted``.

        For UDP the group also needs ``udp_min_unanswered_share`` of its distinct
        targets (or ports) unanswered; TCP keeps Zeek's plain count.
        """
        t = failed.append_column("threshold", thresholds)
        groups = t.group_by(keys).aggregate([(counted, "count_distinct"), ("threshold", "max")])
        groups = _named(groups, {f"{counted}_count_distinct": "n", "threshold_max": "threshold"})
        groups = groups.filter(pc.greater_equal(groups["n"], groups["threshold"]))
        if groups.num_rows and answered.num_rows:
            got = answered.group_by(keys).aggregate([(counted, "count_distinct")])
            got = _named(got, {f"{counted}_count_distinct": "answered"})
            groups = groups.join(got, keys, join_type="left outer")
            n = pc.cast(groups["n"], pa.float64())
            share = pc.divide(n, pc.add(n, pc.fill_null(groups["answered"], 0)))
            udp = pc.equal(groups["proto"], "udp")
            groups = groups.filter(pc.or_(pc.invert(udp), pc.greater_equal(share, self.udp_share)))
        rows = groups.select([*keys, "n"]).to_pylist()
        return sorted(rows, key=lambda r: tuple(str(r[k]) for k in keys))

    def _peak_ratio(self, s: Scanner) -> float:
        ratios = [a["hosts"] / self._limits(a["proto"])[0] for a in s.address_scans]
        ratios += [p["ports"] / self._limits(p["proto"])[1] for p in s.port_scans]
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
        for proto in ("tcp", "udp"):
            wide = [a for a in s.address_scans if a["proto"] == proto]
            deep = [p for p in s.port_scans if p["proto"] == proto]
            what += self._clauses(proto, wide, deep)
        text = (
            f"{who}: {' and '.join(what)}; {s.failed:,} failed connection(s) to "
            f"{s.victims} host(s) on {s.ports} port(s) in the window"
        )
        if dst is not None:
            text += f"; probed {dst} most"
        protocols = sorted({x["proto"] for x in s.address_scans + s.port_scans})
        evidence = {
            "kinds": kinds,
            "protocols": protocols,
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
            **_maxima(s, None),
            "by_protocol": {proto: _maxima(s, proto) for proto in protocols},
            "thresholds": {
                "interval_s": self.interval.total_seconds(),
                "addr_scan": self.addr_threshold,
                "port_scan": self.port_threshold,
                "udp_addr_scan": self.udp_addr_threshold,
                "udp_port_scan": self.udp_port_threshold,
                "udp_min_unanswered_share": self.udp_share,
            },
        }
        return Finding(self.name, src, dst, None, score, start, end, text + ".", evidence)

    def _clauses(
        self, proto: str, wide: list[dict[str, Any]], deep: list[dict[str, Any]]
    ) -> list[str]:
        """The address and port scan phrases of one protocol."""
        udp = proto == "udp"
        addr, port = self._limits(proto)
        unit = "unanswered ports" if udp else "ports"
        what = []
        if wide:
            top = max(wide, key=lambda a: (a["hosts"], -a["port"]))
            ports = format_ports({a["port"] for a in wide})
            what.append(
                f"{'UDP ' if udp else ''}address scan of port(s) {ports} (up to "
                f"{top['hosts']} hosts on {top['port']}/{proto} in {self._minutes()}; "
                f"threshold {addr})"
            )
        if deep:
            top = max(deep, key=lambda p: (p["ports"], p["host"]))
            hosts = len({p["host"] for p in deep})
            what.append(
                f"{'UDP ' if udp else ''}port scan of {hosts} host(s) (up to {top['ports']} "
                f"{unit} of {top['host']} in {self._minutes()}; threshold {port})"
            )
        return what

    def _minutes(self) -> str:
        return f"{self.interval.total_seconds() / 60:g} min"


def _maxima(s: Scanner, proto: str | None) -> dict[str, int]:
    """The most hosts on one port and ports of one host in an epoch (of ``proto``)."""
    wide = [a["hosts"] for a in s.address_scans if proto in (None, a["proto"])]
    deep = [p["ports"] for p in s.port_scans if proto in (None, p["proto"])]
    return {
        "max_hosts_on_one_port": max(wide, default=0),
        "max_ports_on_one_host": max(deep, default=0),
    }


def _named(t: pa.Table, names: dict[str, str]) -> pa.Table:
    return t.rename_columns([names.get(c, c) for c in t.column_names])


def _over(t: pa.Table, keys: list[str], counted: str, threshold: int) -> set[str]:
    """Sources with a group of ``keys`` holding ``threshold`` or more distinct ``counted``."""
    groups = _named(t.group_by(keys).aggregate([(counted, "count_distinct")]),
                    {f"{counted}_count_distinct": "n"})  # fmt: skip
    return set(groups.filter(pc.greater_equal(groups["n"], threshold))["src"].to_pylist())
