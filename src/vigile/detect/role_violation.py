"""role_violation: hosts acting against their role (see :mod:`vigile.detect.roles`).

Four checks over the window; a finding's ``src``/``dst`` keep the real direction:

=====================  ===============================================================  =====
check                  when                                                             score
=====================  ===============================================================  =====
bmc outbound           a BMC opens connections to public addresses (a management        0.85
                       controller has no business on the internet); answered: 0.9
bmc dns                a BMC looks up names (implants resolve their C2)                 0.65
server outbound        a server (server, mail, dns, ntp) opens connections to public    0.75
                       addresses on a port outside its role's allowed egress ports and
                       never did so before the window; with under 24 h of history the
                       comparison is impossible: only a role set in the config is
                       judged then, at 0.5 (an inferred role is not firm enough)
inbound management     public hosts reach management ports (IPMI 623, SSH 22, Telnet    0.75
                       23, RDP 3389, VNC 5900, WinRM 5985/5986, virtual media) that the
                       host does not serve as a service, or non-admin hosts reach
                       anything on a BMC, and the port answered; unanswered 0.35
                       (internet background noise, kept low; a scan from inside,
                       10 or more ports or 3 or more management ports, +0.1)
management probed      10 or more sources probed a host's management ports without      0.5
                       an answer (one summary per host); 100 or more: 0.6
exposed management     a host serves a management port and public addresses got         0.5
                       answers on it (one finding per host and port, not per scanner)
unsolicited inbound    public hosts open connections to a workstation (a host that      0.5
                       answers no service); +0.1 for 10 or more ports (a scan)
=====================  ===============================================================  =====

Allowed egress ports per role come from ``[detectors.role_violation]
allowed_ports`` (a table of role → port list); the defaults are below.
``[network] admin_hosts`` lists the hosts allowed on the management plane.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import ClassVar

from vigile.detect import Finding, HuntContext
from vigile.detect.rare_destination import history_hours
from vigile.detect.roles import HostRole, infer_roles, role_of
from vigile.detect.traffic import (
    PairTraffic,
    bounds,
    format_ports,
    in_networks,
    internal_lookup,
    is_public,
    pair_traffic,
)
from vigile.store import Agg, Window

SERVER_ROLES = ("server", "mail", "dns", "ntp")
DEFAULT_ALLOWED = {
    "server": [53, 80, 123, 443],
    "mail": [25, 53, 80, 123, 443, 465, 587],
    "dns": [53, 80, 123, 443],
    "ntp": [53, 80, 123, 443],
    "bmc": [],
}
#: A host probed by this many sources gets one summary finding (each probe alone is low).
PROBED_MIN_SOURCES = 10
MGMT_PORTS = {22, 23, 623, 664, 3389, 5900, 5985, 5986, 7578, 5120, 5121, 5122, 5123}


class RoleViolationDetector:
    """A BMC or server initiating outbound connections, BMC DNS, exposed management."""

    name: ClassVar[str] = "role_violation"
    tables: ClassVar[tuple[str, ...]] = ("conn", "dns", "http")
    summary: ClassVar[str] = "BMCs or servers starting outbound traffic; exposed management."

    def run(self, ctx: HuntContext) -> list[Finding]:
        start, end = bounds(ctx)
        roles = infer_roles(ctx)
        pairs = pair_traffic(ctx, Window(start, end))
        allowed = {
            **DEFAULT_ALLOWED,
            **ctx.config.section("detectors.role_violation").get("allowed_ports", {}),
        }
        known = self._earlier_egress(ctx, start) if history_hours(ctx) >= 24 else None
        out: list[Finding] = []
        internal = internal_lookup(ctx)
        for (src, dst), p in sorted(pairs.items()):
            src_in, dst_in = internal(src), internal(dst)
            if src_in and not dst_in and is_public(dst):
                role = role_of(roles, src, ctx)
                ports = {q for q in p.ports if q not in allowed.get(role, [])}
                if role == "bmc" and ports:
                    out.append(self._bmc_outbound(ctx, src, dst, p, ports))
                elif role in SERVER_ROLES and ports:
                    new = ports if known is None else {q for q in ports if (src, q) not in known}
                    # without history only a role the user set is firm enough to judge by
                    configured = src in roles and roles[src].source == "config"
                    if new and (known is not None or configured):
                        out.append(self._server_outbound(ctx, src, dst, role, p, new, known))
            if dst_in and (not src_in or role_of(roles, dst, ctx) == "bmc"):
                f = self._inbound(ctx, src, dst, role_of(roles, dst, ctx), roles.get(dst), p)
                if f is not None:
                    out.append(f)
        out += self._probed(ctx, out)
        out += self._bmc_dns(ctx, roles, Window(start, end))
        out += self._exposed(ctx, roles, pairs)
        return out

    def _probed(self, ctx: HuntContext, found: list[Finding]) -> list[Finding]:
        """One finding per host that many sources probed without an answer."""
        probes: dict[str, list[Finding]] = defaultdict(list)
        for f in found:
            ev = f.evidence
            if ev.get("check") == "inbound management" and not ev["answered_ports"]:
                probes[str(f.dst)].append(f)
        out = []
        for host, fs in sorted(probes.items()):
            if len(fs) < PROBED_MIN_SOURCES:
                continue
            ports = sorted({q for f in fs for q in f.evidence["ports"]})
            conns = sum(int(f.evidence["connections"]) for f in fs)
            top = max(fs, key=lambda f: (int(f.evidence["connections"]), str(f.src)))
            listed = format_ports(set(ports))
            text = (
                f"{len(fs)} outside address(es) probed management port(s) {listed} "
                f"of {fs[0].evidence['role']} {host} in {conns} connection(s), none answered; "
                f"busiest {top.src} ({top.evidence['connections']} connection(s))."
            )
            ev = {
                "check": "management probed",
                "sources": len(fs),
                "connections": conns,
                "ports": ports,
                "top_peer": top.src,
            }
            # Nothing answered, but the probes reached the host: its management ports are
            # open to the internet at the firewall, an exposure worth a look (medium).
            score = 0.5 + (0.1 if len(fs) >= 10 * PROBED_MIN_SOURCES else 0.0)
            out.append(self._finding(ctx, host, None, score, text, ev))
        return out

    def _earlier_egress(self, ctx: HuntContext, start: datetime) -> set[tuple[str, int]]:
        rows = ctx.store.group(
            "conn", ["src", "dst_port"], [Agg("count", None, "n")], window=Window(None, start)
        )
        internal = internal_lookup(ctx)
        return {
            (r["src"], int(r["dst_port"]))
            for r in rows.to_pylist()
            if r["dst_port"] is not None and internal(r["src"])
        }

    def _finding(
        self,
        ctx: HuntContext,
        src: str,
        dst: str | None,
        score: float,
        text: str,
        evidence: dict[str, object],
        fqdn: str | None = None,
    ) -> Finding:
        start, end = bounds(ctx)
        return Finding(self.name, src, dst, fqdn, score, start, end, text, evidence)

    def _bmc_outbound(
        self, ctx: HuntContext, src: str, dst: str, p: PairTraffic, ports: set[int]
    ) -> Finding:
        score = 0.9 if p.answered else 0.85
        text = (
            f"BMC {src} opened {p.connections} connection(s) to public address {dst} on "
            f"port(s) {format_ports(ports)} ({p.answered} answered); a management controller "
            "should not start internet traffic."
        )
        ev = {
            "check": "bmc outbound",
            "role": "bmc",
            "ports": sorted(ports),
            "connections": p.connections,
            "answered": p.answered,
        }
        return self._finding(ctx, src, dst, score, text, ev)

    def _server_outbound(
        self,
        ctx: HuntContext,
        src: str,
        dst: str,
        role: str,
        p: PairTraffic,
        ports: set[int],
        known: set[tuple[str, int]] | None,
    ) -> Finding:
        score = 0.75 if known is not None else 0.5
        history = (
            "never did so before the window"
            if known is not None
            else "under 24 h of history, so it cannot be called new"
        )
        text = (
            f"{role} {src} opened {p.connections} connection(s) to public address {dst} "
            f"on port(s) {format_ports(ports)} outside its role's egress ports; {history}."
        )
        ev = {
            "check": "server outbound",
            "role": role,
            "ports": sorted(ports),
            "connections": p.connections,
            "answered": p.answered,
            "history": known is not None,
        }
        return self._finding(ctx, src, dst, score, text, ev)

    def _inbound(
        self,
        ctx: HuntContext,
        src: str,
        dst: str,
        name: str,
        role: HostRole | None,
        p: PairTraffic,
    ) -> Finding | None:
        served = set(role.served) if role else set()
        admin = in_networks(src, ctx.config.network.admin_hosts)
        mgmt = p.ports if name == "bmc" else (p.ports & MGMT_PORTS) - served
        if mgmt and not admin and (is_public(src) or name == "bmc"):
            answered = mgmt & p.answered_ports
            scan = len(p.ports) >= 10 or len(mgmt) >= 3
            # Unanswered probes from the internet are background noise, scan or not: the
            # scan detector reports fast sweeps (Zeek's thresholds) beside this finding,
            # and the pair score combines the two. From inside, a scan of a BMC is recon.
            bonus = 0.1 if scan and not is_public(src) else 0.0
            score = 0.75 if answered else 0.35 + bonus
            text = (
                f"{src} reached management port(s) {format_ports(mgmt)} of {name} {dst} in "
                f"{p.connections} connection(s) to {len(p.ports)} port(s), answered on "
                f"{format_ports(answered) if answered else 'none'}; it is not an admin host"
                f"{'; a scan' if scan else ''}."
            )
            ev = {
                "check": "inbound management",
                "role": name,
                "ports": sorted(mgmt),
                "distinct_ports": len(p.ports),
                "connections": p.connections,
                "answered_ports": sorted(answered),
            }
            return self._finding(ctx, src, dst, score, text, ev)
        if name == "workstation" and is_public(src):
            scan = len(p.ports) >= 10
            text = (
                f"Public host {src} opened {p.connections} connection(s) to workstation "
                f"{dst} on {len(p.ports)} port(s) ({format_ports(p.ports)}), {p.answered} "
                f"answered{'; a port scan' if scan else ''}."
            )
            ev = {
                "check": "unsolicited inbound",
                "role": name,
                "ports": sorted(p.ports)[:50],
                "distinct_ports": len(p.ports),
                "connections": p.connections,
                "answered": p.answered,
            }
            return self._finding(ctx, src, dst, 0.5 + (0.1 if scan else 0.0), text, ev)
        return None

    def _exposed(
        self,
        ctx: HuntContext,
        roles: dict[str, HostRole],
        pairs: dict[tuple[str, str], PairTraffic],
    ) -> list[Finding]:
        public: dict[tuple[str, int], set[str]] = defaultdict(set)
        internal = internal_lookup(ctx)
        for (src, dst), p in pairs.items():
            if is_public(src) and internal(dst):
                for port in p.answered_ports & MGMT_PORTS:
                    public[(dst, port)].add(src)
        out = []
        for (host, port), clients in sorted(public.items()):
            role = role_of(roles, host, ctx)
            if port not in (roles[host].served if host in roles else {}):
                continue  # not a service there: the per-pair check reports it
            text = (
                f"{role} {host} answered management port {port} for {len(clients)} public "
                "address(es) in the window; anyone who reaches it can try to log in."
            )
            ev = {
                "check": "exposed management",
                "role": role,
                "port": port,
                "public_clients": len(clients),
            }
            out.append(self._finding(ctx, host, None, 0.5, text, ev))
        return out

    def _bmc_dns(
        self, ctx: HuntContext, roles: dict[str, HostRole], window: Window
    ) -> list[Finding]:
        rows = ctx.store.group("dns", ["src", "query"], [Agg("count", None, "n")], window=window)
        by_host: dict[str, dict[str, int]] = defaultdict(dict)
        for r in rows.to_pylist():
            if role_of(roles, r["src"], ctx) == "bmc":
                by_host[r["src"]][r["query"] or "?"] = int(r["n"])
        out = []
        for host, names in sorted(by_host.items()):
            top = sorted(names, key=lambda n: (-names[n], n))
            text = (
                f"BMC {host} made {sum(names.values())} DNS look-up(s) for {len(names)} "
                f"name(s), most often {top[0]}; a management controller rarely resolves "
                "names."
            )
            ev = {"check": "bmc dns", "lookups": sum(names.values()), "names": top[:10]}
            out.append(self._finding(ctx, host, None, 0.65, text, ev, fqdn=top[0]))
        return out
