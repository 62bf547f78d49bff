"""Roles from traffic: what each internal host serves, with the evidence.

A host's role comes, in this order, from ``[hosts."<ip>"] role`` in the config,
from a configured management subnet (``[network] management`` → ``bmc``), and
otherwise from the services it answered in the store's history up to the end of
the window (a connection counts as answered when the responder sent payload,
``conn.resp_payload``):

==========  ==============================================================================
role        evidence
==========  ==============================================================================
bmc         IPMI/RMCP 623, virtual media 5120–5123, iDRAC console 7578, or Redfish
            (``/redfish/`` URIs); VNC 5900 is listed as supporting evidence only
mail        SMTP 25/465/587, IMAP 143/993, POP 110/995, or OWA/EWS/ActiveSync URIs
dns         DNS 53 answered for at least 2 clients
ntp         NTP 123 answered for at least 2 clients
server      any other TCP port below 49152 answered for at least 3 distinct clients
workstation none of the above
==========  ==============================================================================

When several apply, the first in the table is the host's role; all are kept in
:attr:`HostRole.roles`. The ``roles`` detector reports every non-workstation role
as a score-0 finding, so the console and ``--json`` show why a host is treated as
a server by :mod:`vigile.detect.exfil` and :mod:`vigile.detect.role_violation`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import ClassVar

from vigile.config import match_networks
from vigile.detect import Finding, HuntContext
from vigile.detect.traffic import bounds, in_networks
from vigile.store import Agg, Pred, Window

ROLE_ORDER = ("bmc", "mail", "dns", "ntp", "server", "workstation")
BMC_PORTS = {("udp", 623), ("tcp", 623), ("tcp", 7578)} | {("tcp", p) for p in range(5120, 5124)}
MAIL_PORTS = {("tcp", p) for p in (25, 465, 587, 143, 993, 110, 995)}
MAIL_URI_PREFIXES = ("/owa", "/ews", "/microsoft-server-activesync", "/mapi", "/ecp")
SERVICE_MIN_CLIENTS = {"dns": 2, "ntp": 2, "server": 3}
EPHEMERAL_START = 49152


@dataclass
class HostRole:
    """A host's role, every role that applies, and the evidence for each."""

    host: str
    role: str = "workstation"
    roles: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    source: str = "traffic"
    #: Ports the host answered for enough clients to count as a service, with their count.
    served: dict[int, int] = field(default_factory=dict)

    def add(self, role: str, why: str) -> None:
        if role not in self.roles:
            self.roles.append(role)
        self.evidence.append(why)
        self.roles.sort(key=ROLE_ORDER.index)
        self.role = self.roles[0]


def _service_role(proto: str, port: int, clients: int) -> str | None:
    if (proto, port) in BMC_PORTS:
        return "bmc"
    if (proto, port) in MAIL_PORTS:
        return "mail"
    if port == 53 and clients >= SERVICE_MIN_CLIENTS["dns"]:
        return "dns"
    if proto == "udp" and port == 123 and clients >= SERVICE_MIN_CLIENTS["ntp"]:
        return "ntp"
    if proto == "tcp" and port < EPHEMERAL_START and clients >= SERVICE_MIN_CLIENTS["server"]:
        return "server"
    return None


def infer_roles(ctx: HuntContext) -> dict[str, HostRole]:
    """Role of every internal host that answered a service (plus configured hosts).

    Hosts absent from the result are workstations. Inferred once per hunt and shared
    by every detector and pass that asks (callers must not change it).
    """
    return ctx.shared("roles", lambda: _infer_roles(ctx))


def _infer_roles(ctx: HuntContext) -> dict[str, HostRole]:
    history = Window(None, bounds(ctx)[1])
    served = ctx.store.group(
        "conn",
        ["dst", "dst_port", "proto"],
        [Agg("count_distinct", "src", "clients"), Agg("count", None, "connections")],
        window=history,
        where=[Pred("resp_payload", "=", True)],
        order_by=["dst", "dst_port", "proto"],
    )
    roles: dict[str, HostRole] = {}
    if served.num_rows:
        internal = match_networks(served.column("dst"), ctx.config.network.internal)
        for row, is_internal in zip(served.to_pylist(), internal, strict=True):
            if not is_internal or row["dst_port"] is None:
                continue
            proto, port, clients = row["proto"] or "", int(row["dst_port"]), int(row["clients"])
            role = _service_role(proto, port, clients)
            if role is not None:
                why = f"answered {port}/{proto} for {clients} client(s)"
                entry = roles.setdefault(row["dst"], HostRole(row["dst"]))
                entry.add(role, why)
                entry.served[port] = max(entry.served.get(port, 0), clients)
    _add_uri_roles(ctx, history, roles)
    _apply_config(ctx, roles)
    return roles


def _add_uri_roles(ctx: HuntContext, history: Window, roles: dict[str, HostRole]) -> None:
    uris = ctx.store.group(
        "http", ["dst", "uri"], [Agg("count_distinct", "src", "clients")], window=history
    )
    found: dict[tuple[str, str], int] = defaultdict(int)
    for row in uris.to_pylist():
        uri = (row["uri"] or "").lower()
        if uri.startswith("/redfish/"):
            found[(row["dst"], "bmc")] += 1
        elif uri.startswith(MAIL_URI_PREFIXES):
            found[(row["dst"], "mail")] += 1
    for (host, role), n in sorted(found.items()):
        if ctx.config.network.is_internal(host):
            what = "Redfish" if role == "bmc" else "OWA/EWS/ActiveSync"
            roles.setdefault(host, HostRole(host)).add(role, f"served {n} {what} URI(s)")


def _apply_config(ctx: HuntContext, roles: dict[str, HostRole]) -> None:
    for host in [*roles]:
        if in_networks(host, ctx.config.network.management):
            roles[host].add("bmc", "in a configured management subnet")
            roles[host].source = "management subnet"
    for address, host_cfg in ctx.config.hosts.items():
        if host_cfg.role:
            entry = roles.setdefault(address, HostRole(address))
            entry.role = host_cfg.role
            if host_cfg.role not in entry.roles:
                entry.roles.insert(0, host_cfg.role)
            entry.evidence.insert(0, f'role "{host_cfg.role}" set in the config')
            entry.source = "config"


def role_of(roles: dict[str, HostRole], host: str, ctx: HuntContext) -> str:
    """Role of ``host``: inferred, configured, management subnet, else workstation."""
    if host in roles:
        return roles[host].role
    if in_networks(host, ctx.config.network.management):
        return "bmc"
    return "workstation"


class RolesDetector:
    """Reports each host's inferred role with its evidence (score 0: information)."""

    name: ClassVar[str] = "roles"
    tables: ClassVar[tuple[str, ...]] = ("conn", "http")
    summary: ClassVar[str] = "Role of each internal host from the services it answers."

    def run(self, ctx: HuntContext) -> list[Finding]:
        start, end = bounds(ctx)
        findings = []
        for host, role in sorted(infer_roles(ctx).items()):
            if role.role == "workstation":
                continue
            findings.append(
                Finding(
                    self.name,
                    host,
                    None,
                    None,
                    0.0,
                    start,
                    end,
                    f"{host} acts as {role.role} ({role.source}): {'; '.join(role.evidence[:4])}.",
                    {
                        "role": role.role,
                        "roles": role.roles,
                        "evidence": role.evidence,
                        "source": role.source,
                    },
                )
            )
        return findings
